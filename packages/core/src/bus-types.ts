import type { Clock } from './clock.js';
import type {
  CommandContract,
  Contract,
  DataOf,
  EventContract,
  InputOf,
  ReplyInputOf,
  ReplyOf,
  RequestContract,
} from './contracts.js';
import type { Message } from './message.js';
import type { Middleware } from './middleware.js';
import type { RetryPolicy } from './retry.js';
import type { Saga } from './saga.js';
import type { InboxStore, SagaStore } from './stores.js';
import type { TopologyDefinition } from './topology.js';
import type {
  DeadLetter,
  DeadLetterFilter,
  DeadLetterReason,
  DeadLetterStore,
  Destination,
  QueueStats,
  Transport,
} from './transport.js';

/** Options of `publish`, `send` and `request`. Times are epoch ms or `Date`s; durations are ms. */
export interface PublishOptions {
  /** User headers (names must not start with `ce-`). */
  headers?: Record<string, string>;
  /** Ordering key: same-key messages are handled one at a time, in publish order. */
  key?: string;
  /** 0 (default) to 9; higher first. */
  priority?: number;
  /** Hold the message this long before delivery. */
  delayMs?: number;
  /** Hold the message until this time. */
  deliverAt?: number | Date;
  /** Dead-letter (reason `expired`) if not delivered within this long. */
  ttlMs?: number;
  /** Dead-letter (reason `expired`) if not delivered by this time. */
  expiresAt?: number | Date;
  /** Store the message once per queue within the dedup window. */
  dedupId?: string;
  /** Conversation id; defaults to the message's own id (or the handled message's, inside a handler). */
  correlationId?: string;
  /** Use this id instead of a new UUIDv7. */
  id?: string;
}

/** Options of `bus.request`. */
export interface RequestOptions extends PublishOptions {
  /** How long to wait for the reply (default: the bus's `requestTimeoutMs`). */
  timeoutMs?: number;
}

/** What a handler is given besides the data: metadata, output methods, and a cancellation signal. */
export interface HandlerContext<T = unknown> {
  readonly message: Message<T>;
  readonly data: T;
  readonly id: string;
  readonly type: string;
  /** 1 on the first delivery; counted durably before the handler runs. */
  readonly attempt: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly key: string | undefined;
  readonly correlationId: string;
  readonly causationId: string | undefined;
  /** The queue the message was taken from. */
  readonly queue: string;
  /** This bus's endpoint. */
  readonly endpoint: string;
  /** Aborts when the bus stops or the handler's timeout passes. */
  readonly signal: AbortSignal;
  /** Publish an event once the handler succeeds (DESIGN.md §2.4). Validated now. */
  publish<C extends EventContract>(contract: C, data: InputOf<C>, options?: PublishOptions): Promise<void>;
  /** Send a command once the handler succeeds. Validated now. */
  send<C extends CommandContract>(contract: C, data: InputOf<C>, options?: PublishOptions): Promise<void>;
  /** Reply to a request once the handler succeeds (request handlers may also just return the reply). */
  reply(data: unknown): Promise<void>;
  /** Dead-letter this message now, with `reason`, skipping any retries. Never returns. */
  deadLetter(reason: string, message?: string): never;
  /** Ask for more time before the lease runs out. Resolves false where the transport cannot. */
  extendLease(ms: number): Promise<boolean>;
  /**
   * Exactly-once effects on the SQLite transport: runs `work(db)` (synchronously: better-sqlite3
   * transactions cannot span an `await`), the output held so far and the ack in one transaction.
   * Call it last; output published after it is refused. Throws `UnsupportedError` on other transports.
   * @example ctx.transact((db: Database) => db.prepare('UPDATE stock SET qty = qty - 1 WHERE sku = ?').run(sku))
   */
  transact<R, TDb = unknown>(work: (db: TDb) => R): R;
}

/** A message handler: the data (typed from the contract) and the context. */
export type Handler<T> = (data: T, ctx: HandlerContext<T>) => unknown;

/** Middleware around every handler: `(ctx, next) => Promise<void>`. */
export type ConsumeMiddleware = Middleware<HandlerContext>;

/** What a publish middleware sees: the message about to be encoded and where it goes. */
export interface PublishContext {
  readonly message: Message;
  readonly to: Destination;
  readonly endpoint: string;
}
/** Middleware around every publish (outermost first); it may replace `ctx.message`. */
export type PublishMiddleware = Middleware<PublishContext>;

/**
 * Per-handler options. Queue-level ones (`concurrency`, `prefetch`, `maxPrefetch`, `leaseMs`) need a
 * `queue` of its own.
 */
export interface SubscriptionOptions {
  /** Only messages whose headers all equal these. */
  headers?: Record<string, string>;
  /** Overrides of the bus's retry policy for this handler. */
  retry?: Partial<RetryPolicy>;
  /** Take these messages from a queue of this name instead of the endpoint's queue. */
  queue?: string;
  /** Handlers in flight at once on this handler's own queue (default: the bus's). */
  concurrency?: number;
  /** Deliveries buffered from the broker on this handler's own queue (default: the bus's). */
  prefetch?: number;
  /** How far the transport may grow that buffer while deliveries settle quickly (see `BusOptions`). */
  maxPrefetch?: number;
  /** Lease of a delivery on this handler's own queue, in ms (default: the bus's). */
  leaseMs?: number;
  /** Abort and fail the handler after this many ms (HandlerTimeoutError, retried by policy). */
  timeoutMs?: number;
  /** For keyed messages: after a dead letter, let the key move on (`release`, default) or hold it (`park`). */
  onDeadLetter?: 'release' | 'park';
}

/** Options of `bus.onBatch`. */
export interface BatchOptions extends SubscriptionOptions {
  /** Most messages in one batch (default 100). */
  size?: number;
  /** Longest wait for a batch to fill, in ms (default 50). */
  maxWaitMs?: number;
}

/** One message of a batch; not failed means acked when the batch handler resolves. */
export interface BatchItem<T> {
  readonly data: T;
  readonly ctx: HandlerContext<T>;
  /** Fail this message alone: retried by policy like a thrown error. */
  fail(error: unknown): void;
}

/** What the `observer` sees. */
export type BusEvent =
  | { readonly kind: 'published'; readonly message: Message; readonly to: Destination }
  | { readonly kind: 'consumed'; readonly message: Message; readonly queue: string; readonly attempt: number }
  | {
      readonly kind: 'retried';
      readonly message: Message;
      readonly queue: string;
      readonly attempt: number;
      readonly delayMs: number;
      readonly error: unknown;
    }
  | {
      readonly kind: 'dead-lettered';
      readonly type: string;
      readonly id: string;
      readonly queue: string;
      readonly reason: DeadLetterReason;
      readonly error?: unknown;
    }
  | { readonly kind: 'error'; readonly error: unknown; readonly queue?: string };

/** Options of `createBus`; docs/options.md lists them with their defaults. */
export interface BusOptions {
  /** This service's name; its queue has the same name. */
  endpoint: string;
  transport: Transport;
  /** The whole system's endpoints and what they take, so this process declares all queues and routes. */
  topology?: TopologyDefinition;
  /** Command type to owning endpoint, for commands the topology does not name. */
  routes?: Record<string, string>;
  /** Contracts this bus should know by type (to validate pattern-subscribed messages). */
  contracts?: readonly Contract[];
  /** Clock for retries, timeouts and delays (default: the machine's). */
  clock?: Clock;
  /** Largest encoded message in bytes (default 1 MiB = 1,048,576). */
  maxMessageBytes?: number;
  /** Default retry policy (see `RetryPolicy` for its defaults). */
  retry?: Partial<RetryPolicy>;
  /** Handlers in flight at once per queue (default 16). */
  concurrency?: number;
  /** Deliveries buffered from the broker per queue (default 2 × concurrency). */
  prefetch?: number;
  /**
   * Lets the transport grow the buffer up to this many while deliveries settle within milliseconds,
   * and shrink it back to `prefetch` when they do not (default 512 when `prefetch` is not given,
   * else `prefetch`: a fixed window). Transports that keep a fixed window use `prefetch`.
   */
  maxPrefetch?: number;
  /** Lease of a delivery in ms; a handler that runs longer must `extendLease` (default 30,000). */
  leaseMs?: number;
  /** Middleware around every handler, outermost first. */
  middleware?: readonly ConsumeMiddleware[];
  /** Middleware around every publish, outermost first. */
  publishMiddleware?: readonly PublishMiddleware[];
  /** Where the core keeps dead letters when the transport has no DLQ (default: in memory). */
  deadLetterStore?: DeadLetterStore;
  /** Where the core remembers dedupIds when the transport cannot dedup (default: in memory). */
  dedupStore?: InboxStore;
  /** How long dedupIds are remembered when the core emulates dedup, in ms (default 600,000). */
  dedupWindowMs?: number;
  /** Default request timeout in ms (default 30,000). */
  requestTimeoutMs?: number;
  /** Sees what the bus does: publishes, consumes, retries, dead letters, background errors. */
  observer?: (event: BusEvent) => void;
  /** Random numbers in [0, 1) for retry jitter (default Math.random); tests seed it. */
  random?: () => number;
}

/** Options of `bus.stop`. */
export interface StopOptions {
  /** Longest wait for in-flight handlers, in ms (default 10,000); the rest are returned unacked. */
  timeoutMs?: number;
}

/** Filter and page of `bus.deadLetters.list`. */
export interface DeadLetterListOptions extends DeadLetterFilter {
  /** Page size (default 100). */
  limit?: number;
  cursor?: string;
}

/** A dead letter as the bus lists it: the stored envelope, why it failed, and that reason as headers. */
export interface DeadLetterView extends DeadLetter {
  /** The reason and failure details as headers: `courier-dlq-reason`, `courier-dlq-error-name`, ... */
  readonly headers: Readonly<Record<string, string>>;
}

/** List, replay and purge a queue's dead letters (DESIGN.md §2.7). */
export interface DeadLetterApi {
  list(
    queue: string,
    options?: DeadLetterListOptions,
  ): Promise<{ items: DeadLetterView[]; nextCursor?: string | undefined }>;
  /**
   * Puts matching dead letters back on their original queue (not the topic): same id, attempts reset,
   * dedup bypassed, a past `expiresAt` cleared. At-least-once. Resolves how many were replayed.
   */
  replay(queue: string, filter?: DeadLetterFilter): Promise<number>;
  /** Deletes matching dead letters; resolves how many. */
  purge(queue: string, filter?: DeadLetterFilter): Promise<number>;
}

/** Where a saga keeps its state and which queue it takes its messages from. */
export interface SagaRegistration {
  /** State per instance: `memorySagaStore()` for tests, `transport.sagaStore()` on SQLite. */
  store: SagaStore;
  /** A queue of its own (default: the endpoint's queue). */
  queue?: string;
  /** Retry policy of its steps (default: the bus's). */
  retry?: Partial<RetryPolicy>;
}

/** An endpoint's handle on the message system: register handlers, publish, send, request, start, stop. */
export interface Bus {
  readonly endpoint: string;
  readonly transport: Transport;
  /** Handle an event (by contract, or by pattern with `*`/`#`) on this endpoint's queue. */
  on<C extends EventContract>(contract: C, handler: Handler<DataOf<C>>, options?: SubscriptionOptions): Bus;
  on(pattern: string, handler: Handler<unknown>, options?: SubscriptionOptions): Bus;
  /** Own a command: this endpoint becomes its route. */
  handle<C extends CommandContract>(
    contract: C,
    handler: Handler<DataOf<C>>,
    options?: SubscriptionOptions,
  ): Bus;
  /** Answer a request: the handler returns (or `ctx.reply`s) the reply. */
  handle<C extends RequestContract>(
    contract: C,
    handler: (data: DataOf<C>, ctx: HandlerContext<DataOf<C>>) => ReplyInputOf<C> | Promise<ReplyInputOf<C>>,
    options?: SubscriptionOptions,
  ): Bus;
  /** Handle messages of an event or command contract in batches. */
  onBatch<C extends EventContract | CommandContract>(
    contract: C,
    handler: (items: BatchItem<DataOf<C>>[]) => Promise<void> | void,
    options?: BatchOptions,
  ): Bus;
  /** Runs a saga (made with `defineSaga`) on this endpoint: its steps become handlers. */
  saga<TState>(saga: Saga<TState>, options: SagaRegistration): Bus;
  publish<C extends EventContract>(
    contract: C,
    data: InputOf<C>,
    options?: PublishOptions,
  ): Promise<Message<DataOf<C>>>;
  send<C extends CommandContract>(
    contract: C,
    data: InputOf<C>,
    options?: PublishOptions,
  ): Promise<Message<DataOf<C>>>;
  request<C extends RequestContract>(
    contract: C,
    data: InputOf<C>,
    options?: RequestOptions,
  ): Promise<ReplyOf<C>>;
  /** Declares the topology and starts consuming. */
  start(): Promise<void>;
  /** Graceful stop (DESIGN.md §2.15); idempotent. */
  stop(options?: StopOptions): Promise<void>;
  /** Like a crash, for tests: stop at once, settle nothing, close the transport abandoning its leases. */
  kill(): Promise<void>;
  readonly deadLetters: DeadLetterApi;
  stats(queue?: string): Promise<QueueStats>;
}
