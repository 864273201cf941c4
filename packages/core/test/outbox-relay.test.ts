import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { memory } from '@courier/memory';
import { z } from 'zod';
import { defineCommand, defineEvent, defineRequest } from '../src/contracts.js';
import {
  ClosedError,
  ConfigurationError,
  InvalidNameError,
  NoRouteError,
  ValidationError,
} from '../src/errors.js';
import { createBus } from '../src/index.js';
import type { OutboxRelayEntry, OutboxSource } from '../src/outbox-relay.js';
import { outgoingMessage, startOutboxRelay } from '../src/outbox-relay.js';
import type { PublishItem, Transport } from '../src/transport.js';
import { decodeEnvelope } from '../src/wire.js';

const OrderPlaced = defineEvent('orders.placed', z.object({ orderId: z.string(), n: z.number() }));
const ChargeCard = defineCommand('billing.charge', z.object({ orderId: z.string() }));

/** An outbox in memory, async like a database driver; logs every call. */
class MemoryOutbox implements OutboxSource {
  entries: OutboxRelayEntry[] = [];
  log: string[] = [];
  private seq = 0;
  /** Makes the next `remove` calls throw while > 0. */
  failRemoves = 0;

  add(items: readonly PublishItem[]): void {
    for (const item of items) this.entries.push({ seq: ++this.seq, item });
  }

  async next(limit: number, afterSeq = 0): Promise<OutboxRelayEntry[]> {
    await Promise.resolve();
    return this.entries.filter((e) => e.seq > afterSeq).slice(0, limit);
  }

  async remove(seqs: readonly number[]): Promise<void> {
    await Promise.resolve();
    if (this.failRemoves > 0) {
      this.failRemoves--;
      throw new Error('database is locked');
    }
    this.log.push(`remove ${seqs.join(',')}`);
    this.entries = this.entries.filter((e) => !seqs.includes(e.seq));
  }
}

/** Wraps a transport's publish to log which entries (by message id) each call carried. */
function logged(transport: Transport, log: string[], idToSeq: Map<string, number>): Transport {
  const publish = transport.publish.bind(transport);
  return Object.assign(Object.create(transport) as Transport, {
    async publish(items: readonly PublishItem[]) {
      const seqs = items.map((i) => idToSeq.get(i.envelope.id)).join(',');
      try {
        await publish(items);
      } catch (error) {
        log.push(`failed ${seqs}`);
        throw error;
      }
      log.push(`publish ${seqs}`);
    },
  });
}

async function eventually(test: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function ids(outbox: MemoryOutbox): Map<string, number> {
  return new Map(outbox.entries.map((e) => [e.item.envelope.id, e.seq]));
}

describe('outgoingMessage', () => {
  it('validates, keeps the id, sets dedupId = id, and encodes like bus.publish', async () => {
    const item = await outgoingMessage(
      OrderPlaced,
      { orderId: 'o-1', n: 1 },
      { source: 'orders', key: 'o-1', headers: { tenant: 't1' } },
    );
    assert.deepEqual(item.to, { kind: 'topic' });
    assert.equal(item.envelope.dedupId, item.envelope.id);
    assert.equal(item.envelope.key, 'o-1');
    const message = decodeEnvelope(item.envelope);
    assert.equal(message.id, item.envelope.id);
    assert.equal(message.type, 'orders.placed');
    assert.equal(message.source, 'orders');
    assert.equal(message.correlationId, message.id);
    assert.deepEqual(message.data, { orderId: 'o-1', n: 1 });
    assert.deepEqual(message.headers, { tenant: 't1' });

    const given = await outgoingMessage(
      OrderPlaced,
      { orderId: 'o-2', n: 2 },
      { source: 'orders', id: 'fixed-id', dedupId: 'order-2' },
    );
    assert.equal(given.envelope.id, 'fixed-id');
    assert.equal(given.envelope.dedupId, 'order-2');
    const none = await outgoingMessage(
      OrderPlaced,
      { orderId: 'o-3', n: 3 },
      { source: 'orders', dedupId: false },
    );
    assert.equal(none.envelope.dedupId, undefined);
    assert.equal(decodeEnvelope(none.envelope).dedupId, undefined);
  });

  it('refuses invalid data, commands without a destination, and requests', async () => {
    await assert.rejects(
      // @ts-expect-error: n must be a number
      outgoingMessage(OrderPlaced, { orderId: 'o-1', n: 'x' }, { source: 'orders' }),
      ValidationError,
    );
    await assert.rejects(outgoingMessage(ChargeCard, { orderId: 'o-1' }, { source: 'orders' }), /needs to/);
    const command = await outgoingMessage(
      ChargeCard,
      { orderId: 'o-1' },
      { source: 'orders', to: 'billing' },
    );
    assert.deepEqual(command.to, { kind: 'queue', queue: 'billing' });
    const CheckStock = defineRequest('inventory.check', z.object({ sku: z.string() }), z.object({}));
    await assert.rejects(
      // @ts-expect-error: requests are not outbox messages
      outgoingMessage(CheckStock, { sku: 'a' }, { source: 'orders' }),
      ConfigurationError,
    );
    await assert.rejects(
      outgoingMessage(OrderPlaced, { orderId: 'o', n: 1 }, { source: 'bad name!' }),
      InvalidNameError,
    );
  });
});

describe('startOutboxRelay on the memory transport', () => {
  it('publishes in seq order, keeps ids, and removes each batch only after its publish resolved', async () => {
    const transport = memory();
    const handled: { id: string; key: string; n: number }[] = [];
    const bus = createBus({ endpoint: 'shipping', transport, concurrency: 4 }).on(
      OrderPlaced,
      (data, ctx) => {
        handled.push({ id: ctx.id, key: ctx.key!, n: data.n });
      },
    );
    await bus.start();
    const outbox = new MemoryOutbox();
    for (let n = 0; n < 250; n++) {
      const key = `order-${n % 3}`;
      outbox.add([await outgoingMessage(OrderPlaced, { orderId: key, n }, { source: 'orders', key })]);
    }
    const expectedIds = outbox.entries.map((e) => e.item.envelope.id);
    const relay = startOutboxRelay({
      source: outbox,
      transport: logged(transport, outbox.log, ids(outbox)),
      batchSize: 100,
    });
    try {
      assert.equal(await relay.flush(), 250);
      assert.equal(outbox.entries.length, 0);
      const seqs = (from: number, to: number) =>
        Array.from({ length: to - from + 1 }, (_, i) => from + i).join(',');
      assert.deepEqual(outbox.log, [
        `publish ${seqs(1, 100)}`,
        `remove ${seqs(1, 100)}`,
        `publish ${seqs(101, 200)}`,
        `remove ${seqs(101, 200)}`,
        `publish ${seqs(201, 250)}`,
        `remove ${seqs(201, 250)}`,
      ]);
      await eventually(() => handled.length === 250, '250 handled');
      assert.deepEqual(new Set(handled.map((h) => h.id)), new Set(expectedIds));
      for (const key of ['order-0', 'order-1', 'order-2']) {
        const ns = handled.filter((h) => h.key === key).map((h) => h.n);
        assert.deepEqual(
          ns,
          [...ns].sort((a, b) => a - b),
          `${key} handled in order`,
        );
      }

      // Idle: later entries are picked up by polling, without a flush.
      outbox.add([await outgoingMessage(OrderPlaced, { orderId: 'late', n: 999 }, { source: 'orders' })]);
      await eventually(() => handled.some((h) => h.n === 999), 'the late entry polled');
    } finally {
      await relay.stop();
      await bus.stop();
    }
  });

  it('retries a failed publish after a backoff without skipping ahead, then goes on in order', async () => {
    const transport = memory();
    const shipped: number[] = [];
    const bus = createBus({ endpoint: 'shipping', transport, concurrency: 1 }).on(OrderPlaced, (data) => {
      shipped.push(data.n);
    });
    await bus.start();
    const outbox = new MemoryOutbox();
    outbox.add([await outgoingMessage(OrderPlaced, { orderId: 'a', n: 1 }, { source: 'orders', key: 'a' })]);
    // 'billing' does not exist yet: NoRouteError.
    outbox.add([await outgoingMessage(ChargeCard, { orderId: 'a' }, { source: 'orders', to: 'billing' })]);
    outbox.add([await outgoingMessage(OrderPlaced, { orderId: 'a', n: 3 }, { source: 'orders', key: 'a' })]);
    const errors: unknown[] = [];
    const relay = startOutboxRelay({
      source: outbox,
      transport: logged(transport, outbox.log, ids(outbox)),
      batchSize: 1,
      retryDelayMs: 5,
      maxRetryDelayMs: 20,
      onError: (error) => errors.push(error),
    });
    try {
      await assert.rejects(relay.flush(), NoRouteError);
      await eventually(() => errors.length >= 4, 'several retries');
      assert.ok(
        errors.every((e) => e instanceof NoRouteError),
        'errors.every((e) => e instanceof NoRouteError)',
      );
      assert.deepEqual(
        outbox.entries.map((e) => e.seq),
        [2, 3],
      );
      assert.deepEqual(outbox.log.slice(0, 4), ['publish 1', 'remove 1', 'failed 2', 'failed 2']);
      assert.ok(!outbox.log.includes('publish 3'), 'entry 3 did not overtake entry 2');

      await transport.declare({ queues: [{ name: 'billing' }], bindings: [] });
      assert.equal(await relay.flush(), 2);
      assert.deepEqual(
        outbox.log.filter((l) => !l.startsWith('failed')),
        ['publish 1', 'remove 1', 'publish 2', 'remove 2', 'publish 3', 'remove 3'],
      );
      assert.equal((await transport.stats('billing')).depth, 1);
      await eventually(() => shipped.length === 2, 'both events handled');
      assert.deepEqual(shipped, [1, 3]);
    } finally {
      await relay.stop();
      await bus.stop();
    }
  });

  it('a failed remove is retried without publishing again; a crash before remove republishes the same ids, stored once', async () => {
    const transport = memory();
    const handled: string[] = [];
    const bus = createBus({ endpoint: 'shipping', transport }).on(OrderPlaced, (_data, ctx) => {
      handled.push(ctx.id);
    });
    await bus.start();
    const outbox = new MemoryOutbox();
    for (let n = 0; n < 5; n++)
      outbox.add([await outgoingMessage(OrderPlaced, { orderId: 'x', n }, { source: 'orders' })]);
    const seqOf = ids(outbox);
    const publishedIds: string[] = [];
    const spy = Object.assign(Object.create(transport) as Transport, {
      async publish(items: readonly PublishItem[]) {
        await transport.publish(items);
        publishedIds.push(...items.map((i) => i.envelope.id));
      },
    });

    // Remove fails twice: retried alone, the batch is published once.
    outbox.failRemoves = 2;
    const errors: unknown[] = [];
    const first = startOutboxRelay({
      source: outbox,
      transport: logged(spy, outbox.log, seqOf),
      retryDelayMs: 1,
      onError: (e) => errors.push(e),
    });
    await eventually(() => outbox.entries.length === 0, 'the outbox drained');
    await first.stop();
    assert.equal(errors.length, 2);
    assert.deepEqual(outbox.log, ['publish 1,2,3,4,5', 'remove 1,2,3,4,5']);

    // A "crash" between publish and remove: this relay's removes never succeed, and it stops.
    for (let n = 5; n < 8; n++)
      outbox.add([await outgoingMessage(OrderPlaced, { orderId: 'x', n }, { source: 'orders' })]);
    outbox.failRemoves = Number.POSITIVE_INFINITY;
    const crashing = startOutboxRelay({ source: outbox, transport: spy, retryDelayMs: 1, onError: () => {} });
    await eventually(() => publishedIds.length === 8, 'the second batch published');
    await crashing.stop();
    assert.equal(outbox.entries.length, 3, 'not removed');
    outbox.failRemoves = 0;
    const restarted = startOutboxRelay({ source: outbox, transport: spy });
    try {
      assert.equal(await restarted.flush(), 3);
      assert.equal(publishedIds.length, 11, 'the last three were published twice, with the same ids');
      assert.deepEqual(publishedIds.slice(8), publishedIds.slice(5, 8));
      await eventually(() => handled.length >= 8, 'all handled');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(handled.length, 8, 'dedup stored the republished copies once');
      assert.equal(new Set(handled).size, 8);
    } finally {
      await restarted.stop();
      await bus.stop();
    }
  });

  it('stop() finishes the batch in hand, stops polling, rejects pending flushes, and leaves the transport open', async () => {
    const transport = memory();
    await transport.declare({ queues: [{ name: 'shipping' }], bindings: [] });
    const outbox = new MemoryOutbox();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow = Object.assign(Object.create(transport) as Transport, {
      async publish(items: readonly PublishItem[]) {
        await gate;
        await transport.publish(items);
      },
    });
    outbox.add([
      await outgoingMessage(OrderPlaced, { orderId: 'a', n: 1 }, { source: 'orders', to: 'shipping' }),
    ]);
    const relay = startOutboxRelay({ source: outbox, transport: slow });
    const pending = relay.flush();
    await new Promise((r) => setTimeout(r, 20));
    const stopped = relay.stop();
    let stopDone = false;
    void stopped.then(() => {
      stopDone = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(stopDone, false, 'stop waits for the publish in hand');
    release();
    await stopped;
    await assert.rejects(pending, ClosedError);
    assert.equal(outbox.entries.length, 0, 'the published batch was removed');
    assert.equal((await transport.stats('shipping')).depth, 1);

    // Stopped: new entries stay put, flush refuses, stop is idempotent.
    outbox.add([
      await outgoingMessage(OrderPlaced, { orderId: 'b', n: 2 }, { source: 'orders', to: 'shipping' }),
    ]);
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(outbox.entries.length, 1);
    await assert.rejects(relay.flush(), ClosedError);
    await relay.stop();
    // The transport is still usable.
    await transport.publish([outbox.entries[0]!.item]);
    assert.equal((await transport.stats('shipping')).depth, 2);
    await transport.close();
  });

  it('an aborted signal stops it; a closed transport ends it; bad options are refused', async () => {
    const outbox = new MemoryOutbox();
    const controller = new AbortController();
    const relay = startOutboxRelay({ source: outbox, transport: memory(), signal: controller.signal });
    controller.abort();
    await relay.stop();
    await assert.rejects(relay.flush(), ClosedError);

    const closed = memory();
    await closed.close();
    const errors: unknown[] = [];
    const ended = startOutboxRelay({ source: outbox, transport: closed, onError: (e) => errors.push(e) });
    await ended.stop();
    assert.ok(errors[0] instanceof ClosedError, 'errors[0] instanceof ClosedError');

    assert.throws(
      () => startOutboxRelay({ source: outbox, transport: memory(), batchSize: 0 }),
      ConfigurationError,
    );
    assert.throws(
      () => startOutboxRelay({ source: {} as OutboxSource, transport: memory() }),
      ConfigurationError,
    );
  });
});
