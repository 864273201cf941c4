/**
 * A handler that returns no promise takes the consumer's synchronous path (no async frame from
 * decode to ack). What that path must still do: keep a message whose ack failed, store output the
 * handler did not await, and give middleware a promise from `next()`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { it } from 'node:test';
import { memory } from '@courier/memory';
import { z } from 'zod';
import { defineCommand, defineEvent } from '../src/contracts.js';
import { createBus } from '../src/index.js';
import type { Transport } from '../src/transport.js';
import { withAck } from './ack-proxy.js';

/** `inner` whose first `failures` acks reject, as a broker that went away would. */
function failingAcks(inner: Transport, failures: number): Transport {
  let left = failures;
  return withAck(inner, (delivery, outgoing) =>
    left-- > 0 ? Promise.reject(new Error('broker went away')) : delivery.ack(outgoing),
  );
}

const Tick = defineEvent('sync.tick', z.object({ n: z.number() }));
const Note = defineCommand('sync.note', z.object({ n: z.number() }));

function eventually(check: () => boolean, what: string, withinMs = 5_000): Promise<void> {
  const until = Date.now() + withinMs;
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (check()) resolve();
      else if (Date.now() > until) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

it('keeps a message whose ack failed after a synchronous handler: it runs again', async () => {
  const bus = createBus({
    endpoint: `sync-${randomUUID()}`,
    transport: failingAcks(memory(), 1),
    retry: { maxAttempts: 3, immediate: 2 },
  });
  const attempts: number[] = [];
  bus.on(Tick, (_data, ctx) => {
    attempts.push(ctx.attempt);
  });
  await bus.start();
  try {
    await bus.publish(Tick, { n: 1 });
    await eventually(() => attempts.length === 2, 'a second attempt');
    assert.deepEqual(attempts, [1, 2]);
    for (let tries = 0; ; tries++) {
      const stats = await bus.stats(bus.endpoint);
      if (stats.depth + stats.inFlight + stats.deadLettered === 0) break;
      assert.ok(tries < 500, 'the second attempt was acked');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.deepEqual(attempts, [1, 2], 'acked once it could be');
  } finally {
    await bus.stop();
  }
});

it('stores output a synchronous handler started without awaiting it, with its ack', async () => {
  const transport = memory();
  const endpoint = `sync-${randomUUID()}`;
  const notes: number[] = [];
  const bus = createBus({ endpoint, transport, routes: { [Note.type]: endpoint } });
  bus.on(Tick, (data, ctx) => {
    // No await: the ack must still carry it.
    void ctx.send(Note, { n: data.n * 10 });
  });
  bus.handle(Note, (data) => {
    notes.push(data.n);
  });
  await bus.start();
  try {
    for (let n = 1; n <= 20; n++) await bus.publish(Tick, { n });
    await eventually(() => notes.length === 20, 'twenty notes');
    assert.deepEqual(
      notes.sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => (i + 1) * 10),
    );
  } finally {
    await bus.stop();
  }
});

it('gives middleware a promise from next() around a synchronous handler', async () => {
  const order: string[] = [];
  const bus = createBus({
    endpoint: `sync-${randomUUID()}`,
    transport: memory(),
    middleware: [
      (_ctx, next) =>
        next().then(() => {
          order.push('after');
        }),
    ],
  });
  bus.on(Tick, () => {
    order.push('handler');
  });
  await bus.start();
  try {
    await bus.publish(Tick, { n: 1 });
    await eventually(() => order.length === 2, 'the middleware to finish');
    assert.deepEqual(order, ['handler', 'after']);
  } finally {
    await bus.stop();
  }
});
