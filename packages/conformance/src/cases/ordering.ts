/**
 * Ordering (DESIGN.md §2.8): priority then FIFO among first deliveries, per-key order across
 * consumers with different keys in parallel, failing keyed messages holding their key, park/release.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Bus } from '@courier/core';
import { defineCommand, defineEvent, NonRetryableError } from '@courier/core';
import fc from 'fast-check';
import { Concurrency, caseOptions, Harness, numbered, run, sleepOn } from '../helpers.js';
import type { CreateFixture } from '../types.js';

/** Registers the conformance cases of this area; `runTransportSuite` calls it. */
export function orderingCases(create: CreateFixture): void {
  it(
    'delivers higher priority first, then in publish order',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'priority')) return;
      const Cmd = defineCommand(h.type('prio.do'), numbered);
      const q = h.queue('prio');
      await h.declare(q);
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      const priorities = [0, 5, 9, 0, 5, 1, 9, 0, 3, 5];
      for (const [n, priority] of priorities.entries()) await producer.send(Cmd, { n }, { priority });
      const got: number[] = [];
      // The prefetch covers the batch, so a transport whose priority the core emulates (within the
      // consumer's buffer) is held to the same global order as a native one.
      await h.bus(q, (b) => b.handle(Cmd, (d) => void got.push(d.n)), { concurrency: 1, prefetch: 16 });
      await h.eventually(() => got.length === priorities.length, 'every message');
      const expected = [...priorities.entries()]
        .sort(([n1, p1], [n2, p2]) => p2 - p1 || n1 - n2)
        .map(([n]) => n);
      assert.deepEqual(got, expected, `priorities in handling order: ${got.map((n) => priorities[n])}`);
    }),
  );

  it(
    'delivers in publish order within a queue (FIFO)',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('fifo.do'), numbered);
      const q = h.queue('fifo');
      await h.declare(q);
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      for (let n = 0; n < 15; n++) await producer.send(Cmd, { n });
      const got: number[] = [];
      await h.bus(q, (b) => b.handle(Cmd, (d) => void got.push(d.n)), { concurrency: 1 });
      for (let n = 15; n < 25; n++) await producer.send(Cmd, { n });
      await h.eventually(() => got.length === 25, 'every message');
      assert.deepEqual(
        got,
        Array.from({ length: 25 }, (_, i) => i),
      );
    }),
  );

  it(
    'keeps per-key order, one handler per key, different keys in parallel (property)',
    { ...caseOptions, timeout: 120_000 },
    run(create, async (probe, t) => {
      if (await probe.skipWithout(t, 'keyOrdering')) return;
      const step = fc.record({ key: fc.constantFrom('a', 'b', 'c'), delay: fc.integer({ min: 1, max: 25 }) });
      await fc.assert(
        fc.asyncProperty(
          fc
            .array(step, { minLength: 2, maxLength: 6 })
            .filter((xs) => new Set(xs.map((x) => x.key)).size >= 2),
          fc.array(step, { minLength: 0, maxLength: 6 }),
          async (before, after) => {
            const h = new Harness(await create());
            try {
              await keyedRun(h, before, after);
            } finally {
              await h.cleanup();
            }
          },
        ),
        { numRuns: 15 },
      );
    }),
  );

  it(
    'keeps per-key order across competing consumers',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'keyOrdering')) return;
      const Cmd = defineCommand(h.type('keyed.do'), numbered);
      const q = h.queue('keyed2');
      const load = new Concurrency();
      const order: number[] = [];
      const handler = async (n: number) => {
        load.enter('k');
        await sleepOn(h.clock, 20);
        order.push(n);
        load.leave('k');
      };
      // Native key order holds across consumers; the core's emulation holds within one consumer
      // process (DESIGN.md §4: brokers without it emulate it in their adapter, with partitions).
      const consumers = (await h.raw()).capabilities.keyOrdering === 'native' ? 2 : 1;
      for (let i = 0; i < consumers; i++) {
        await h.bus(q, (b) => b.handle(Cmd, (d) => handler(d.n)), { concurrency: 2 });
      }
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      for (let n = 0; n < 8; n++) await producer.send(Cmd, { n }, { key: 'k' });
      await h.eventually(() => order.length === 8, 'all eight keyed messages', { step: 5 });
      assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7]);
      assert.equal(load.maxPerKey, 1, 'never two handlers of one key at once');
    }),
  );

  it(
    'holds a key while its failing message is retried, not other keys',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'keyOrdering')) return;
      const Cmd = defineCommand(h.type('keyed.do'), numbered);
      const q = h.queue('keyed-fail');
      const log: string[] = [];
      await h.bus(
        q,
        (b) =>
          b.handle(Cmd, (d, ctx) => {
            log.push(`${d.n}#${ctx.attempt}`);
            if (d.n === 1 && ctx.attempt < 3) throw new Error('transient');
          }),
        { concurrency: 4, retry: { maxAttempts: 5, immediate: 0, initialDelayMs: 500, jitter: 0 } },
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 1 }, { key: 'k' });
      await producer.send(Cmd, { n: 2 }, { key: 'k' });
      await producer.send(Cmd, { n: 3 }, { key: 'other' });
      await h.eventually(
        () => log.includes('2#1') && log.includes('1#3'),
        'the key head to succeed and the next to run',
      );
      assert.ok(log.indexOf('3#1') < log.indexOf('1#2'), `another key is not held up: ${log}`);
      assert.ok(log.indexOf('2#1') > log.indexOf('1#3'), `the key waited for its failing head: ${log}`);
    }),
  );

  it(
    'delivers the key head first whatever the priority',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'keyOrdering')) return;
      const Cmd = defineCommand(h.type('keyed.do'), numbered);
      const q = h.queue('keyed-prio');
      await h.declare(q);
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 1 }, { key: 'k', priority: 0 });
      await producer.send(Cmd, { n: 2 }, { key: 'k', priority: 9 });
      const got: number[] = [];
      await h.bus(q, (b) => b.handle(Cmd, (d) => void got.push(d.n)), { concurrency: 1 });
      await h.eventually(() => got.length === 2, 'both');
      assert.deepEqual(got, [1, 2]);
    }),
  );

  it(
    "releases a key after its message is dead-lettered (onDeadLetter 'release', default)",
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'keyOrdering')) return;
      const { bus, q, log, producer, Evt } = await parkSetup(h, undefined);
      await producer.publish(Evt, { n: 1, mode: 'reject' }, { key: 'k' });
      await producer.publish(Evt, { n: 2 }, { key: 'k' });
      await h.eventually(() => log.includes('2'), 'the next message of the key');
      assert.equal((await h.deadLetters(bus, q)).length, 1);
    }),
  );

  it(
    "parks a key after its message is dead-lettered until replay (onDeadLetter 'park')",
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'keyOrdering')) return;
      if (await refusesPark(h)) return;
      const { bus, q, log, producer, Evt, fix } = await parkSetup(h, 'park');
      await producer.publish(Evt, { n: 1, mode: 'reject' }, { key: 'k' });
      await producer.publish(Evt, { n: 2 }, { key: 'k' });
      await producer.publish(Evt, { n: 3 }, { key: 'other' });
      await h.eventually(async () => (await h.deadLetters(bus, q)).length === 1, 'the dead letter');
      await h.eventually(() => log.includes('3'), 'the other key');
      await h.quiet(1_000);
      assert.ok(!log.includes('2'), 'the parked key holds its next message');
      fix();
      assert.equal(await bus.deadLetters.replay(q), 1);
      await h.eventually(() => log.includes('1') && log.includes('2'), 'the key to move on after the replay');
      assert.deepEqual(
        log.filter((n) => n !== '3'),
        ['1', '2'],
        'the replayed head first, then the held message',
      );
    }),
  );

  it(
    "parks a key after its message is dead-lettered until purge (onDeadLetter 'park')",
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'keyOrdering')) return;
      if (await refusesPark(h)) return;
      const { bus, q, log, producer, Evt } = await parkSetup(h, 'park');
      await producer.publish(Evt, { n: 1, mode: 'reject' }, { key: 'k' });
      await producer.publish(Evt, { n: 2 }, { key: 'k' });
      await h.eventually(async () => (await h.deadLetters(bus, q)).length === 1, 'the dead letter');
      await h.quiet(1_000);
      assert.ok(!log.includes('2'), 'the parked key holds its next message');
      assert.equal(await bus.deadLetters.purge(q), 1);
      await h.eventually(() => log.includes('2'), 'the key to move on after the purge');
      assert.ok(!log.includes('1'), 'the purged message is gone');
    }),
  );
}

/**
 * Parking needs the broker to hold the key behind a dead letter; without a native DLQ and key order
 * the bus must refuse the option at start (DESIGN.md §3), never ignore it.
 */
async function refusesPark(h: Harness): Promise<boolean> {
  const caps = (await h.raw()).capabilities;
  if (caps.deadLetter === 'native' && caps.keyOrdering === 'native') return false;
  await assert.rejects(
    parkSetup(h, 'park'),
    (error: Error & { code?: string }) => error.code === 'COURIER_UNSUPPORTED',
  );
  return true;
}

async function parkSetup(h: Harness, onDeadLetter: 'park' | 'release' | undefined) {
  const Evt = defineEvent(h.type('keyed.happened'), numbered);
  const q = h.queue('park');
  const log: string[] = [];
  let fixed = false;
  const bus: Bus = await h.bus(q, (b) =>
    b.on(
      Evt,
      (d) => {
        if (d.mode === 'reject' && !fixed) throw new NonRetryableError('cannot handle yet');
        log.push(String(d.n));
      },
      onDeadLetter ? { onDeadLetter } : {},
    ),
  );
  const producer = await h.bus(h.queue('producer'));
  return {
    bus,
    q,
    log,
    producer,
    Evt,
    fix: () => {
      fixed = true;
    },
  };
}

/** One run of the per-key property: `before` published before the consumer starts, `after` while it runs. */
async function keyedRun(
  h: Harness,
  before: readonly { key: string; delay: number }[],
  after: readonly { key: string; delay: number }[],
): Promise<void> {
  const Cmd = defineCommand(h.type('keyed.do'), numbered);
  const q = h.queue('keyed');
  await h.declare(q);
  const plan = [...before, ...after];
  const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
  const load = new Concurrency();
  const handled = new Map<string, number[]>();
  const send = (n: number) => producer.send(Cmd, { n }, { key: plan[n]!.key });
  for (let n = 0; n < before.length; n++) await send(n);
  await h.bus(
    q,
    (b) =>
      b.handle(Cmd, async (d, ctx) => {
        const key = ctx.key!;
        load.enter(key);
        await sleepOn(h.clock, plan[d.n]!.delay);
        handled.set(key, [...(handled.get(key) ?? []), d.n]);
        load.leave(key);
      }),
    { concurrency: 4, prefetch: 16 },
  );
  for (let n = before.length; n < plan.length; n++) await send(n);
  const total = () => [...handled.values()].reduce((sum, xs) => sum + xs.length, 0);
  await h.eventually(() => total() === plan.length, `all ${plan.length} keyed messages`, { step: 5 });
  for (const key of new Set(plan.map((p) => p.key))) {
    const expected = plan.flatMap((p, n) => (p.key === key ? [n] : []));
    assert.deepEqual(handled.get(key), expected, `key ${key} in publish order`);
  }
  assert.equal(load.maxPerKey, 1, 'never two handlers of one key at once');
  assert.ok(load.max > 1, 'different keys ran in parallel');
}
