import type { StandardSchemaV1 } from '@standard-schema/spec';
import { ConfigurationError, ValidationError } from './errors.js';
import { assertMessageType } from './names.js';

/** Turns data written with an older contract version into the next version's shape. */
export type Upcaster = (data: unknown) => unknown;

/** Options of `defineEvent`, `defineCommand` and `defineRequest`. */
export interface ContractOptions {
  /** Version of the schema, a positive integer (default 1). Newer versions need upcasters from older ones. */
  version?: number;
  /** `{ 1: v1 => v2 }`: upcaster from each older version to the one after it. */
  upcasters?: Readonly<Record<number, Upcaster>>;
}

interface ContractBase<TKind extends string, TType extends string, TSchema extends StandardSchemaV1> {
  readonly kind: TKind;
  readonly type: TType;
  readonly schema: TSchema;
  readonly version: number;
  readonly upcasters: Readonly<Record<number, Upcaster>>;
}

/** "Something happened": published to the topic, each subscribed endpoint gets a copy. */
export interface EventContract<
  TType extends string = string,
  TSchema extends StandardSchemaV1 = StandardSchemaV1,
> extends ContractBase<'event', TType, TSchema> {}

/** "Do this": sent to the one endpoint that owns the type. */
export interface CommandContract<
  TType extends string = string,
  TSchema extends StandardSchemaV1 = StandardSchemaV1,
> extends ContractBase<'command', TType, TSchema> {}

/** A command that expects a reply shaped by `replySchema`. */
export interface RequestContract<
  TType extends string = string,
  TSchema extends StandardSchemaV1 = StandardSchemaV1,
  TReplySchema extends StandardSchemaV1 = StandardSchemaV1,
> extends ContractBase<'request', TType, TSchema> {
  readonly replySchema: TReplySchema;
}

/** Any contract. */
export type Contract = EventContract | CommandContract | RequestContract;

/** The data a handler receives for contract `C` (the schema's output type). */
export type DataOf<C extends Contract> = StandardSchemaV1.InferOutput<C['schema']>;
/** The data a producer passes for contract `C` (the schema's input type). */
export type InputOf<C extends Contract> = StandardSchemaV1.InferInput<C['schema']>;
/** The reply a request handler returns. */
export type ReplyInputOf<C extends RequestContract> = StandardSchemaV1.InferInput<C['replySchema']>;
/** The reply a requester receives. */
export type ReplyOf<C extends RequestContract> = StandardSchemaV1.InferOutput<C['replySchema']>;

function base<TKind extends string, TType extends string, TSchema extends StandardSchemaV1>(
  kind: TKind,
  type: TType,
  schema: TSchema,
  options: ContractOptions,
): ContractBase<TKind, TType, TSchema> {
  assertMessageType(type);
  assertSchema(schema, type);
  const version = options.version ?? 1;
  if (!Number.isInteger(version) || version < 1) {
    throw new ConfigurationError(
      `contract '${type}': version must be a positive integer, got ${String(version)}`,
    );
  }
  const upcasters = options.upcasters ?? {};
  for (let from = 1; from < version; from++) {
    if (typeof upcasters[from] !== 'function') {
      throw new ConfigurationError(
        `contract '${type}' is version ${version} but has no upcaster from version ${from}: pass upcasters: { ${from}: (data) => ... }`,
      );
    }
  }
  return Object.freeze({ kind, type, schema, version, upcasters: Object.freeze({ ...upcasters }) });
}

function assertSchema(schema: unknown, type: string): asserts schema is StandardSchemaV1 {
  const standard = (schema as { '~standard'?: { version?: unknown; validate?: unknown } } | null)?.[
    '~standard'
  ];
  if (standard?.version !== 1 || typeof standard.validate !== 'function') {
    throw new ConfigurationError(
      `contract '${type}': schema is not a Standard Schema v1 (use zod, valibot, arktype or any library that implements it)`,
    );
  }
}

/**
 * Declares an event contract.
 * @example const OrderPlaced = defineEvent('orders.placed', z.object({ orderId: z.string() }));
 */
export function defineEvent<const TType extends string, TSchema extends StandardSchemaV1>(
  type: TType,
  schema: TSchema,
  options: ContractOptions = {},
): EventContract<TType, TSchema> {
  return base('event', type, schema, options);
}

/**
 * Declares a command contract; exactly one endpoint handles it.
 * @example const ChargePayment = defineCommand('payments.charge', z.object({ orderId: z.string(), amount: z.number() }));
 */
export function defineCommand<const TType extends string, TSchema extends StandardSchemaV1>(
  type: TType,
  schema: TSchema,
  options: ContractOptions = {},
): CommandContract<TType, TSchema> {
  return base('command', type, schema, options);
}

/**
 * Declares a request contract with the schema of its reply.
 * @example const CheckStock = defineRequest('inventory.check-stock', z.object({ sku: z.string() }), z.object({ available: z.number() }));
 */
export function defineRequest<
  const TType extends string,
  TSchema extends StandardSchemaV1,
  TReplySchema extends StandardSchemaV1,
>(
  type: TType,
  schema: TSchema,
  replySchema: TReplySchema,
  options: ContractOptions = {},
): RequestContract<TType, TSchema, TReplySchema> {
  assertSchema(replySchema, type);
  return Object.freeze({ ...base('request', type, schema, options), replySchema });
}

/**
 * Validates `value` against a Standard Schema. Resolves the schema's output or throws
 * `ValidationError` whose message names each path at fault.
 */
export async function validate<TSchema extends StandardSchemaV1>(
  schema: TSchema,
  value: unknown,
  what: string,
): Promise<StandardSchemaV1.InferOutput<TSchema>> {
  return validateNow(schema, value, what);
}

/**
 * `validate` without a promise when the schema answers synchronously (zod, valibot and most do):
 * the publish and consume paths run once per message, and each avoided promise counts there.
 */
export function validateNow<TSchema extends StandardSchemaV1>(
  schema: TSchema,
  value: unknown,
  what: string,
): StandardSchemaV1.InferOutput<TSchema> | Promise<StandardSchemaV1.InferOutput<TSchema>> {
  const result = schema['~standard'].validate(value);
  if (result instanceof Promise) return result.then((settled) => outcome(settled, what));
  return outcome(result, what);
}

function outcome<T>(result: StandardSchemaV1.Result<T>, what: string): T {
  if (!result.issues) return result.value;
  const issues = result.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message }));
  const detail = issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ');
  throw new ValidationError(`${what} is invalid: ${detail}`, issues);
}

function formatPath(path: StandardSchemaV1.Issue['path']): string {
  if (!path) return '';
  return path
    .map((segment) => {
      const key = typeof segment === 'object' ? segment.key : segment;
      return typeof key === 'number' ? `[${key}]` : `.${String(key)}`;
    })
    .join('')
    .replace(/^\./, '');
}

/** Brings data written with `fromVersion` up to the contract's version; throws `ValidationError` for a newer version. */
export function upcast(contract: Contract, data: unknown, fromVersion: number): unknown {
  if (fromVersion === contract.version) return data;
  if (fromVersion > contract.version) {
    throw new ValidationError(
      `message '${contract.type}' is version ${fromVersion}, newer than version ${contract.version} this consumer knows: deploy the newer consumer`,
    );
  }
  let current = data;
  for (let v = fromVersion; v < contract.version; v++) current = contract.upcasters[v]!(current);
  return current;
}
