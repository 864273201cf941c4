import type { PublishContext, PublishMiddleware, PublishOptions } from './bus-types.js';
import type { Clock } from './clock.js';
import type { Contract } from './contracts.js';
import { validateNow } from './contracts.js';
import { ConfigurationError, MessageTooLargeError } from './errors.js';
import { newMessageId } from './ids.js';
import type { Message } from './message.js';
import { compose } from './middleware.js';
import type { Destination, PublishItem } from './transport.js';
import { encodeMessage, envelopeOver, envelopeSizeBytes } from './wire.js';

/** What a new message inherits when a handler produces it (DESIGN.md §2.4). */
export interface Lineage {
  readonly correlationId: string;
  readonly causationId: string;
}

/** A message before it is built and encoded. */
export interface Draft {
  readonly type: string;
  readonly data: unknown;
  readonly version: number;
  readonly options: PublishOptions;
  readonly to: Destination;
  readonly id?: string | undefined;
  readonly lineage?: Lineage | undefined;
  readonly replyTo?: string | undefined;
  /** Dedup id forced by the core (handler output). */
  readonly dedupId?: string | undefined;
}

/** A built message and the item that stores it. */
export interface Prepared {
  readonly message: Message;
  readonly item: PublishItem;
}

/** Shared by every message published without headers; frozen, since handlers see it. */
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

// Many messages share a millisecond under load; formatting the time once per ms is a measurable saving.
let isoMs = Number.NaN;
let isoText = '';
function isoTime(ms: number): string {
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

/**
 * Turns drafts into encoded publish items: validation against the contract, message fields from the
 * options, publish middleware, encoding and the size limit. Shared by `bus.publish` and handler output.
 * The `...Now` methods answer synchronously when nothing on the way is asynchronous (no publish
 * middleware, a synchronous schema), which is the common case and the hot path.
 */
export class Producer {
  private readonly run: ((ctx: PublishContext & { item?: PublishItem }) => Promise<void>) | undefined;

  constructor(
    private readonly endpoint: string,
    private readonly clock: Clock,
    private readonly maxMessageBytes: number,
    middleware: readonly PublishMiddleware[],
  ) {
    this.run =
      middleware.length === 0
        ? undefined
        : compose<PublishContext & { item?: PublishItem }>(middleware, async (ctx) => {
            ctx.item = this.encode(ctx.message, ctx.to);
          });
  }

  /** Validates `data` against `contract` (producer side) and prepares the publish item. */
  async prepare(
    contract: Contract,
    data: unknown,
    draft: Omit<Draft, 'type' | 'data' | 'version'>,
  ): Promise<Prepared> {
    return this.prepareNow(contract, data, draft);
  }

  /** `prepare`, synchronous when it can be; throws synchronously for bad input. */
  prepareNow(
    contract: Contract,
    data: unknown,
    draft: Omit<Draft, 'type' | 'data' | 'version'>,
  ): Prepared | Promise<Prepared> {
    const valid = validateNow(contract.schema, data, `message '${contract.type}'`);
    if (valid instanceof Promise)
      return valid.then((value) => this.build(draft, contract.type, value, contract.version));
    return this.build(draft, contract.type, valid, contract.version);
  }

  async prepareValid(draft: Draft): Promise<Prepared> {
    return this.build(draft, draft.type, draft.data, draft.version);
  }

  private build(
    draft: Omit<Draft, 'type' | 'data' | 'version'>,
    type: string,
    data: unknown,
    version: number,
  ): Prepared | Promise<Prepared> {
    const message = this.buildMessage(draft, type, data, version);
    if (this.run === undefined) return { message, item: this.encode(message, draft.to) };
    const ctx: PublishContext & { item?: PublishItem } = { message, to: draft.to, endpoint: this.endpoint };
    return this.run(ctx).then(() => ({ message: ctx.message, item: ctx.item! }));
  }

  private encode(message: Message, to: Destination): PublishItem {
    const envelope = encodeMessage(message, 'binary');
    if (envelopeOver(envelope, this.maxMessageBytes)) {
      const size = envelopeSizeBytes(envelope);
      throw new MessageTooLargeError(
        `message '${message.type}' is ${size} bytes, over the ${this.maxMessageBytes}-byte limit (maxMessageBytes)`,
        size,
        this.maxMessageBytes,
      );
    }
    return { envelope, to };
  }

  private buildMessage(
    draft: Omit<Draft, 'type' | 'data' | 'version'>,
    type: string,
    data: unknown,
    version: number,
  ): Message {
    const { options } = draft;
    const now = this.clock.now();
    const id = draft.id ?? options.id ?? newMessageId();
    const priority = options.priority ?? 0;
    if (!Number.isInteger(priority) || priority < 0 || priority > 9) {
      throw new ConfigurationError(
        `priority must be an integer from 0 to 9, got ${String(options.priority)}`,
      );
    }
    const deliverAt =
      toEpoch(options.deliverAt, 'deliverAt') ??
      (options.delayMs === undefined ? undefined : now + checkMs(options.delayMs, 'delayMs'));
    const expiresAt =
      toEpoch(options.expiresAt, 'expiresAt') ??
      (options.ttlMs === undefined ? undefined : now + checkMs(options.ttlMs, 'ttlMs'));
    if (options.key !== undefined && (typeof options.key !== 'string' || options.key.length === 0)) {
      throw new ConfigurationError(`key must be a non-empty string, got ${JSON.stringify(options.key)}`);
    }
    return {
      id,
      type,
      version,
      data,
      headers: options.headers ?? NO_HEADERS,
      time: isoTime(now),
      source: this.endpoint,
      correlationId: options.correlationId ?? draft.lineage?.correlationId ?? id,
      causationId: draft.lineage?.causationId,
      key: options.key,
      priority,
      deliverAt,
      expiresAt,
      replyTo: draft.replyTo,
      dedupId: draft.dedupId ?? options.dedupId,
    };
  }
}

function toEpoch(value: number | Date | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = value instanceof Date ? value.getTime() : value;
  if (!Number.isFinite(ms))
    throw new ConfigurationError(`${name} must be a Date or epoch milliseconds, got ${String(value)}`);
  return ms;
}

function checkMs(value: number, name: string): number {
  if (!Number.isFinite(value) || value < 0)
    throw new ConfigurationError(`${name} must be a number of ms >= 0, got ${String(value)}`);
  return value;
}
