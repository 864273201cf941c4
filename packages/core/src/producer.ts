import type { PublishContext, PublishMiddleware, PublishOptions } from './bus-types.js';
import type { Clock } from './clock.js';
import type { Contract } from './contracts.js';
import { validate } from './contracts.js';
import { ConfigurationError, MessageTooLargeError } from './errors.js';
import { newMessageId } from './ids.js';
import type { Message } from './message.js';
import { compose } from './middleware.js';
import type { Destination, PublishItem } from './transport.js';
import { encodeMessage, envelopeSizeBytes } from './wire.js';

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

/**
 * Turns drafts into encoded publish items: validation against the contract, message fields from the
 * options, publish middleware, encoding and the size limit. Shared by `bus.publish` and handler output.
 */
export class Producer {
  private readonly run: (ctx: PublishContext & { item?: PublishItem }) => Promise<void>;

  constructor(
    private readonly endpoint: string,
    private readonly clock: Clock,
    private readonly maxMessageBytes: number,
    middleware: readonly PublishMiddleware[],
  ) {
    this.run = compose<PublishContext & { item?: PublishItem }>(middleware, async (ctx) => {
      const envelope = encodeMessage(ctx.message, 'binary');
      const size = envelopeSizeBytes(envelope);
      if (size > this.maxMessageBytes) {
        throw new MessageTooLargeError(
          `message '${ctx.message.type}' is ${size} bytes, over the ${this.maxMessageBytes}-byte limit (maxMessageBytes)`,
          size,
          this.maxMessageBytes,
        );
      }
      ctx.item = { envelope, to: ctx.to };
    });
  }

  /** Validates `data` against `contract` (producer side) and prepares the publish item. */
  async prepare(
    contract: Contract,
    data: unknown,
    draft: Omit<Draft, 'type' | 'data' | 'version'>,
  ): Promise<{ message: Message; item: PublishItem }> {
    const valid = await validate(contract.schema, data, `message '${contract.type}'`);
    return this.prepareValid({ ...draft, type: contract.type, data: valid, version: contract.version });
  }

  async prepareValid(draft: Draft): Promise<{ message: Message; item: PublishItem }> {
    const ctx: PublishContext & { item?: PublishItem } = {
      message: this.buildMessage(draft),
      to: draft.to,
      endpoint: this.endpoint,
    };
    await this.run(ctx);
    return { message: ctx.message, item: ctx.item! };
  }

  private buildMessage(draft: Draft): Message {
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
      type: draft.type,
      version: draft.version,
      data: draft.data,
      headers: options.headers ?? {},
      time: new Date(now).toISOString(),
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
