/**
 * Checks the body of `POST /orders`: `{ "customerId": string, "items": [{ "sku": string, "qty": int > 0 }] }`.
 * The first problem found is reported with a stable code and the path of the offending field
 * (`items[1].qty`; `""` is the whole body).
 */
import { findSku } from '../catalogue.js';

export type ErrorCode =
  | 'body_too_large'
  | 'invalid_json'
  | 'invalid_type'
  | 'missing_field'
  | 'invalid_value'
  | 'invalid_quantity'
  | 'unknown_sku';

export interface ApiError {
  readonly code: ErrorCode | 'not_found' | 'method_not_allowed' | 'invalid_query' | 'internal';
  readonly message: string;
  readonly path: string;
}

export interface OrderRequest {
  readonly customerId: string;
  /** One line per sku (lines of the same sku are added up), in the order first given. */
  readonly items: readonly { sku: string; qty: number; unitPrice: number }[];
  /** Cents. */
  readonly total: number;
}

export const limits = { bodyBytes: 64 * 1024, customerIdLength: 200, lines: 100, qty: 10_000 } as const;

type Result = { ok: true; value: OrderRequest } | { ok: false; error: ApiError };

const fail = (code: ErrorCode, path: string, message: string): Result => ({
  ok: false,
  error: { code, path, message },
});

/** Parses and checks the raw body. */
export function parseOrderRequest(body: Buffer): Result {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (error) {
    return fail('invalid_json', '', `the body is not valid JSON: ${(error as Error).message}`);
  }
  return validateOrderRequest(json);
}

export function validateOrderRequest(json: unknown): Result {
  if (!isObject(json)) return fail('invalid_type', '', `the body must be a JSON object, got ${kind(json)}`);
  const { customerId, items } = json;
  if (customerId === undefined) return fail('missing_field', 'customerId', 'customerId is required');
  if (typeof customerId !== 'string')
    return fail('invalid_type', 'customerId', `customerId must be a string, got ${kind(customerId)}`);
  if (customerId.trim() === '') return fail('invalid_value', 'customerId', 'customerId must not be empty');
  if (customerId.length > limits.customerIdLength)
    return fail(
      'invalid_value',
      'customerId',
      `customerId must be at most ${limits.customerIdLength} characters`,
    );
  if (items === undefined) return fail('missing_field', 'items', 'items is required');
  if (!Array.isArray(items))
    return fail('invalid_type', 'items', `items must be an array, got ${kind(items)}`);
  if (items.length === 0) return fail('invalid_value', 'items', 'items must have at least one line');
  if (items.length > limits.lines)
    return fail('invalid_value', 'items', `items must have at most ${limits.lines} lines`);

  const lines = new Map<string, { sku: string; qty: number; unitPrice: number }>();
  for (const [index, line] of items.entries()) {
    const at = `items[${index}]`;
    if (!isObject(line)) return fail('invalid_type', at, `${at} must be an object, got ${kind(line)}`);
    const { sku, qty } = line;
    if (sku === undefined) return fail('missing_field', `${at}.sku`, `${at}.sku is required`);
    if (typeof sku !== 'string')
      return fail('invalid_type', `${at}.sku`, `${at}.sku must be a string, got ${kind(sku)}`);
    if (qty === undefined) return fail('missing_field', `${at}.qty`, `${at}.qty is required`);
    if (typeof qty !== 'number')
      return fail('invalid_type', `${at}.qty`, `${at}.qty must be a number, got ${kind(qty)}`);
    if (!Number.isInteger(qty) || qty <= 0)
      return fail(
        'invalid_quantity',
        `${at}.qty`,
        `${at}.qty must be a whole number greater than 0, got ${qty}`,
      );
    if (qty > limits.qty)
      return fail('invalid_quantity', `${at}.qty`, `${at}.qty must be at most ${limits.qty}`);
    const item = findSku(sku);
    if (!item) return fail('unknown_sku', `${at}.sku`, `unknown sku ${JSON.stringify(sku)}`);
    const seen = lines.get(sku);
    if (seen) seen.qty += qty;
    else lines.set(sku, { sku, qty, unitPrice: item.price });
  }
  for (const [sku, line] of lines) {
    if (line.qty > limits.qty)
      return fail('invalid_quantity', 'items', `the lines of ${sku} add up to more than ${limits.qty}`);
  }
  const value = [...lines.values()];
  return {
    ok: true,
    value: { customerId, items: value, total: value.reduce((sum, l) => sum + l.qty * l.unitPrice, 0) },
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function kind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
