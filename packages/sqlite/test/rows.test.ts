/**
 * Claimed rows cross from the writer thread packed (rows.ts, `pack`): one string, one typed array of
 * numbers, one of lengths, and the binary bodies. What comes out must be the rows that went in, nulls,
 * binary bodies and characters outside ASCII included, also after a real thread hop.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { type ClaimedRow, type Packed, pack, ROW_LAYOUT, unpack } from '../src/rows.js';

const rows: ClaimedRow[] = [
  [1, 1, 'id-1', 'orders.placed', null, 0, null, null, 'c{}', '{"n":1}'],
  [
    2,
    3,
    'id-2',
    'orders.placed',
    'customer-7',
    9,
    1_790_000_000_123,
    'dedup-2',
    '{"x-tenant":"ü"}',
    '{"s":"żółw 🐢"}',
  ],
  [5, 1, 'id-5', 'blob.type', null, 4, null, null, '{}', new Uint8Array([0, 255, 1])],
  [9, 2, 'id-9', 't', '', 0, 0, '', '', ''],
];

test('packed rows come back as they were', () => {
  assert.deepEqual(unpack<ClaimedRow>(ROW_LAYOUT, pack(ROW_LAYOUT, rows)), rows);
});

test('packed rows survive a thread boundary', () => {
  const { port1, port2 } = new MessageChannel();
  try {
    port1.postMessage(pack(ROW_LAYOUT, rows));
    const received = receiveMessageOnPort(port2)!.message as Packed;
    assert.deepEqual(unpack<ClaimedRow>(ROW_LAYOUT, received), rows);
  } finally {
    port1.close();
  }
});

test('no rows pack to nothing', () => {
  assert.deepEqual(unpack<ClaimedRow>(ROW_LAYOUT, pack(ROW_LAYOUT, [])), []);
});
