/**
 * What the relay kill test's parent and its child share: the contract, the application's table, and
 * the log format.
 *
 * The child appends one line per event to its log file with a synchronous write, so a line written
 * before a SIGKILL is in the file:
 *   P id,id,...   the relay's publish of these messages RESOLVED
 *   K id,id,...   about to SIGKILL itself: these were published and not yet removed
 *   D             the application wrote everything and the outbox is empty
 */
import { defineEvent } from '@courier/core';
import type { SqliteDatabase } from '@courier/sqlite';
import type { StandardSchemaV1 } from '@standard-schema/spec';

/** Children start a dozen times per run: a hand-written Standard Schema spares a library import each time. */
const orderSchema: StandardSchemaV1<{ orderId: string; n: number }> = {
  '~standard': {
    version: 1,
    vendor: 'courier-relay-test',
    validate: (value) => {
      const v = value as { orderId?: unknown; n?: unknown } | null;
      return typeof v === 'object' && v !== null && typeof v.orderId === 'string' && Number.isInteger(v.n)
        ? { value: { orderId: v.orderId, n: v.n as number } }
        : { issues: [{ message: 'expected { orderId: string, n: integer }' }] };
    },
  },
};

export const OrderPlaced = defineEvent('orders.placed', orderSchema);

/** Orders are keyed by customer: the relay must keep each customer's orders in order. */
export const customerOf = (n: number): string => `customer-${n % 4}`;

/** Odd orders carry no dedupId: only the consumer's inbox can catch their republished copies. */
export const hasDedupId = (n: number): boolean => n % 2 === 0;

/** The application's own table, in the application's file (not the broker's). */
export function createAppTables(db: SqliteDatabase): void {
  db.exec('CREATE TABLE IF NOT EXISTS orders (n INTEGER PRIMARY KEY, message_id TEXT NOT NULL UNIQUE)');
}
