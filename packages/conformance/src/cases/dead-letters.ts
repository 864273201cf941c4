/** The dead-letter queue (DESIGN.md §2.7): list with paging and filters, replay, purge. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { defineEvent, NonRetryableError } from '@courier/core';
import { caseOptions, numbered, run } from '../helpers.js';
import type { CreateFixture } from '../types.js';

/** Registers the conformance cases of this area; `runTransportSuite` calls it. */
export function deadLetterCases(create: CreateFixture): void {
  it(
    'lists dead letters in pages and filters them by type and reason',
    caseOptions,
    run(create, async (h) => {
      const A = defineEvent(h.type('kind.a'), numbered);
      const B = defineEvent(h.type('kind.b'), numbered);
      const q = h.queue('dlq-list');
      const fail = (n: number, mode: string | undefined, deadLetter: (reason: string) => never) => {
        if (mode === 'custom') deadLetter('custom-reason');
        throw new NonRetryableError(`no ${n}`);
      };
      const bus = await h.bus(q, (b) => {
        b.on(A, (d, ctx) => fail(d.n, d.mode, (r) => ctx.deadLetter(r)));
        b.on(B, (d, ctx) => fail(d.n, d.mode, (r) => ctx.deadLetter(r)));
      });
      const producer = await h.bus(h.queue('producer'));
      const ids = new Set<string>();
      for (let n = 0; n < 5; n++) ids.add((await producer.publish(A, { n })).id);
      for (let n = 5; n < 7; n++) ids.add((await producer.publish(B, { n })).id);
      ids.add((await producer.publish(A, { n: 7, mode: 'custom' })).id);
      await h.eventually(async () => (await h.deadLetters(bus, q)).length === 8, 'eight dead letters');

      const paged: string[] = [];
      const sizes: number[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 10; page++) {
        const result = await bus.deadLetters.list(q, { limit: 3, ...(cursor ? { cursor } : {}) });
        sizes.push(result.items.length);
        paged.push(...result.items.map((l) => l.envelope.id));
        cursor = result.nextCursor;
        if (!cursor) break;
      }
      assert.deepEqual(sizes, [3, 3, 2], 'pages of three, the last without a cursor');
      assert.equal(new Set(paged).size, 8, 'no letter twice across pages');
      assert.deepEqual(new Set(paged), ids);

      const onlyB = await h.deadLetters(bus, q, { type: B.type });
      assert.deepEqual(
        onlyB.map((l) => l.envelope.type),
        [B.type, B.type],
      );
      const custom = await h.deadLetters(bus, q, { reason: 'custom-reason' });
      assert.equal(custom.length, 1);
      assert.equal(custom[0]!.info.reason, 'custom-reason');
      const rejectedA = await h.deadLetters(bus, q, { type: A.type, reason: 'rejected' });
      assert.equal(rejectedA.length, 5);
      const stats = await bus.stats(q);
      assert.equal(stats.deadLettered, 8);
    }),
  );

  it(
    'replays to the original queue only, same id, attempts from 1',
    caseOptions,
    run(create, async (h) => {
      const Placed = defineEvent(h.type('orders.placed'), numbered);
      const failing = h.queue('failing');
      const other = h.queue('other');
      let broken = true;
      const failingSeen: { id: string; attempt: number }[] = [];
      const otherSeen: string[] = [];
      const bus = await h.bus(failing, (b) =>
        b.on(Placed, (_d, ctx) => {
          failingSeen.push({ id: ctx.id, attempt: ctx.attempt });
          if (broken) throw new Error('bug in the handler');
        }),
      );
      await h.bus(other, (b) => b.on(Placed, (_d, ctx) => void otherSeen.push(ctx.id)));
      const producer = await h.bus(h.queue('producer'));
      const sent = await producer.publish(Placed, { n: 1 });
      await h.deadLettered(bus, failing, sent.id);
      assert.deepEqual(otherSeen, [sent.id]);
      broken = false;
      failingSeen.length = 0;
      assert.equal(await bus.deadLetters.replay(failing), 1);
      await h.eventually(() => failingSeen.length === 1, 'the replayed message');
      await h.quiet(500);
      assert.deepEqual(failingSeen, [{ id: sent.id, attempt: 1 }]);
      assert.deepEqual(otherSeen, [sent.id], 'the other subscriber got no second copy');
      assert.equal((await h.deadLetters(bus, failing)).length, 0, 'replayed letters leave the DLQ');
    }),
  );

  it(
    'replays only the letters the filter selects',
    caseOptions,
    run(create, async (h) => {
      const A = defineEvent(h.type('kind.a'), numbered);
      const B = defineEvent(h.type('kind.b'), numbered);
      const q = h.queue('dlq-filter');
      let broken = true;
      const handled: string[] = [];
      const handler = (label: string) => () => {
        if (broken) throw new NonRetryableError('broken');
        handled.push(label);
      };
      const bus = await h.bus(q, (b) => {
        b.on(A, handler('a'));
        b.on(B, handler('b'));
      });
      const producer = await h.bus(h.queue('producer'));
      await producer.publish(A, { n: 1 });
      await producer.publish(B, { n: 2 });
      await h.eventually(async () => (await h.deadLetters(bus, q)).length === 2, 'two dead letters');
      broken = false;
      assert.equal(await bus.deadLetters.replay(q, { type: B.type }), 1);
      await h.eventually(() => handled.length === 1, 'the replayed B');
      await h.quiet(300);
      assert.deepEqual(handled, ['b']);
      const left = await h.deadLetters(bus, q);
      assert.deepEqual(
        left.map((l) => l.envelope.type),
        [A.type],
      );
    }),
  );

  it(
    'replays past dedup: a dead-lettered message with a dedupId runs again',
    caseOptions,
    run(create, async (h) => {
      const Evt = defineEvent(h.type('dedup.replayed'), numbered);
      const q = h.queue('dlq-dedup');
      let broken = true;
      const handled: number[] = [];
      const bus = await h.bus(q, (b) =>
        b.on(Evt, (d) => {
          if (broken) throw new NonRetryableError('broken');
          handled.push(d.n);
        }),
      );
      const producer = await h.bus(h.queue('producer'));
      const sent = await producer.publish(Evt, { n: 1 }, { dedupId: 'once-only' });
      await h.deadLettered(bus, q, sent.id);
      broken = false;
      await bus.deadLetters.replay(q);
      await h.eventually(() => handled.length === 1, 'the replayed message despite its dedupId');
    }),
  );

  it(
    'purges dead letters by filter, then all',
    caseOptions,
    run(create, async (h) => {
      const A = defineEvent(h.type('kind.a'), numbered);
      const B = defineEvent(h.type('kind.b'), numbered);
      const q = h.queue('dlq-purge');
      const reject = () => {
        throw new NonRetryableError('nope');
      };
      const bus = await h.bus(q, (b) => {
        b.on(A, reject);
        b.on(B, reject);
      });
      const producer = await h.bus(h.queue('producer'));
      for (let n = 0; n < 3; n++) await producer.publish(A, { n });
      await producer.publish(B, { n: 9 });
      await h.eventually(async () => (await h.deadLetters(bus, q)).length === 4, 'four dead letters');
      assert.equal(await bus.deadLetters.purge(q, { type: A.type }), 3);
      const left = await h.deadLetters(bus, q);
      assert.deepEqual(
        left.map((l) => l.envelope.type),
        [B.type],
      );
      assert.equal(await bus.deadLetters.purge(q), 1);
      assert.equal((await h.deadLetters(bus, q)).length, 0);
      assert.equal((await bus.stats(q)).deadLettered, 0);
      await h.quiet(300);
      assert.equal((await bus.stats(q)).depth, 0, 'purged letters are not redelivered');
    }),
  );
}
