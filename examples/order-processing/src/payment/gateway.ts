/**
 * A simulated card gateway with the payments ledger as its record. Every call that reaches it appends
 * a row to `payments_ledger` (append-only: triggers refuse updates and deletes), in the same small
 * transaction as its decision, so the ledger is exactly what the "gateway" did. Like a real gateway it
 * takes an idempotency key (the order id): a second charge of an order answers the first outcome and
 * moves no money (outcome `replayed`).
 */
import { randomUUID } from 'node:crypto';
import type { SqliteDatabase } from '@courier/sqlite';
import { migrate } from '../runtime.js';

export type LedgerOutcome = 'charged' | 'declined' | 'failed' | 'refunded' | 'replayed';

export interface LedgerRow {
  readonly seq: number;
  readonly orderId: string;
  readonly kind: 'charge' | 'refund';
  readonly outcome: LedgerOutcome;
  readonly amount: number;
  readonly reference: string | null;
  readonly reason: string | null;
  readonly at: number;
}

export interface GatewayOptions {
  /** Share of charges declined (business outcome), 0 to 1 (default 0.1). */
  declineRate?: number;
  /** Share of calls that fail transiently (thrown, retried with backoff), 0 to 1 (default 0.1). */
  failureRate?: number;
  /** Simulated latency of one call, in ms (default 0 to 5, random). */
  latencyMs?: number | (() => number);
  /** Random numbers in [0, 1) (default Math.random); tests script it. */
  random?: () => number;
}

/** A transient failure: the caller throws it so the bus retries with backoff. */
export class GatewayUnavailableError extends Error {
  override readonly name = 'GatewayUnavailableError';
}

const schema = `
  CREATE TABLE IF NOT EXISTS payments_ledger (
    seq INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    reference TEXT,
    reason TEXT,
    at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS payments_ledger_order ON payments_ledger (order_id, kind);
  CREATE TRIGGER IF NOT EXISTS payments_ledger_no_update BEFORE UPDATE ON payments_ledger
    BEGIN SELECT RAISE(ABORT, 'payments_ledger is append-only'); END;
  CREATE TRIGGER IF NOT EXISTS payments_ledger_no_delete BEFORE DELETE ON payments_ledger
    BEGIN SELECT RAISE(ABORT, 'payments_ledger is append-only'); END;
`;

export function setUpLedger(db: SqliteDatabase): Promise<void> {
  return migrate(db, schema);
}

export function readLedger(db: SqliteDatabase, orderId?: string): LedgerRow[] {
  const sql = `SELECT seq, order_id AS orderId, kind, outcome, amount_cents AS amount, reference, reason, at FROM payments_ledger`;
  return (
    orderId === undefined
      ? db.prepare(`${sql} ORDER BY seq`).all()
      : db.prepare(`${sql} WHERE order_id = ? ORDER BY seq`).all(orderId)
  ) as LedgerRow[];
}

export type ChargeResult =
  | { readonly outcome: 'charged'; readonly reference: string }
  | { readonly outcome: 'declined'; readonly reason: string };

export class SimulatedGateway {
  private readonly declineRate: number;
  private readonly failureRate: number;
  private readonly latency: () => number;
  private readonly random: () => number;
  private readonly s;

  constructor(
    private readonly db: SqliteDatabase,
    options: GatewayOptions = {},
  ) {
    this.declineRate = rate(options.declineRate ?? 0.1, 'declineRate');
    this.failureRate = rate(options.failureRate ?? 0.1, 'failureRate');
    this.random = options.random ?? Math.random;
    const latency = options.latencyMs ?? (() => Math.random() * 5);
    this.latency = typeof latency === 'number' ? () => latency : latency;
    this.s = {
      append: db.prepare(
        `INSERT INTO payments_ledger (order_id, kind, outcome, amount_cents, reference, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      settled: db.prepare(
        `SELECT outcome, reference, reason FROM payments_ledger WHERE order_id = ? AND kind = ? AND outcome IN ('charged', 'declined', 'refunded') ORDER BY seq LIMIT 1`,
      ),
    };
  }

  /** Charges `amount` cents for `orderId`; throws `GatewayUnavailableError` on a transient failure. */
  async charge(orderId: string, amount: number): Promise<ChargeResult> {
    await this.wait();
    const result = this.db
      .transaction((): ChargeResult | { outcome: 'failed' } => {
        const previous = this.previous(orderId, 'charge');
        if (previous) {
          this.append(orderId, 'charge', 'replayed', amount, previous.reference, previous.reason);
          return previous.outcome === 'charged'
            ? { outcome: 'charged', reference: previous.reference ?? '' }
            : { outcome: 'declined', reason: previous.reason ?? 'declined' };
        }
        if (this.random() < this.failureRate) {
          this.append(orderId, 'charge', 'failed', amount, null, 'gateway timeout');
          return { outcome: 'failed' };
        }
        if (this.random() < this.declineRate) {
          this.append(orderId, 'charge', 'declined', amount, null, 'card declined');
          return { outcome: 'declined', reason: 'card declined' };
        }
        const reference = `ch_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
        this.append(orderId, 'charge', 'charged', amount, reference, null);
        return { outcome: 'charged', reference };
      })
      .immediate();
    if (result.outcome === 'failed') throw new GatewayUnavailableError(`gateway timeout charging ${orderId}`);
    return result;
  }

  /** Refunds the charge of `orderId` (once: a second refund is `replayed`). */
  async refund(orderId: string, amount: number): Promise<void> {
    await this.wait();
    this.db
      .transaction(() => {
        const previous = this.previous(orderId, 'refund');
        this.append(orderId, 'refund', previous ? 'replayed' : 'refunded', amount, null, null);
      })
      .immediate();
  }

  private async wait(): Promise<void> {
    const ms = this.latency();
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
  }

  private previous(orderId: string, kind: 'charge' | 'refund') {
    return this.s.settled.get(orderId, kind) as
      | { outcome: LedgerOutcome; reference: string | null; reason: string | null }
      | undefined;
  }

  private append(
    orderId: string,
    kind: 'charge' | 'refund',
    outcome: LedgerOutcome,
    amount: number,
    reference: string | null,
    reason: string | null,
  ): void {
    this.s.append.run(orderId, kind, outcome, amount, reference, reason, Date.now());
  }
}

function rate(value: number, name: string): number {
  if (!(value >= 0 && value <= 1)) throw new RangeError(`${name} must be between 0 and 1, got ${value}`);
  return value;
}
