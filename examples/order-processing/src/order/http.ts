/**
 * The order service's HTTP API on node:http (no framework):
 *
 * - `POST /orders` → `202 { id, status }`, or `400 { error: { code, message, path } }` for bad input;
 * - `GET /orders/:id` → the order with its status, reason, total and history, or `404`;
 * - `GET /orders?status=pending|confirmed|cancelled&limit=N` → the latest orders;
 * - `GET /inventory` → stock per sku; `GET /health` → `{ status: "ok" }`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { toAmount } from '../catalogue.js';
import type { StockLevel } from '../inventory/store.js';
import type { HistoryEntry, OrderRow, OrderStatus } from './store.js';
import { orderStatuses } from './store.js';
import type { ApiError, OrderRequest } from './validate.js';
import { limits, parseOrderRequest } from './validate.js';

export interface Api {
  placeOrder(order: OrderRequest): Promise<string>;
  getOrder(id: string): (OrderRow & { history: HistoryEntry[] }) | undefined;
  listOrders(status: OrderStatus | undefined, limit: number): OrderRow[];
  stock(): StockLevel[];
  health(): { status: 'ok' };
}

/** A body that overflowed the limit is read (and dropped) up to this size, so the client gets its 400. */
const drainLimitBytes = 8 * 1024 * 1024;

export function createHandler(api: Api, log: (line: string) => void) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    handle(api, req, res).catch((error: unknown) => {
      log(`order: ${req.method} ${req.url} failed: ${(error as Error)?.stack ?? String(error)}`);
      if (!res.headersSent)
        send(res, 500, { error: { code: 'internal', message: 'internal error', path: '' } });
      else res.destroy();
    });
  };
}

async function handle(api: Api, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  const method = req.method ?? 'GET';

  if (path === '/orders') {
    if (method === 'POST') return placeOrder(api, req, res);
    if (method === 'GET') return listOrders(api, url, res);
    return notAllowed(res, path, 'GET, POST');
  }
  const match = /^\/orders\/([^/]+)$/.exec(path);
  if (match) {
    if (method !== 'GET') return notAllowed(res, path, 'GET');
    const id = safeDecode(match[1]!);
    const order = api.getOrder(id);
    if (!order)
      return error(res, 404, { code: 'not_found', message: `no order ${JSON.stringify(id)}`, path });
    return send(res, 200, orderJson(order, order.history));
  }
  if (path === '/inventory') {
    if (method !== 'GET') return notAllowed(res, path, 'GET');
    return send(res, 200, {
      items: api.stock().map(({ sku, name, price, stock }) => ({ sku, name, price: toAmount(price), stock })),
    });
  }
  if (path === '/health') {
    if (method !== 'GET') return notAllowed(res, path, 'GET');
    return send(res, 200, api.health());
  }
  return error(res, 404, { code: 'not_found', message: `no route ${method} ${path}`, path });
}

async function placeOrder(api: Api, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readBody(req, res, limits.bodyBytes);
  if (body === 'too-large') {
    return error(res, 400, {
      code: 'body_too_large',
      message: `the body must be at most ${limits.bodyBytes} bytes`,
      path: '',
    });
  }
  const parsed = parseOrderRequest(body);
  if (!parsed.ok) return error(res, 400, parsed.error);
  const id = await api.placeOrder(parsed.value);
  res.setHeader('location', `/orders/${id}`);
  send(res, 202, { id, status: 'pending' });
}

async function listOrders(api: Api, url: URL, res: ServerResponse): Promise<void> {
  const status = url.searchParams.get('status');
  if (status !== null && !orderStatuses.includes(status as OrderStatus)) {
    return error(res, 400, {
      code: 'invalid_query',
      message: `status must be one of ${orderStatuses.join(', ')}`,
      path: 'status',
    });
  }
  const limitText = url.searchParams.get('limit');
  const limit = limitText === null ? 100 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1_000) {
    return error(res, 400, {
      code: 'invalid_query',
      message: 'limit must be a whole number from 1 to 1000',
      path: 'limit',
    });
  }
  const orders = api.listOrders((status ?? undefined) as OrderStatus | undefined, limit);
  send(res, 200, { orders: orders.map((order) => orderJson(order)) });
}

function orderJson(order: OrderRow, history?: HistoryEntry[]) {
  return {
    id: order.id,
    status: order.status,
    ...(order.reason !== null ? { reason: order.reason } : {}),
    customerId: order.customerId,
    total: toAmount(order.total),
    currency: 'EUR',
    items: order.items.map(({ sku, qty, unitPrice }) => ({ sku, qty, unitPrice: toAmount(unitPrice) })),
    createdAt: new Date(order.createdAt).toISOString(),
    ...(history
      ? { history: history.map(({ type, at }) => ({ type, at: new Date(at).toISOString() })) }
      : {}),
  };
}

/**
 * The body, or 'too-large' past `limit` bytes. A body over the limit is read to its end and dropped,
 * so the client is not cut off before it reads the answer; past a few MiB (announced or streamed) the
 * answer goes at once and the connection is closed after it.
 */
function readBody(req: IncomingMessage, res: ServerResponse, limit: number): Promise<Buffer | 'too-large'> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > drainLimitBytes) {
    res.setHeader('connection', 'close');
    req.resume();
    return Promise.resolve('too-large');
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size - chunk.length <= drainLimitBytes && size > drainLimitBytes) {
        res.setHeader('connection', 'close');
        resolve('too-large');
      }
    });
    req.on('end', () => resolve(size > limit ? 'too-large' : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function notAllowed(res: ServerResponse, path: string, allow: string): void {
  res.setHeader('allow', allow);
  error(res, 405, { code: 'method_not_allowed', message: `use ${allow} on ${path}`, path });
}

function error(res: ServerResponse, status: number, body: ApiError): void {
  send(res, status, { error: body });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(json),
    'cache-control': 'no-store',
  });
  res.end(json);
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
