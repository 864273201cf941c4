/**
 * The transport interface: the one seam between the bus and a broker (DESIGN.md §3).
 *
 * A transport stores and routes opaque envelopes. It never decodes bodies and never sees a schema;
 * the core above it does encoding, validation, retry policy, request/reply and sagas, and emulates
 * what a broker lacks (see `Capabilities`). Every later broker (SQLite, RabbitMQ, NATS JetStream,
 * Redis, PostgreSQL) implements exactly this, and `runTransportSuite` checks that it keeps the
 * promises of DESIGN.md §2.
 */

/** How much a resolved publish survives (DESIGN.md §2). */
export type Durability = 'none' | 'process-crash' | 'fsync';

/** The abilities a transport may have natively. The core emulates the ones declared `emulated`. */
export type Capability =
  | 'delay'
  | 'priority'
  | 'keyOrdering'
  | 'ttl'
  | 'dedup'
  | 'deadLetter'
  | 'leaseExtension'
  /** A settle under a lease that ran out is refused (`false`), so it cannot settle the redelivery. */
  | 'fencedLeases'
  | 'durableAttempts'
  | 'headerFilter';

/**
 * `native`: the broker does it. `emulated`: the core does it on top of the required methods.
 * `{ absent }`: neither can, with the reason (cases that need it are skipped, printing the reason).
 */
export type CapabilitySupport = 'native' | 'emulated' | { absent: string };

/** What a transport declares for each capability. */
export type Capabilities = Readonly<Record<Capability, CapabilitySupport>>;

/**
 * What a transport stores and delivers. Routing and scheduling fields are lifted out of the headers
 * so a broker can act on them natively; `headers` holds the CloudEvents attributes (binary content
 * mode, `ce-*`) and the user's headers; `body` is the encoded data. Treat it as immutable.
 */
export interface Envelope {
  readonly id: string;
  readonly type: string;
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The body's bytes. A delivery's envelope may make them only when read (a getter, as the SQLite
   * transport's does when it has `bodyText`): copy an envelope field by field, not with a spread.
   */
  readonly body: Uint8Array;
  /**
   * `body` as UTF-8 text, when whoever built the envelope had it (Courier's own JSON bodies); it then
   * equals `body` decoded. A transport that stores text may store and return this instead of bytes,
   * which spares an encode and a decode per message; every other transport can ignore it.
   */
  readonly bodyText?: string | undefined;
  /** Ordering key: same-key messages are handled one at a time, in publish order. */
  readonly key?: string | undefined;
  /** 0 (default) to 9; higher is delivered first. */
  readonly priority?: number | undefined;
  /** Epoch ms before which the message must not be delivered. */
  readonly deliverAt?: number | undefined;
  /** Epoch ms after which the message must not be delivered. */
  readonly expiresAt?: number | undefined;
  /** Publishes with the same dedupId within the dedup window are stored once per queue. */
  readonly dedupId?: string | undefined;
}

/** Where a publish goes: through the bus's topic (fan-out by bindings) or straight to one queue. */
export type Destination = { readonly kind: 'topic' } | { readonly kind: 'queue'; readonly queue: string };

/** One envelope to store, and where. */
export interface PublishItem {
  readonly envelope: Envelope;
  readonly to: Destination;
  /** Set by dead-letter replay: store even if the dedupId was seen. */
  readonly bypassDedup?: boolean;
  /** Replies: drop the item, without failing the batch, when its queue no longer exists (DESIGN.md §2.11). */
  readonly dropIfNoQueue?: boolean;
}

/** A queue to declare. */
export interface QueueSpec {
  readonly name: string;
  /** Reply queues: not durable, may vanish with the connection that declared them. */
  readonly temporary?: boolean;
}

/**
 * Routes events whose type matches `pattern` into `queue`. Patterns follow AMQP topic rules:
 * `*` matches one segment, `#` zero or more. `headers`, when set, must all be equal for a match.
 */
export interface BindingSpec {
  readonly queue: string;
  readonly pattern: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Queues and bindings to declare together. */
export interface Topology {
  readonly queues: readonly QueueSpec[];
  readonly bindings: readonly BindingSpec[];
}

/** Flow control of one consumer. */
export interface ConsumeOptions {
  /** Most unsettled deliveries this consumer holds at once. */
  readonly prefetch: number;
  /**
   * When larger than `prefetch`: the transport may hold up to this many while they settle quickly,
   * and must come back to `prefetch` when they do not (see docs/concepts.md, "Concurrency, prefetch
   * and leases"). A transport that keeps a fixed window ignores it.
   */
  readonly maxPrefetch?: number;
  /** How long a delivery stays leased before it is redelivered (attempt + 1). */
  readonly leaseMs: number;
}

/** Reason a message is dead-lettered (DESIGN.md §2.6). */
export type DeadLetterReason =
  | 'error'
  | 'max-attempts'
  | 'validation'
  | 'decode'
  | 'expired'
  | 'rejected'
  | 'too-large'
  | (string & {});

/** Why and when a message was dead-lettered; shown as `courier-dlq-*` headers. */
export interface DeadLetterInfo {
  readonly reason: DeadLetterReason;
  readonly errorName?: string | undefined;
  /** The error's `code`, when it has one (`COURIER_NON_RETRYABLE`, an application code). */
  readonly errorCode?: string | undefined;
  readonly errorMessage?: string | undefined;
  /** Attempts made, including the last. */
  readonly attempts: number;
  /** The queue the message failed on; replay returns it there. */
  readonly queue: string;
  readonly firstFailedAt?: number | undefined;
  readonly failedAt: number;
  /** Keep the message's key blocked until this dead letter is replayed or purged (§2.8 `park`). */
  readonly parkKey?: boolean | undefined;
}

/**
 * One attempt to hand a message to a consumer. It is settled exactly once by `ack`, `retry`,
 * `defer`, `deadLetter` or `release`; every settle is idempotent and resolves `false` when the
 * delivery was already settled or its lease expired (where leases are fenced).
 */
export interface Delivery {
  readonly envelope: Envelope;
  readonly queue: string;
  /** Durable attempt number of this delivery, 1 on the first. Counted before the handler runs. */
  readonly attempt: number;
  /**
   * Store `outgoing` durably, then remove the message. Atomic where the broker allows it; otherwise
   * publish first and ack second, so a crash in between duplicates (caught by dedup) and never loses.
   */
  ack(outgoing?: readonly PublishItem[]): Promise<boolean>;
  /** Redeliver after `delayMs` (0: now). Counts as an attempt. A keyed message keeps its key. */
  retry(delayMs: number): Promise<boolean>;
  /** Hold until `untilMs` (epoch) without counting an attempt; emulates first-delivery delay. */
  defer(untilMs: number): Promise<boolean>;
  /** Move to the dead-letter queue with `info`. */
  deadLetter(info: DeadLetterInfo): Promise<boolean>;
  /** Return unfinished (graceful stop): redelivered without counting this attempt. */
  release(): Promise<boolean>;
  /** Push the lease deadline to now + `ms`. False where absent or the lease already expired. */
  extendLease(ms: number): Promise<boolean>;
  /**
   * Only where the broker is also the application's database (SQLite): run `work` synchronously, store
   * `outgoing` and ack, in one transaction. Throws (rolling back) if the lease was lost.
   */
  transact?<R>(work: (db: unknown) => R, outgoing: readonly PublishItem[]): R;
}

/** A running consumer. */
export interface ConsumerHandle {
  /** Stop taking deliveries. Deliveries already handed over stay the caller's to settle. Idempotent. */
  stop(): Promise<void>;
}

/** A queue's figures (DESIGN.md §3), from cheap queries. */
export interface QueueStats {
  readonly queue: string;
  /** Ready to deliver now. */
  readonly depth: number;
  readonly inFlight: number;
  /** Waiting for a delay or a retry backoff. */
  readonly scheduled: number;
  readonly deadLettered: number;
  /** Age of the oldest ready message in ms, 0 when none. */
  readonly oldestAgeMs: number;
}

/** A dead letter as stored: the original envelope and why it failed. */
export interface DeadLetter {
  /** Store-assigned id, unique within the queue's dead letters (the message id may repeat after replays). */
  readonly deadLetterId: string;
  readonly envelope: Envelope;
  readonly info: DeadLetterInfo;
}

/** Which dead letters a list, replay or purge takes; every given field must match. */
export interface DeadLetterFilter {
  readonly type?: string;
  readonly reason?: DeadLetterReason;
  /** Epoch ms, inclusive. */
  readonly since?: number;
  /** Epoch ms, exclusive. */
  readonly until?: number;
  /** Only these dead letters (by `deadLetterId`). */
  readonly ids?: readonly string[];
}

/** One page of dead letters. */
export interface DeadLetterPage {
  readonly items: readonly DeadLetter[];
  /** Pass back as `cursor` for the next page; absent on the last page. */
  readonly nextCursor?: string | undefined;
}

/**
 * Where dead letters live. A transport with a native DLQ exposes its own; otherwise the core keeps
 * them in the store given to the bus (`deadLetterStore`).
 */
export interface DeadLetterStore {
  /** Used only when the core emulates the DLQ. */
  add(letter: Omit<DeadLetter, 'deadLetterId'>): Promise<void>;
  list(
    queue: string,
    filter: DeadLetterFilter,
    page: { limit: number; cursor?: string | undefined },
  ): Promise<DeadLetterPage>;
  /** Remove the given dead letters; resolves how many were removed. Unparks their keys. */
  remove(queue: string, deadLetterIds: readonly string[]): Promise<number>;
  count(queue: string): Promise<number>;
}

/**
 * A connection to a broker. One per process (or per bus). Methods other than `close` reject with
 * `ClosedError` after `close`.
 */
export interface Transport {
  /** Short name for messages and reports: `memory`, `sqlite`, `rabbitmq`. */
  readonly name: string;
  readonly durability: Durability;
  readonly capabilities: Capabilities;
  /** Largest envelope (headers + body) the broker accepts, if it has a limit. */
  readonly maxMessageBytes?: number | undefined;
  /** The broker's native dead-letter store, when `capabilities.deadLetter` is `native`. */
  readonly deadLetters?: DeadLetterStore | undefined;
  /** The clock leases and schedules run on (epoch ms). */
  now(): number;
  /** Connect. Idempotent. */
  start(): Promise<void>;
  /** Create queues and bindings if missing. Idempotent; any process may declare the whole topology. */
  declare(topology: Topology): Promise<void>;
  /**
   * Store `items` durably to the transport's durability class, then resolve. A queue destination
   * that does not exist rejects with `NoRouteError`; a topic publish with no matching binding is
   * stored nowhere (an event nobody subscribes to) and resolves.
   */
  publish(items: readonly PublishItem[]): Promise<void>;
  /**
   * Start delivering `queue`'s messages to `onDelivery`, never more than `prefetch` unsettled at
   * once, highest priority first then FIFO, holding a keyed message while its key is held (where
   * `keyOrdering` is native), and not before `deliverAt` (where `delay` is native).
   */
  consume(
    queue: string,
    options: ConsumeOptions,
    onDelivery: (delivery: Delivery) => void,
  ): Promise<ConsumerHandle>;
  stats(queue: string): Promise<QueueStats>;
  /**
   * Close. Idempotent. With `abandon`, behave like a crashed process: leave unsettled deliveries
   * leased, to be redelivered when their leases expire (used by crash tests).
   */
  close(options?: { abandon?: boolean }): Promise<void>;
}
