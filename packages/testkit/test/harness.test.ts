import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import type { Bus, BusEvent } from '@courier/core';
import { createBus, defineEvent, NonRetryableError } from '@courier/core';
import { memory } from '@courier/memory';
import { z } from 'zod';
import { createHarness, FakeClock, inspectQueue } from '../src/index.js';

const OrderPlaced = defineEvent('orders.placed', z.object({ orderId: z.string() }));
const OrderCancelled = defineEvent('orders.cancelled', z.object({ orderId: z.string() }));

/** The retry policy of the brief: no immediate retry, 1 s then doubling, no jitter. */
const retry = { maxAttempts: 5, immediate: 0, initialDelayMs: 1_000, jitter: 0 };

function billingBus(clock: FakeClock, observer: (event: BusEvent) => void): Bus {
  return createBus({
    endpoint: `billing-${randomUUID()}`,
    transport: memory({ clock }),
    clock,
    observer,
    retry,
  });
}

describe('harness: an application test on the memory transport with a fake clock', () => {
  it('waits for a message that succeeds on its third attempt without sleeping for real', async () => {
    const clock = new FakeClock();
    const harness = createHarness();
    const bus = billingBus(clock, harness.observer);
    const attempts: number[] = [];
    bus.on(OrderPlaced, async (_order, ctx) => {
      attempts.push(ctx.attempt);
      if (ctx.attempt <= 2) throw new Error('card service unavailable');
    });
    await bus.start();
    try {
      const fakeStart = clock.now();
      const realStart = performance.now();
      await bus.publish(OrderPlaced, { orderId: 'o-1' });

      const consumed = await harness.waitFor('consumed', 'orders.placed', { clock });

      assert.equal(consumed.attempt, 3);
      assert.deepEqual(consumed.message.data, { orderId: 'o-1' });
      assert.deepEqual(attempts, [1, 2, 3]);
      const retried = harness.events.filter((e) => e.kind === 'retried');
      assert.deepEqual(
        retried.map((e) => e.delayMs),
        [1_000, 2_000],
      );
      assert.ok(clock.now() - fakeStart >= 3_000, 'the backoff passed in fake time');
      assert.ok(performance.now() - realStart < 1_500, 'but not in real time');
      assert.equal(harness.published('orders.placed').length, 1);
      assert.equal(harness.consumed().length, 1);
      const queue = await inspectQueue(bus);
      assert.equal(queue.depth, 0);
      assert.equal(queue.inFlight, 0);
      assert.equal(queue.scheduled, 0);
      assert.deepEqual(queue.deadLetters, []);
    } finally {
      await bus.stop();
    }
  });

  it('waits for a poison message to be dead-lettered after its five attempts', async () => {
    const clock = new FakeClock();
    const harness = createHarness();
    const bus = billingBus(clock, harness.observer);
    bus.on(OrderPlaced, async (order) => {
      if (order.orderId === 'poison') throw new Error(`order ${order.orderId} cannot be billed`);
    });
    await bus.start();
    try {
      await bus.publish(OrderPlaced, { orderId: 'poison' });
      await bus.publish(OrderPlaced, { orderId: 'o-2' });

      const dead = await harness.waitFor('dead-lettered', 'orders.placed', { clock });

      assert.equal(dead.reason, 'max-attempts');
      assert.match(String(dead.error), /order poison cannot be billed/);
      // 1 + 2 + 4 + 8 seconds of backoff between the five attempts.
      assert.deepEqual(
        harness.events.flatMap((e) => (e.kind === 'retried' ? [e.delayMs] : [])),
        [1_000, 2_000, 4_000, 8_000],
      );
      assert.deepEqual(
        harness.consumed('orders.placed').map((e) => e.message.data),
        [{ orderId: 'o-2' }],
      );
      const queue = await inspectQueue(bus);
      assert.equal(queue.deadLettered, 1);
      assert.equal(queue.deadLetters.length, 1);
      const [letter] = queue.deadLetters;
      assert.equal(letter?.info.reason, 'max-attempts');
      assert.equal(letter?.info.attempts, 5);
      assert.equal(letter?.headers['courier-dlq-error-message'], 'order poison cannot be billed');
    } finally {
      await bus.stop();
    }
  });

  it('resolves at once, without advancing the clock, when no delay is involved', async () => {
    const clock = new FakeClock();
    const harness = createHarness();
    const bus = billingBus(clock, harness.observer);
    bus.on(OrderPlaced, () => {
      throw new NonRetryableError('refused');
    });
    await bus.start();
    try {
      const before = clock.now();
      await bus.publish(OrderPlaced, { orderId: 'o-3' });
      const dead = await harness.waitFor('dead-lettered', 'orders.placed', { clock });
      assert.equal(dead.reason, 'rejected');
      assert.equal(clock.now(), before);
    } finally {
      await bus.stop();
    }
  });
});

describe('harness', () => {
  it('waitFor resolves with an event already seen, and with one still to come', async () => {
    const harness = createHarness();
    const bus = createBus({
      endpoint: `orders-${randomUUID()}`,
      transport: memory(),
      observer: harness.observer,
    });
    bus.on(OrderPlaced, () => {});
    await bus.start();
    try {
      const message = await bus.publish(OrderPlaced, { orderId: 'o-1' });
      const seen = await harness.waitFor('published', 'orders.placed');
      assert.equal(seen.message.id, message.id);
      const consumed = await harness.waitFor('consumed', 'orders.*');
      assert.equal(consumed.message.id, message.id);

      const later = harness.waitFor('consumed', 'orders.placed', {
        where: (e) => e.message.data !== null && (e.message.data as { orderId: string }).orderId === 'o-2',
      });
      await bus.publish(OrderPlaced, { orderId: 'o-2' });
      assert.deepEqual((await later).message.data, { orderId: 'o-2' });
    } finally {
      await bus.stop();
    }
  });

  it('filters by kind and type, exact or by pattern, and forgets on reset', () => {
    const harness = createHarness();
    const message = (type: string) => ({
      id: randomUUID(),
      type,
      version: 1,
      data: {},
      headers: {},
      time: new Date(0).toISOString(),
      source: 'test',
      correlationId: 'c',
      priority: 0,
    });
    harness.observer({ kind: 'published', message: message('orders.placed'), to: { kind: 'topic' } });
    harness.observer({ kind: 'published', message: message('orders.cancelled'), to: { kind: 'topic' } });
    harness.observer({ kind: 'consumed', message: message('orders.placed'), queue: 'q', attempt: 1 });
    harness.observer({
      kind: 'dead-lettered',
      type: 'orders.cancelled',
      id: 'x',
      queue: 'q',
      reason: 'rejected',
    });
    harness.observer({ kind: 'error', error: new Error('boom') });

    assert.equal(harness.events.length, 5);
    assert.equal(harness.published().length, 2);
    assert.equal(harness.published('orders.placed').length, 1);
    assert.equal(harness.published('orders.#').length, 2);
    assert.equal(harness.consumed('orders.cancelled').length, 0);
    assert.equal(harness.deadLettered('orders.cancelled').length, 1);

    harness.reset();
    assert.equal(harness.events.length, 0);
    assert.equal(harness.published().length, 0);
  });

  it('waitFor rejects after timeoutMs with the events it saw', async () => {
    const harness = createHarness();
    const bus = createBus({
      endpoint: `orders-${randomUUID()}`,
      transport: memory(),
      observer: harness.observer,
    });
    bus.on(OrderPlaced, () => {});
    await bus.start();
    try {
      await bus.publish(OrderPlaced, { orderId: 'o-1' });
      await harness.waitFor('consumed');
      await assert.rejects(
        harness.waitFor('consumed', OrderCancelled.type, { timeoutMs: 20 }),
        (error: Error) => {
          assert.match(
            error.message,
            /waitFor\('consumed', 'orders\.cancelled'\) saw no matching event within 20 ms/,
          );
          assert.match(error.message, /published orders\.placed/);
          assert.match(error.message, /consumed orders\.placed on 'orders-[^']+' attempt 1/);
          return true;
        },
      );
    } finally {
      await bus.stop();
    }
  });

  it('waitFor with a clock rejects once maxAdvanceMs of fake time has passed', async () => {
    const clock = new FakeClock();
    const harness = createHarness();
    const start = clock.now();
    await assert.rejects(
      harness.waitFor('dead-lettered', undefined, { clock, stepMs: 250, maxAdvanceMs: 1_000 }),
      /saw no matching event after advancing the fake clock 1000 ms; seen: no events/,
    );
    assert.equal(clock.now() - start, 1_000);
  });

  it('inspectQueue pages through every dead letter', async () => {
    const clock = new FakeClock();
    const harness = createHarness();
    const bus = billingBus(clock, harness.observer);
    bus.on(OrderPlaced, (order, ctx) => ctx.deadLetter('invalid-order', `order ${order.orderId} is invalid`));
    await bus.start();
    try {
      for (let i = 0; i < 120; i++) await bus.publish(OrderPlaced, { orderId: `o-${i}` });
      await harness.waitFor('dead-lettered', undefined, {
        clock,
        where: () => harness.deadLettered().length === 120,
      });
      const queue = await inspectQueue(bus);
      assert.equal(queue.deadLettered, 120);
      assert.equal(queue.deadLetters.length, 120);
      assert.ok(
        queue.deadLetters.every((l) => l.info.reason === 'invalid-order'),
        "queue.deadLetters.every((l) => l.info.reason === 'invalid-order')",
      );
    } finally {
      await bus.stop();
    }
  });
});
