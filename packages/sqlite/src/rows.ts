/**
 * The forms a message takes between the transport and its rows: `StoredItem`, a message ready to
 * insert (what the writer thread receives), and `ClaimedRow`, a row as a claim returns it. Both are
 * flat arrays rather than objects: they cross a thread boundary in batches of hundreds, and
 * structured clone copies an array of strings and numbers several times faster than objects.
 */
import type { Envelope, PublishItem } from '@courier/core';

/**
 * What a single publish's command starts with (`Do.PUBLISH_ONE` in batch.ts): a `StoredItem` is
 * itself the command that stores it, one array fewer to copy to the writer thread per publish.
 */
export const STORE_ONE = 11;

/**
 * A message to store: the command slot (`STORE_ONE`), its destination, flags and the columns of its
 * row. Index with `Item`.
 */
export type StoredItem = [
  command: typeof STORE_ONE,
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
  QUEUE: 1,
  FLAGS: 2,
  ID: 3,
  TYPE: 4,
  KEY: 5,
  PRIORITY: 6,
  DELIVER_AT: 7,
  EXPIRES_AT: 8,
  DEDUP_ID: 9,
  /** The `headers` column: compact when possible (see `storedHeaders`). */
  HEADERS: 10,
  /** TEXT for a JSON body (`bodyText`), else the bytes. */
  BODY: 11,
} as const;

/** `Item.FLAGS` bit: store even if the dedupId was seen (dead-letter replay). */
export const BYPASS_DEDUP = 1;
/** `Item.FLAGS` bit: drop the item, without failing, when its queue no longer exists (replies). */
export const DROP_IF_NO_QUEUE = 2;

/** The stored form of a publish. */
export function toStoredItem(item: PublishItem): StoredItem {
  const { envelope } = item;
  return [
    STORE_ONE,
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

/**
 * A claim's rows as they cross from the writer thread: numbers in one array, strings as the bytes of
 * one ASCII text, both outside V8's heap. Arriving as arrays of strings, a claim's rows were one run
 * of young objects that all lived until handled, and V8 moved such runs to the old generation a page
 * at a time (docs/performance.md); a delivery now decodes its strings when first read, each a string
 * of its own (a slice of one big string would keep all of it alive for as long as any part lives).
 */
export interface PackedRows {
  /** PACKED numbers per row, at `i * PACKED`: see `Packed`. */
  readonly numbers: Float64Array;
  /** Per row: id, type, key, dedupId, headers and a text body, one after the other, one byte a character. */
  readonly text: Uint8Array;
  /** Bodies stored as bytes, in row order. */
  readonly binary: Uint8Array[];
}

/** A claim's rows: arrays where they were claimed, packed when they crossed from the writer thread. */
export type ClaimedRows = ClaimedRow[] | PackedRows;

/**
 * Offsets in a packed row's numbers. Lengths are -1 for null; a body length below 0 is a bytes body,
 * `binary[-1 - length]`.
 */
export const Packed = {
  SEQ: 0,
  ATTEMPT: 1,
  PRIORITY: 2,
  /** NaN for none. */
  EXPIRES_AT: 3,
  /** Where the row's strings start in `text`. */
  START: 4,
  ID: 5,
  TYPE: 6,
  KEY: 7,
  DEDUP_ID: 8,
  HEADERS: 9,
  BODY: 10,
} as const;

/** Numbers per packed row. */
export const PACKED = 11;

/** `rows` packed for postMessage (see `PackedRows`); undefined when their text is not all ASCII. */
export function packRows(rows: ClaimedRow[]): PackedRows | undefined {
  const numbers = new Float64Array(rows.length * PACKED);
  const parts: string[] = [];
  const binary: Uint8Array[] = [];
  let at = 0;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const o = i * PACKED;
    numbers[o + Packed.SEQ] = row[Row.SEQ];
    numbers[o + Packed.ATTEMPT] = row[Row.ATTEMPT];
    numbers[o + Packed.PRIORITY] = row[Row.PRIORITY];
    numbers[o + Packed.EXPIRES_AT] = row[Row.EXPIRES_AT] ?? Number.NaN;
    numbers[o + Packed.START] = at;
    const key = row[Row.KEY];
    const dedupId = row[Row.DEDUP_ID];
    const body = row[Row.BODY];
    parts.push(row[Row.ID], row[Row.TYPE], key ?? '', dedupId ?? '', row[Row.HEADERS]);
    numbers[o + Packed.ID] = row[Row.ID].length;
    numbers[o + Packed.TYPE] = row[Row.TYPE].length;
    numbers[o + Packed.KEY] = key === null ? -1 : key.length;
    numbers[o + Packed.DEDUP_ID] = dedupId === null ? -1 : dedupId.length;
    numbers[o + Packed.HEADERS] = row[Row.HEADERS].length;
    at += row[Row.ID].length + row[Row.TYPE].length + (key?.length ?? 0) + (dedupId?.length ?? 0);
    at += row[Row.HEADERS].length;
    if (typeof body === 'string') {
      parts.push(body);
      numbers[o + Packed.BODY] = body.length;
      at += body.length;
    } else {
      numbers[o + Packed.BODY] = -1 - binary.length;
      binary.push(body);
    }
  }
  const text = parts.join('');
  const bytes = Buffer.from(text, 'utf8');
  // Offsets count characters: they are bytes only when every character took one.
  if (bytes.length !== text.length) return undefined;
  return { numbers, text: ownBytes(bytes), binary };
}

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

// Rows hold the envelope's headers minus what the row already says: the CloudEvents attributes every
// Courier binary-mode envelope carries (`ce-id` and `ce-type` equal to the row's columns, the constant
// `ce-specversion` and `content-type`, and `ce-correlationid` when it is the id) are left out and put
// back on read. The rest is stored as pairs, not JSON (schema 6): each name (one code character for a
// CloudEvents attribute Courier sets, else the name and a UNIT) and its value, each ended by UNIT.
// Making and reading JSON was 0.7 µs of a message's 19 on the two threads; the pairs are also about
// a third shorter (fewer pages written per commit). A header whose name or value could not be told
// apart in that form is kept as JSON instead ('c'/'C', schema 3), and plain JSON starting with '{'
// (rows written by hand or by another tool) is read as it is.
const PAIRS = 'd';
/** Pairs, and `ce-correlationid` equals the id too. */
const PAIRS_SELF_CORRELATED = 'D';
const COMPACT = 'c';
const COMPACT_SELF_CORRELATED = 'C';
const UNIT = '\x1f';
const SPEC_VERSION = '1.0';
const JSON_TYPE = 'application/json';
/** The attributes with a code: character 1 is the first. */
const CODED: readonly string[] = [
  'ce-source',
  'ce-time',
  'ce-correlationid',
  'ce-causationid',
  'ce-partitionkey',
  'ce-traceparent',
  'ce-dataversion',
  'ce-priority',
  'ce-deliverat',
  'ce-expiresat',
  'ce-replyto',
  'ce-dedupid',
];
const CODE_OF: ReadonlyMap<string, string> = new Map(
  CODED.map((name, i) => [name, String.fromCharCode(1 + i)]),
);

/** The `headers` column for `envelope`: pairs when it has the attributes the row can restore. */
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
  let pairs = selfCorrelated ? PAIRS_SELF_CORRELATED : PAIRS;
  for (const name in h) {
    if (restoredOnRead(name, selfCorrelated)) continue;
    const value = h[name]!;
    const code = CODE_OF.get(name);
    if (code !== undefined) pairs += code;
    else if (name.length === 0 || name.charCodeAt(0) < 0x20 || name.includes(UNIT))
      return compactJson(h, selfCorrelated);
    else pairs += name + UNIT;
    if (value.includes(UNIT)) return compactJson(h, selfCorrelated);
    pairs += value + UNIT;
  }
  return pairs;
}

/** Whether `name` is left out of the column because `restored` puts it back from the row. */
function restoredOnRead(name: string, selfCorrelated: boolean): boolean {
  return (
    name === 'ce-id' ||
    name === 'ce-type' ||
    name === 'ce-specversion' ||
    name === 'content-type' ||
    (selfCorrelated && name === 'ce-correlationid')
  );
}

/** Schema 3's form: the headers the row cannot restore, as JSON after a flag. */
function compactJson(h: Readonly<Record<string, string>>, selfCorrelated: boolean): string {
  const rest: Record<string, string> = {};
  for (const name in h) {
    if (restoredOnRead(name, selfCorrelated)) continue;
    rest[name] = h[name]!;
  }
  return (selfCorrelated ? COMPACT_SELF_CORRELATED : COMPACT) + JSON.stringify(rest);
}

/**
 * Headers as stored, for the row's `id` and `type`. A row written by something else with headers
 * that cannot be read (not a JSON object of strings, broken pairs) yields no headers at all, so the
 * consumer's decode fails and dead-letters it (`decode`) instead of the transport throwing on every
 * claim.
 */
export function parseHeaders(text: string, id: string, type: string): Record<string, string> {
  const flag = text.charCodeAt(0);
  if (flag === 0x64 /* d */ || flag === 0x44 /* D */) return parsePairs(text, id, type, flag === 0x44) ?? {};
  const compact = flag === 0x63 /* c */ || flag === 0x43; /* C */
  const parsed = parseStringObject(compact ? text.slice(1) : text);
  if (!compact || parsed === undefined) return parsed ?? {};
  const headers = restored(id, type, flag === 0x43);
  for (const name in parsed) headers[name] = parsed[name]!;
  return headers;
}

function restored(id: string, type: string, selfCorrelated: boolean): Record<string, string> {
  const headers: Record<string, string> = {
    'ce-specversion': SPEC_VERSION,
    'ce-id': id,
    'ce-type': type,
    'content-type': JSON_TYPE,
  };
  if (selfCorrelated) headers['ce-correlationid'] = id;
  return headers;
}

function parsePairs(
  text: string,
  id: string,
  type: string,
  selfCorrelated: boolean,
): Record<string, string> | undefined {
  const headers = restored(id, type, selfCorrelated);
  for (let at = 1; at < text.length; ) {
    let name: string | undefined;
    const c = text.charCodeAt(at);
    if (c < 0x20) {
      name = CODED[c - 1];
      if (name === undefined) return undefined;
      at++;
    } else {
      const end = text.indexOf(UNIT, at);
      if (end < 0) return undefined;
      name = text.slice(at, end);
      at = end + 1;
    }
    const end = text.indexOf(UNIT, at);
    if (end < 0) return undefined;
    headers[name] = text.slice(at, end);
    at = end + 1;
  }
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
