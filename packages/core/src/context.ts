import type { HandlerContext, PublishOptions } from './bus-types.js';
import type { CommandContract, Contract, EventContract, RequestContract } from './contracts.js';
import { validate } from './contracts.js';
import { ConfigurationError, UnsupportedError } from './errors.js';
import { deriveMessageId } from './ids.js';
import type { Message } from './message.js';
import type { Producer } from './producer.js';
import type { Delivery, Destination, PublishItem } from './transport.js';

// Shared by every context until the consumer sets its handlers: no closure per message.
const noHandlers = async (): Promise<void> => {};

/** Thrown by `ctx.deadLetter`: not an error, a request to skip the retries. */
export class DeadLetterRequest {
  constructor(
    readonly reason: string,
    readonly message: string,
  ) {}
}

/** Type of the reply message to a request, and of the failure returned instead of one. */
export const replyType = 'courier.reply';
/** Type of the message a failed request gets instead of its reply. */
export const faultType = 'courier.fault';

/** What a handler context needs from its bus. */
export interface ContextDeps {
  readonly endpoint: string;
  readonly producer: Producer;
  readonly routeCommand: (type: string) => Destination;
  readonly requestContract?: RequestContract | undefined;
}

/**
 * The handler's view of one delivery. Output is held in `outgoing` and stored with the ack only if the
 * handler succeeds; output ids derive from the handled message's id, the queue and the output's index.
 */
export class Context<T = unknown> implements HandlerContext<T> {
  readonly outgoing: PublishItem[] = [];
  readonly afterAck: (() => Promise<void>)[] = [];
  /** Set by the inbox: the message was handled before, ack without running the handler. */
  skipped = false;
  /** The innermost step of the middleware chain: the handlers (a promise only if they returned one). */
  final: (ctx: Context) => unknown = noHandlers;
  data: T;
  private outputIndex = 0;
  /** Publishes, sends and replies started and not finished (see `outputPending`). */
  private outputsRunning = 0;
  private outputWaiters: (() => void)[] | undefined;

  constructor(
    readonly message: Message<T>,
    private readonly delivery: Delivery,
    readonly attempt: number,
    /** Whose `signal` is the handler's (made only when a handler asks for it). */
    private readonly signalSource: { readonly signal: AbortSignal },
    private readonly deps: ContextDeps,
  ) {
    this.data = message.data;
  }

  get signal(): AbortSignal {
    return this.signalSource.signal;
  }

  get id() {
    return this.message.id;
  }
  get type() {
    return this.message.type;
  }
  get headers() {
    return this.message.headers;
  }
  get key() {
    return this.message.key;
  }
  get correlationId() {
    return this.message.correlationId;
  }
  get causationId() {
    return this.message.causationId;
  }
  get queue() {
    return this.delivery.queue;
  }
  get endpoint() {
    return this.deps.endpoint;
  }

  publish<C extends EventContract>(contract: C, data: unknown, options: PublishOptions = {}): Promise<void> {
    return this.hold(contract, data, options, { kind: 'topic' });
  }

  send<C extends CommandContract>(contract: C, data: unknown, options: PublishOptions = {}): Promise<void> {
    return this.hold(contract, data, options, this.deps.routeCommand(contract.type));
  }

  async reply(data: unknown): Promise<void> {
    const replyTo = this.message.replyTo;
    if (replyTo === undefined) return;
    await this.tracked(async () => {
      const contract = this.deps.requestContract;
      const valid = contract ? await validate(contract.replySchema, data, `reply to '${this.type}'`) : data;
      // A requester that stopped took its reply queue with it; replies are not durable, so drop it then.
      await this.holdValid(replyType, valid, 1, {}, { kind: 'queue', queue: replyTo }, true);
    });
  }

  /**
   * Core use: undefined when every publish, send and reply the handler started has finished, else
   * a promise that resolves when they have. The settle waits for them, so output a handler did not
   * await still goes with its ack (one that fails rejects its own promise, as ever).
   */
  outputPending(): Promise<void> | undefined {
    if (this.outputsRunning === 0) return undefined;
    this.outputWaiters ??= [];
    const waiters = this.outputWaiters;
    return new Promise((resolve) => {
      waiters.push(resolve);
    });
  }

  /** Core use: whether a publish, send or reply the handler started is still running. */
  get outputRunning(): boolean {
    return this.outputsRunning > 0;
  }

  /** Runs one publish, send or reply, counted in `outputRunning` until it has finished. */
  private async tracked(output: () => Promise<void>): Promise<void> {
    this.outputsRunning++;
    try {
      await output();
    } finally {
      if (--this.outputsRunning === 0 && this.outputWaiters !== undefined)
        for (const resolve of this.outputWaiters.splice(0)) resolve();
    }
  }

  deadLetter(reason: string, message = `dead-lettered by the handler: ${reason}`): never {
    throw new DeadLetterRequest(reason, message);
  }

  extendLease(ms: number): Promise<boolean> {
    return this.delivery.extendLease(ms);
  }

  /** True where `transact` is possible (the transport is the application's database). */
  canTransact(): boolean {
    return typeof this.delivery.transact === 'function' && !this.transacted;
  }

  /** Set once `transact` committed: the delivery is acked and its output stored. */
  transacted = false;

  transact<R, TDb = unknown>(work: (db: TDb) => R): R {
    if (!this.delivery.transact) {
      throw new UnsupportedError(
        `ctx.transact needs a transport that is also the application's database (sqlite); queue '${this.delivery.queue}' is not on one`,
      );
    }
    if (this.transacted)
      throw new ConfigurationError('ctx.transact runs once per handling: put all the work in one call');
    const result = this.delivery.transact(work as (db: unknown) => R, this.outgoing);
    this.transacted = true;
    return result;
  }

  /** Core use (saga timeouts): hold a message of an internal type for one queue, without a contract. */
  holdForQueue(queue: string, type: string, data: unknown, options: PublishOptions): Promise<void> {
    return this.tracked(() => this.holdValid(type, data, 1, options, { kind: 'queue', queue }));
  }

  /** Core use: where the held output stands, to go back to it when an attempt inside a handler is redone. */
  checkpoint(): { readonly length: number; readonly index: number } {
    return { length: this.outgoing.length, index: this.outputIndex };
  }

  /** Drops the output held since `mark` and reuses its indexes, so a redone attempt makes the same ids. */
  rollback(mark: { readonly length: number; readonly index: number }): void {
    this.outgoing.length = mark.length;
    this.outputIndex = mark.index;
  }

  private assertNotTransacted(): void {
    if (this.transacted) {
      throw new ConfigurationError(
        'output after ctx.transact cannot be stored with it: publish and send before calling transact',
      );
    }
  }

  private hold(contract: Contract, data: unknown, options: PublishOptions, to: Destination): Promise<void> {
    return this.tracked(async () => {
      const valid = await validate(contract.schema, data, `message '${contract.type}'`);
      await this.holdValid(contract.type, valid, contract.version, options, to);
    });
  }

  private async holdValid(
    type: string,
    data: unknown,
    version: number,
    options: PublishOptions,
    to: Destination,
    dropIfNoQueue = false,
  ): Promise<void> {
    this.assertNotTransacted();
    const id = deriveMessageId(this.message.id, this.outputIndex++, this.delivery.queue);
    const { item } = await this.deps.producer.prepareValid({
      type,
      data,
      version,
      options,
      to,
      id,
      // Same id on a redelivery, so transport dedup drops the copy stored before a crash.
      dedupId: options.dedupId ?? id,
      lineage: { correlationId: this.message.correlationId, causationId: this.message.id },
    });
    this.outgoing.push(dropIfNoQueue ? { ...item, dropIfNoQueue } : item);
  }
}
