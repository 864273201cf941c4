import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { memory } from '@courier/memory';
import { z } from 'zod';
import type { BusEvent, ConsumeMiddleware } from '../src/bus-types.js';
import { defineEvent } from '../src/contracts.js';
import { ConfigurationError } from '../src/errors.js';
import { createBus } from '../src/index.js';
import type { Middleware } from '../src/middleware.js';
import { compose } from '../src/middleware.js';
import type { HandlingLogEntry } from '../src/middlewares.js';
import { inbox, logging } from '../src/middlewares.js';
import { memoryInboxStore } from '../src/stores.js';

const OrderPlaced = defineEvent('orders.placed', z.object({ orderId: z.string() }));

/** Collects bus events and resolves `until(n, kind)` once `n` events of `kind` were seen. */
function recorder() {
  const events: BusEvent[] = [];
  const waiting = new Set<() => void>();
  return {
    events,
    observer: (event: BusEvent) => {
      events.push(event);
      for (const check of waiting) check();
    },
    until(count: number, kind: BusEvent['kind']): Promise<void> {
      return new Promise((resolve) => {
        const check = () => {
          if (events.filter((e) => e.kind === kind).length < count) return;
          waiting.delete(check);
          resolve();
        };
        waiting.add(check);
        check();
      });
    },
  };
}

describe('compose', () => {
  it('runs the outermost middleware first, and the code after next() in reverse order', async () => {
    const trace: string[] = [];
    const step =
      (name: string): Middleware<{ trace: string[] }> =>
      async (ctx, next) => {
        ctx.trace.push(`${name} before`);
        await next();
        ctx.trace.push(`${name} after`);
      };
    const run = compose([step('a'), step('b'), step('c')], async (ctx) => {
      ctx.trace.push('handler');
    });
    await run({ trace });
    assert.deepEqual(trace, ['a before', 'b before', 'c before', 'handler', 'c after', 'b after', 'a after']);
  });

  it('runs the last step alone when there is no middleware, and can run again', async () => {
    let runs = 0;
    const run = compose<object>([], async () => {
      runs++;
    });
    await run({});
    await run({});
    assert.equal(runs, 2);
  });

  it('lets a middleware stop the chain by not calling next()', async () => {
    let handled = false;
    const run = compose<object>([async () => {}], async () => {
      handled = true;
    });
    await run({});
    assert.equal(handled, false);
  });

  it('passes errors out through every middleware', async () => {
    const seen: string[] = [];
    const catching: Middleware<object> = async (_ctx, next) => {
      try {
        await next();
      } catch (error) {
        seen.push((error as Error).message);
        throw error;
      }
    };
    const run = compose([catching], async () => {
      throw new Error('handler failed');
    });
    await assert.rejects(run({}), /handler failed/);
    assert.deepEqual(seen, ['handler failed']);
  });

  it('rejects a second next() from one middleware, and the handler runs once', async () => {
    let handled = 0;
    const run = compose<object>(
      [
        async (_ctx, next) => {
          await next();
          await next();
        },
      ],
      async () => {
        handled++;
      },
    );
    await assert.rejects(run({}), /next\(\) called more than once in one middleware/);
    assert.equal(handled, 1);
  });

  it('keeps each run separate: the guard does not leak into the next call', async () => {
    let handled = 0;
    const run = compose<object>([async (_ctx, next) => next()], async () => {
      handled++;
    });
    await Promise.all([run({}), run({}), run({})]);
    assert.equal(handled, 3);
  });
});

describe('inbox middleware', () => {
  it('checks its options when built', () => {
    assert.throws(() => inbox({} as never), ConfigurationError);
    assert.throws(
      () => inbox({ store: memoryInboxStore(), retentionMs: 0 }),
      /retentionMs must be > 0, got 0/,
    );
    assert.throws(() => inbox({ store: memoryInboxStore(), retentionMs: Number.NaN }), ConfigurationError);
  });

  it('acks a message id the queue already handled without running the handler again', async () => {
    const store = memoryInboxStore();
    const seen = recorder();
    const endpoint = `billing-${randomUUID()}`;
    const bus = createBus({
      endpoint,
      transport: memory(),
      middleware: [inbox({ store })],
      observer: seen.observer,
    });
    const handled: string[] = [];
    bus.on(OrderPlaced, (order) => void handled.push(order.orderId));
    await bus.start();
    try {
      const id = randomUUID();
      await bus.publish(OrderPlaced, { orderId: 'o-1' }, { id });
      await seen.until(1, 'consumed');
      assert.equal(await store.get(`${endpoint}#inbox`, id), '1');

      // The same id again, as a redelivery after a lost ack would bring it.
      await bus.publish(OrderPlaced, { orderId: 'o-1 again' }, { id });
      await bus.publish(OrderPlaced, { orderId: 'o-2' });
      await seen.until(3, 'consumed');

      assert.deepEqual(handled.sort(), ['o-1', 'o-2']);
      const stats = await bus.stats();
      assert.equal(stats.depth + stats.inFlight + stats.deadLettered, 0, 'the duplicate was acked');
    } finally {
      await bus.stop();
    }
  });

  it('does not record a failed handling, so the retry runs the handler', async () => {
    const store = memoryInboxStore();
    const seen = recorder();
    const bus = createBus({
      endpoint: `billing-${randomUUID()}`,
      transport: memory(),
      retry: { maxAttempts: 3, immediate: 2 },
      middleware: [inbox({ store })],
      observer: seen.observer,
    });
    const attempts: number[] = [];
    bus.on(OrderPlaced, (_order, ctx) => {
      attempts.push(ctx.attempt);
      if (ctx.attempt === 1) throw new Error('transient');
    });
    await bus.start();
    try {
      await bus.publish(OrderPlaced, { orderId: 'o-1' });
      await seen.until(1, 'consumed');
      assert.deepEqual(attempts, [1, 2]);
    } finally {
      await bus.stop();
    }
  });
});

describe('logging middleware', () => {
  it('checks its options when built', () => {
    assert.throws(() => logging({} as never), /logging: log must be a function/);
  });

  it('reports each handling as handled or failed, with its attempt and duration', async () => {
    const entries: HandlingLogEntry[] = [];
    let time = 0;
    // Each reading of the clock moves it 5 ms, so every handling lasts 5 ms.
    const now = () => (time += 5);
    const seen = recorder();
    const endpoint = `billing-${randomUUID()}`;
    const bus = createBus({
      endpoint,
      transport: memory(),
      retry: { maxAttempts: 3, immediate: 2 },
      middleware: [logging({ log: (entry) => entries.push(entry), now })],
      observer: seen.observer,
    });
    bus.on(OrderPlaced, (_order, ctx) => {
      if (ctx.attempt === 1) throw new Error('card service down');
    });
    await bus.start();
    try {
      const message = await bus.publish(OrderPlaced, { orderId: 'o-1' });
      await seen.until(1, 'consumed');

      assert.equal(entries.length, 2);
      const [failed, handled] = entries;
      assert.ok(failed?.error instanceof Error, 'failed?.error instanceof Error');
      assert.deepEqual(
        { ...failed, error: failed.error.message },
        {
          outcome: 'failed',
          type: 'orders.placed',
          id: message.id,
          queue: endpoint,
          attempt: 1,
          durationMs: 5,
          error: 'card service down',
        },
      );
      assert.deepEqual(handled, {
        outcome: 'handled',
        type: 'orders.placed',
        id: message.id,
        queue: endpoint,
        attempt: 2,
        durationMs: 5,
      });
    } finally {
      await bus.stop();
    }
  });

  it('wraps the middleware inside it: outer logging sees an inbox skip as handled', async () => {
    const entries: HandlingLogEntry[] = [];
    const order: string[] = [];
    const marker =
      (name: string): ConsumeMiddleware =>
      async (_ctx, next) => {
        order.push(name);
        await next();
      };
    const seen = recorder();
    const bus = createBus({
      endpoint: `billing-${randomUUID()}`,
      transport: memory(),
      middleware: [
        marker('outer'),
        logging({ log: (entry) => entries.push(entry) }),
        inbox({ store: memoryInboxStore() }),
        marker('inner'),
      ],
      observer: seen.observer,
    });
    let handled = 0;
    bus.on(OrderPlaced, () => void handled++);
    await bus.start();
    try {
      const id = randomUUID();
      await bus.publish(OrderPlaced, { orderId: 'o-1' }, { id });
      await seen.until(1, 'consumed');
      await bus.publish(OrderPlaced, { orderId: 'o-1' }, { id });
      await seen.until(2, 'consumed');
      assert.equal(handled, 1);
      assert.deepEqual(order, ['outer', 'inner', 'outer']);
      assert.deepEqual(
        entries.map((e) => e.outcome),
        ['handled', 'handled'],
      );
    } finally {
      await bus.stop();
    }
  });
});
