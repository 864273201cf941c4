import type { BatchItem, BusEvent, HandlerContext } from './bus-types.js';
import type { Clock } from './clock.js';
import { sleep } from './clock.js';
import type { ContextDeps } from './context.js';
import { Context, DeadLetterRequest, faultType } from './context.js';
import type { Contract, RequestContract } from './contracts.js';
import { upcast, validateNow } from './contracts.js';
import { ClosedError, DecodeError, DelayedRetry, HandlerTimeoutError, NonRetryableError } from './errors.js';
import type { Message } from './message.js';
import { matchesHeaders, matchesPattern } from './names.js';
import type { Producer } from './producer.js';
import type { RetryPolicy } from './retry.js';
import { nextRetryDelay } from './retry.js';
import { SlotSet, type Slotted } from './slot-set.js';
import type { InboxStore } from './stores.js';
import type { ConsumerHandle, DeadLetterInfo, DeadLetterStore, Delivery, Transport } from './transport.js';
import { decodeEnvelope, envelopeOver, envelopeSizeBytes } from './wire.js';

/** One registered handler, as the consumer runs it. */
export interface Subscription {
  readonly pattern: string;
  readonly contract?: Contract | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly handler: (data: unknown, ctx: HandlerContext) => unknown;
  readonly retry: RetryPolicy;
  readonly timeoutMs?: number | undefined;
  readonly onDeadLetter: 'release' | 'park';
  readonly batch?: { readonly size: number; readonly maxWaitMs: number } | undefined;
}

/** What a queue consumer needs from its bus. */
export interface ConsumerDeps {
  readonly endpoint: string;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly producer: Producer;
  /** Middleware around `last` (the handlers); returns what `last` returned when there is none. */
  readonly run: (ctx: Context, last: (ctx: Context) => unknown) => unknown;
  readonly contracts: ReadonlyMap<string, Contract>;
  readonly routeCommand: ContextDeps['routeCommand'];
  readonly maxMessageBytes: number;
  readonly deadLetterStore: DeadLetterStore;
  readonly dedupStore: InboxStore;
  readonly dedupWindowMs: number;
  readonly random: () => number;
  readonly emit: (event: BusEvent) => void;
  /** False when nobody observes: skip building per-message events on the hot path. */
  readonly observed: boolean;
}

/** A delivery being worked on; settled at most once, whatever races (stop deadline, lease, kill). */
class Work implements Slotted {
  settled = false;
  slot = -1;
  private controller: AbortController | undefined;
  private abortReason: unknown;

  constructor(readonly delivery: Delivery) {}

  /** Made on first use: most handlers never look at their signal. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.abortReason !== undefined;
  }

  abort(reason: unknown): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }
}

interface PendingBatch {
  readonly items: { work: Work; ctx: Context; sub: Subscription; resolve: () => void }[];
  timer?: ReturnType<Clock['setTimeout']> | undefined;
}

/**
 * Takes one queue's deliveries and runs them through the handler pipeline: decode, checks, the
 * core's emulation of what the transport lacks (delay, priority, key order, dedup, TTL, DLQ),
 * middleware, handler, then exactly one settle by the retry policy.
 */
export class QueueConsumer {
  private handle: ConsumerHandle | undefined;
  private buffer: Work[] = [];
  /** Deliveries holding a handler slot: from dispatch until their settle is sent. */
  private readonly running = new SlotSet<Work>();
  /** Deliveries taken and not yet done with: running, or waiting for their settle to commit. */
  private inProcess = 0;
  private readonly idle = new Set<() => void>();
  private dispatchScheduled = false;
  private stopping = false;
  private killed = false;
  /** Emulated key order: the tail of each key's chain of handlers in this process. */
  private readonly keyChains = new Map<string, Promise<void>>();
  private readonly batches = new Map<Subscription, PendingBatch>();
  private readonly emulate: { priority: boolean; keys: boolean; dedup: boolean; deadLetter: boolean };
  /** Batches need room to fill: a batch subscription raises the handler limit to its size. */
  private readonly concurrency: number;
  private readonly byType = new Map<string, Subscription[]>();
  private readonly invokers = new Map<Subscription, (ctx: Context) => unknown>();
  /** What every context of a subscription shares, made once. */
  private readonly contextDeps = new Map<Subscription, ContextDeps>();
  private readonly anyHeaderFilter: boolean;

  constructor(
    readonly queue: string,
    readonly subscriptions: Subscription[],
    private readonly limits: { concurrency: number; prefetch: number; maxPrefetch: number; leaseMs: number },
    private readonly deps: ConsumerDeps,
  ) {
    const caps = deps.transport.capabilities;
    this.emulate = {
      priority: caps.priority !== 'native',
      keys: caps.keyOrdering !== 'native',
      dedup: caps.dedup !== 'native',
      deadLetter: caps.deadLetter !== 'native',
    };
    this.concurrency = Math.max(limits.concurrency, ...subscriptions.map((s) => s.batch?.size ?? 0));
    this.anyHeaderFilter = subscriptions.some((s) => s.headers !== undefined);
  }

  async start(): Promise<void> {
    this.handle = await this.deps.transport.consume(
      this.queue,
      {
        prefetch: this.limits.prefetch,
        maxPrefetch: this.limits.maxPrefetch,
        leaseMs: this.limits.leaseMs,
      },
      (delivery) => this.receive(delivery),
    );
  }

  private receive(delivery: Delivery): void {
    const work = new Work(delivery);
    if (this.stopping || this.killed) {
      void this.settle(work, () => delivery.release());
      return;
    }
    this.buffer.push(work);
    this.scheduleDispatch();
  }

  // Dispatch on the next turn so a burst of deliveries is in the buffer before we choose (priority emulation).
  private scheduleDispatch(): void {
    if (this.dispatchScheduled) return;
    this.dispatchScheduled = true;
    setImmediate(() => {
      this.dispatchScheduled = false;
      this.dispatch();
    });
  }

  private dispatch(): void {
    const concurrency = this.concurrency;
    while (this.buffer.length > 0 && this.running.size < concurrency && !this.stopping) {
      const index = this.nextIndex();
      // shift() is constant time in V8; splice(0, 1) moves the whole buffer.
      const work = index === 0 ? this.buffer.shift()! : this.buffer.splice(index, 1)[0]!;
      this.running.add(work);
      this.inProcess++;
      void this.process(work);
    }
  }

  /**
   * Which buffered delivery runs next. Emulated priority picks the highest in the buffer (so its reach
   * is the prefetch window); emulated key order then swaps in the earliest-published message of that
   * key, since key order wins over priority (DESIGN.md §2.8). Ids are time-ordered (UUIDv7).
   */
  private nextIndex(): number {
    let best = 0;
    if (this.emulate.priority) {
      for (let i = 1; i < this.buffer.length; i++) {
        if (
          (this.buffer[i]!.delivery.envelope.priority ?? 0) >
          (this.buffer[best]!.delivery.envelope.priority ?? 0)
        )
          best = i;
      }
    }
    const key = this.buffer[best]!.delivery.envelope.key;
    if (this.emulate.keys && key !== undefined) {
      for (let i = 0; i < this.buffer.length; i++) {
        const envelope = this.buffer[i]!.delivery.envelope;
        if (envelope.key === key && envelope.id < this.buffer[best]!.delivery.envelope.id) best = i;
      }
    }
    return best;
  }

  /**
   * Settles `work` once; later attempts (after a stop deadline or a kill) do nothing. The handler is
   * done once its settle is sent: its slot goes to the next delivery while the transport commits
   * (`concurrency` bounds handlers; the transport's `prefetch` bounds what is not yet settled).
   */
  private settle(work: Work, action: () => Promise<boolean>): Promise<boolean> {
    if (work.settled || this.killed) return Promise.resolve(false);
    work.settled = true;
    if (this.running.delete(work)) this.scheduleDispatch();
    try {
      return action();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Runs `work` to its settle's commit. Not an async function: a delivery whose handler finished
   * synchronously goes from decode to ack without an async frame (see `handleDelivery`).
   */
  private process(work: Work): void {
    let done: Promise<unknown> | undefined;
    try {
      const key = work.delivery.envelope.key;
      done =
        this.emulate.keys && key !== undefined
          ? this.processKeyed(work, key)
          : this.handleDelivery(work, work.delivery.attempt);
    } catch (error) {
      this.deps.emit({ kind: 'error', error, queue: this.queue });
    }
    if (done === undefined) this.processed(work);
    else
      done.then(
        () => this.processed(work),
        (error: unknown) => {
          this.deps.emit({ kind: 'error', error, queue: this.queue });
          this.processed(work);
        },
      );
  }

  private processed(work: Work): void {
    if (this.running.delete(work)) this.scheduleDispatch();
    if (--this.inProcess === 0) for (const wake of this.idle) wake();
  }

  private async processKeyed(work: Work, key: string): Promise<void> {
    const previous = this.keyChains.get(key) ?? Promise.resolve();
    const mine = previous.then(() => this.handleWithLocalRetries(work));
    const tail = mine.catch(() => {});
    this.keyChains.set(key, tail);
    await mine;
    if (this.keyChains.get(key) === tail) this.keyChains.delete(key);
  }

  /**
   * Emulated key order: a failing keyed message must hold its key, so it is retried here, in process,
   * instead of going back to a broker that would hand the next same-key message to someone else.
   */
  private async handleWithLocalRetries(work: Work): Promise<void> {
    let attempt = work.delivery.attempt;
    for (;;) {
      const outcome = await this.handleDelivery(work, attempt, true);
      if (outcome === undefined || work.settled || this.stopping) return;
      await work.delivery.extendLease(outcome + this.limits.leaseMs);
      await sleep(this.deps.clock, outcome, work.signal).catch(() => {});
      if (this.stopping) return;
      attempt++;
    }
  }

  /**
   * Runs one delivery to its settle. With `holdRetries`, a retry is not sent to the transport: the
   * delay is returned for the caller to wait and run again. Synchronous up to the first thing that
   * is not (a dedup lookup, an async schema, an async handler or middleware, the settle's commit):
   * returns undefined when nothing was left to wait for, else a promise of the outcome.
   */
  private handleDelivery(
    work: Work,
    attempt: number,
    holdRetries = false,
  ): Promise<number | undefined> | undefined {
    const { delivery } = work;
    const { envelope } = delivery;
    if (envelopeOver(envelope, this.deps.maxMessageBytes)) {
      const size = envelopeSizeBytes(envelope);
      return this.deadLetter(work, envelope.type, envelope.id, attempt, {
        reason: 'too-large',
        errorName: 'MessageTooLargeError',
        errorMessage: `message is ${size} bytes, over the ${this.deps.maxMessageBytes}-byte limit (maxMessageBytes)`,
      }).then(noOutcome);
    }
    let message: Message;
    try {
      message = decodeEnvelope(envelope);
    } catch (error) {
      const decodeError =
        error instanceof DecodeError ? error : new DecodeError(String(error), { cause: error });
      return this.deadLetter(work, envelope.type, envelope.id, attempt, {
        reason: 'decode',
        errorName: decodeError.name,
        errorMessage: decodeError.message,
      }).then(noOutcome);
    }
    // The clock only for a message that has a time to check (most have none).
    const now =
      message.expiresAt === undefined && message.deliverAt === undefined ? 0 : this.deps.transport.now();
    if (message.expiresAt !== undefined && message.expiresAt <= now) {
      return this.deadLetter(work, message.type, message.id, attempt, {
        reason: 'expired',
        errorMessage: `expired at ${new Date(message.expiresAt).toISOString()} before it was handled`,
      }).then(noOutcome);
    }
    if (message.deliverAt !== undefined && message.deliverAt > now) {
      return this.settle(work, () => delivery.defer(message.deliverAt!)).then(noOutcome);
    }
    if (this.emulate.dedup && message.dedupId !== undefined)
      return this.dedupThenHandle(work, message, attempt, holdRetries);
    return this.handleMessage(work, message, attempt, holdRetries);
  }

  /** Emulated dedup: a message whose dedupId was seen with another id is acked without running. */
  private async dedupThenHandle(
    work: Work,
    message: Message,
    attempt: number,
    holdRetries: boolean,
  ): Promise<number | undefined> {
    const first = await this.deps.dedupStore.putIfAbsent(
      `${this.queue}#dedup`,
      message.dedupId!,
      message.id,
      this.deps.dedupWindowMs,
    );
    if (first !== undefined && first !== message.id) {
      await this.settle(work, () => work.delivery.ack());
      return undefined;
    }
    return this.handleMessage(work, message, attempt, holdRetries);
  }

  /** `handleDelivery` from a decoded message on: route to handlers, validate, run, settle. */
  private handleMessage(
    work: Work,
    message: Message,
    attempt: number,
    holdRetries: boolean,
  ): Promise<number | undefined> | undefined {
    const { delivery } = work;
    let typeMatches = this.byType.get(message.type);
    if (!typeMatches) {
      typeMatches = this.subscriptions.filter((s) => matchesPattern(s.pattern, message.type));
      // Bounded: a queue sees few types; a flood of distinct types must not grow this without end.
      if (this.byType.size < 1_000) this.byType.set(message.type, typeMatches);
    }
    if (typeMatches.length === 0) {
      return this.deadLetter(work, message.type, message.id, attempt, {
        reason: 'rejected',
        errorMessage: `no handler for '${message.type}' on queue '${this.queue}'`,
      }).then(noOutcome);
    }
    const subs = this.anyHeaderFilter
      ? typeMatches.filter((s) => matchesHeaders(s.headers, message.headers))
      : typeMatches;
    if (subs.length === 0) {
      // Routed by a broader binding than the handlers' header filters (header filtering emulated).
      return this.settle(work, () => delivery.ack()).then(noOutcome);
    }
    const policy = subs[0]!.retry;
    if (attempt > policy.maxAttempts) {
      // The process died during the earlier attempts (each counted before it ran): stop here.
      return this.deadLetter(
        work,
        message.type,
        message.id,
        attempt - 1,
        {
          reason: 'max-attempts',
          errorMessage: `gave up after ${attempt - 1} attempts that did not finish (crash or lease expiry)`,
        },
        subs[0],
        message,
      ).then(noOutcome);
    }
    const contract = subs[0]!.contract ?? this.deps.contracts.get(message.type);
    if (contract) {
      let data: unknown;
      try {
        data = validateNow(
          contract.schema,
          upcast(contract, message.data, message.version),
          `message '${message.type}'`,
        );
      } catch (error) {
        return this.rejectInvalid(work, message, subs, attempt, error);
      }
      if (data instanceof Promise) {
        return data.then(
          (valid: unknown) => this.runValid(work, message, subs, attempt, holdRetries, valid),
          (error: unknown) => this.rejectInvalid(work, message, subs, attempt, error),
        );
      }
      return this.runValid(work, message, subs, attempt, holdRetries, data);
    }
    return this.runValid(work, message, subs, attempt, holdRetries, message.data);
  }

  private rejectInvalid(
    work: Work,
    message: Message,
    subs: readonly Subscription[],
    attempt: number,
    error: unknown,
  ): Promise<undefined> {
    return this.deadLetter(
      work,
      message.type,
      message.id,
      attempt,
      {
        reason: 'validation',
        errorName: (error as Error).name,
        errorMessage: (error as Error).message,
      },
      subs[0],
      message,
    ).then(noOutcome);
  }

  /** Runs the handlers on validated data, then settles. */
  private runValid(
    work: Work,
    message: Message,
    subs: readonly Subscription[],
    attempt: number,
    holdRetries: boolean,
    data: unknown,
  ): Promise<number | undefined> | undefined {
    // The message was decoded for this delivery alone: set the validated data in place.
    (message as { data: unknown }).data = data;
    const batchSub = subs.find((s) => s.batch);
    if (batchSub) return this.joinBatch(work, message, batchSub, attempt);

    const sub = subs[0]!;
    const ctx = this.context(work, message, sub, attempt);
    const outcome = this.runHandlers(work, ctx, subs, message);
    if (outcome !== HANDLED) {
      return outcome.then((error) => this.conclude(work, ctx, message, sub, attempt, error, holdRetries));
    }
    if (ctx.transacted || ctx.afterAck.length > 0 || this.deps.observed || ctx.outputRunning)
      return this.conclude(work, ctx, message, sub, attempt, undefined, holdRetries);
    // The handlers finished synchronously and nothing waits for the ack's commit but its failure:
    // the ack goes out with no async frame held until it commits.
    return this.settle(work, () => work.delivery.ack(ctx.outgoing)).then(noOutcome, (storeError) => {
      // The output could not be stored (no route, broker down): the message was not acked.
      work.settled = false;
      return this.conclude(work, ctx, message, sub, attempt, storeError, holdRetries);
    });
  }

  private context(work: Work, message: Message, sub: Subscription, attempt: number): Context {
    let deps = this.contextDeps.get(sub);
    if (!deps) {
      deps = {
        endpoint: this.deps.endpoint,
        producer: this.deps.producer,
        routeCommand: this.deps.routeCommand,
        requestContract: sub.contract?.kind === 'request' ? (sub.contract as RequestContract) : undefined,
      };
      this.contextDeps.set(sub, deps);
    }
    return new Context(message, work.delivery, attempt, work, deps);
  }

  /** The innermost step for a delivery handled by `sub` alone, made once per subscription. */
  private invokerOf(sub: Subscription): (ctx: Context) => unknown {
    let invoke = this.invokers.get(sub);
    if (!invoke) {
      // Not async: a synchronous handler's delivery needs no promise (see `runHandlers`).
      invoke = (c) => (c.skipped ? undefined : sub.handler(c.data, c));
      this.invokers.set(sub, invoke);
    }
    return invoke;
  }

  /** Runs the middleware and every matching handler; resolves the error, or undefined on success. */
  private runHandlers(
    work: Work,
    ctx: Context,
    subs: readonly Subscription[],
    message: Message,
  ): typeof HANDLED | Promise<unknown> {
    const timeoutMs = subs[0]!.timeoutMs;
    if (timeoutMs !== undefined) return this.runHandlersWithTimeout(work, ctx, subs, message, timeoutMs);
    // No timeout, the common case: no async frame of its own, and no promise at all when the
    // handler (and the middleware, if any) returned none.
    let run: unknown;
    try {
      run = this.deps.run(ctx, this.innermost(subs, message));
    } catch (error) {
      return Promise.resolve(handlerError(error));
    }
    if (!isThenable(run)) return HANDLED;
    return Promise.resolve(run).then(noError, handlerError);
  }

  private async runHandlersWithTimeout(
    work: Work,
    ctx: Context,
    subs: readonly Subscription[],
    message: Message,
    timeoutMs: number,
  ): Promise<unknown> {
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    try {
      await Promise.race([
        this.deps.run(ctx, this.innermost(subs, message)),
        new Promise<never>((_, reject) => {
          timer = this.deps.clock.setTimeout(() => {
            const error = new HandlerTimeoutError(
              `handler for '${message.type}' on '${this.queue}' ran past ${timeoutMs} ms`,
            );
            work.abort(error);
            reject(error);
          }, timeoutMs);
        }),
      ]);
      return undefined;
    } catch (error) {
      return handlerError(error);
    } finally {
      if (timer !== undefined) this.deps.clock.clearTimeout(timer);
    }
  }

  /** The innermost step of the chain: every matching handler, and the reply to a request. */
  private innermost(subs: readonly Subscription[], message: Message): (ctx: Context) => unknown {
    if (subs.length === 1 && subs[0]!.contract?.kind !== 'request') return this.invokerOf(subs[0]!);
    return async (c) => {
      if (c.skipped) return;
      for (const sub of subs) {
        const result = await sub.handler(c.data, c);
        if (sub.contract?.kind === 'request' && result !== undefined && message.replyTo !== undefined)
          await c.reply(result);
      }
    };
  }

  /**
   * Settles after the handler ran, once the output it started is held: ack with its output, or
   * retry / dead-letter by the policy.
   */
  private async conclude(
    work: Work,
    ctx: Context,
    message: Message,
    sub: Subscription,
    attempt: number,
    error: unknown,
    holdRetries: boolean,
  ): Promise<number | undefined> {
    // Output the handler started and did not await goes with its ack all the same.
    const output = ctx.outputPending();
    if (output !== undefined) await output;
    if (ctx.transacted) {
      // ctx.transact already stored the output and acked in the application's transaction.
      work.settled = true;
      if (error === undefined) this.deps.emit({ kind: 'consumed', message, queue: this.queue, attempt });
      else this.deps.emit({ kind: 'error', error, queue: this.queue });
      for (const after of ctx.afterAck) await after();
      return undefined;
    }
    if (error === undefined) {
      try {
        const acked = await this.settle(work, () => work.delivery.ack(ctx.outgoing));
        if (acked && this.deps.observed) {
          for (const item of ctx.outgoing)
            this.deps.emit({ kind: 'published', message: decodeEnvelope(item.envelope), to: item.to });
          this.deps.emit({ kind: 'consumed', message, queue: this.queue, attempt });
        }
        if (acked && ctx.afterAck.length > 0) {
          for (const after of ctx.afterAck) await after();
        }
        return undefined;
      } catch (storeError) {
        // The output could not be stored (no route, broker down): the message was not acked.
        work.settled = false;
        error = storeError;
      }
    }
    if (this.stopping && work.aborted) {
      await this.settle(work, () => work.delivery.release());
      return undefined;
    }
    if (error instanceof DeadLetterRequest) {
      await this.deadLetter(
        work,
        message.type,
        message.id,
        attempt,
        { reason: error.reason, errorMessage: error.message },
        sub,
        message,
      );
      return undefined;
    }
    if (error instanceof NonRetryableError) {
      await this.deadLetter(
        work,
        message.type,
        message.id,
        attempt,
        describe('rejected', error),
        sub,
        message,
      );
      return undefined;
    }
    const delayMs =
      error instanceof DelayedRetry
        ? attempt < sub.retry.maxAttempts
          ? error.delayMs
          : null
        : nextRetryDelay(sub.retry, attempt, this.deps.random);
    if (delayMs === null) {
      await this.deadLetter(
        work,
        message.type,
        message.id,
        attempt,
        describe('max-attempts', error),
        sub,
        message,
      );
      return undefined;
    }
    this.deps.emit({ kind: 'retried', message, queue: this.queue, attempt, delayMs, error });
    if (holdRetries) return delayMs;
    await this.settle(work, () => work.delivery.retry(delayMs));
    return undefined;
  }

  private joinBatch(work: Work, message: Message, sub: Subscription, attempt: number): Promise<undefined> {
    const ctx = this.context(work, message, sub, attempt);
    return new Promise((resolve) => {
      let batch = this.batches.get(sub);
      if (!batch) {
        const fresh: PendingBatch = { items: [] };
        batch = fresh;
        this.batches.set(sub, fresh);
        fresh.timer = this.deps.clock.setTimeout(() => void this.runBatch(sub, fresh), sub.batch!.maxWaitMs);
      }
      batch.items.push({ work, ctx, sub, resolve: () => resolve(undefined) });
      if (batch.items.length >= sub.batch!.size) void this.runBatch(sub, batch);
    });
  }

  private async runBatch(sub: Subscription, batch: PendingBatch): Promise<void> {
    if (this.batches.get(sub) !== batch) return;
    this.batches.delete(sub);
    if (batch.timer !== undefined) this.deps.clock.clearTimeout(batch.timer);
    const failures = new Map<number, unknown>();
    const items: BatchItem<unknown>[] = batch.items.map(({ ctx }, i) => ({
      data: ctx.data,
      ctx,
      fail: (error: unknown) => void failures.set(i, error ?? new Error('failed')),
    }));
    let batchError: unknown;
    try {
      await (sub.handler as unknown as (items: BatchItem<unknown>[]) => unknown)(items);
    } catch (error) {
      batchError = error ?? new Error('batch handler threw undefined');
    }
    await Promise.all(
      batch.items.map(async ({ work, ctx, resolve }, i) => {
        try {
          const error = batchError ?? failures.get(i);
          await this.conclude(work, ctx, ctx.message, sub, ctx.attempt, error, false);
        } finally {
          resolve();
        }
      }),
    );
  }

  private async deadLetter(
    work: Work,
    type: string,
    id: string,
    attempts: number,
    details: Pick<DeadLetterInfo, 'reason' | 'errorName' | 'errorCode' | 'errorMessage'>,
    sub?: Subscription,
    message?: Message,
  ): Promise<void> {
    const { delivery } = work;
    const info: DeadLetterInfo = {
      ...details,
      attempts,
      queue: this.queue,
      failedAt: this.deps.transport.now(),
      parkKey: sub?.onDeadLetter === 'park' && delivery.envelope.key !== undefined,
    };
    const done = await this.settle(work, async () => {
      if (!this.emulate.deadLetter) return delivery.deadLetter(info);
      await this.deps.deadLetterStore.add({ envelope: delivery.envelope, info });
      return delivery.ack();
    });
    if (!done) return;
    this.deps.emit({
      kind: 'dead-lettered',
      type,
      id,
      queue: this.queue,
      reason: info.reason,
      error: details.errorMessage,
    });
    if (message?.replyTo !== undefined && details.reason !== 'expired')
      await this.sendFault(message, details);
  }

  /** Tells a requester its request failed for good, so it need not wait for the timeout. */
  private async sendFault(
    message: Message,
    details: Pick<DeadLetterInfo, 'reason' | 'errorName' | 'errorCode' | 'errorMessage'>,
  ): Promise<void> {
    try {
      const { item } = await this.deps.producer.prepareValid({
        type: faultType,
        data: {
          name: details.errorName ?? 'Error',
          code: details.errorCode,
          message: details.errorMessage ?? details.reason,
        },
        version: 1,
        options: {},
        to: { kind: 'queue', queue: message.replyTo! },
        lineage: { correlationId: message.correlationId, causationId: message.id },
      });
      await this.deps.transport.publish([item]);
    } catch {
      // Replies are not durable (DESIGN.md §2.11): a requester that is gone times out.
    }
  }

  /** Graceful stop (DESIGN.md §2.15). */
  async stop(timeoutMs: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.handle?.stop();
    const waiting = this.buffer.splice(0);
    await Promise.all(waiting.map((work) => this.settle(work, () => work.delivery.release())));
    for (const [sub, batch] of this.batches) {
      this.batches.delete(sub);
      if (batch.timer !== undefined) this.deps.clock.clearTimeout(batch.timer);
      await Promise.all(
        batch.items.map(async ({ work, resolve }) => {
          await this.settle(work, () => work.delivery.release());
          resolve();
        }),
      );
    }
    if (this.inProcess > 0) {
      let timer: ReturnType<Clock['setTimeout']> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idle.add(resolve)),
        new Promise<void>((resolve) => {
          timer = this.deps.clock.setTimeout(resolve, timeoutMs);
        }),
      ]);
      if (timer !== undefined) this.deps.clock.clearTimeout(timer);
    }
    // Past the deadline: tell the stragglers and hand their messages back unacked, uncounted.
    const reason = new ClosedError(`the bus of '${this.deps.endpoint}' stopped`);
    for (const work of this.running.values()) {
      work.abort(reason);
      await this.settle(work, () => work.delivery.release());
    }
  }

  /** Crash stand-in: stop taking deliveries and settle nothing more. */
  kill(): void {
    this.killed = true;
    this.stopping = true;
    void this.handle?.stop();
    for (const work of this.running.values()) work.abort(new ClosedError('killed'));
  }
}

function noError(): undefined {
  return undefined;
}

/** A step's settle outcome when nothing was held back for a retry. */
function noOutcome(): undefined {
  return undefined;
}

/** `runHandlers`: the handlers finished synchronously, without error. */
const HANDLED = Symbol('handled');

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** What a handler threw, as the error its outcome carries (a throw of undefined still fails it). */
function handlerError(error: unknown): unknown {
  return error ?? new Error('handler threw undefined');
}

function describe(
  reason: string,
  error: unknown,
): Pick<DeadLetterInfo, 'reason' | 'errorName' | 'errorCode' | 'errorMessage'> {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      reason,
      errorName: error.name,
      errorCode: typeof code === 'string' ? code : undefined,
      errorMessage: error.message,
    };
  }
  return { reason, errorName: 'Error', errorMessage: String(error) };
}
