import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Bus, Saga, SagaContext, SagaStore } from '@courier/core';
import {
  createBus,
  defineCommand,
  defineEvent,
  defineSaga,
  describeSaga,
  memorySagaStore,
  sagaToMermaid,
} from '@courier/core';
import { MemoryBroker, memory } from '@courier/memory';
import { FakeClock } from '@courier/testkit';
import fc from 'fast-check';
import { z } from 'zod';

const OrderPlaced = defineEvent('shop.order-placed', z.object({ orderId: z.string(), amount: z.number() }));
const StockReserved = defineEvent('shop.stock-reserved', z.object({ orderId: z.string() }));
const StockRejected = defineEvent(
  'shop.stock-rejected',
  z.object({ orderId: z.string(), reason: z.string() }),
);
const PaymentCharged = defineEvent('shop.payment-charged', z.object({ orderId: z.string() }));
const ReserveStock = defineCommand('shop.reserve-stock', z.object({ orderId: z.string() }));
const ChargePayment = defineCommand(
  'shop.charge-payment',
  z.object({ orderId: z.string(), amount: z.number() }),
);
const ReleaseStock = defineCommand('shop.release-stock', z.object({ orderId: z.string() }));
const OrderSettled = defineEvent(
  'shop.order-settled',
  z.object({ orderId: z.string(), status: z.string(), reason: z.string().optional() }),
);

interface OrderState {
  status: 'placed' | 'reserving' | 'charging' | 'confirmed' | 'cancelled';
  amount: number;
  reason?: string;
}

async function cancel(state: OrderState, reason: string, ctx: SagaContext): Promise<OrderState> {
  await ctx.publish(OrderSettled, { orderId: ctx.sagaKey, status: 'cancelled', reason });
  ctx.complete();
  return { ...state, status: 'cancelled', reason };
}

function makeSaga(): Saga<OrderState> {
  return defineSaga<OrderState>({
    name: 'order-saga',
    initial: () => ({ status: 'placed', amount: 0 }),
    initialStateName: 'placed',
    finalStates: ['confirmed', 'cancelled'],
  })
    .startedBy(
      OrderPlaced,
      (o) => o.orderId,
      async (state, o, ctx) => {
        await ctx.send(ReserveStock, { orderId: o.orderId });
        await ctx.schedule('give-up', 60_000);
        return { ...state, status: 'reserving', amount: o.amount };
      },
      { from: 'placed', to: 'reserving' },
    )
    .on(
      StockReserved,
      (m) => m.orderId,
      async (state, m, ctx) => {
        if (state.status !== 'reserving') return state;
        await ctx.send(ChargePayment, { orderId: m.orderId, amount: state.amount });
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
        await ctx.publish(OrderSettled, { orderId: m.orderId, status: 'confirmed' });
        ctx.complete();
        return { ...state, status: 'confirmed' };
      },
      { from: 'charging', to: 'confirmed' },
    )
    .onTimeout(
      'give-up',
      async (state, _data, ctx) => {
        if (state.status === 'charging') await ctx.send(ReleaseStock, { orderId: ctx.sagaKey });
        return cancel(state, 'timed out', ctx);
      },
      { from: '*', to: 'cancelled' },
    );
}

interface Shop {
  clock: FakeClock;
  orders: Bus;
  services: Bus;
  store: SagaStore;
  settled: { orderId: string; status: string; reason?: string | undefined }[];
  commands: string[];
  stop(): Promise<void>;
}

async function shop(
  options: { reserve?: 'ok' | 'reject' | 'silent'; store?: SagaStore } = {},
): Promise<Shop> {
  const clock = new FakeClock();
  const broker = new MemoryBroker({ clock });
  const store = options.store ?? memorySagaStore();
  const orders = createBus({
    endpoint: 'orders',
    transport: memory({ broker }),
    clock,
    routes: {
      [ReserveStock.type]: 'services',
      [ChargePayment.type]: 'services',
      [ReleaseStock.type]: 'services',
    },
  });
  orders.saga(makeSaga(), { store });
  const services = createBus({ endpoint: 'services', transport: memory({ broker }), clock });
  const settled: Shop['settled'] = [];
  const commands: string[] = [];
  services.handle(ReserveStock, async (m, ctx) => {
    commands.push(`reserve ${m.orderId}`);
    if (options.reserve === 'reject')
      await ctx.publish(StockRejected, { orderId: m.orderId, reason: 'out of stock' });
    else if (options.reserve !== 'silent') await ctx.publish(StockReserved, { orderId: m.orderId });
  });
  services.handle(ChargePayment, async (m, ctx) => {
    commands.push(`charge ${m.orderId} ${m.amount}`);
    await ctx.publish(PaymentCharged, { orderId: m.orderId });
  });
  services.handle(ReleaseStock, (m) => void commands.push(`release ${m.orderId}`));
  services.on(OrderSettled, (m) => void settled.push(m));
  await orders.start();
  await services.start();
  return {
    clock,
    orders,
    services,
    store,
    settled,
    commands,
    stop: async () => {
      await orders.stop();
      await services.stop();
    },
  };
}

describe('sagas', () => {
  it('drives an order from placed to confirmed and archives the instance', async () => {
    const s = await shop();
    try {
      await s.orders.publish(OrderPlaced, { orderId: 'o-1', amount: 42 });
      await s.clock.advance(10);
      assert.deepEqual(s.settled, [{ orderId: 'o-1', status: 'confirmed' }]);
      assert.deepEqual(s.commands, ['reserve o-1', 'charge o-1 42']);
      const record = await s.store.load('order-saga', 'o-1');
      assert.equal((record?.state as { completed: boolean } | undefined)?.completed, true);
      // The timeout of a completed instance arrives and is dropped.
      await s.clock.advance(61_000);
      assert.equal(s.settled.length, 1);
    } finally {
      await s.stop();
    }
  });

  it('compensates: a rejection cancels with the reason', async () => {
    const s = await shop({ reserve: 'reject' });
    try {
      await s.orders.publish(OrderPlaced, { orderId: 'o-2', amount: 5 });
      await s.clock.advance(10);
      assert.deepEqual(s.settled, [{ orderId: 'o-2', status: 'cancelled', reason: 'out of stock' }]);
    } finally {
      await s.stop();
    }
  });

  it('fires a timeout once for an instance that is stuck', async () => {
    const s = await shop({ reserve: 'silent' });
    try {
      await s.orders.publish(OrderPlaced, { orderId: 'o-3', amount: 5 });
      await s.clock.advance(59_000);
      assert.deepEqual(s.settled, []);
      await s.clock.advance(2_000);
      assert.deepEqual(s.settled, [{ orderId: 'o-3', status: 'cancelled', reason: 'timed out' }]);
      await s.clock.advance(120_000);
      assert.equal(s.settled.length, 1);
    } finally {
      await s.stop();
    }
  });

  it('ignores a message for no instance, or dead-letters it when told to', async () => {
    const clock = new FakeClock();
    const broker = new MemoryBroker({ clock });
    for (const onMissing of ['ignore', 'dead-letter'] as const) {
      const bus = createBus({ endpoint: `s-${onMissing}`, transport: memory({ broker }), clock });
      let ran = 0;
      const saga = defineSaga<number>({ name: 'counter', initial: () => 0, onMissing })
        .startedBy(
          OrderPlaced,
          (o) => o.orderId,
          (n) => n + 1,
        )
        .on(
          StockReserved,
          (m) => m.orderId,
          (n) => {
            ran++;
            return n + 1;
          },
        );
      bus.saga(saga, { store: memorySagaStore() });
      await bus.start();
      await bus.publish(StockReserved, { orderId: 'nobody' });
      await clock.advance(10);
      assert.equal(ran, 0);
      const { items } = await bus.deadLetters.list(`s-${onMissing}`);
      assert.equal(items.length, onMissing === 'dead-letter' ? 1 : 0);
      if (onMissing === 'dead-letter') assert.equal(items[0]!.headers['courier-dlq-reason'], 'saga-missing');
      await bus.stop();
    }
  });

  it('many messages for one instance from competing consumers end as handled one by one', async () => {
    const clock = new FakeClock();
    const broker = new MemoryBroker({ clock });
    const store = memorySagaStore();
    const Add = defineEvent('tally.add', z.object({ id: z.string(), n: z.number() }));
    const tally = () =>
      defineSaga<{ sum: number; count: number }>({
        name: 'tally',
        initial: () => ({ sum: 0, count: 0 }),
      }).startedBy(
        Add,
        (m) => m.id,
        async (state, m) => {
          await Promise.resolve();
          return { sum: state.sum + m.n, count: state.count + 1 };
        },
      );
    const buses = [0, 1, 2].map(() =>
      createBus({ endpoint: 'tally', transport: memory({ broker }), clock, concurrency: 8 }),
    );
    for (const bus of buses) bus.saga(tally(), { store });
    for (const bus of buses) await bus.start();
    const producer = createBus({ endpoint: 'producer', transport: memory({ broker }), clock });
    await producer.start();
    let expected = 0;
    for (let n = 1; n <= 60; n++) {
      expected += n;
      await producer.publish(Add, { id: 't', n });
    }
    await clock.advance(1_000);
    const state = (await store.load('tally', 't'))?.state as
      | { state: { sum: number; count: number } }
      | undefined;
    assert.deepEqual(state?.state, { sum: expected, count: 60 });
    for (const bus of [...buses, producer]) await bus.stop();
  });

  it('describes its states and transitions as a Mermaid diagram', () => {
    const description = describeSaga(makeSaga() as never);
    assert.deepEqual(description.states, ['placed', 'reserving', 'charging', 'cancelled', 'confirmed']);
    const diagram = sagaToMermaid(description);
    assert.match(diagram, /^stateDiagram-v2\n {2}\[\*\] --> placed/);
    assert.match(diagram, /placed --> reserving: shop.order-placed/);
    assert.match(diagram, /reserving --> cancelled: shop.stock-rejected/);
    assert.match(diagram, /charging --> cancelled: timeout: give-up/);
    assert.match(diagram, /confirmed --> \[\*\]/);
    assert.doesNotMatch(diagram, /confirmed --> cancelled/);
  });

  it('random interleavings and crashes end in the state of serial handling (property)', async () => {
    const Add = defineEvent('tally.add', z.object({ id: z.string(), n: z.number() }));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ id: fc.constantFrom('a', 'b'), n: fc.integer({ min: 1, max: 9 }) }), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.array(fc.integer({ min: 0, max: 11 }), { maxLength: 3 }),
        async (adds, crashAfter) => {
          const clock = new FakeClock();
          const broker = new MemoryBroker({ clock });
          const store = memorySagaStore();
          const tally = () =>
            defineSaga<number>({ name: 'tally', initial: () => 0 }).startedBy(
              Add,
              (m) => m.id,
              (sum, m) => sum + m.n,
            );
          const start = async () => {
            const bus = createBus({
              endpoint: 'tally',
              transport: memory({ broker }),
              clock,
              concurrency: 4,
              leaseMs: 1_000,
              retry: { maxAttempts: 50, immediate: 0, initialDelayMs: 10, jitter: 0 },
            });
            bus.saga(tally(), { store });
            await bus.start();
            return bus;
          };
          const producer = createBus({ endpoint: 'producer', transport: memory({ broker }), clock });
          await producer.start();
          let bus = await start();
          for (const [i, add] of adds.entries()) {
            await producer.publish(Add, add);
            if (crashAfter.includes(i)) {
              await clock.advance(1);
              await bus.kill();
              bus = await start();
            }
          }
          await clock.advance(5_000);
          for (const id of ['a', 'b']) {
            const expected = adds.filter((a) => a.id === id).reduce((sum, a) => sum + a.n, 0);
            const stored = (await store.load('tally', id))?.state as { state: number } | undefined;
            assert.equal(stored?.state ?? 0, expected, `instance ${id}`);
          }
          await bus.stop();
          await producer.stop();
        },
      ),
      { numRuns: 40, seed: 4242 },
    );
  });
});
