/**
 * The order saga: correlates by order id and drives placed → reserve stock → charge → confirm.
 *
 * - Stock rejected: cancel (nothing to undo). Payment declined: release the stock, cancel.
 * - No answer before the deadline: cancel. A reservation or charge still on its way is remembered
 *   (`awaiting`), and when it arrives after the cancel it is compensated (stock released, charge
 *   refunded) instead of left dangling; only then does the instance complete.
 * - Each step's state, its output and the ack commit in one SQLite transaction
 *   (`transport.sagaStore()`), so a crash never leaves state and messages disagreeing.
 */
import type { SagaContext } from '@courier/core';
import { defineSaga } from '@courier/core';
import {
  ChargePayment,
  OrderCancelled,
  OrderConfirmed,
  OrderPlaced,
  PaymentCharged,
  PaymentDeclined,
  RefundPayment,
  ReleaseStock,
  ReserveStock,
  StockRejected,
  StockReserved,
} from '../contracts.js';

export interface OrderSagaState {
  status: 'placed' | 'reserving' | 'charging' | 'confirmed' | 'cancelled';
  customerId: string;
  items: { sku: string; qty: number }[];
  /** Cents. */
  total: number;
  reason?: string;
  /** Cancelled while this answer was on its way: compensate it when it arrives. */
  awaiting?: 'reservation' | 'charge' | undefined;
}

export interface OrderSagaOptions {
  /** An order not confirmed this long after it was placed is cancelled, in ms (default 10,000). */
  deadlineMs?: number;
}

export const orderSagaName = 'order';

export function defineOrderSaga(options: OrderSagaOptions = {}) {
  const deadlineMs = options.deadlineMs ?? 10_000;
  if (!(Number.isFinite(deadlineMs) && deadlineMs > 0))
    throw new RangeError(`deadlineMs must be a positive number of ms, got ${deadlineMs}`);

  /** Publishes the cancel; completes unless an answer is still on its way. */
  const cancel = async (
    state: OrderSagaState,
    reason: string,
    ctx: SagaContext,
    awaiting?: 'reservation' | 'charge',
  ): Promise<OrderSagaState> => {
    await ctx.publish(OrderCancelled, {
      orderId: ctx.sagaKey,
      customerId: state.customerId,
      total: state.total,
      reason,
    });
    if (!awaiting) ctx.complete();
    return { ...state, status: 'cancelled', reason, awaiting };
  };

  /** The late answer came and was compensated (or needed nothing): the instance is done. */
  const settled = (state: OrderSagaState, ctx: SagaContext): OrderSagaState => {
    ctx.complete();
    return { ...state, awaiting: undefined };
  };

  return defineSaga<OrderSagaState>({
    name: orderSagaName,
    initial: () => ({ status: 'placed', customerId: '', items: [], total: 0 }),
    initialStateName: 'placed',
    finalStates: ['confirmed', 'cancelled'],
  })
    .startedBy(
      OrderPlaced,
      (order) => order.orderId,
      async (state, order, ctx) => {
        if (state.status !== 'placed') return state; // placed twice: nothing new
        const items = order.items.map(({ sku, qty }) => ({ sku, qty }));
        await ctx.send(ReserveStock, { orderId: order.orderId, items });
        await ctx.schedule('deadline', deadlineMs); // dropped when it finds the instance completed
        return { ...state, status: 'reserving', customerId: order.customerId, items, total: order.total };
      },
      { from: 'placed', to: 'reserving' },
    )
    .on(
      StockReserved,
      (m) => m.orderId,
      async (state, m, ctx) => {
        if (state.status === 'reserving') {
          await ctx.send(ChargePayment, {
            orderId: m.orderId,
            customerId: state.customerId,
            amount: state.total,
          });
          return { ...state, status: 'charging' };
        }
        if (state.status === 'cancelled' && state.awaiting === 'reservation') {
          await ctx.send(ReleaseStock, {
            orderId: m.orderId,
            reason: 'reserved after the order was cancelled',
          });
          return settled(state, ctx);
        }
        return state;
      },
      { from: 'reserving', to: 'charging' },
    )
    .on(
      StockRejected,
      (m) => m.orderId,
      async (state, m, ctx) => {
        if (state.status === 'reserving') return cancel(state, m.reason, ctx);
        if (state.status === 'cancelled' && state.awaiting === 'reservation') return settled(state, ctx);
        return state;
      },
      { from: 'reserving', to: 'cancelled' },
    )
    .on(
      PaymentCharged,
      (m) => m.orderId,
      async (state, m, ctx) => {
        if (state.status === 'charging') {
          await ctx.publish(OrderConfirmed, {
            orderId: m.orderId,
            customerId: state.customerId,
            total: state.total,
          });
          ctx.complete();
          return { ...state, status: 'confirmed' };
        }
        if (state.status === 'cancelled' && state.awaiting === 'charge') {
          await ctx.send(RefundPayment, {
            orderId: m.orderId,
            reason: 'charged after the order was cancelled',
          });
          return settled(state, ctx);
        }
        return state;
      },
      { from: 'charging', to: 'confirmed' },
    )
    .on(
      PaymentDeclined,
      (m) => m.orderId,
      async (state, m, ctx) => {
        if (state.status === 'charging') {
          await ctx.send(ReleaseStock, { orderId: m.orderId, reason: 'payment declined' });
          return cancel(state, `payment declined: ${m.reason}`, ctx);
        }
        if (state.status === 'cancelled' && state.awaiting === 'charge') return settled(state, ctx);
        return state;
      },
      { from: 'charging', to: 'cancelled' },
    )
    .onTimeout(
      'deadline',
      async (state, _data, ctx) => {
        const seconds = `${deadlineMs / 1_000} s`;
        if (state.status === 'reserving')
          return cancel(state, `timed out: no stock reservation within ${seconds}`, ctx, 'reservation');
        if (state.status === 'charging') {
          await ctx.send(ReleaseStock, { orderId: ctx.sagaKey, reason: 'order timed out' });
          return cancel(state, `timed out: no payment within ${seconds}`, ctx, 'charge');
        }
        return state;
      },
      { from: ['reserving', 'charging'], to: 'cancelled' },
    );
}
