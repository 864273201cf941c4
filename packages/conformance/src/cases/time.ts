/** Time and deduplication (DESIGN.md §2.9, §2.10): delay, deliverAt, TTL, dedupId. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { defineCommand, defineEvent } from '@courier/core';
import { caseOptions, numbered, run } from '../helpers.js';
import type { CreateFixture } from '../types.js';

/** Registers the conformance cases of this area; `runTransportSuite` calls it. */
export function timeCases(create: CreateFixture): void {
  it(
    'holds a delayed message until its delay has passed',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'delay')) return;
      const Cmd = defineCommand(h.type('delay.do'), numbered);
      const q = h.queue('delay');
      const got: { n: number; at: number }[] = [];
      await h.bus(q, (b) => b.handle(Cmd, (d) => void got.push({ n: d.n, at: h.clock.now() })));
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      const start = h.clock.now();
      await producer.send(Cmd, { n: 1 }, { delayMs: 3_000 });
      await producer.send(Cmd, { n: 2 });
      await h.eventually(() => got.length === 1, 'the undelayed message');
      assert.equal(got[0]!.n, 2, 'the undelayed message is not held behind the delayed one');
      await h.quiet(2_000);
      assert.equal(got.length, 1, 'not delivered before its delay');
      await h.eventually(() => got.length === 2, 'the delayed message', { within: 5_000 });
      assert.ok(got[1]!.at - start >= 3_000, `delivered ${got[1]!.at - start} ms after publish`);
    }),
  );

  it(
    'holds a message until deliverAt',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'delay')) return;
      const Cmd = defineCommand(h.type('at.do'), numbered);
      const q = h.queue('deliver-at');
      const got: number[] = [];
      await h.bus(q, (b) => b.handle(Cmd, () => void got.push(h.clock.now())));
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      const at = h.clock.now() + 2_500;
      await producer.send(Cmd, { n: 1 }, { deliverAt: new Date(at) });
      await h.quiet(1_500);
      assert.deepEqual(got, [], 'not before deliverAt');
      await h.eventually(() => got.length === 1, 'delivery at deliverAt', { within: 5_000 });
      assert.ok(got[0]! >= at, 'got[0]! >= at');
    }),
  );

  it(
    'counts a delayed message as scheduled, not ready',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'delay')) return;
      const Cmd = defineCommand(h.type('sched.do'), numbered);
      const q = h.queue('scheduled');
      let handled = 0;
      const bus = await h.bus(q, (b) => b.handle(Cmd, () => void handled++));
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 1 }, { delayMs: 60_000 });
      await h.quiet(200);
      const stats = await bus.stats(q);
      assert.deepEqual([stats.depth, stats.inFlight, stats.scheduled], [0, 0, 1]);
      assert.equal(handled, 0);
    }),
  );

  it(
    'dead-letters a message whose TTL ran out before it was consumed (reason expired)',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'ttl')) return;
      const Cmd = defineCommand(h.type('ttl.do'), numbered);
      const q = h.queue('ttl');
      await h.declare(q);
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      const stale = await producer.send(Cmd, { n: 1 }, { ttlMs: 1_000 });
      const fresh = await producer.send(Cmd, { n: 2 }, { ttlMs: 60_000 });
      await h.quiet(2_000);
      const got: number[] = [];
      const bus = await h.bus(q, (b) => b.handle(Cmd, (d) => void got.push(d.n)));
      const letter = await h.deadLettered(bus, q, stale.id);
      assert.equal(letter.info.reason, 'expired');
      await h.eventually(() => got.length === 1, 'the unexpired message');
      assert.deepEqual(got, [2], 'the expired message never reached the handler');
      assert.notEqual(fresh.id, stale.id);
    }),
  );

  it(
    'expires by an absolute expiresAt as well',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'ttl')) return;
      const Cmd = defineCommand(h.type('expires.do'), numbered);
      const q = h.queue('expires');
      await h.declare(q);
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      const sent = await producer.send(Cmd, { n: 1 }, { expiresAt: h.clock.now() + 500 });
      await h.quiet(1_000);
      let runs = 0;
      const bus = await h.bus(q, (b) => b.handle(Cmd, () => void runs++));
      const letter = await h.deadLettered(bus, q, sent.id);
      assert.equal(letter.info.reason, 'expired');
      assert.equal(runs, 0);
    }),
  );

  it(
    'replays an expired dead letter with its expiry cleared',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'ttl')) return;
      const Cmd = defineCommand(h.type('ttl.replay'), numbered);
      const q = h.queue('ttl-replay');
      await h.declare(q);
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      const sent = await producer.send(Cmd, { n: 1 }, { ttlMs: 500 });
      await h.quiet(1_000);
      const got: string[] = [];
      const bus = await h.bus(q, (b) => b.handle(Cmd, (_d, ctx) => void got.push(ctx.id)));
      await h.deadLettered(bus, q, sent.id);
      assert.equal(await bus.deadLetters.replay(q), 1);
      await h.eventually(() => got.length === 1, 'the replayed message to be handled');
      assert.deepEqual(got, [sent.id]);
      assert.equal((await h.deadLetters(bus, q)).length, 0, 'not expired again');
    }),
  );

  it(
    'stores a message published twice with one dedupId once',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'dedup')) return;
      const Evt = defineEvent(h.type('dedup.happened'), numbered);
      const q = h.queue('dedup');
      const got: number[] = [];
      await h.bus(q, (b) => b.on(Evt, (d) => void got.push(d.n)));
      const producer = await h.bus(h.queue('producer'));
      const otherProducer = await h.bus(h.queue('producer2'));
      await producer.publish(Evt, { n: 1 }, { dedupId: 'payment-42' });
      await producer.publish(Evt, { n: 2 }, { dedupId: 'payment-42' });
      await otherProducer.publish(Evt, { n: 3 }, { dedupId: 'payment-42' });
      await producer.publish(Evt, { n: 4 }, { dedupId: 'payment-43' });
      await h.eventually(() => got.length >= 2, 'the distinct messages');
      await h.quiet(500);
      assert.deepEqual([...got].sort(), [1, 4]);
    }),
  );
}
