/**
 * The inventory service's tables in the shared file: stock per sku (seeded from the catalogue once)
 * and one reservation row per order, which makes reserve and release idempotent per order.
 */
import type { SqliteDatabase } from '@courier/sqlite';
import { catalogue } from '../catalogue.js';
import { ConflictError, migrate, retryWhileBusy } from '../runtime.js';

export type ReservationStatus = 'reserved' | 'rejected' | 'released';

export interface Reservation {
  readonly orderId: string;
  readonly status: ReservationStatus;
  readonly items: readonly { sku: string; qty: number }[];
  /** True for a release that came before any reserve: a later reserve is refused. */
  readonly tombstone: boolean;
}

export interface StockLevel {
  readonly sku: string;
  readonly name: string;
  /** Cents. */
  readonly price: number;
  readonly stock: number;
  /** What the table was seeded with: initial = stock + units held by reservations. */
  readonly initialStock: number;
}

const schema = `
  CREATE TABLE IF NOT EXISTS inventory_stock (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    stock INTEGER NOT NULL CHECK (stock >= 0),
    initial_stock INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS inventory_reservations (
    order_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    items TEXT NOT NULL,
    tombstone INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
  );
`;

/** Creates the tables and seeds the catalogue's stock (skus already there keep their stock). */
export async function setUpInventory(db: SqliteDatabase): Promise<void> {
  await migrate(db, schema);
  await migrateSeed(db);
}

async function migrateSeed(db: SqliteDatabase): Promise<void> {
  const insert = db.prepare(
    `INSERT OR IGNORE INTO inventory_stock (sku, name, price_cents, stock, initial_stock) VALUES (?, ?, ?, ?, ?)`,
  );
  await retryWhileBusy(() =>
    db
      .transaction(() => {
        for (const item of catalogue) insert.run(item.sku, item.name, item.price, item.stock, item.stock);
      })
      .immediate(),
  );
}

/** Reads the stock table (for `GET /inventory` and checks). */
export function readStock(db: SqliteDatabase): StockLevel[] {
  return (
    db
      .prepare(
        `SELECT sku, name, price_cents AS price, stock, initial_stock AS initialStock FROM inventory_stock ORDER BY sku`,
      )
      .all() as StockLevel[]
  ).map((row) => ({ ...row }));
}

export class InventoryStore {
  private readonly s;

  constructor(db: SqliteDatabase) {
    this.s = {
      reservation: db.prepare(
        `SELECT order_id, status, items, tombstone FROM inventory_reservations WHERE order_id = ?`,
      ),
      stock: db.prepare(`SELECT stock FROM inventory_stock WHERE sku = ?`).pluck(),
      take: db.prepare(`UPDATE inventory_stock SET stock = stock - ? WHERE sku = ? AND stock >= ?`),
      put: db.prepare(`UPDATE inventory_stock SET stock = stock + ? WHERE sku = ?`),
      insert: db.prepare(
        `INSERT INTO inventory_reservations (order_id, status, items, tombstone, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ),
      release: db.prepare(
        `UPDATE inventory_reservations SET status = 'released', updated_at = ? WHERE order_id = ? AND status = 'reserved'`,
      ),
    };
  }

  reservation(orderId: string): Reservation | undefined {
    const row = this.s.reservation.get(orderId) as
      | { order_id: string; status: ReservationStatus; items: string; tombstone: number }
      | undefined;
    return (
      row && {
        orderId: row.order_id,
        status: row.status,
        items: JSON.parse(row.items) as { sku: string; qty: number }[],
        tombstone: row.tombstone === 1,
      }
    );
  }

  /** The first line the stock cannot cover, or undefined when all can be reserved. */
  shortage(
    items: readonly { sku: string; qty: number }[],
  ): { sku: string; wanted: number; available: number } | undefined {
    for (const { sku, qty } of items) {
      const available = this.s.stock.get(sku) as number | undefined;
      if (available === undefined || available < qty) return { sku, wanted: qty, available: available ?? 0 };
    }
    return undefined;
  }

  /** In a transaction: takes the stock and records the reservation; throws `ConflictError` if either changed. */
  reserve(orderId: string, items: readonly { sku: string; qty: number }[], now = Date.now()): void {
    this.record(orderId, 'reserved', items, false, now);
    for (const { sku, qty } of items) {
      if (this.s.take.run(qty, sku, qty).changes !== 1)
        throw new ConflictError(`stock of ${sku} changed before the reservation committed`);
    }
  }

  /** In a transaction: records a rejection (or, with `tombstone`, a release that came first). */
  record(
    orderId: string,
    status: ReservationStatus,
    items: readonly { sku: string; qty: number }[],
    tombstone = false,
    now = Date.now(),
  ): void {
    if (this.s.insert.run(orderId, status, JSON.stringify(items), tombstone ? 1 : 0, now).changes !== 1)
      throw new ConflictError(`order ${orderId} got a reservation answer meanwhile`);
  }

  /** In a transaction: gives a reservation's stock back; throws `ConflictError` if it was not reserved anymore. */
  release(reservation: Reservation, now = Date.now()): void {
    if (this.s.release.run(now, reservation.orderId).changes !== 1)
      throw new ConflictError(`reservation of ${reservation.orderId} changed meanwhile`);
    for (const { sku, qty } of reservation.items) this.s.put.run(qty, sku);
  }
}
