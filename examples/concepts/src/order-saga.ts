/**
 * A saga with compensation and a timeout: the order flow of the reference shop, on the memory
 * transport and a fake clock.
 * - o-1: placed → stock reserved → payment charged → confirmed;
 * - o-2: placed → stock rejected → cancelled (nothing to undo yet);
 * - o-3: placed → stock reserved → the payment never answers → the timeout releases the stock
 *   (compensation) and cancels.
 */
import type { SagaContext } from '@courier/core';
import { createBus, defineCommand, defineEvent, defineSaga, memorySagaStore } from '@courier/core';
import { MemoryBroker, memory } from '@courier/memory';
import { FakeClock } from '@courier/testkit';
import { z } from 'zod';
import type { Log } from './util.js';
import { advance, runIfMain } from './util.js';

const orderId = z.object({ orderId: z.string() });
export const OrderPlaced = defineEvent('orders.placed', z.object({ orderId: z.string(), total: z.number() }));
export const StockReserved = defineEvent('inventory.reserved', orderId);
export const StockRejected = defineEvent(
  'inventory.rejected',
  z.object({ orderId: z.string(), reason: z.string() }),
);
export const PaymentCharged = defineEvent('payments.charged', orderId);
export const ReserveStock = defineCommand('inventory.reserve', orderId);
export const ReleaseStock = defineCommand('inventory.release', orderId);
export const ChargePayment = defineCommand(
  'payments.charge',
  z.object({ orderId: z.string(), amount: z.number() }),
);
export const OrderConfirmed = defineEvent('orders.confirmed', orderId);
export const OrderCancelled = defineEvent(
  'orders.cancelled',
  z.object({ orderId: z.string(), reason: z.string() }),
);

interface OrderState {
  status: 'placed' | 'reserving' | 'charging' | 'confirmed' | 'cancelled';
  total: number;
}

/** Cancels the order; a reservation already made is released first (compensation). */
async function cancel(state: OrderState, reason: string, ctx: SagaContext): Promise<OrderState> {
  if (state.status === 'charging') await ctx.send(ReleaseStock, { orderId: ctx.sagaKey });
  await ctx.publish(OrderCancelled, { orderId: ctx.sagaKey, reason });
  ctx.complete();
  return { ...state, status: 'cancelled' };
}

// --- the saga: each step takes the state and the message, sends what comes next, returns the new state
export const OrderSaga = defineSaga<OrderState>({
  name: 'order-saga',
  initial: () => ({ status: 'placed', total: 0 }),
  initialStateName: 'placed',
  finalStates: ['confirmed', 'cancelled'],
})
  .startedBy(
    OrderPlaced,
    (order) => order.orderId,
    async (state, order, ctx) => {
      await ctx.send(ReserveStock, { orderId: order.orderId });
      await ctx.schedule('payment-deadline', 30_000); // dropped if the order completes first
      return { ...state, status: 'reserving', total: order.total };
    },
    { from: 'placed', to: 'reserving' },
  )
  .on(
    StockReserved,
    (m) => m.orderId,
    async (state, m, ctx) => {
      await ctx.send(ChargePayment, { orderId: m.orderId, amount: state.total });
      return { ...state, status: 'charging' };
    },
    { from: 'reserving', to: 'charging' },
  )
  .on(
    StockRejected,
    (m) => m.orderId,
    (state, m, ctx) => cancel(state, m.reason, ctx),
    { from: 'reserving', to: 'cancelled' },
  )
  .on(
    PaymentCharged,
    (m) => m.orderId,
    async (state, m, ctx) => {
      await ctx.publish(OrderConfirmed, { orderId: m.orderId });
      ctx.complete();
      return { ...state, status: 'confirmed' };
    },
    { from: 'charging', to: 'confirmed' },
  )
  .onTimeout('payment-deadline', (state, _data, ctx) => cancel(state, 'no payment within 30 s', ctx), {
    from: ['reserving', 'charging'],
    to: 'cancelled',
  });
// --- end of the saga

export async function main(log: Log): Promise<void> {
  const clock = new FakeClock();
  const broker = new MemoryBroker({ clock });
  const routes = {
    [ReserveStock.type]: 'services',
    [ReleaseStock.type]: 'services',
    [ChargePayment.type]: 'services',
  };
  const orders = createBus({ endpoint: 'orders', transport: memory({ broker }), clock, routes });
  orders.saga(OrderSaga, { store: memorySagaStore() }); // transport.sagaStore() on SQLite

  // Stand-ins for the inventory and payment services.
  const services = createBus({ endpoint: 'services', transport: memory({ broker }), clock });
  services.handle(ReserveStock, async ({ orderId }, ctx) => {
    if (orderId === 'o-2') await ctx.publish(StockRejected, { orderId, reason: 'out of stock' });
    else await ctx.publish(StockReserved, { orderId });
  });
  services.handle(ChargePayment, async ({ orderId, amount }, ctx) => {
    if (orderId === 'o-3') return log(`payment:   ${orderId} gateway does not answer`);
    log(`payment:   charged ${amount} for ${orderId}`);
    await ctx.publish(PaymentCharged, { orderId });
  });
  services.handle(ReleaseStock, ({ orderId }) => log(`inventory: released the stock of ${orderId}`));
  services.on(OrderConfirmed, ({ orderId }) => log(`orders:    ${orderId} confirmed`));
  services.on(OrderCancelled, ({ orderId, reason }) => log(`orders:    ${orderId} cancelled: ${reason}`));

  await orders.start();
  await services.start();
  for (const [id, total] of [
    ['o-1', 42],
    ['o-2', 7],
    ['o-3', 13],
  ] as const) {
    await orders.publish(OrderPlaced, { orderId: id, total });
  }
  await advance(clock, 1_000);
  log('... 30 s later');
  await advance(clock, 30_000, 1_000);
  await orders.stop();
  await services.stop();
}

await runIfMain(import.meta.url, main);
