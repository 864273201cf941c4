/**
 * Crashes, leases and stops (DESIGN.md §2.2, §2.3, §2.4, §2.15): what is redelivered, with which
 * attempt, and what a redelivered handler's output looks like downstream.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { defineCommand, defineEvent, inbox, memoryInboxStore } from '@courier/core';
import { caseOptions, crashBeforeAck, gate, numbered, run } from '../helpers.js';
import type { CreateFixture } from '../types.js';

const leaseMs = 1_000;

/** Registers the conformance cases of this area; `runTransportSuite` calls it. */
export function crashCases(create: CreateFixture): void {
  it(
    'redelivers after a crash mid-handler with the attempt counted',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('crash.do'), numbered);
      const q = h.queue('crash');
      const seen: { bus: string; attempt: number }[] = [];
      const hang = gate();
      const first = await h.bus(
        q,
        (b) =>
          b.handle(Cmd, async (_d, ctx) => {
            seen.push({ bus: 'first', attempt: ctx.attempt });
            await hang.wait();
          }),
        { leaseMs },
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 1 });
      await h.eventually(() => seen.length === 1, 'the first attempt');
      await first.kill();
      await h.bus(
        q,
        (b) => b.handle(Cmd, (_d, ctx) => void seen.push({ bus: 'second', attempt: ctx.attempt })),
        {
          leaseMs,
        },
      );
      await h.eventually(() => seen.length === 2, 'the redelivery after the lease ran out');
      await h.quiet(2 * leaseMs);
      assert.deepEqual(seen, [
        { bus: 'first', attempt: 1 },
        { bus: 'second', attempt: 2 },
      ]);
    }),
  );

  it(
    'dead-letters a message that crashes its consumer every time, after maxAttempts',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('poison.do'), numbered);
      const q = h.queue('poison');
      const attempts: number[] = [];
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await h.declare(q);
      const sent = await producer.send(Cmd, { n: 1 });
      let lastBus = producer;
      for (let life = 0; life < 6; life++) {
        const before = attempts.length;
        const bus = await h.bus(
          q,
          (b) =>
            b.handle(Cmd, async (_d, ctx) => {
              attempts.push(ctx.attempt);
              await gate().wait();
            }),
          { leaseMs },
        );
        lastBus = bus;
        let dead = false;
        await h.eventually(
          async () => {
            if (attempts.length > before) return true;
            dead = (await h.deadLetters(bus, q)).some((l) => l.envelope.id === sent.id);
            return dead;
          },
          `life ${life + 1}: a new attempt or the dead letter`,
          { within: 3 * leaseMs, step: 50 },
        );
        if (dead) break;
        await bus.kill();
        await h.advance(leaseMs);
      }
      const letter = await h.deadLettered(lastBus, q, sent.id);
      assert.deepEqual(attempts, [1, 2, 3], 'three crashed attempts, then no more runs');
      assert.equal(letter.info.reason, 'max-attempts');
      assert.ok(letter.info.attempts >= 3, `attempts ${letter.info.attempts}`);
    }),
  );

  it(
    'redelivers when a handler outlives its lease; the late finish is not a second handling',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('slow.do'), numbered);
      const q = h.queue('slow');
      const seen: string[] = [];
      const stuck = gate();
      const handler = async (by: string, attempt: number) => {
        seen.push(`${by}#${attempt}`);
        if (attempt === 1) await stuck.wait();
      };
      const a = await h.bus(q, (b) => b.handle(Cmd, (_d, ctx) => handler('a', ctx.attempt)), { leaseMs });
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 1 });
      await h.eventually(() => seen.length === 1, 'the first attempt');
      await h.bus(q, (b) => b.handle(Cmd, (_d, ctx) => handler('b', ctx.attempt)), { leaseMs });
      await h.eventually(() => seen.length === 2, 'a redelivery once the lease expired', {
        within: 3 * leaseMs,
      });
      assert.equal(seen[0], 'a#1');
      assert.match(seen[1]!, /^[ab]#2$/);
      stuck.open();
      await h.quiet(3 * leaseMs);
      assert.equal(seen.length, 2, `no third delivery: ${seen}`);
      const stats = await a.stats(q);
      assert.deepEqual([stats.depth, stats.inFlight, stats.scheduled, stats.deadLettered], [0, 0, 0, 0]);
    }),
  );

  it(
    'a late settle from an expired lease does not settle the redelivery: a failure of that one is retried',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'fencedLeases')) return;
      const Cmd = defineCommand(h.type('late.do'), numbered);
      const q = h.queue('late');
      const seen: number[] = [];
      const stuck = gate();
      const failing = gate();
      const handler = async (attempt: number) => {
        seen.push(attempt);
        if (attempt === 1) await stuck.wait();
        if (attempt === 2) {
          await failing.wait();
          throw new Error('the redelivery fails');
        }
      };
      const options = { leaseMs, retry: { maxAttempts: 5, immediate: 2, jitter: 0 } };
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await h.bus(q, (b) => b.handle(Cmd, (_d, ctx) => handler(ctx.attempt)), options);
      await h.bus(q, (b) => b.handle(Cmd, (_d, ctx) => handler(ctx.attempt)), options);
      await producer.send(Cmd, { n: 1 });
      await h.eventually(() => seen.length === 2, 'a redelivery once the lease expired', {
        within: 3 * leaseMs,
      });
      // The first handler finishes now: its ack is under the expired lease, and must not take the
      // message from the redelivery still running.
      stuck.open();
      await h.quiet(200);
      failing.open();
      await h.eventually(() => seen.includes(3), `a third attempt after the redelivery failed: ${seen}`, {
        within: 3 * leaseMs,
      });
      await h.eventually(async () => {
        const stats = await producer.stats(q);
        return stats.depth + stats.inFlight + stats.scheduled + stats.deadLettered === 0;
      }, 'nothing left');
      assert.deepEqual(seen, [1, 2, 3]);
    }),
  );

  it(
    'extends a lease on request, so a long handler is not redelivered',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'leaseExtension')) return;
      const Cmd = defineCommand(h.type('long.do'), numbered);
      const q = h.queue('long');
      const seen: number[] = [];
      const extended: boolean[] = [];
      const work = gate();
      const handler = async (attempt: number, extendLease: (ms: number) => Promise<boolean>) => {
        seen.push(attempt);
        extended.push(await extendLease(4 * leaseMs));
        await work.wait();
      };
      await h.bus(q, (b) => b.handle(Cmd, (_d, ctx) => handler(ctx.attempt, (ms) => ctx.extendLease(ms))), {
        leaseMs,
      });
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await h.bus(q, (b) => b.handle(Cmd, (_d, ctx) => handler(ctx.attempt, (ms) => ctx.extendLease(ms))), {
        leaseMs,
      });
      await producer.send(Cmd, { n: 1 });
      await h.eventually(() => extended.length === 1, 'the handler to extend its lease');
      assert.deepEqual(extended, [true]);
      await h.quiet(2.5 * leaseMs, 100);
      assert.deepEqual(seen, [1], 'not redelivered within the extended lease');
      work.open();
      await h.quiet(5 * leaseMs, 250);
      assert.deepEqual(seen, [1], 'acked once done');
    }),
  );

  it(
    'returns an unfinished delivery at graceful stop, without counting an attempt',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('stop.do'), numbered);
      const q = h.queue('stop');
      const seen: string[] = [];
      const stuck = gate();
      const first = await h.bus(q, (b) =>
        b.handle(Cmd, async (_d, ctx) => {
          seen.push(`first#${ctx.attempt}`);
          await stuck.wait();
        }),
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 1 });
      await h.eventually(() => seen.length === 1, 'the first attempt');
      await h.whileAdvancing(first.stop({ timeoutMs: 500 }), { within: 5_000 });
      await h.bus(q, (b) => b.handle(Cmd, (_d, ctx) => void seen.push(`second#${ctx.attempt}`)));
      await h.eventually(() => seen.length === 2, 'the returned delivery on the next bus');
      assert.deepEqual(seen, ['first#1', 'second#1'], 'attempt not incremented by a graceful stop');
      stuck.open();
      await h.quiet(500);
      assert.equal(seen.length, 2, 'the abandoned handler finishing late changes nothing');
    }),
  );

  it(
    'returns the deliveries a connection holds unsettled when it closes, without counting an attempt',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('close.do'), numbered);
      const q = h.queue('close');
      await h.declare(q);
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      for (let n = 1; n <= 3; n++) await producer.send(Cmd, { n });
      // A connection that takes the three and settles none, then closes (not a crash: no abandon).
      const holder = await h.connect();
      let held = 0;
      await holder.consume(q, { prefetch: 10, leaseMs: 60_000 }, () => void held++);
      await h.eventually(() => held === 3, 'the three deliveries on the holding connection');
      await holder.close();
      const seen: string[] = [];
      await h.bus(q, (b) => b.handle(Cmd, (d, ctx) => void seen.push(`${d.n}#${ctx.attempt}`)));
      await h.eventually(() => seen.length === 3, 'the returned deliveries, long before their lease ends');
      assert.deepEqual(seen.sort(), ['1#1', '2#1', '3#1'], 'attempts not incremented by a close');
    }),
  );

  it(
    'lets in-flight handlers finish within the stop timeout and acks them',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('drain.do'), numbered);
      const q = h.queue('drain');
      const seen: string[] = [];
      const bus = await h.bus(q, (b) =>
        b.handle(Cmd, async (_d, ctx) => {
          seen.push(`first#${ctx.attempt}`);
          await new Promise<void>((resolve) => h.clock.setTimeout(resolve, 200));
          seen.push('first:done');
        }),
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 1 });
      await h.eventually(() => seen.length === 1, 'the handler to start');
      await h.whileAdvancing(bus.stop({ timeoutMs: 5_000 }));
      assert.deepEqual(seen, ['first#1', 'first:done'], 'stop waited for the handler');
      await h.bus(q, (b) => b.handle(Cmd, () => void seen.push('second')));
      await h.quiet(500);
      assert.deepEqual(seen, ['first#1', 'first:done'], 'acked: not redelivered');
    }),
  );

  it(
    'gives redelivered handler output the same ids, so the downstream handles it once',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('orders.place'), numbered);
      const Placed = defineEvent(h.type('orders.placed'), numbered);
      const q = h.queue('orders');
      const downstreamIds: string[] = [];
      let downstreamRuns = 0;
      await h.bus(
        h.queue('downstream'),
        (b) =>
          b.on(Placed, (_d, ctx) => {
            downstreamRuns++;
            downstreamIds.push(ctx.id);
          }),
        { middleware: [inbox({ store: memoryInboxStore(h.clock) })] },
      );
      let runs = 0;
      const handle = async (n: number, publish: (n: number) => Promise<void>) => {
        runs++;
        await publish(n);
      };
      const crashing = await h.bus(
        q,
        (b) => b.handle(Cmd, (d, ctx) => handle(d.n, (n) => ctx.publish(Placed, { n }))),
        { leaseMs, transport: crashBeforeAck(await h.connect()) },
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 1 });
      await h.eventually(() => downstreamRuns === 1, 'the output stored before the lost ack');
      await crashing.kill();
      await h.bus(q, (b) => b.handle(Cmd, (d, ctx) => handle(d.n, (n) => ctx.publish(Placed, { n }))), {
        leaseMs,
      });
      await h.eventually(() => runs === 2, 'the redelivery after the crash', { within: 3 * leaseMs });
      await h.quiet(2 * leaseMs);
      assert.equal(downstreamRuns, 1, `downstream handled ${downstreamRuns} times (ids ${downstreamIds})`);
    }),
  );

  it(
    'acks a redelivered, already handled message without running the handler again (inbox)',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('inbox.do'), numbered);
      const q = h.queue('inbox');
      const runs: number[] = [];
      const store = memoryInboxStore(h.clock);
      const bus = await h.bus(q, (b) => b.handle(Cmd, (d) => void runs.push(d.n)), {
        middleware: [inbox({ store })],
      });
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      const first = await producer.send(Cmd, { n: 1 });
      await h.eventually(() => runs.length === 1, 'the first handling');
      await producer.send(Cmd, { n: 2 }, { id: first.id });
      await producer.send(Cmd, { n: 3 });
      await h.eventually(() => runs.length === 2, 'the next distinct message');
      await h.quiet(200);
      assert.deepEqual(runs, [1, 3], 'the redelivered id was acked without a run');
      const stats = await bus.stats(q);
      assert.equal(
        stats.depth + stats.inFlight + stats.scheduled + stats.deadLettered,
        0,
        'and left the queue',
      );
    }),
  );

  it(
    'keeps published messages across a restart of every process',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithoutDurability(t)) return;
      const Cmd = defineCommand(h.type('durable.do'), numbered);
      const q = h.queue('durable');
      await h.declare(q);
      const producerTransport = await h.connect();
      const producer = await h.bus(h.queue('producer'), undefined, {
        routes: { [Cmd.type]: q },
        transport: producerTransport,
      });
      for (let n = 1; n <= 3; n++) await producer.send(Cmd, { n });
      await producer.stop();
      await producerTransport.close();
      await (await h.raw()).close();
      const got: number[] = [];
      await h.bus(q, (b) => b.handle(Cmd, (d) => void got.push(d.n)), { concurrency: 1 });
      await h.eventually(() => got.length === 3, 'the three messages after the restart');
      assert.deepEqual(got, [1, 2, 3]);
    }),
  );
}
