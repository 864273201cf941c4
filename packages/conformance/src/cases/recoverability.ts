/**
 * Recoverability (DESIGN.md §2.6) and handler output (§2.4): retries then the DLQ with reasons,
 * poison messages that do not stop the consumer, output held until success, causation.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { it } from 'node:test';
import { defineCommand, defineEvent, NonRetryableError } from '@courier/core';
import { z } from 'zod';
import { caseOptions, cloudEvent, type Harness, numbered, run } from '../helpers.js';
import type { CreateFixture } from '../types.js';

class InventoryError extends Error {
  override name = 'InventoryError';
}

/** Registers the conformance cases of this area; `runTransportSuite` calls it. */
export function recoverabilityCases(create: CreateFixture): void {
  it(
    'dead-letters after maxAttempts with reason, error, attempts and queue',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('stock.reserve'), numbered);
      const q = h.queue('stock');
      const attempts: number[] = [];
      const bus = await h.bus(q, (b) =>
        b.handle(Cmd, (_d, ctx) => {
          attempts.push(ctx.attempt);
          throw new InventoryError('out of widgets');
        }),
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      const sent = await producer.send(Cmd, { n: 1 });
      const letter = await h.deadLettered(bus, q, sent.id);
      await h.quiet(500);
      assert.deepEqual(attempts, [1, 2, 3], 'maxAttempts 3: three runs, no more');
      assert.equal(letter.info.reason, 'max-attempts');
      assert.equal(letter.info.errorName, 'InventoryError');
      assert.match(letter.info.errorMessage ?? '', /out of widgets/);
      assert.equal(letter.info.attempts, 3);
      assert.equal(letter.info.queue, q);
      assert.equal(letter.headers['courier-dlq-reason'], 'max-attempts');
      assert.equal(letter.headers['courier-dlq-error-name'], 'InventoryError');
      assert.match(letter.headers['courier-dlq-error-message'] ?? '', /out of widgets/);
      assert.equal(letter.headers['courier-dlq-attempts'], '3');
      assert.equal(letter.headers['courier-dlq-queue'], q);
      assert.equal(letter.envelope.type, Cmd.type);
      assert.ok(letter.info.failedAt >= (letter.info.firstFailedAt ?? 0), 'failure times in order');
      const stats = await bus.stats(q);
      assert.equal(stats.depth + stats.inFlight + stats.scheduled, 0, 'the message left the queue');
    }),
  );

  it(
    'dead-letters a NonRetryableError at once with reason rejected',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('payments.charge'), numbered);
      const q = h.queue('payments');
      let runs = 0;
      const bus = await h.bus(q, (b) =>
        b.handle(Cmd, () => {
          runs++;
          throw new NonRetryableError('card number is malformed');
        }),
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      const sent = await producer.send(Cmd, { n: 1 });
      const letter = await h.deadLettered(bus, q, sent.id);
      await h.quiet(500);
      assert.equal(runs, 1, 'no retries');
      assert.equal(letter.info.reason, 'rejected');
      assert.equal(letter.info.attempts, 1);
      assert.match(letter.info.errorMessage ?? '', /card number is malformed/);
    }),
  );

  it(
    'dead-letters at once on ctx.deadLetter(reason)',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('fraud.check'), numbered);
      const q = h.queue('fraud');
      let runs = 0;
      const bus = await h.bus(q, (b) =>
        b.handle(Cmd, (_d, ctx) => {
          runs++;
          ctx.deadLetter('suspected-fraud', 'velocity limit exceeded');
        }),
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      const sent = await producer.send(Cmd, { n: 1 });
      const letter = await h.deadLettered(bus, q, sent.id);
      await h.quiet(500);
      assert.equal(runs, 1);
      assert.equal(letter.info.reason, 'suspected-fraud');
      assert.equal(letter.headers['courier-dlq-reason'], 'suspected-fraud');
      assert.match(letter.info.errorMessage ?? '', /velocity limit exceeded/);
    }),
  );

  it(
    'dead-letters an undecodable body (reason decode) and keeps consuming',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('decode.me'), numbered);
      const q = h.queue('decode');
      const got: number[] = [];
      const bus = await h.bus(q, (b) => b.handle(Cmd, (d) => void got.push(d.n)));
      const raw = await h.raw();
      const id = randomUUID();
      await raw.publish([
        {
          envelope: { id, type: Cmd.type, headers: {}, body: new TextEncoder().encode('not json') },
          to: { kind: 'queue', queue: q },
        },
      ]);
      const letter = await h.deadLettered(bus, q, id);
      assert.equal(letter.info.reason, 'decode');
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 2 });
      await h.eventually(() => got.length === 1, 'the next good message');
      assert.deepEqual(got, [2]);
    }),
  );

  it(
    'dead-letters data that fails the schema (reason validation) and keeps consuming',
    caseOptions,
    run(create, async (h) => {
      const Strict = defineEvent(h.type('reading.taken'), numbered);
      const Loose = defineEvent(h.type('reading.taken'), z.object({ n: z.unknown() }));
      const q = h.queue('strict');
      const got: number[] = [];
      let runs = 0;
      const bus = await h.bus(q, (b) =>
        b.on(Strict, (d) => {
          runs++;
          got.push(d.n);
        }),
      );
      const producer = await h.bus(h.queue('producer'));
      const bad = await producer.publish(Loose, { n: 'forty-two' });
      const letter = await h.deadLettered(bus, q, bad.id);
      assert.equal(letter.info.reason, 'validation');
      assert.match(letter.info.errorMessage ?? '', /\bn\b/, 'the error names the path at fault');
      await producer.publish(Strict, { n: 42 });
      await h.eventually(() => got.length === 1, 'the next good message');
      assert.equal(runs, 1, 'the handler never saw the invalid data');
      assert.deepEqual(got, [42]);
    }),
  );

  it(
    'dead-letters a message of a type no handler knows and keeps consuming',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('known.do'), numbered);
      const q = h.queue('known');
      const got: number[] = [];
      const bus = await h.bus(q, (b) => b.handle(Cmd, (d) => void got.push(d.n)));
      const raw = await h.raw();
      const stray = cloudEvent({ type: h.type('unknown.thing'), data: { n: 1 } });
      await raw.publish([{ envelope: stray, to: { kind: 'queue', queue: q } }]);
      const letter = await h.deadLettered(bus, q, stray.id);
      assert.ok(letter.info.reason.length > 0, 'letter.info.reason.length > 0');
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 2 });
      await h.eventually(() => got.length === 1, 'the next good message');
    }),
  );

  it(
    'discards what a failing handler published',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('orders.confirm'), numbered);
      const Confirmed = defineEvent(h.type('orders.confirmed'), numbered);
      const q = h.queue('orders');
      const downstream: number[] = [];
      await h.bus(h.queue('downstream'), (b) => b.on(Confirmed, (d) => void downstream.push(d.n)));
      let runs = 0;
      await h.bus(q, (b) =>
        b.handle(Cmd, async (_d, ctx) => {
          runs++;
          await ctx.publish(Confirmed, { n: ctx.attempt });
          if (ctx.attempt === 1) throw new Error('failed after publishing');
        }),
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      await producer.send(Cmd, { n: 1 });
      await h.eventually(() => downstream.length >= 1, 'the successful attempt’s output');
      await h.quiet(500);
      assert.equal(runs, 2);
      assert.deepEqual(downstream, [2], 'only the output of the attempt that succeeded');
    }),
  );

  it(
    'keeps a message whose output cannot be stored: retried, not acked',
    caseOptions,
    run(create, (h) => outputCannotBeStored(h, 'awaited')),
  );

  it(
    'keeps a message whose un-awaited output cannot be stored: retried, not acked',
    caseOptions,
    run(create, (h) => outputCannotBeStored(h, 'not awaited')),
  );

  it(
    'stores output a synchronous handler started and did not await, with its ack',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('orders.pack'), numbered);
      const Packed = defineCommand(h.type('orders.packed'), numbered);
      const q = h.queue('packing');
      const downstream = h.queue('downstream');
      const packed: number[] = [];
      await h.bus(
        q,
        (b) =>
          b.handle(Cmd, (d, ctx) => {
            // Returns at once, before the send has even validated its data.
            void ctx.send(Packed, { n: d.n });
          }),
        { routes: { [Packed.type]: downstream } },
      );
      await h.bus(downstream, (b) =>
        b.handle(Packed, (d) => {
          packed.push(d.n);
        }),
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      for (let n = 1; n <= 10; n++) await producer.send(Cmd, { n });
      await h.eventually(() => packed.length === 10, 'all ten outputs delivered');
      assert.deepEqual(
        [...packed].sort((a, b) => a - b),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
    }),
  );

  it(
    "gives handler output the handled message's id as causation and its correlation id",
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('orders.place'), numbered);
      const Placed = defineEvent(h.type('orders.placed'), numbered);
      const q = h.queue('orders');
      const seen: { id: string; causationId: string | undefined; correlationId: string; source: string }[] =
        [];
      await h.bus(h.queue('downstream'), (b) =>
        b.on(Placed, (_d, ctx) => {
          seen.push({
            id: ctx.id,
            causationId: ctx.causationId,
            correlationId: ctx.correlationId,
            source: ctx.message.source,
          });
        }),
      );
      await h.bus(q, (b) =>
        b.handle(Cmd, async (d, ctx) => {
          await ctx.publish(Placed, { n: d.n });
          await ctx.publish(Placed, { n: d.n + 1 });
        }),
      );
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
      const sent = await producer.send(Cmd, { n: 1 }, { correlationId: 'checkout-77' });
      await h.eventually(() => seen.length === 2, 'both outputs');
      for (const out of seen) {
        assert.equal(out.causationId, sent.id);
        assert.equal(out.correlationId, 'checkout-77');
        assert.equal(out.source, q);
        assert.notEqual(out.id, sent.id);
      }
      assert.notEqual(seen[0]!.id, seen[1]!.id, 'each output has its own id');
    }),
  );
}

/**
 * A handler sends to a queue that does not exist, its send `awaited` or not: the message is not
 * acked, it is retried, and it ends in the dead letters once its attempts are used up.
 */
async function outputCannotBeStored(h: Harness, send: 'awaited' | 'not awaited'): Promise<void> {
  const Cmd = defineCommand(h.type('orders.ship'), numbered);
  const Notify = defineCommand(h.type('mail.send'), numbered);
  const q = h.queue('shipping');
  const attempts: number[] = [];
  const bus = await h.bus(
    q,
    (b) =>
      b.handle(Cmd, (d, ctx) => {
        attempts.push(ctx.attempt);
        const sent = ctx.send(Notify, { n: d.n });
        // Not awaited, the handler returns at once: the ack waits for this send, and fails with it.
        return send === 'awaited' ? sent : undefined;
      }),
    { routes: { [Notify.type]: h.queue('nowhere') } },
  );
  const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: q } });
  const sent = await producer.send(Cmd, { n: 1 });
  await h.eventually(() => attempts.includes(2), 'a second attempt');
  const letter = await h.deadLettered(bus, q, sent.id);
  assert.equal(letter.info.reason, 'max-attempts');
  assert.match(`${letter.info.errorName} ${letter.info.errorMessage}`, /NoRoute|nowhere|route/i);
}
