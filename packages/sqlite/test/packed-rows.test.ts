/**
 * Claimed rows cross from the writer thread packed (rows.ts, `PackedRows`): every field a delivery
 * reads must come back as it was stored, nulls and bytes bodies included, and a claim with text that
 * is not ASCII crosses as arrays instead.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Delivery, PublishItem } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import { type ClaimedRow, PACKED, Packed, packRows, Row } from '../src/rows.js';
import { envelopeFields } from './items.js';

const future = Date.now() + 3_600_000;

/** Every optional field set on some of them; a bytes body on some. */
function items(text: (n: number) => string): PublishItem[] {
  return Array.from({ length: 40 }, (_, n) => {
    const id = `id-${n}-${'x'.repeat(n % 7)}`;
    const json = JSON.stringify({ n, text: text(n) });
    return {
      to: { kind: 'queue', queue: 'q' },
      envelope: {
        id,
        type: `packed.t${n % 3}`,
        headers: { 'ce-id': id, 'ce-type': `packed.t${n % 3}`, 'x-n': String(n) },
        ...(n % 5 === 0
          ? { body: new Uint8Array([0xff, n, 0, 0xfe]) }
          : { body: new Uint8Array(0), bodyText: json }),
        ...(n % 4 === 1 ? { key: `k-${n}` } : {}),
        ...(n % 6 === 2 ? { dedupId: `d-${n}` } : {}),
        ...(n % 3 === 0 ? { expiresAt: future + n } : {}),
        ...(n % 2 === 0 ? { priority: n % 10 } : {}),
      },
    };
  });
}

const FIELDS = [
  'id',
  'type',
  'headers',
  'body',
  'bodyText',
  'key',
  'priority',
  'expiresAt',
  'dedupId',
] as const;

/**
 * What a consumer reads of an envelope, as plain data, reading `FIELDS[first]` before the others:
 * each field must come out right whichever one a consumer happens to read first.
 */
function seen(delivery: Delivery, first = 0) {
  const e = delivery.envelope;
  void e[FIELDS[first % FIELDS.length]!];
  return envelopeFields(e);
}

async function roundTrip(published: PublishItem[]): Promise<Map<string, ReturnType<typeof envelopeFields>>> {
  const dir = mkdtempSync(join(tmpdir(), 'courier-packed-'));
  const transport = sqlite({ path: join(dir, 'courier.db'), writerThread: 'always' });
  try {
    await transport.declare({ queues: [{ name: 'q' }], bindings: [] });
    await transport.publish(published);
    const got = new Map<string, ReturnType<typeof envelopeFields>>();
    let done!: () => void;
    const all = new Promise<void>((resolve) => {
      done = resolve;
    });
    const handle = await transport.consume('q', { prefetch: 100, leaseMs: 30_000 }, (delivery) => {
      const value = seen(delivery, got.size);
      got.set(value.id, value);
      void delivery.ack().then(() => {
        if (got.size === published.length) done();
      });
    });
    await all;
    await handle.stop();
    return got;
  } finally {
    await transport.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function expected(item: PublishItem) {
  return envelopeFields(item.envelope);
}

for (const [name, text] of [
  ['ASCII text (packed)', (n: number) => `plain ${n}`],
  ['text that is not ASCII (arrays)', (n: number) => (n === 7 ? 'héllo ✓' : `plain ${n}`)],
] as const) {
  test(`every field of a claimed row comes back as stored through the writer thread: ${name}`, async () => {
    const published = items(text);
    const got = await roundTrip(published);
    for (const item of published)
      assert.deepEqual(got.get(item.envelope.id), expected(item), item.envelope.id);
  });
}

test('packRows lays out numbers and text as documented, and refuses text that is not ASCII', () => {
  const row = (seq: number, key: string | null, body: string | Uint8Array): ClaimedRow => [
    seq,
    1,
    `id${seq}`,
    'type',
    key,
    3,
    null,
    null,
    '{}',
    body,
  ];
  const packed = packRows([row(10, 'k', 'abc'), row(11, null, new Uint8Array([1, 2]))])!;
  const n = packed.numbers;
  assert.equal(n.length, 2 * PACKED);
  assert.equal(n[Packed.SEQ], 10);
  assert.equal(n[PACKED + Packed.SEQ], 11);
  assert.ok(Number.isNaN(n[Packed.EXPIRES_AT]!), 'Number.isNaN(n[Packed.EXPIRES_AT]!)');
  assert.equal(n[Packed.KEY], 1);
  assert.equal(n[PACKED + Packed.KEY], -1);
  assert.equal(n[PACKED + Packed.BODY], -1, 'the first bytes body');
  assert.equal(Buffer.from(packed.text).toString('latin1'), 'id10typek{}abcid11type{}');
  assert.equal(n[PACKED + Packed.START], 'id10typek{}abc'.length);
  assert.deepEqual(packed.binary, [new Uint8Array([1, 2])]);
  assert.equal(packRows([row(12, null, 'é')]), undefined);
  assert.equal(row(12, null, 'x')[Row.SEQ], 12);
});
