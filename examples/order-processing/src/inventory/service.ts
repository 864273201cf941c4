/**
 * The inventory service: reserves an order's items all or nothing (`inventory.reserve`), answers
 * `inventory.reserved` or `inventory.rejected` (out of stock), and gives the stock back on
 * `inventory.release`. Each answer, the stock change and the ack commit in one transaction
 * (`ctx.transact`), and the reservation row keyed by order id makes both commands idempotent.
 */
import {
  endpoints,
  ReleaseStock,
  ReserveStock,
  StockRejected,
  StockReleased,
  StockReserved,
} from '../contracts.js';
import type { RunningService, ServiceOptions } from '../runtime.js';
import { createServiceBus, once, openTransport } from '../runtime.js';
import { InventoryStore, setUpInventory } from './store.js';

export type InventoryServiceOptions = ServiceOptions;

export async function startInventoryService(options: InventoryServiceOptions = {}): Promise<RunningService> {
  const transport = openTransport(options);
  await setUpInventory(transport.db);
  const store = new InventoryStore(transport.db);
  const bus = createServiceBus(endpoints.inventory, transport, options);

  bus.handle(ReserveStock, async ({ orderId, items }, ctx) => {
    const existing = store.reservation(orderId);
    if (existing) {
      // Answered before (the answer was stored with the row), unless a release came first.
      if (existing.tombstone) {
        await ctx.publish(StockRejected, {
          orderId,
          reason: 'the order was cancelled before its reservation',
        });
        ctx.transact(() => {});
      }
      return;
    }
    const short = store.shortage(items);
    if (short) {
      await ctx.publish(StockRejected, {
        orderId,
        sku: short.sku,
        reason: `out of stock: ${short.sku} (wanted ${short.wanted}, ${short.available} left)`,
      });
      ctx.transact(() => store.record(orderId, 'rejected', items));
    } else {
      await ctx.publish(StockReserved, { orderId });
      ctx.transact(() => store.reserve(orderId, items));
    }
  });

  bus.handle(ReleaseStock, async ({ orderId }, ctx) => {
    const existing = store.reservation(orderId);
    if (existing?.status === 'reserved') {
      await ctx.publish(StockReleased, { orderId });
      ctx.transact(() => store.release(existing));
    } else if (!existing) {
      // A release before any reserve: remember it, so a reserve arriving later is refused.
      ctx.transact(() => store.record(orderId, 'released', [], true));
    }
    // Rejected or released already: nothing to give back.
  });

  await bus.start();
  return { stop: once((timeoutMs) => bus.stop({ timeoutMs })) };
}
