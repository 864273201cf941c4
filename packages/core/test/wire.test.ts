import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DecodeError, ValidationError } from '../src/errors.js';
import type { Message } from '../src/message.js';
import type { Envelope } from '../src/transport.js';
import {
  type ContentMode,
  decodeEnvelope,
  encodeMessage,
  envelopeOver,
  envelopeSizeBytes,
} from '../src/wire.js';

const modes: readonly ContentMode[] = ['binary', 'structured'];
const utf8 = new TextEncoder();

const minimal: Message = {
  id: '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b',
  type: 'orders.placed',
  version: 1,
  data: { orderId: 'o-1', total: 42.5 },
  headers: {},
  time: '2024-06-01T12:00:00.000Z',
  source: 'orders-service',
  correlationId: '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b',
  priority: 0,
};

const full: Message = {
  ...minimal,
  version: 3,
  data: { items: [1, 2, 3], nested: { ok: true, none: null }, text: 'héllo wörld 日本 🚀' },
  headers: { tenant: 'acme', 'x-request-id': 'r-9', emoji: '✓' },
  correlationId: 'corr-1',
  causationId: 'cause-1',
  key: 'customer-7',
  priority: 7,
  deliverAt: 1_717_243_200_000,
  expiresAt: 1_717_246_800_000,
  replyTo: 'replies.abc',
  traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  dedupId: 'dedup-1',
};

/** A third-party binary event; a header set to `undefined` is left out. */
function binary(headers: Record<string, string | undefined>, body: string | Uint8Array = '{}'): Envelope {
  const all: Record<string, string | undefined> = {
    'ce-specversion': '1.0',
    'ce-id': 'id-1',
    'ce-type': 'orders.placed',
    'ce-source': 'src',
    'content-type': 'application/json',
    ...headers,
  };
  for (const name of Object.keys(all)) if (all[name] === undefined) delete all[name];
  return {
    id: 'x',
    type: 't',
    headers: all as Record<string, string>,
    body: typeof body === 'string' ? utf8.encode(body) : body,
  };
}

function structured(event: unknown): Envelope {
  return {
    id: 'x',
    type: 't',
    headers: { 'content-type': 'application/cloudevents+json' },
    body: utf8.encode(typeof event === 'string' ? event : JSON.stringify(event)),
  };
}

const baseEvent = { specversion: '1.0', id: 'id-1', type: 'orders.placed', source: 'src', data: {} };

function assertDecodeError(envelope: Envelope, pattern: RegExp, options?: { maxBytes?: number }): void {
  assert.throws(
    () => decodeEnvelope(envelope, options),
    (error: unknown) => {
      assert.ok(error instanceof DecodeError, `expected DecodeError, got ${String(error)}`);
      assert.equal(error.code, 'COURIER_DECODE');
      assert.match(error.message, pattern);
      return true;
    },
  );
}

describe('wire: round-trips', () => {
  for (const mode of modes) {
    it(`${mode}: all fields set`, () => {
      assert.deepEqual(decodeEnvelope(encodeMessage(full, mode)), full);
    });

    it(`${mode}: only required fields`, () => {
      assert.deepEqual(decodeEnvelope(encodeMessage(minimal, mode)), minimal);
    });

    it(`${mode}: unicode data and headers`, () => {
      const message = {
        ...minimal,
        data: ['ü', '中文', '🎉', '\u0000', 'a"b\\c'],
        headers: { lang: 'español ñ' },
      };
      assert.deepEqual(decodeEnvelope(encodeMessage(message, mode)), message);
    });

    it(`${mode}: scalar and null data`, () => {
      for (const data of [null, 0, -1.5, 'text', true, []]) {
        const message = { ...minimal, data };
        assert.deepEqual(decodeEnvelope(encodeMessage(message, mode)), message);
      }
    });

    it(`${mode}: undefined data is encoded as null`, () => {
      const decoded = decodeEnvelope(encodeMessage({ ...minimal, data: undefined }, mode));
      assert.equal(decoded.data, null);
    });

    it(`${mode}: lifts routing fields onto the envelope`, () => {
      const envelope = encodeMessage(full, mode);
      assert.equal(envelope.id, full.id);
      assert.equal(envelope.type, full.type);
      assert.equal(envelope.key, 'customer-7');
      assert.equal(envelope.priority, 7);
      assert.equal(envelope.deliverAt, full.deliverAt);
      assert.equal(envelope.expiresAt, full.expiresAt);
      assert.equal(envelope.dedupId, 'dedup-1');
      const bare = encodeMessage(minimal, mode);
      for (const field of ['key', 'priority', 'deliverAt', 'expiresAt', 'dedupId']) {
        assert.equal(bare[field as keyof typeof bare], undefined, `${field} should be unset`);
      }
    });

    it(`${mode}: user headers round-trip and stay separate from attributes`, () => {
      const decoded = decodeEnvelope(encodeMessage({ ...minimal, headers: { a: '1', 'x-b': '' } }, mode));
      assert.deepEqual(decoded.headers, { a: '1', 'x-b': '' });
    });
  }
});

describe('wire: binary mode is plain CloudEvents', () => {
  it('writes the spec headers and a JSON body', () => {
    const envelope = encodeMessage(full, 'binary');
    assert.deepEqual(envelope.headers, {
      'ce-specversion': '1.0',
      'ce-id': full.id,
      'ce-type': 'orders.placed',
      'ce-source': 'orders-service',
      'ce-time': '2024-06-01T12:00:00.000Z',
      'content-type': 'application/json',
      'ce-correlationid': 'corr-1',
      'ce-causationid': 'cause-1',
      'ce-partitionkey': 'customer-7',
      'ce-traceparent': full.traceparent,
      'ce-dataversion': '3',
      'ce-priority': '7',
      'ce-deliverat': '1717243200000',
      'ce-expiresat': '1717246800000',
      'ce-replyto': 'replies.abc',
      'ce-dedupid': 'dedup-1',
      tenant: 'acme',
      'x-request-id': 'r-9',
      emoji: '✓',
    });
    assert.deepEqual(JSON.parse(new TextDecoder().decode(envelope.body)), full.data);
  });

  it('omits unset extensions and defaults', () => {
    const headers = encodeMessage(minimal, 'binary').headers;
    assert.deepEqual(Object.keys(headers).sort(), [
      'ce-correlationid',
      'ce-id',
      'ce-source',
      'ce-specversion',
      'ce-time',
      'ce-type',
      'content-type',
    ]);
  });

  it('reads an event from a third party with only the required attributes', () => {
    const message = decodeEnvelope(binary({ 'x-custom': 'v' }, '{"n":1}'));
    assert.deepEqual(message, {
      id: 'id-1',
      type: 'orders.placed',
      version: 1,
      data: { n: 1 },
      headers: { 'x-custom': 'v' },
      time: '1970-01-01T00:00:00.000Z',
      source: 'src',
      correlationId: 'id-1',
      priority: 0,
    });
  });

  it('reads an empty body as no data and ignores unknown ce- attributes', () => {
    const message = decodeEnvelope(binary({ 'ce-subject': 'thing' }, ''));
    assert.equal(message.data, undefined);
    assert.deepEqual(message.headers, {});
  });

  it('accepts a Buffer body', () => {
    const message = decodeEnvelope(binary({}, Buffer.from('[1,2]')));
    assert.deepEqual(message.data, [1, 2]);
  });
});

describe('wire: structured mode', () => {
  it('writes one CloudEvents JSON object', () => {
    const envelope = encodeMessage(full, 'structured');
    assert.deepEqual(envelope.headers, { 'content-type': 'application/cloudevents+json' });
    assert.deepEqual(JSON.parse(new TextDecoder().decode(envelope.body)), {
      specversion: '1.0',
      id: full.id,
      type: 'orders.placed',
      source: 'orders-service',
      time: '2024-06-01T12:00:00.000Z',
      datacontenttype: 'application/json',
      correlationid: 'corr-1',
      causationid: 'cause-1',
      partitionkey: 'customer-7',
      traceparent: full.traceparent,
      dataversion: 3,
      priority: 7,
      deliverat: 1_717_243_200_000,
      expiresat: 1_717_246_800_000,
      replyto: 'replies.abc',
      dedupid: 'dedup-1',
      courierheaders: full.headers,
      data: full.data,
    });
  });

  it('detects structured mode with media type parameters', () => {
    const envelope: Envelope = {
      ...structured(baseEvent),
      headers: { 'content-type': 'Application/CloudEvents+JSON; charset=utf-8' },
    };
    assert.equal(decodeEnvelope(envelope).id, 'id-1');
  });

  it('treats null optional attributes as absent', () => {
    const message = decodeEnvelope(structured({ ...baseEvent, priority: null, courierheaders: null }));
    assert.equal(message.priority, 0);
    assert.deepEqual(message.headers, {});
  });
});

describe('wire: malformed envelopes', () => {
  const binaryCases: [string, Envelope, RegExp][] = [
    ['invalid JSON', binary({}, '{"a":'), /body is not valid JSON: /],
    ['invalid UTF-8', binary({}, new Uint8Array([0x22, 0xff, 0x22])), /not valid UTF-8/],
    ['missing id', binary({ 'ce-id': undefined }), /missing required attribute 'id'/],
    ['missing type', binary({ 'ce-type': undefined }), /missing required attribute 'type'/],
    ['missing source', binary({ 'ce-source': undefined }), /missing required attribute 'source'/],
    [
      'missing specversion',
      binary({ 'ce-specversion': undefined }),
      /missing required attribute 'specversion'/,
    ],
    ['wrong specversion', binary({ 'ce-specversion': '0.3' }), /'specversion'.*"0\.3".*only '1\.0'/],
    ['empty id', binary({ 'ce-id': '' }), /'id'.*must not be empty/],
    ['priority out of range', binary({ 'ce-priority': '12' }), /'priority'.*integer from 0 to 9.*"12"/],
    ['priority not an integer', binary({ 'ce-priority': '1.5' }), /'priority'.*integer from 0 to 9/],
    [
      'deliverat not a number',
      binary({ 'ce-deliverat': 'soon' }),
      /'deliverat'.*integer \(epoch ms\).*"soon"/,
    ],
    ['expiresat blank', binary({ 'ce-expiresat': '' }), /'expiresat'.*integer/],
    ['dataversion zero', binary({ 'ce-dataversion': '0' }), /'dataversion'.*positive integer/],
    ['non-string header', binary({ 'x-n': 5 as unknown as string }), /header 'x-n' must be a string/],
  ];
  for (const [name, envelope, pattern] of binaryCases) {
    it(`binary: ${name}`, () => assertDecodeError(envelope, pattern));
  }

  const structuredCases: [string, unknown, RegExp][] = [
    ['invalid JSON', '{"specversion":', /body is not valid JSON: /],
    ['empty body', '', /structured body is empty/],
    ['array body', [baseEvent], /structured body is not a JSON object \(got an array\)/],
    ['null body', null, /structured body is not a JSON object \(got null\)/],
    ['string body', 'hello', /body is not valid JSON/],
    ['missing id', { ...baseEvent, id: undefined }, /missing required attribute 'id'/],
    ['missing type', { ...baseEvent, type: undefined }, /missing required attribute 'type'/],
    ['missing source', { ...baseEvent, source: undefined }, /missing required attribute 'source'/],
    [
      'missing specversion',
      { ...baseEvent, specversion: undefined },
      /missing required attribute 'specversion'/,
    ],
    ['wrong specversion', { ...baseEvent, specversion: 1 }, /'specversion' is 1; only '1\.0'/],
    ['id not a string', { ...baseEvent, id: 42 }, /attribute 'id' must be a string, got 42/],
    ['time not a string', { ...baseEvent, time: 0 }, /attribute 'time' must be a string/],
    [
      'priority as string',
      { ...baseEvent, priority: '3' },
      /attribute 'priority' must be an integer from 0 to 9, got "3"/,
    ],
    ['priority too high', { ...baseEvent, priority: 10 }, /'priority'.*got 10/],
    [
      'deliverat not a number',
      { ...baseEvent, deliverat: 'tomorrow' },
      /'deliverat' must be an integer \(epoch ms\)/,
    ],
    ['expiresat fractional', { ...baseEvent, expiresat: 1.5 }, /'expiresat'.*got 1\.5/],
    [
      'dataversion not a number',
      { ...baseEvent, dataversion: '2' },
      /'dataversion' must be a positive integer/,
    ],
    [
      'courierheaders array',
      { ...baseEvent, courierheaders: ['a'] },
      /'courierheaders' must be an object of strings, got an array/,
    ],
    ['courierheaders value', { ...baseEvent, courierheaders: { a: 1 } }, /'courierheaders'.*'a' is a number/],
    ['data_base64', { ...baseEvent, data: undefined, data_base64: 'AAEC' }, /'data_base64' is not supported/],
  ];
  for (const [name, event, pattern] of structuredCases) {
    it(`structured: ${name}`, () => assertDecodeError(structured(event), pattern));
  }

  it('rejects an envelope over maxBytes, naming the size and the limit', () => {
    const envelope = encodeMessage({ ...minimal, data: 'x'.repeat(1000) }, 'binary');
    const size = envelopeSizeBytes(envelope);
    assertDecodeError(envelope, new RegExp(`${size} bytes.*limit of 500 bytes`), { maxBytes: 500 });
    assert.equal(decodeEnvelope(envelope, { maxBytes: size }).data, 'x'.repeat(1000));
  });

  it('rejects an oversized structured envelope too', () => {
    const envelope = encodeMessage(full, 'structured');
    assertDecodeError(envelope, /over the limit of 10 bytes/, { maxBytes: 10 });
  });
});

describe('wire: encoding rejects', () => {
  for (const mode of modes) {
    for (const name of ['ce-x', 'CE-Id', 'content-type', 'Content-Type']) {
      it(`${mode}: reserved header '${name}'`, () => {
        assert.throws(
          () => encodeMessage({ ...minimal, headers: { [name]: 'v' } }, mode),
          (error: unknown) =>
            error instanceof ValidationError &&
            error.code === 'COURIER_VALIDATION' &&
            error.message.includes(`header '${name}' is reserved`),
        );
      });
    }

    it(`${mode}: fields the decoder would refuse`, () => {
      const bad: Partial<Mutable<Message>>[] = [
        { id: '' },
        { priority: 10 },
        { priority: 1.5 },
        { version: 0 },
        { deliverAt: 1.5 },
        { headers: { a: 1 as unknown as string } },
        { data: 10n },
        { data: () => 1 },
      ];
      for (const patch of bad) {
        assert.throws(
          () => encodeMessage({ ...minimal, ...patch }, mode),
          ValidationError,
          JSON.stringify(Object.keys(patch)),
        );
      }
    });
  }
});

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

describe('wire: envelopeSizeBytes', () => {
  it('counts UTF-8 bytes of the body and of every header name and value', () => {
    const headers = { 'ce-id': 'ü🚀', tenant: '日本', lone: '\ud800x' };
    const envelope: Envelope = { id: 'a', type: 'b', headers, body: new Uint8Array(7) };
    let expected = 7;
    for (const [name, value] of Object.entries(headers))
      expected += utf8.encode(name).length + utf8.encode(value).length;
    assert.equal(envelopeSizeBytes(envelope), expected);
  });
});

describe('wire: property', () => {
  const optionalString = fc.option(fc.string(), { nil: undefined });
  const optionalEpoch = fc.option(fc.integer({ min: 0, max: 4_102_444_800_000 }), { nil: undefined });
  const headerName = fc.stringMatching(/^[a-bd-z][a-z0-9-]{0,15}$/);
  const messageArb = fc
    .record({
      id: fc.string({ minLength: 1 }),
      type: fc.string({ minLength: 1 }),
      version: fc.integer({ min: 1, max: 1000 }),
      // Through JSON once, since JSON cannot carry -0.
      data: fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown),
      headers: fc.dictionary(headerName, fc.string(), { maxKeys: 5, noNullPrototype: true }),
      time: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      source: fc.string({ minLength: 1 }),
      correlationId: fc.string({ minLength: 1 }),
      priority: fc.integer({ min: 0, max: 9 }),
      causationId: optionalString,
      key: optionalString,
      deliverAt: optionalEpoch,
      expiresAt: optionalEpoch,
      replyTo: optionalString,
      traceparent: optionalString,
      dedupId: optionalString,
    })
    .map((m) => {
      // Absent optional fields are absent keys, as a decoded message has them.
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(m)) if (v !== undefined) out[k] = v;
      return out as unknown as Message;
    });

  for (const mode of modes) {
    it(`${mode}: any JSON data and optional fields round-trip`, () => {
      fc.assert(
        fc.property(messageArb, (message) => {
          assert.deepEqual(decodeEnvelope(encodeMessage(message, mode)), message);
        }),
        { numRuns: 300 },
      );
    });
  }
});

describe('wire: envelopeOver', () => {
  it('says over exactly when the UTF-8 size is over, right at the limit too', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 40 }),
        fc.dictionary(
          fc.string({ minLength: 1, maxLength: 8 }),
          fc.string({ unit: 'binary', maxLength: 20 }),
          {
            maxKeys: 4,
          },
        ),
        fc.integer({ min: -3, max: 3 }),
        (text, headers, offset) => {
          const envelope: Envelope = { id: 'i', type: 't', headers, body: Buffer.from(text, 'utf8') };
          const limit = envelopeSizeBytes(envelope) + offset;
          assert.equal(envelopeOver(envelope, limit), envelopeSizeBytes(envelope) > limit);
        },
      ),
    );
  });
});
