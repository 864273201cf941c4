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
