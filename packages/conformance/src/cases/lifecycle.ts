/**
 * Lifecycle, limits, versions and clear errors (DESIGN.md §1 names, §2.12, §2.13, §2.15, §2.16).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  ClosedError,
  defineCommand,
  defineEvent,
  InvalidNameError,
  MessageTooLargeError,
  ValidationError,
} from '@courier/core';
import { z } from 'zod';
import { caseOptions, cloudEvent, numbered, run } from '../helpers.js';
import type { CreateFixture } from '../types.js';

const v1 = z.object({ name: z.string() });
const v2 = z.object({ firstName: z.string(), lastName: z.string() });
const v3 = z.object({ firstName: z.string(), lastName: z.string(), email: z.string() });
const splitName = (data: unknown) => {
  const [firstName = '', ...rest] = (data as { name: string }).name.split(' ');
  return { firstName, lastName: rest.join(' ') };
};

/** Registers the conformance cases of this area; `runTransportSuite` calls it. */
export function lifecycleCases(create: CreateFixture): void {
  it(
    'stops idempotently, and kill after stop is harmless',
    caseOptions,
    run(create, async (h) => {
      const Evt = defineEvent(h.type('life.happened'), numbered);
      const bus = await h.bus(h.queue('life'), (b) => b.on(Evt, () => {}));
      await h.whileAdvancing(Promise.all([bus.stop({ timeoutMs: 100 }), bus.stop({ timeoutMs: 100 })]));
      await h.whileAdvancing(bus.stop());
      await bus.kill();
    }),
  );

  it(
    'rejects publish and send after stop with ClosedError',
    caseOptions,
    run(create, async (h) => {
      const Evt = defineEvent(h.type('life.happened'), numbered);
      const Cmd = defineCommand(h.type('life.do'), numbered);
      const q = h.queue('target');
      await h.declare(q);
      const bus = await h.bus(h.queue('closing'), undefined, { routes: { [Cmd.type]: q } });
      await h.whileAdvancing(bus.stop());
      await assert.rejects(bus.publish(Evt, { n: 1 }), (error: unknown) => {
        assert.ok(error instanceof ClosedError, `expected ClosedError, got ${String(error)}`);
        assert.equal(error.code, 'COURIER_CLOSED');
        return true;
      });
      await assert.rejects(bus.send(Cmd, { n: 1 }), ClosedError);
    }),
  );

  it(
    'refuses an invalid endpoint name with an error naming it',
    caseOptions,
    run(create, async (h) => {
      await assert.rejects(
        async () => {
          const bus = await h.createBus('bad name!');
          await bus.start();
        },
        (error: unknown) => {
          assert.ok(error instanceof InvalidNameError, `expected InvalidNameError, got ${String(error)}`);
          assert.match(error.message, /bad name!/);
          return true;
        },
      );
    }),
  );

  it(
    'rejects a publish whose data fails the schema with ValidationError naming the path',
    caseOptions,
    run(create, async (h) => {
      const Order = defineEvent(
        h.type('orders.placed'),
        z.object({ orderId: z.string(), lines: z.array(z.object({ sku: z.string(), qty: z.number() })) }),
      );
      let handled = 0;
      await h.bus(h.queue('orders'), (b) => b.on(Order, () => void handled++));
      const producer = await h.bus(h.queue('producer'));
      const bad = {
        orderId: 'o-1',
        lines: [
          { sku: 'a', qty: 1 },
          { sku: 'b', qty: 'two' },
        ],
      };
      await assert.rejects(producer.publish(Order, bad as never), (error: unknown) => {
        assert.ok(error instanceof ValidationError, `expected ValidationError, got ${String(error)}`);
        assert.equal(error.code, 'COURIER_VALIDATION');
        assert.match(error.message, /lines\[1\]\.qty/);
        assert.ok(
          error.issues.some((i) => i.path === 'lines[1].qty'),
          "error.issues.some((i) => i.path === 'lines[1].qty')",
        );
        return true;
      });
      await h.quiet(300);
      assert.equal(handled, 0, 'nothing was published');
    }),
  );

  it(
    'rejects a publish over maxMessageBytes with MessageTooLargeError',
    caseOptions,
    run(create, async (h) => {
      const Blob = defineEvent(h.type('blob.stored'), z.object({ text: z.string() }));
      let handled = 0;
      await h.bus(h.queue('blobs'), (b) => b.on(Blob, () => void handled++));
      const producer = await h.bus(h.queue('producer'), undefined, { maxMessageBytes: 2_048 });
      await assert.rejects(producer.publish(Blob, { text: 'x'.repeat(4_000) }), (error: unknown) => {
        assert.ok(
          error instanceof MessageTooLargeError,
          `expected MessageTooLargeError, got ${String(error)}`,
        );
        assert.ok(error.sizeBytes > 4_000, 'error.sizeBytes > 4_000');
        assert.equal(error.maxBytes, 2_048);
        return true;
      });
      await producer.publish(Blob, { text: 'small' });
      await h.eventually(() => handled === 1, 'the small message');
      await h.quiet(200);
      assert.equal(handled, 1, 'the large one was not stored');
    }),
  );

  it(
    'dead-letters an oversized message at consume (reason too-large) and keeps consuming',
    caseOptions,
    run(create, async (h) => {
      const Blob = defineEvent(h.type('blob.stored'), z.object({ text: z.string() }));
      const q = h.queue('blobs');
      const got: string[] = [];
      const bus = await h.bus(q, (b) => b.on(Blob, (d) => void got.push(d.text)), { maxMessageBytes: 2_048 });
      const raw = await h.raw();
      const big = cloudEvent({ type: Blob.type, data: { text: 'x'.repeat(4_000) } });
      await raw.publish([{ envelope: big, to: { kind: 'queue', queue: q } }]);
      const letter = await h.deadLettered(bus, q, big.id);
      assert.equal(letter.info.reason, 'too-large');
      const producer = await h.bus(h.queue('producer'));
      await producer.publish(Blob, { text: 'small' });
      await h.eventually(() => got.length === 1, 'the next message');
      assert.deepEqual(got, ['small']);
    }),
  );

  it(
    'upcasts a message written with an older contract version',
    caseOptions,
    run(create, async (h) => {
      const type = h.type('customers.registered');
      const V1 = defineEvent(type, v1);
      const V2 = defineEvent(type, v2, { version: 2, upcasters: { 1: splitName } });
      const got: unknown[] = [];
      await h.bus(h.queue('crm'), (b) => b.on(V2, (d) => void got.push(d)));
      const oldProducer = await h.bus(h.queue('old-producer'));
      const newProducer = await h.bus(h.queue('new-producer'));
      await oldProducer.publish(V1, { name: 'Ada Lovelace' });
      await newProducer.publish(V2, { firstName: 'Grace', lastName: 'Hopper' });
      await h.eventually(() => got.length === 2, 'both versions handled');
      assert.deepEqual(got, [
        { firstName: 'Ada', lastName: 'Lovelace' },
        { firstName: 'Grace', lastName: 'Hopper' },
      ]);
    }),
  );

  it(
    'dead-letters a message of a newer version than the consumer knows (reason validation)',
    caseOptions,
    run(create, async (h) => {
      const type = h.type('customers.registered');
      const V2 = defineEvent(type, v2, { version: 2, upcasters: { 1: splitName } });
      const V3 = defineEvent(type, v3, {
        version: 3,
        upcasters: { 1: splitName, 2: (d) => ({ ...(d as object), email: '' }) },
      });
      const q = h.queue('crm');
      const got: unknown[] = [];
      const bus = await h.bus(q, (b) => b.on(V2, (d) => void got.push(d)));
      const producer = await h.bus(h.queue('producer'));
      const newer = await producer.publish(V3, { firstName: 'Ada', lastName: 'L', email: 'ada@example.org' });
      const letter = await h.deadLettered(bus, q, newer.id);
      assert.equal(letter.info.reason, 'validation');
      assert.match(letter.info.errorMessage ?? '', /version/i);
      await producer.publish(V2, { firstName: 'Grace', lastName: 'Hopper' });
      await h.eventually(() => got.length === 1, 'the next message the consumer knows');
      assert.deepEqual(got, [{ firstName: 'Grace', lastName: 'Hopper' }]);
    }),
  );

  it(
    'aborts the handler signal when the bus stops',
    caseOptions,
    run(create, async (h) => {
      const Evt = defineEvent(h.type('signal.happened'), numbered);
      let signal: AbortSignal | undefined;
      const bus = await h.bus(h.queue('signal'), (b) =>
        b.on(Evt, (_d, ctx) => {
          signal = ctx.signal;
          return new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
        }),
      );
      const producer = await h.bus(h.queue('producer'));
      await producer.publish(Evt, { n: 1 });
      await h.eventually(() => signal !== undefined, 'the handler to start');
      assert.equal(signal!.aborted, false);
      await h.whileAdvancing(bus.stop({ timeoutMs: 1_000 }));
      assert.equal(signal!.aborted, true);
    }),
  );
}
