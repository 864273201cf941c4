/**
 * What the bus asks of `transport.consume` per queue: `prefetch`, and `maxPrefetch`, which lets the
 * transport grow its window when the application left the prefetch to the bus or gave a maximum.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { it } from 'node:test';
import { memory } from '@courier/memory';
import { z } from 'zod';
import { defineEvent } from '../src/contracts.js';
import { ConfigurationError } from '../src/errors.js';
import { type BusOptions, createBus, type SubscriptionOptions } from '../src/index.js';
import type { ConsumeOptions, Transport } from '../src/transport.js';

const Tick = defineEvent('limits.tick', z.object({ n: z.number() }));

/** Starts a bus with `options` (one handler with `handlerOptions`); returns each queue's ConsumeOptions. */
async function consumeOptions(
  options: Partial<BusOptions>,
  handlerOptions?: SubscriptionOptions,
): Promise<Map<string, ConsumeOptions>> {
  const inner = memory();
  const seen = new Map<string, ConsumeOptions>();
  const transport = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'consume') {
        return (queue: string, consume: ConsumeOptions, onDelivery: never) => {
          seen.set(queue, consume);
          return target.consume(queue, consume, onDelivery);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as Transport;
  const endpoint = `limits-${randomUUID()}`;
  const bus = createBus({ endpoint, transport, ...options });
  bus.on(Tick, () => {}, handlerOptions);
  await bus.start();
  await bus.stop();
  return seen;
}

it('a prefetch left to the bus may grow to 512, or to the maxPrefetch given', async () => {
  const byDefault = await consumeOptions({ concurrency: 8 });
  assert.deepEqual(pick([...byDefault.values()][0]!), { prefetch: 16, maxPrefetch: 512 });
  const given = await consumeOptions({ concurrency: 8, maxPrefetch: 40 });
  assert.deepEqual(pick([...given.values()][0]!), { prefetch: 16, maxPrefetch: 40 });
  // A concurrency past the default maximum: the window starts (and stays) at its prefetch.
  const large = await consumeOptions({ concurrency: 300 });
  assert.deepEqual(pick([...large.values()][0]!), { prefetch: 600, maxPrefetch: 600 });
});

it('a prefetch the application chose, with or without a maximum', async () => {
  const fixed = await consumeOptions({ prefetch: 10 });
  assert.deepEqual(pick([...fixed.values()][0]!), { prefetch: 10, maxPrefetch: 10 });
  const both = await consumeOptions({ prefetch: 10, maxPrefetch: 30 });
  assert.deepEqual(pick([...both.values()][0]!), { prefetch: 10, maxPrefetch: 30 });
});

it("a handler's own queue takes its own prefetch and maxPrefetch", async () => {
  const fixed = await consumeOptions({ prefetch: 32 }, { queue: 'limits.fixed', concurrency: 4 });
  assert.deepEqual(pick(fixed.get('limits.fixed')!), { prefetch: 32, maxPrefetch: 32 });
  const grows = await consumeOptions({}, { queue: 'limits.grows', concurrency: 4 });
  assert.deepEqual(pick(grows.get('limits.grows')!), { prefetch: 32, maxPrefetch: 512 });
  const capped = await consumeOptions({}, { queue: 'limits.capped', maxPrefetch: 50 });
  assert.deepEqual(pick(capped.get('limits.capped')!), { prefetch: 32, maxPrefetch: 50 });
  // The bus's maximum holds for a handler's queue that sets no prefetch of its own.
  const inherits = await consumeOptions({ maxPrefetch: 300 }, { queue: 'limits.inherits', concurrency: 4 });
  assert.deepEqual(pick(inherits.get('limits.inherits')!), { prefetch: 32, maxPrefetch: 300 });
  const own = await consumeOptions({ maxPrefetch: 300 }, { queue: 'limits.set', prefetch: 8 });
  assert.deepEqual(pick(own.get('limits.set')!), { prefetch: 8, maxPrefetch: 8 });
});

it('refuses a maxPrefetch below prefetch, or not a positive integer, or on the endpoint queue', () => {
  const transport = memory();
  const bus = (options: Partial<BusOptions>) =>
    createBus({ endpoint: `limits-${randomUUID()}`, transport, ...options });
  assert.throws(() => bus({ prefetch: 20, maxPrefetch: 10 }), {
    name: ConfigurationError.name,
    message: 'maxPrefetch (10) must be at least prefetch (20)',
  });
  assert.throws(() => bus({ maxPrefetch: 0 }), /maxPrefetch must be an integer >= 1, got 0/);
  assert.throws(() => bus({ maxPrefetch: 2.5 }), /maxPrefetch must be an integer >= 1, got 2\.5/);
  assert.throws(
    () => bus({}).on(Tick, () => {}, { maxPrefetch: 100 }),
    /concurrency, prefetch, maxPrefetch and leaseMs of one handler need a queue of its own/,
  );
});

function pick(options: ConsumeOptions): { prefetch: number; maxPrefetch: number | undefined } {
  return { prefetch: options.prefetch, maxPrefetch: options.maxPrefetch };
}
