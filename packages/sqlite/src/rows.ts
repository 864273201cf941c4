/**
 * The forms a message takes between the transport and its rows: `StoredItem`, a message ready to
 * insert (what the writer thread receives), and `ClaimedRow`, a row as a claim returns it. Both are
 * flat arrays rather than objects: they cross a thread boundary in batches of hundreds, and
 * structured clone copies an array of strings and numbers several times faster than objects.
 */
import type { Envelope, PublishItem } from '@courier/core';

/** A message to store: its destination, flags and the columns of its row. Index with `Item`. */
export type StoredItem = [
  queue: string | null,
  flags: number,
  id: string,
  type: string,
  key: string | null,
  priority: number,
  deliverAt: number | null,
  expiresAt: number | null,
  dedupId: string | null,
  headers: string,
  body: string | Uint8Array,
];

/** Positions in a `StoredItem`. */
export const Item = {
  /** Direct to this queue; null routes by the bindings of the message's type. */
  QUEUE: 0,
  FLAGS: 1,
  ID: 2,
  TYPE: 3,
  KEY: 4,
  PRIORITY: 5,
  DELIVER_AT: 6,
  EXPIRES_AT: 7,
  DEDUP_ID: 8,
  /** The `headers` column: compact when possible (see `storedHeaders`). */
  HEADERS: 9,
  /** TEXT for a JSON body (`bodyText`), else the bytes. */
  BODY: 10,
} as const;

/** `Item.FLAGS` bit: store even if the dedupId was seen (dead-letter replay). */
export const BYPASS_DEDUP = 1;
/** `Item.FLAGS` bit: drop the item, without failing, when its queue no longer exists (replies). */
export const DROP_IF_NO_QUEUE = 2;

/** The stored form of a publish. */
export function toStoredItem(item: PublishItem): StoredItem {
  const { envelope } = item;
  return [
    item.to.kind === 'queue' ? item.to.queue : null,
    (item.bypassDedup ? BYPASS_DEDUP : 0) | (item.dropIfNoQueue ? DROP_IF_NO_QUEUE : 0),
    envelope.id,
    envelope.type,
    envelope.key ?? null,
    envelope.priority ?? 0,
    envelope.deliverAt ?? null,
    envelope.expiresAt ?? null,
    envelope.dedupId ?? null,
    storedHeaders(envelope),
    // JSON bodies go in as TEXT: reading a BLOB back costs a Buffer allocation per row (about 3 us).
    envelope.bodyText ?? ownBytes(envelope.body),
  ];
}

/**
 * Bytes that own their memory: a Buffer from Node's pool is a view of an 8 KiB slab, and structured
 * clone would copy the whole slab to the writer thread.
 */
function ownBytes(body: Uint8Array): Uint8Array {
  if (body.byteOffset === 0 && body.byteLength === body.buffer.byteLength) return body;
  return new Uint8Array(body);
}

/** A leased row: the claim statement's columns, `attempt` already counting this delivery. Index with `Row`. */
export type ClaimedRow = [
  seq: number,
  attempt: number,
  id: string,
  type: string,
  key: string | null,
  priority: number,
  expiresAt: number | null,
  dedupId: string | null,
  headers: string,
  /** TEXT for JSON bodies Courier wrote (`bodyText`), bytes otherwise. */
  body: string | Uint8Array,
];

/** Positions in a `ClaimedRow`. */
export const Row = {
  SEQ: 0,
  ATTEMPT: 1,
  ID: 2,
  TYPE: 3,
  KEY: 4,
  PRIORITY: 5,
  EXPIRES_AT: 6,
  DEDUP_ID: 7,
  HEADERS: 8,
  BODY: 9,
} as const;

/** Headers for a message that has none. */
export const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

// Rows hold the envelope's headers as JSON, minus what the row already says: the CloudEvents
// attributes every Courier binary-mode envelope carries are left out and put back on read. That is a
// third of a row's bytes (fewer pages written per commit) and of the JSON work per message.
// A compact value starts with a flag character; plain JSON (rows written by hand or by another tool)
// starts with '{' and is read as it is.
const COMPACT = 'c';
/** Compact, and `ce-correlationid` equals the id too. */
const COMPACT_SELF_CORRELATED = 'C';
const SPEC_VERSION = '1.0';
const JSON_TYPE = 'application/json';

/** The `headers` column for `envelope`: compact when it has the attributes the row can restore. */
export function storedHeaders(envelope: Envelope): string {
  const h = envelope.headers;
  if (
    h['ce-id'] !== envelope.id ||
    h['ce-type'] !== envelope.type ||
    h['ce-specversion'] !== SPEC_VERSION ||
    h['content-type'] !== JSON_TYPE
  ) {
    return JSON.stringify(h);
  }
  const selfCorrelated = h['ce-correlationid'] === envelope.id;
  const rest: Record<string, string> = {};
  for (const name in h) {
    if (
      name === 'ce-id' ||
      name === 'ce-type' ||
      name === 'ce-specversion' ||
      name === 'content-type' ||
      (selfCorrelated && name === 'ce-correlationid')
    )
      continue;
    rest[name] = h[name]!;
  }
  return (selfCorrelated ? COMPACT_SELF_CORRELATED : COMPACT) + JSON.stringify(rest);
}

/**
 * Headers as stored, for the row's `id` and `type`. A row written by something else with headers
 * that are not a JSON object of strings yields no headers at all, so the consumer's decode fails and
 * dead-letters it (`decode`) instead of the transport throwing on every claim.
 */
export function parseHeaders(text: string, id: string, type: string): Record<string, string> {
  const flag = text.charCodeAt(0);
  const compact = flag === 0x63 /* c */ || flag === 0x43; /* C */
  const parsed = parseStringObject(compact ? text.slice(1) : text);
  if (!compact || parsed === undefined) return parsed ?? {};
  const headers: Record<string, string> = {
    'ce-specversion': SPEC_VERSION,
    'ce-id': id,
    'ce-type': type,
    'content-type': JSON_TYPE,
  };
  if (flag === 0x43) headers['ce-correlationid'] = id;
  for (const name in parsed) headers[name] = parsed[name]!;
  return headers;
}

function parseStringObject(text: string): Record<string, string> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
    const record = value as Record<string, unknown>;
    for (const name in record) if (typeof record[name] !== 'string') return undefined;
    return record as Record<string, string>;
  } catch {
    return undefined;
  }
}

/**
 * Claimed rows packed for the trip from the writer thread: their strings in one string and their
 * numbers in a typed array. A structured clone costs per value and a row has ten; packed, a claim's
 * rows are four values plus their binary bodies (in a drain, the event loop's CPU per message fell by
 * 17 %). Publishes go unpacked: the writer binds the sliced strings of an unpacked item more slowly
 * than it saves (e2e measured 4-10 % slower with them packed).
 */
export interface Packed {
  /** The layout's number fields, row after row; NaN for null. */
  readonly numbers: Float64Array;
  /** The length in `text` of each string field, row after row; -1 for null (for the body: bytes, from `blobs`). */
  readonly lengths: Int32Array;
  readonly text: string;
  /** Bodies that are bytes, in row order. */
  readonly blobs: Uint8Array[];
}

/** Where a tuple keeps its numbers and strings; `body` is a string or bytes. */
interface Layout {
  readonly width: number;
  readonly numbers: readonly number[];
  readonly strings: readonly number[];
  readonly body: number;
}

/** `StoredItem`: flags, priority, deliverAt, expiresAt; queue, id, type, key, dedupId, headers; body. */
export const ITEM_LAYOUT: Layout = {
  width: 11,
  numbers: [1, 5, 6, 7],
  strings: [0, 2, 3, 4, 8, 9],
  body: 10,
};
/** `ClaimedRow`: seq, attempt, priority, expiresAt; id, type, key, dedupId, headers; body. */
export const ROW_LAYOUT: Layout = { width: 10, numbers: [0, 1, 5, 6], strings: [2, 3, 4, 7, 8], body: 9 };

/** Packs `tuples` (claimed rows, as `layout` says) for another thread. */
export function pack(layout: Layout, tuples: readonly (readonly unknown[])[]): Packed {
  const { numbers: numberAt, strings: stringAt, body: bodyAt } = layout;
  const numbers = new Float64Array(tuples.length * numberAt.length);
  const lengths = new Int32Array(tuples.length * (stringAt.length + 1));
  const parts: string[] = [];
  const blobs: Uint8Array[] = [];
  let n = 0;
  let l = 0;
  for (const tuple of tuples) {
    for (const at of numberAt) numbers[n++] = (tuple[at] as number | null) ?? Number.NaN;
    for (const at of stringAt) {
      const value = tuple[at] as string | null;
      if (value === null) lengths[l++] = -1;
      else {
        lengths[l++] = value.length;
        parts.push(value);
      }
    }
    const body = tuple[bodyAt] as string | Uint8Array;
    if (typeof body === 'string') {
      lengths[l++] = body.length;
      parts.push(body);
    } else {
      lengths[l++] = -1;
      blobs.push(body);
    }
  }
  return { numbers, lengths, text: parts.join(''), blobs };
}

/** The tuples `pack` packed with the same `layout`. */
export function unpack<T>(layout: Layout, packed: Packed): T[] {
  const { width, numbers: numberAt, strings: stringAt, body: bodyAt } = layout;
  const { numbers, lengths, text, blobs } = packed;
  const count = numbers.length / numberAt.length;
  const tuples: unknown[][] = new Array(count);
  let n = 0;
  let l = 0;
  let offset = 0;
  let blob = 0;
  for (let i = 0; i < count; i++) {
    const tuple: unknown[] = new Array(width);
    for (const at of numberAt) {
      const value = numbers[n++]!;
      tuple[at] = Number.isNaN(value) ? null : value;
    }
    for (const at of stringAt) {
      const length = lengths[l++]!;
      if (length < 0) tuple[at] = null;
      else {
        tuple[at] = text.slice(offset, offset + length);
        offset += length;
      }
    }
    const length = lengths[l++]!;
    if (length < 0) tuple[bodyAt] = blobs[blob++];
    else {
      tuple[bodyAt] = text.slice(offset, offset + length);
      offset += length;
    }
    tuples[i] = tuple;
  }
  return tuples as T[];
}
