/** The order service's tables in the shared file: one row per order and its history. */
import type { PublishItem } from '@courier/core';
import type { SqliteDatabase, SqliteOutbox } from '@courier/sqlite';
import { migrate } from '../runtime.js';

export type OrderStatus = 'pending' | 'confirmed' | 'cancelled';
export const orderStatuses: readonly OrderStatus[] = ['pending', 'confirmed', 'cancelled'];

export interface OrderRow {
  readonly id: string;
  readonly customerId: string;
  readonly status: OrderStatus;
  readonly reason: string | null;
  /** Cents. */
  readonly total: number;
  readonly items: readonly { sku: string; qty: number; unitPrice: number }[];
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface HistoryEntry {
  readonly type: string;
  /** Epoch ms of the message. */
  readonly at: number;
}

const schema = `
  CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    total_cents INTEGER NOT NULL,
    items TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status, created_at);
  CREATE TABLE IF NOT EXISTS order_history (
    seq INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    type TEXT NOT NULL,
    at INTEGER NOT NULL,
    message_id TEXT NOT NULL UNIQUE
  );
  CREATE INDEX IF NOT EXISTS order_history_by_order ON order_history (order_id, at, seq);
`;

export function setUpOrders(db: SqliteDatabase): Promise<void> {
  return migrate(db, schema);
}

interface Row {
  id: string;
  customer_id: string;
  status: OrderStatus;
  reason: string | null;
  total_cents: number;
  items: string;
  created_at: number;
  updated_at: number;
}

const toOrder = (row: Row): OrderRow => ({
  id: row.id,
  customerId: row.customer_id,
  status: row.status,
  reason: row.reason,
  total: row.total_cents,
  items: JSON.parse(row.items) as OrderRow['items'],
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export class OrderStore {
  private readonly s;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly outbox: SqliteOutbox,
  ) {
    this.s = {
      insert: db.prepare(
        `INSERT INTO orders (id, customer_id, status, reason, total_cents, items, created_at, updated_at) VALUES (?, ?, 'pending', NULL, ?, ?, ?, ?)`,
      ),
      history: db.prepare(
        `INSERT INTO order_history (order_id, type, at, message_id) VALUES (?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING`,
      ),
      settle: db.prepare(
        `UPDATE orders SET status = ?, reason = ?, updated_at = ? WHERE id = ? AND status = 'pending'`,
      ),
      get: db.prepare(`SELECT * FROM orders WHERE id = ?`),
      historyOf: db.prepare(`SELECT type, at FROM order_history WHERE order_id = ? ORDER BY at, seq`),
      list: db.prepare(`SELECT * FROM orders ORDER BY created_at DESC, id LIMIT ?`),
      listByStatus: db.prepare(`SELECT * FROM orders WHERE status = ? ORDER BY created_at DESC, id LIMIT ?`),
      counts: db.prepare(`SELECT status, count(*) AS n FROM orders GROUP BY status`),
    };
  }

  /**
   * Stores a new order, its first history entry and its `orders.placed` message (in the outbox) in
   * one transaction: either all three are stored or none is.
   */
  place(order: Omit<OrderRow, 'status' | 'reason' | 'updatedAt'>, placed: PublishItem): void {
    this.db
      .transaction(() => {
        this.s.insert.run(
          order.id,
          order.customerId,
          order.total,
          JSON.stringify(order.items),
          order.createdAt,
          order.createdAt,
        );
        this.s.history.run(order.id, placed.envelope.type, order.createdAt, placed.envelope.id);
        this.outbox.add([placed], order.createdAt);
      })
      .immediate();
  }

  /** In the handler's transaction: a history entry, and the final status for a confirm or cancel. */
  record(
    orderId: string,
    type: string,
    at: number,
    messageId: string,
    settle?: { status: OrderStatus; reason?: string },
  ): void {
    this.s.history.run(orderId, type, at, messageId);
    if (settle) this.s.settle.run(settle.status, settle.reason ?? null, Date.now(), orderId);
  }

  get(id: string): (OrderRow & { history: HistoryEntry[] }) | undefined {
    const row = this.s.get.get(id) as Row | undefined;
    return row && { ...toOrder(row), history: this.s.historyOf.all(id) as HistoryEntry[] };
  }

  list(status: OrderStatus | undefined, limit: number): OrderRow[] {
    const rows = (status ? this.s.listByStatus.all(status, limit) : this.s.list.all(limit)) as Row[];
    return rows.map(toOrder);
  }

  counts(): Record<OrderStatus, number> {
    return countOrders(this.s.counts);
  }
}

/** Orders per status, read from the table (for the status line and checks). */
export function readOrderCounts(db: SqliteDatabase): Record<OrderStatus, number> & { placed: number } {
  const counts = countOrders(db.prepare(`SELECT status, count(*) AS n FROM orders GROUP BY status`));
  return { ...counts, placed: counts.pending + counts.confirmed + counts.cancelled };
}

function countOrders(statement: { all(): unknown[] }): Record<OrderStatus, number> {
  const counts: Record<OrderStatus, number> = { pending: 0, confirmed: 0, cancelled: 0 };
  for (const { status, n } of statement.all() as { status: OrderStatus; n: number }[]) counts[status] = n;
  return counts;
}
