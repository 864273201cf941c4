/**
 * A consumer runs what it is handed on the event loop's next turn (`QueueConsumer.receive`), so a
 * transport that redelivers at once (the memory broker does, from a microtask) cannot spin a handler
 * that fails every time without timers and I/O getting their turn. (Dispatching as a microtask was
 * tried, and needed guards for exactly this: docs/performance.md, "This round".)
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

it('runs a redelivery on a later turn: a handler that fails every time cannot spin', async () => {
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
