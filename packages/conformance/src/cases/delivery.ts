/** At-least-once delivery, attempts, backpressure, stats and batches (DESIGN.md §2.2, §2.3, §2.14). */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Delivery, Envelope } from '@courier/core';
import { DelayedRetry, defineCommand, defineEvent, encodeMessage, NonRetryableError } from '@courier/core';
import { Concurrency, caseOptions, cloudEvent, gate, numbered, run } from '../helpers.js';
import type { CreateFixture } from '../types.js';

/** Registers the conformance cases of this area; `runTransportSuite` calls it. */
export function deliveryCases(create: CreateFixture): void {
  it(
    'delivers every envelope with its id, type, headers and body exactly as published, whatever form it is stored in',
    caseOptions,
    run(create, async (h) => {
      const q = h.queue('exact');
      await h.declare(q);
      const raw = await h.raw();
      const type = h.type('exact.sent');
      const courier = (correlationId: string | undefined, id: string) =>
        encodeMessage(
          {
            id,
            type,
            version: 2,
            data: { text: 'héllo', n: 1 },
            headers: { 'x-tenant': 't-1' },
            time: new Date(0).toISOString(),
            source: 'conformance-suite',
            correlationId: correlationId ?? id,
            causationId: correlationId === undefined ? undefined : 'parent',
            priority: 0,
          },
          'binary',
        );
      const published: Envelope[] = [
        // Courier's own binary envelopes (with bodyText): correlated to themselves, and to another message.
        courier(undefined, `${h.type('self')}-1`),
        courier('another-message', `${h.type('other')}-2`),
        courier(undefined, `${h.type('structured')}-3`),
        // Written by someone else: ce-id that is not the envelope's id, no content type, bytes that are not UTF-8.
        cloudEvent({ type, id: `${h.type('foreign')}-4`, headers: { 'ce-id': 'not-the-envelope-id' } }),
        {
          id: `${h.type('bytes')}-5`,
          type,
          headers: { 'x-raw': 'yes' },
          body: new Uint8Array([0, 255, 10, 200]),
        },
      ];
      published[2] = encodeMessage(
        {
          id: published[2]!.id,
          type,
          version: 1,
          data: [1, 2],
          headers: {},
          time: new Date(0).toISOString(),
          source: 'conformance-suite',
          correlationId: published[2]!.id,
          priority: 0,
        },
        'structured',
      );
      await raw.publish(published.map((envelope) => ({ envelope, to: { kind: 'queue', queue: q } })));
      const got = new Map<string, Delivery['envelope']>();
      const handle = await raw.consume(q, { prefetch: 10, leaseMs: 30_000 }, (delivery) => {
        got.set(delivery.envelope.id, delivery.envelope);
        void delivery.ack();
      });
      try {
        await h.eventually(() => got.size === published.length, 'every envelope delivered');
        for (const sent of published) {
          const back = got.get(sent.id)!;
          assert.equal(back.type, sent.type, sent.id);
          assert.deepEqual({ ...back.headers }, { ...sent.headers }, `headers of ${sent.id}`);
          assert.deepEqual([...back.body], [...sent.body], `body of ${sent.id}`);
          if (back.bodyText !== undefined)
            assert.equal(back.bodyText, Buffer.from(back.body).toString('utf8'), `bodyText of ${sent.id}`);
        }
      } finally {
        await handle.stop();
      }
    }),
  );

  it(
    'settles a delivery once: a second ack resolves false and removes no other message',
    caseOptions,
    run(create, async (h) => {
      const q = h.queue('settle-once');
      await h.declare(q);
      const raw = await h.raw();
      const type = h.type('settle.once');
      const to = { kind: 'queue', queue: q } as const;
      const envelope = (name: string, priority: number): Envelope => ({
        ...cloudEvent({ type, id: `${h.type(name)}-id`, data: name }),
        priority,
      });
      // Both stored before the consumer starts, so one claim may take them (in SQLite: two ranges).
      await raw.publish([
        { envelope: envelope('high', 5), to },
        { envelope: envelope('low', 0), to },
      ]);
      const held = new Map<string, Delivery>();
      const handle = await raw.consume(q, { prefetch: 10, leaseMs: 30_000 }, (delivery) => {
        held.set(delivery.envelope.id, delivery);
      });
      try {
        await h.eventually(() => held.size === 2, 'both delivered');
        const high = held.get(`${h.type('high')}-id`)!;
        const low = held.get(`${h.type('low')}-id`)!;
        assert.equal(await low.ack(), true);
        // A message stored after it (SQLite gives it the acked row's seq again), then, in one
        // turn, the other delivery's ack and a second ack of the first.
        await raw.publish([{ envelope: envelope('later', 0), to }]);
        const [highAcked, lowAgain] = await Promise.all([high.ack(), low.ack()]);
        assert.equal(highAcked, true);
        assert.equal(lowAgain, false, 'a second ack is refused');
        await h.eventually(() => held.size === 3, 'the later message is still delivered');
        assert.equal(await held.get(`${h.type('later')}-id`)!.ack(), true);
        await h.eventually(async () => {
          const stats = await raw.stats(q);
          return stats.depth + stats.inFlight === 0;
        }, 'nothing left');
      } finally {
        await handle.stop();
      }
    }),
  );

  it(
    'redelivers a failed message with attempts 1, 2, 3',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('flaky.do'), numbered);
      const q = h.queue('flaky');
      const attempts: number[] = [];
      let done = false;
      await h.bus(
        q,
        (b) =>
          b.handle(Cmd, (_d, ctx) => {
            attempts.push(ctx.attempt);
            if (ctx.attempt < 3) throw new Error(`transient failure ${ctx.attempt}`);
            done = true;
          }),
        { retry: { maxAttempts: 5, immediate: 1, initialDelayMs: 100, jitter: 0 } },
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 1 });
      await h.eventually(() => done, 'the third attempt to succeed');
      await h.quiet(500);
      assert.deepEqual(attempts, [1, 2, 3]);
    }),
  );

  it(
    'gives back the prefetch slot of every settle: after immediate retries the full prefetch is used again',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('slots.do'), numbered);
      const q = h.queue('slots');
      const release = gate();
      let inFlight = 0;
      let peak = 0;
      let firstDone = false;
      await h.bus(
        q,
        (b) =>
          b.handle(Cmd, async (d, ctx) => {
            if (d.n === 0) {
              if (ctx.attempt < 4) throw new Error(`transient failure ${ctx.attempt}`);
              firstDone = true;
              return;
            }
            inFlight++;
            peak = Math.max(peak, inFlight);
            await release.wait();
            inFlight--;
          }),
        { concurrency: 4, prefetch: 4, retry: { maxAttempts: 5, immediate: 4, jitter: 0 } },
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 0 });
      await h.eventually(() => firstDone, 'the first message, after three immediate retries');
      for (let n = 1; n <= 4; n++) await producer.send(Cmd, { n });
      try {
        await h.eventually(() => peak === 4, 'four handlers at once: every slot given back');
      } finally {
        release.open();
      }
    }),
  );

  it(
    'waits the backoff before a delayed retry, without blocking other messages',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('backoff.do'), numbered);
      const q = h.queue('backoff');
      const log: string[] = [];
      await h.bus(
        q,
        (b) =>
          b.handle(Cmd, (d, ctx) => {
            log.push(`${d.n}#${ctx.attempt}`);
            if (d.n === 1 && ctx.attempt === 1) throw new Error('fail once');
          }),
        { concurrency: 1, retry: { maxAttempts: 3, immediate: 0, initialDelayMs: 2_000, jitter: 0 } },
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 1 });
      await h.eventually(() => log.includes('1#1'), 'the first attempt');
      await producer.send(Cmd, { n: 2 });
      await h.eventually(() => log.includes('2#1'), 'the second message while the first backs off', {
        within: 1_500,
      });
      assert.ok(!log.includes('1#2'), 'no retry before the backoff');
      await h.quiet(500);
      assert.ok(!log.includes('1#2'), 'still no retry 0.5 s later (backoff 2 s)');
      await h.eventually(() => log.includes('1#2'), 'the retry after the backoff', { within: 5_000 });
    }),
  );

  it(
    'honours DelayedRetry: redelivered after its delay, attempt counted',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('later.do'), numbered);
      const q = h.queue('later');
      const attempts: { attempt: number; at: number }[] = [];
      await h.bus(q, (b) =>
        b.handle(Cmd, (_d, ctx) => {
          attempts.push({ attempt: ctx.attempt, at: h.clock.now() });
          if (ctx.attempt === 1) throw new DelayedRetry(3_000);
        }),
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 1 });
      await h.eventually(() => attempts.length === 1, 'the first attempt');
      await h.quiet(2_000);
      assert.equal(attempts.length, 1, 'not redelivered before its delay');
      await h.eventually(() => attempts.length === 2, 'the delayed retry');
      assert.equal(attempts[1]!.attempt, 2);
      assert.ok(attempts[1]!.at - attempts[0]!.at >= 3_000, 'redelivered no sooner than 3 s later');
    }),
  );

  it(
    'delivers a message published after the newest ones were acked while an older one is still held',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('behind.do'), numbered);
      const q = h.queue('behind');
      const held = gate();
      const handled: number[] = [];
      // Stored before the consumer starts, so it takes all three at once.
      await h.declare(q);
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      for (let n = 1; n <= 3; n++) await producer.send(Cmd, { n });
      const bus = await h.bus(
        q,
        (b) =>
          b.handle(Cmd, async (d) => {
            if (d.n === 1) await held.wait();
            handled.push(d.n);
          }),
        { concurrency: 3, prefetch: 3 },
      );
      try {
        await h.eventually(() => handled.includes(2) && handled.includes(3), 'the two newest handled');
        await h.eventually(async () => (await bus.stats(q)).inFlight === 1, 'their acks committed');
        await producer.send(Cmd, { n: 4 });
        await h.eventually(() => handled.includes(4), 'the next message, while the first is still held', {
          within: 5_000,
        });
      } finally {
        held.open();
      }
      await h.eventually(() => handled.includes(1), 'the held message, once let go');
    }),
  );

  it(
    'never holds more than prefetch deliveries',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('prefetch.do'), numbered);
      const q = h.queue('prefetch');
      const gates = new Map<number, ReturnType<typeof gate>>();
      const started: number[] = [];
      const done: number[] = [];
      const bus = await h.bus(
        q,
        (b) =>
          b.handle(Cmd, async (d) => {
            started.push(d.n);
            const g = gate();
            gates.set(d.n, g);
            await g.wait();
            done.push(d.n);
          }),
        { concurrency: 1, prefetch: 3 },
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      for (let n = 0; n < 10; n++) await producer.send(Cmd, { n });
      for (let round = 0; round < 10; round++) {
        await h.eventually(() => started.length === round + 1, `handler ${round + 1} to start`);
        await h.quiet(50);
        const stats = await bus.stats(q);
        assert.ok(
          stats.inFlight <= 3,
          `round ${round}: ${stats.inFlight} deliveries in flight, prefetch is 3`,
        );
        assert.ok(stats.inFlight >= 1, `round ${round}: the running handler's delivery is in flight`);
        assert.equal(stats.depth + stats.inFlight, 10 - round, `round ${round}: depth ${stats.depth}`);
        assert.equal(started.length, round + 1, 'concurrency 1: one handler at a time');
        gates.get(started[round]!)!.open();
      }
      await h.eventually(() => done.length === 10, 'all ten handled');
    }),
  );

  it(
    'never holds more than maxPrefetch deliveries, and back to prefetch while handlers are slow',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('window.do'), numbered);
      const q = h.queue('window');
      const fast = 300;
      const slow = 40;
      const gates = new Map<number, ReturnType<typeof gate>>();
      const started: number[] = [];
      let handled = 0;
      const bus = await h.bus(
        q,
        (b) =>
          b.handle(Cmd, async (d) => {
            if (d.n >= fast) {
              started.push(d.n);
              const g = gate();
              gates.set(d.n, g);
              await g.wait();
            }
            handled++;
          }),
        { concurrency: 1, prefetch: 2, maxPrefetch: 16 },
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      // Fast handlers: a transport may grow its window, never past maxPrefetch.
      let most = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          most = Math.max(most, (await bus.stats(q)).inFlight);
          await h.quiet(2);
        }
      })();
      await Promise.all(Array.from({ length: fast }, (_, n) => producer.send(Cmd, { n })));
      await h.eventually(() => handled === fast, `all ${fast} fast ones handled`);
      sampling = false;
      await sampler;
      assert.ok(most <= 16, `${most} deliveries in flight at once, maxPrefetch is 16`);
      // Handlers that do not settle: the window comes back to prefetch.
      for (let n = fast; n < fast + slow; n++) await producer.send(Cmd, { n });
      for (let round = 0; round < slow; round++) {
        await h.eventually(() => started.length === round + 1, `slow handler ${round + 1} to start`);
        await h.quiet(30);
        const stats = await bus.stats(q);
        assert.ok(stats.inFlight <= 16, `round ${round}: ${stats.inFlight} in flight, maxPrefetch is 16`);
        if (round >= slow - 8)
          assert.ok(stats.inFlight <= 2, `round ${round}: ${stats.inFlight} in flight, prefetch is 2`);
        gates.get(started[round]!)!.open();
      }
      await h.eventually(() => handled === fast + slow, 'all handled');
    }),
  );

  it(
    'never runs more than concurrency handlers at once, and does reach it',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('parallel.do'), numbered);
      const q = h.queue('parallel');
      const load = new Concurrency();
      const waiting: ReturnType<typeof gate>[] = [];
      let done = 0;
      await h.bus(
        q,
        (b) =>
          b.handle(Cmd, async () => {
            load.enter();
            const g = gate();
            waiting.push(g);
            await g.wait();
            load.leave();
            done++;
          }),
        { concurrency: 3 },
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      for (let n = 0; n < 10; n++) await producer.send(Cmd, { n });
      await h.eventually(() => load.running === 3, 'three handlers running');
      await h.quiet(200);
      assert.equal(load.max, 3);
      for (let step = 0; done < 10; step++) {
        assert.ok(step < 500, `only ${done} of 10 handled`);
        const next = waiting.find((g) => !g.isOpen);
        if (next) next.open();
        await h.advance(10);
        assert.ok(load.max <= 3, `at most 3 at once, saw ${load.max}`);
      }
      assert.equal(load.max, 3);
    }),
  );

  it(
    'reports depth, in-flight, scheduled and dead-lettered counts',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('stats.do'), numbered);
      const q = h.queue('stats');
      const release = gate();
      let handled = 0;
      const bus = await h.bus(
        q,
        (b) =>
          b.handle(Cmd, async (d) => {
            if (d.mode === 'reject') throw new NonRetryableError('rejected on purpose');
            await release.wait();
            handled++;
          }),
        { concurrency: 1, prefetch: 1 },
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      for (let n = 1; n <= 3; n++) await producer.send(Cmd, { n });
      await producer.send(Cmd, { n: 4 }, { delayMs: 60_000 });
      await h.quiet(100);
      let stats = await bus.stats(q);
      assert.equal(stats.queue, q);
      assert.equal(stats.inFlight, 1, 'one delivery held by the running handler');
      assert.equal(stats.depth + stats.scheduled, 3, `depth ${stats.depth} + scheduled ${stats.scheduled}`);
      assert.ok(stats.depth >= 2, 'the two undelayed messages are ready');
      release.open();
      await h.eventually(() => handled === 3, 'the three ready messages');
      await h.quiet(100);
      stats = await bus.stats(q);
      assert.deepEqual(
        {
          depth: stats.depth,
          inFlight: stats.inFlight,
          scheduled: stats.scheduled,
          deadLettered: stats.deadLettered,
        },
        { depth: 0, inFlight: 0, scheduled: 1, deadLettered: 0 },
      );
      await producer.send(Cmd, { n: 5, mode: 'reject' });
      await h.eventually(async () => (await bus.stats(q)).deadLettered === 1, 'one dead letter counted');
      stats = await bus.stats(q);
      assert.equal(stats.scheduled, 1, 'the delayed message still waits');
    }),
  );

  it(
    'hands messages to a batch handler in batches no larger than size',
    caseOptions,
    run(create, async (h) => {
      const Evt = defineEvent(h.type('metrics.recorded'), numbered);
      const q = h.queue('batch');
      await h.declare(q, [Evt.type]);
      const producer = await h.bus(h.queue('producer'));
      for (let n = 0; n < 7; n++) await producer.publish(Evt, { n });
      const batches: number[][] = [];
      await h.bus(q, (b) =>
        b.onBatch(Evt, (items) => void batches.push(items.map((i) => i.data.n)), { size: 3, maxWaitMs: 50 }),
      );
      await h.eventually(() => batches.flat().length >= 7, 'all seven in batches');
      await h.quiet(300);
      assert.ok(
        batches.every((b) => b.length >= 1 && b.length <= 3),
        `batch sizes ${batches.map((b) => b.length)}`,
      );
      assert.deepEqual(
        batches.flat().sort((a, b) => a - b),
        [0, 1, 2, 3, 4, 5, 6],
      );
      assert.ok(batches.length >= 3, 'seven messages need at least three batches of three');
    }),
  );

  it(
    'retries only the failed item of a batch and acks the others',
    caseOptions,
    run(create, async (h) => {
      const Evt = defineEvent(h.type('metrics.recorded'), numbered);
      const q = h.queue('batch-fail');
      await h.declare(q, [Evt.type]);
      const producer = await h.bus(h.queue('producer'));
      for (let n = 0; n < 4; n++) await producer.publish(Evt, { n });
      const seen: string[] = [];
      await h.bus(q, (b) =>
        b.onBatch(
          Evt,
          (items) => {
            for (const item of items) {
              seen.push(`${item.data.n}#${item.ctx.attempt}`);
              if (item.data.n === 2 && item.ctx.attempt === 1) item.fail(new Error('item 2 failed'));
            }
          },
          { size: 10, maxWaitMs: 50 },
        ),
      );
      await h.eventually(() => seen.includes('2#2'), 'the failed item to be retried');
      await h.quiet(1_000);
      assert.deepEqual([...seen].sort(), ['0#1', '1#1', '2#1', '2#2', '3#1']);
    }),
  );

  it(
    'waits maxWaitMs for a batch to fill, then hands over what it has',
    caseOptions,
    run(create, async (h) => {
      const Evt = defineEvent(h.type('metrics.recorded'), numbered);
      const q = h.queue('batch-wait');
      const batches: number[][] = [];
      await h.bus(q, (b) =>
        b.onBatch(Evt, (items) => void batches.push(items.map((i) => i.data.n)), {
          size: 100,
          maxWaitMs: 1_000,
        }),
      );
      const producer = await h.bus(h.queue('producer'));
      await producer.publish(Evt, { n: 1 });
      await producer.publish(Evt, { n: 2 });
      await h.quiet(100);
      assert.deepEqual(batches, [], 'a batch of 100 is not handed over after 100 ms of a 1 s wait');
      await h.eventually(() => batches.flat().length === 2, 'the partial batch after maxWaitMs', {
        within: 3_000,
      });
    }),
  );

  it(
    'does not dead-letter a message on a subscription that never failed it',
    caseOptions,
    run(create, async (h) => {
      const Evt = defineEvent(h.type('quiet.happened'), numbered);
      const q = h.queue('ok');
      let handled = 0;
      const bus = await h.bus(q, (b) => b.on(Evt, () => void handled++));
      const producer = await h.bus(h.queue('producer'));
      for (let n = 0; n < 5; n++) await producer.publish(Evt, { n });
      await h.eventually(() => handled === 5, 'five handled');
      await h.quiet(200);
      const stats = await bus.stats(q);
      assert.deepEqual(
        [stats.depth, stats.inFlight, stats.scheduled, stats.deadLettered],
        [0, 0, 0, 0],
        'acked messages leave the queue',
      );
    }),
  );
}
