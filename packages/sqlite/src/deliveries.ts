/**
 * The consumer side of the SQLite transport: what it keeps per local consumer (its window, which
 * grows and shrinks with how fast deliveries settle), and the deliveries and envelopes it hands
 * out, from rows claimed on the event loop (arrays) or packed by the writer thread.
 */
import type { ConsumeOptions, DeadLetterInfo, Delivery, Envelope, PublishItem, Slotted } from '@courier/core';
import type { ClaimedRow, PackedRows } from './rows.js';
import { PACKED, Packed, parseHeaders, Row } from './rows.js';

/** What an ack needs to know of its row besides the lease: its queue, priority and ordering key. */
export interface RowKey {
  readonly queueId: number;
  readonly priority: number;
  readonly key: string | null;
}

/** A consumer of this process, as the transport tracks it. */
export interface LocalConsumer {
  readonly queue: string;
  readonly queueId: number;
  readonly options: ConsumeOptions;
  readonly onDelivery: (delivery: Delivery) => void;
  unsettled: number;
  active: boolean;
  /** False once a claim came back short and nothing has changed since. */
  mayHaveMore: boolean;
  nextDueAt: number;
  /** The prefetch in use now, from `options.prefetch` up to `options.maxPrefetch` (see `resize`). */
  window: number;
  /** The delivery being timed from its claim's arrival to its settle (see `resize`), or -1. */
  probeSeq: number;
  probeAt: number;
}

/**
 * How long the last delivery of a claim may wait in this process, claim to settle, before the
 * window shrinks (and under half of it, grows): about this much work is ever held here, so a
 * larger window costs no lease and keeps other processes' consumers in the game.
 */
export const WINDOW_WAIT_MS = 20;

/**
 * Doubles `consumer`'s window (up to `maxPrefetch`) when its probe settled within half of
 * WINDOW_WAIT_MS, halves it (down to `prefetch`) when it took longer than WINDOW_WAIT_MS.
 */
export function resize(consumer: LocalConsumer, waitedMs: number): void {
  consumer.probeSeq = -1;
  const { prefetch, maxPrefetch = prefetch } = consumer.options;
  if (waitedMs * 2 < WINDOW_WAIT_MS) consumer.window = Math.min(maxPrefetch, consumer.window * 2);
  else if (waitedMs > WINDOW_WAIT_MS) consumer.window = Math.max(prefetch, Math.floor(consumer.window / 2));
}

/**
 * What a delivery asks of its transport: its settles, each one write in the next group commit. Each
 * names the delivery itself: its row (`seq`), its lease (`token`), and where the transport holds it
 * (`slot`).
 */
export interface DeliverySettler {
  ackDelivery(delivery: SqliteDelivery, outgoing: readonly PublishItem[]): Promise<boolean>;
  retryDelivery(
    delivery: SqliteDelivery,
    availableAt: number | undefined,
    counted: boolean,
  ): Promise<boolean>;
  deadLetterDelivery(delivery: SqliteDelivery, info: DeadLetterInfo): Promise<boolean>;
  extendDeliveryLease(delivery: SqliteDelivery, ms: number): Promise<boolean>;
  transact<R>(delivery: SqliteDelivery, work: (db: unknown) => R, outgoing: readonly PublishItem[]): R;
}

/**
 * A claimed row as an envelope. A JSON body is TEXT, given to the decoder as it is; its bytes are
 * made only when something asks for them (core reads `bodyText` first), which spares a Buffer per
 * delivery. A class, so the getter lives on the prototype: one shape for every delivery.
 */
class RowEnvelope implements Envelope {
  readonly bodyText: string | undefined;
  readonly key: string | undefined;
  readonly priority: number | undefined;
  readonly expiresAt: number | undefined;
  readonly dedupId: string | undefined;
  private bytes: Uint8Array | undefined;
  private readonly storedHeaders: string;
  private parsedHeaders: Readonly<Record<string, string>> | undefined;

  constructor(
    row: ClaimedRow,
    readonly id: string,
    readonly type: string,
    key: string | null,
  ) {
    this.storedHeaders = row[Row.HEADERS];
    const stored = row[Row.BODY];
    if (typeof stored === 'string') this.bodyText = stored;
    else this.bytes = stored;
    this.key = key ?? undefined;
    this.priority = row[Row.PRIORITY] || undefined;
    this.expiresAt = row[Row.EXPIRES_AT] ?? undefined;
    this.dedupId = row[Row.DEDUP_ID] ?? undefined;
  }

  get body(): Uint8Array {
    this.bytes ??= Buffer.from(this.bodyText!, 'utf8');
    return this.bytes;
  }

  /**
   * Parsed when first read: a claim's rows arrive together and most wait in the consumer's buffer
   * for a while; their header objects are made when each is handled, not all at once.
   */
  get headers(): Readonly<Record<string, string>> {
    this.parsedHeaders ??= parseHeaders(this.storedHeaders, this.id, this.type);
    return this.parsedHeaders;
  }
}

/** The deliveries of rows packed by the writer thread (`PackedRows`). */
export function packedDeliveries(
  transport: DeliverySettler,
  consumer: LocalConsumer,
  rows: PackedRows,
  token: number,
): SqliteDelivery[] {
  const { numbers } = rows;
  const text = Buffer.from(rows.text.buffer, rows.text.byteOffset, rows.text.byteLength);
  const out = new Array<SqliteDelivery>(numbers.length / PACKED);
  for (let i = 0, o = 0; o < numbers.length; i++, o += PACKED) {
    const keyLength = numbers[o + Packed.KEY]!;
    let key: string | null = null;
    if (keyLength >= 0) {
      const at = numbers[o + Packed.START]! + numbers[o + Packed.ID]! + numbers[o + Packed.TYPE]!;
      key = text.toString('latin1', at, at + keyLength);
    }
    const priority = numbers[o + Packed.PRIORITY]!;
    out[i] = new SqliteDelivery(
      transport,
      consumer,
      token,
      numbers[o + Packed.SEQ]!,
      numbers[o + Packed.ATTEMPT]!,
      priority,
      key,
      new PackedEnvelope(rows, text, o, key, priority),
    );
  }
  return out;
}

/**
 * A row packed by the writer thread as an envelope: its strings are decoded from the claim's bytes
 * when first read, so a claim waiting in the consumer's buffer holds no strings at all.
 */
class PackedEnvelope implements Envelope {
  readonly key: string | undefined;
  readonly priority: number | undefined;
  readonly expiresAt: number | undefined;
  private decodedId: string | undefined;
  private decodedType = '';
  private decodedDedupId: string | undefined;
  private storedHeaders = '';
  private text: string | undefined;
  private bytes: Uint8Array | undefined;
  private parsedHeaders: Readonly<Record<string, string>> | undefined;

  constructor(
    private readonly rows: PackedRows,
    /** `rows.text` as a Buffer (one view for the claim). */
    private readonly bytesOfText: Buffer,
    private readonly at: number,
    key: string | null,
    priority: number,
  ) {
    this.key = key ?? undefined;
    this.priority = priority || undefined;
    const expiresAt = rows.numbers[at + Packed.EXPIRES_AT]!;
    this.expiresAt = Number.isNaN(expiresAt) ? undefined : expiresAt;
  }

  get id(): string {
    return this.decodedId ?? this.read();
  }

  get type(): string {
    this.read();
    return this.decodedType;
  }

  get dedupId(): string | undefined {
    this.read();
    return this.decodedDedupId;
  }

  get headers(): Readonly<Record<string, string>> {
    if (this.parsedHeaders === undefined) {
      const id = this.read();
      this.parsedHeaders = parseHeaders(this.storedHeaders, id, this.decodedType);
    }
    return this.parsedHeaders;
  }

  get bodyText(): string | undefined {
    this.read();
    return this.text;
  }

  get body(): Uint8Array {
    this.read();
    this.bytes ??= Buffer.from(this.text!, 'utf8');
    return this.bytes;
  }

  /**
   * Decodes the row's text as one string and takes its fields as slices of it: one decode per
   * delivery instead of one per field. The slices keep only this row's text alive.
   */
  private read(): string {
    if (this.decodedId !== undefined) return this.decodedId;
    const n = this.rows.numbers;
    const o = this.at;
    const idLength = n[o + Packed.ID]!;
    const typeLength = n[o + Packed.TYPE]!;
    const keyLength = Math.max(0, n[o + Packed.KEY]!);
    const dedupLength = n[o + Packed.DEDUP_ID]!;
    const headersLength = n[o + Packed.HEADERS]!;
    const bodyLength = n[o + Packed.BODY]!;
    const start = n[o + Packed.START]!;
    const length =
      idLength + typeLength + keyLength + Math.max(0, dedupLength) + headersLength + Math.max(0, bodyLength);
    const row = this.bytesOfText.toString('latin1', start, start + length);
    let at = idLength;
    this.decodedType = row.slice(at, at + typeLength);
    at += typeLength + keyLength;
    if (dedupLength >= 0) {
      this.decodedDedupId = row.slice(at, at + dedupLength);
      at += dedupLength;
    }
    this.storedHeaders = row.slice(at, at + headersLength);
    at += headersLength;
    if (bodyLength >= 0) this.text = row.slice(at, at + bodyLength);
    else this.bytes = this.rows.binary[-1 - bodyLength];
    this.decodedId = row.slice(0, idLength);
    return this.decodedId;
  }
}

/**
 * One claimed row handed to a consumer. A class rather than an object of closures: one is made per
 * message, and its methods only name the row (`seq`) and the lease (`token`) they settle. It is its
 * own RowKey, and the transport's record of what it has handed out (`held`): no object besides it
 * per delivery.
 */
export class SqliteDelivery implements Delivery, RowKey, Slotted {
  readonly queue: string;
  readonly queueId: number;
  /** Its place in the transport's `held` while it is not settled; -1 before and after. */
  slot = -1;

  constructor(
    private readonly transport: DeliverySettler,
    readonly consumer: LocalConsumer,
    readonly token: number,
    readonly seq: number,
    readonly attempt: number,
    readonly priority: number,
    readonly key: string | null,
    readonly envelope: Delivery['envelope'],
  ) {
    this.queue = consumer.queue;
    this.queueId = consumer.queueId;
  }

  /** The delivery of a row claimed on this thread. */
  static ofRow(transport: DeliverySettler, consumer: LocalConsumer, row: ClaimedRow, token: number) {
    const key = row[Row.KEY];
    return new SqliteDelivery(
      transport,
      consumer,
      token,
      row[Row.SEQ],
      row[Row.ATTEMPT],
      row[Row.PRIORITY],
      key,
      new RowEnvelope(row, row[Row.ID], row[Row.TYPE], key),
    );
  }

  ack(outgoing: readonly PublishItem[] = []): Promise<boolean> {
    return this.transport.ackDelivery(this, outgoing);
  }

  retry(delayMs: number): Promise<boolean> {
    return this.transport.retryDelivery(this, Date.now() + delayMs, true);
  }

  defer(untilMs: number): Promise<boolean> {
    return this.transport.retryDelivery(this, untilMs, false);
  }

  release(): Promise<boolean> {
    return this.transport.retryDelivery(this, undefined, false);
  }

  deadLetter(info: DeadLetterInfo): Promise<boolean> {
    return this.transport.deadLetterDelivery(this, info);
  }

  extendLease(ms: number): Promise<boolean> {
    return this.transport.extendDeliveryLease(this, ms);
  }

  transact<R>(work: (db: unknown) => R, outgoing: readonly PublishItem[]): R {
    return this.transport.transact(this, work, outgoing);
  }
}
