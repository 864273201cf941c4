/**
 * When a consumer runs the deliveries it is handed (`QueueConsumer.receive`): new ones at the end of
 * the current job, not on the event loop's next turn (a transport's results can arrive for a long
 * stretch without a turn ending); but after it gave a delivery back in a turn, on the next turn, so a
 * transport that redelivers at once (the memory broker does, from a microtask) cannot spin a handler
 * that fails every time without timers and I/O getting their turn.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { it } from 'node:test';
import { memory } from '@courier/memory';
import { z } from 'zod';
import { defineEvent } from '../src/contracts.js';
import { createBus } from '../src/index.js';

const Tick = defineEvent('turns.tick', z.object({ n: z.number() }));

/** Resolves on the event loop's next check phase after the current one. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

it('runs a new delivery before the next turn of the event loop', async () => {
  const bus = createBus({ endpoint: `turns-${randomUUID()}`, transport: memory() });
  const order: string[] = [];
  bus.on(Tick, () => {
    order.push('handled');
  });
  await bus.start();
  try {
    const published = bus.publish(Tick, { n: 1 });
    // The memory broker hands the message over from a microtask: the handler runs in this job's
    // microtasks, before anything waiting for the next turn.
    setImmediate(() => order.push('next turn'));
    await published;
    for (let turns = 0; order.length < 2 && turns < 100; turns++) await nextTurn();
    assert.deepEqual(order, ['handled', 'next turn']);
  } finally {
    await bus.stop();
  }
});

it('runs a delivery given back in this turn on the next one: an at-once redelivery cannot spin', async () => {
  const bus = createBus({
    endpoint: `turns-${randomUUID()}`,
    transport: memory(),
    // Every failure is retried at once, many times: a tight loop if redeliveries ran as microtasks.
    retry: { maxAttempts: 200, immediate: 200 },
  });
  let attempts = 0;
  const perTurn: number[] = [];
  bus.on(Tick, () => {
    attempts++;
    throw new Error('fails every time');
  });
  await bus.start();
  try {
    await bus.publish(Tick, { n: 1 });
    let seen = 0;
    for (let turns = 0; turns < 20; turns++) {
      await nextTurn();
      perTurn.push(attempts - seen);
      seen = attempts;
    }
    assert.ok(attempts >= 5, `the message kept being retried (${attempts} attempts)`);
    assert.ok(
      perTurn.every((n) => n <= 2),
      `at most two attempts a turn, got ${perTurn.join(', ')}`,
    );
  } finally {
    await bus.stop();
  }
});
