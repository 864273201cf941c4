/** Test helpers: a temp data folder, the services on an ephemeral port, HTTP calls and polling. */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SqliteDatabase, SqliteTransport } from '@courier/sqlite';
import { sqlite } from '@courier/sqlite';
import type { LedgerRow } from '../src/payment/gateway.js';
import { readLedger } from '../src/payment/gateway.js';

export class Sandbox {
  readonly dir = mkdtempSync(join(tmpdir(), 'courier-orders-'));
  readonly dbPath = join(this.dir, 'courier.db');
  readonly outboxDir = join(this.dir, 'outbox');
  readonly logs: string[] = [];
  readonly log = (line: string) => this.logs.push(line);
  private monitor: SqliteTransport | undefined;
  private readonly stops: (() => Promise<void>)[] = [];

  /** Options every service of the sandbox gets: the temp file, quiet logs, a fast poll. */
  get options() {
    return { dataDir: this.dir, log: this.log, pollMaxMs: 10, port: 0 };
  }

  /** Stops `service` when the sandbox is cleaned up. */
  track<T extends { stop(): Promise<void> }>(service: T): T {
    this.stops.push(() => service.stop());
    return service;
  }

  /** A connection of its own for the test's reads. */
  get db(): SqliteDatabase {
    this.monitor ??= sqlite({ path: this.dbPath });
    return this.monitor.db;
  }

  count(sql: string, ...params: unknown[]): number {
    return this.db
      .prepare(sql)
      .pluck()
      .get(...params) as number;
  }

  stock(sku: string): number {
    return this.count(`SELECT stock FROM inventory_stock WHERE sku = ?`, sku);
  }

  ledger(orderId: string): LedgerRow[] {
    return readLedger(this.db, orderId);
  }

  emails(): string[] {
    try {
      return readdirSync(this.outboxDir).sort();
    } catch {
      return [];
    }
  }

  sagaRecord(
    orderId: string,
  ): { state: { status: string; awaiting?: string }; completed: boolean } | undefined {
    const json = this.db
      .prepare(`SELECT state FROM courier_saga_state WHERE saga = 'order' AND key = ?`)
      .pluck()
      .get(orderId) as string | undefined;
    return json === undefined ? undefined : JSON.parse(json);
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.stops.map((stop) => stop()));
    await this.monitor?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface OrderJson {
  id: string;
  status: 'pending' | 'confirmed' | 'cancelled';
  reason?: string;
  customerId: string;
  total: number;
  items: { sku: string; qty: number; unitPrice: number }[];
  createdAt: string;
  history: { type: string; at: string }[];
}

/** Whatever the API answers, typed loosely as every field the tests read (assertions check them). */
export interface Body extends Omit<OrderJson, 'status' | 'items'> {
  status: string;
  error: { code: string; message: string; path: string };
  orders: OrderJson[];
  items: (OrderJson['items'][number] & { name: string; price: number; stock: number })[];
}

export interface Reply {
  status: number;
  headers: Headers;
  body: Body;
}

export async function call(url: string, init?: RequestInit): Promise<Reply> {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : {}) as Body };
}

export async function getOrder(base: string, id: string): Promise<OrderJson> {
  const { status, body } = await call(`${base}/orders/${id}`);
  if (status !== 200) throw new Error(`GET /orders/${id}: ${status}`);
  return body as OrderJson;
}

export function postOrder(base: string, body: unknown): Promise<Reply> {
  return call(`${base}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** Polls `probe` every 20 ms until it returns something other than undefined, for up to `timeoutMs`. */
export async function eventually<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits until the order leaves `pending`; returns its JSON. */
export async function settled(base: string, id: string, timeoutMs = 10_000): Promise<OrderJson> {
  return eventually(
    `order ${id} to settle`,
    async () => {
      const order = await getOrder(base, id);
      return order.status === 'pending' ? undefined : order;
    },
    timeoutMs,
  );
}
