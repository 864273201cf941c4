/**
 * The `headers` column (rows.ts): what a row stores for an envelope's headers must read back as
 * exactly those headers, in every form: pairs (schema 6), JSON after a flag (schema 3, for headers the
 * pairs cannot hold) and plain JSON (rows written by hand). Unreadable text reads as no headers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Envelope } from '@courier/core';
import fc from 'fast-check';
import { parseHeaders, storedHeaders } from '../src/rows.js';

const ID = '01a21d75-fe12-7000-8504-8c493abd32b0';
const TYPE = 'orders.placed';

/** A Courier binary-mode envelope's headers plus `extra`. */
function envelopeWith(extra: Record<string, string>, correlationId = ID): Envelope {
  return {
    id: ID,
    type: TYPE,
    headers: {
      'ce-specversion': '1.0',
      'ce-id': ID,
      'ce-type': TYPE,
      'ce-source': 'orders',
      'ce-time': '2026-11-27T14:43:21.746Z',
      'content-type': 'application/json',
      'ce-correlationid': correlationId,
      ...extra,
    },
    body: new Uint8Array(0),
    bodyText: '{}',
  };
}

const roundTrip = (envelope: Envelope) => parseHeaders(storedHeaders(envelope), envelope.id, envelope.type);

test("Courier's attributes and user headers are stored as pairs, a third shorter than JSON", () => {
  const envelope = envelopeWith({
    'ce-causationid': 'c-1',
    'ce-traceparent': '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    'x-tenant': 'acme',
    'x-empty': '',
  });
  const stored = storedHeaders(envelope);
  assert.equal(stored[0], 'D');
  assert.ok(
    stored.length < JSON.stringify(envelope.headers).length / 2,
    'stored.length < JSON.stringify(envelope.headers).length / 2',
  );
  assert.deepEqual(roundTrip(envelope), envelope.headers);
  // Another correlation id is kept as a header of its own.
  const other = envelopeWith({}, 'corr-9');
  assert.equal(storedHeaders(other)[0], 'd');
  assert.deepEqual(roundTrip(other), other.headers);
});

test('headers the pairs cannot hold are stored as JSON and read back the same', () => {
  const awkward: Record<string, string>[] = [
    { 'x-odd': 'a\u001fb' },
    { '\u0001x': 'v' },
    { 'x\u001fy': 'v' },
  ];
  for (const extra of awkward) {
    const envelope = envelopeWith(extra);
    assert.equal(storedHeaders(envelope)[0], 'C');
    assert.deepEqual(roundTrip(envelope), envelope.headers);
  }
  // Not a Courier envelope (no ce-specversion): the whole object as JSON.
  const foreign: Envelope = { id: 'x', type: 't', headers: { a: 'b' }, body: new Uint8Array(0) };
  assert.equal(storedHeaders(foreign), '{"a":"b"}');
  assert.deepEqual(roundTrip(foreign), { a: 'b' });
});

test('any headers read back exactly as stored (property)', () => {
  const name = fc.oneof(
    fc.constantFrom('ce-causationid', 'ce-partitionkey', 'ce-dedupid', 'ce-replyto', 'x-a', 'x-b'),
    fc.string({ minLength: 1, maxLength: 8 }),
  );
  fc.assert(
    fc.property(fc.dictionary(name, fc.string({ maxLength: 12 })), fc.boolean(), (extra, self) => {
      const envelope = envelopeWith(extra, self ? ID : 'corr-1');
      // Later keys of `extra` may replace Courier's own: compare with what the envelope holds.
      if (envelope.headers['ce-id'] !== ID || envelope.headers['ce-type'] !== TYPE) return;
      assert.deepEqual(roundTrip(envelope), envelope.headers);
    }),
    { numRuns: 500 },
  );
});

test('text that cannot be read gives no headers, so the decode dead-letters the row', () => {
  for (const text of [
    'D\u0001orders',
    'D\u0019x\u001f',
    'dname-without-end',
    'c[1]',
    '{"a":1}',
    'not json',
  ]) {
    assert.deepEqual(parseHeaders(text, ID, TYPE), {}, JSON.stringify(text));
  }
});
