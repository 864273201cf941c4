/**
 * Single publishes cross to the writer thread packed (packed-publishes.ts): every value of every
 * publish must arrive as it was sent, nulls, bytes bodies and any text included, in the batch's
 * order among the other commands; and publishes sent one by one through a real writer thread must
 * be stored as sent.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PublishItem } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import { type Batch, type Command, Do } from '../src/batch.js';
import { packPublishes, unpackPublishes } from '../src/packed-publishes.js';
import { STORE_ONE, type StoredItem } from '../src/rows.js';
import { envelopeFields } from './items.js';

const TEXTS = ['plain', '', 'héllo ✓', 'emoji 🚚 and \u0000 nul', 'x'.repeat(300)];

/** A publish with every nullable value set or not, depending on `n`. */
function stored(n: number): StoredItem {
  const text = TEXTS[n % TEXTS.length]!;
  return [
    STORE_ONE,
    n % 3 === 0 ? null : `queue-${n}`,
    n % 4,
    `id-${n}-${text}`,
    `type.${n % 5}`,
    n % 2 === 0 ? null : `key-${text}`,
    n % 10,
    n % 6 === 1 ? 1_700_000_000_000 + n + 0.5 : null,
    n % 7 === 2 ? 1_800_000_000_000 + n : null,
    n % 5 === 3 ? `dedup-${text}` : null,
    n % 8 === 0 ? '' : `\u0001h${n}\u001f${text}\u001f`,
    n % 9 === 4 ? new Uint8Array([0xff, n & 0xff, 0]) : JSON.stringify({ n, text }),
  ];
}

/** Commands of every kind a batch carries, single publishes among them. */
function commands(count: number): Command[] {
  const out: Command[] = [];
  for (let n = 0; n < count; n++) {
    out.push(stored(n));
    if (n % 50 === 0) out.push([Do.ACK, n, 7, 1, null, null]);
    if (n % 97 === 0) out.push([Do.PUBLISH, [stored(n + 10_000)]]);
  }
  return out;
}

/** `batch` as the thread receives it: copied by structured clone, as postMessage copies it. */
function acrossThreads(batch: ReturnType<typeof packPublishes>): Batch {
  return unpackPublishes(structuredClone(batch));
}

test('packed publishes arrive as sent, in order among the other commands', () => {
  // More than the packer's first buffer holds, so it grows.
  const sent = commands(2_500);
  const batch: Batch = {
    acks: new Float64Array([1, 2, 3]),
    commands: sent,
    claims: [[1, 8, 9, 1000, false, true]],
  };
  const packed = packPublishes(batch);
  assert.notEqual(packed, batch, 'a batch with single publishes is packed');
  assert.equal(
    packed.commands.filter((c) => typeof c === 'number').length,
    sent.filter((c) => c[0] === STORE_ONE && typeof (c as StoredItem)[11] === 'string').length,
    'every single publish with a text body is packed, and no other command',
  );
  const arrived = acrossThreads(packed);
  assert.deepEqual(arrived.commands, sent);
  assert.deepEqual(arrived.acks, batch.acks);
  assert.deepEqual(arrived.claims, batch.claims);
  // The batch the transport handed over is not changed by packing.
  assert.equal(sent.filter((c) => typeof c === 'number').length, 0, 'the original commands are kept');
});

test('a batch without single publishes crosses as it is', () => {
  const batch: Batch = { commands: [[Do.ACK, 1, 2, 3, null, null]], claims: [] };
  assert.equal(packPublishes(batch), batch);
  assert.deepEqual(acrossThreads(batch), batch);
});

test('packing twice in a row reuses nothing the first batch still needs', () => {
  const first = packPublishes({ commands: commands(30), claims: [] });
  const second = packPublishes({ commands: commands(10).reverse(), claims: [] });
  assert.deepEqual(acrossThreads(first).commands, commands(30));
  assert.deepEqual(acrossThreads(second).commands, commands(10).reverse());
});

function publishItem(n: number): PublishItem {
  const text = TEXTS[n % TEXTS.length]!;
  const id = `id-${n}`;
  const type = `packed.t${n % 3}`;
  return {
    to: { kind: 'queue', queue: 'q' },
    envelope: {
      id,
      type,
      headers: { 'ce-id': id, 'ce-type': type, 'x-text': text },
      ...(n % 5 === 0
        ? { body: new Uint8Array([0xff, n, 0, 0xfe]) }
        : { body: new Uint8Array(0), bodyText: JSON.stringify({ n, text }) }),
      ...(n % 4 === 1 ? { key: `k-${n}-${text}` } : {}),
      ...(n % 6 === 2 ? { dedupId: `d-${n}-${text}` } : {}),
      ...(n % 3 === 0 ? { expiresAt: Date.now() + 3_600_000 + n } : {}),
      ...(n % 2 === 0 ? { priority: n % 10 } : {}),
    },
  };
}

test('publishes sent one by one through the writer thread are stored as sent', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-packed-publishes-'));
  const transport = sqlite({ path: join(dir, 'courier.db'), writerThread: 'always' });
  try {
    await transport.declare({ queues: [{ name: 'q' }], bindings: [] });
    const published = Array.from({ length: 60 }, (_, n) => publishItem(n));
    // One call per message, all in one turn: one batch of single publishes.
    await Promise.all(published.map((item) => transport.publish([item])));
    const got = new Map<string, ReturnType<typeof envelopeFields>>();
    let done!: () => void;
    const all = new Promise<void>((resolve) => {
      done = resolve;
    });
    const handle = await transport.consume('q', { prefetch: 100, leaseMs: 30_000 }, (delivery) => {
      got.set(delivery.envelope.id, envelopeFields(delivery.envelope));
      void delivery.ack().then(() => {
        if (got.size === published.length) done();
      });
    });
    await all;
    await handle.stop();
    for (const { envelope } of published)
      assert.deepEqual(got.get(envelope.id), envelopeFields(envelope), envelope.id);
  } finally {
    await transport.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
