/**
 * The transactional outbox relay (DESIGN.md §2, "Exactly-once effects"): an application stores its
 * own rows and its outgoing messages in one transaction of its own database; the relay publishes
 * those messages to any transport, in order, and removes them once the publish resolved. See
 * docs/outbox.md.
 */
import type { PublishOptions } from './bus-types.js';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { CommandContract, EventContract, InputOf } from './contracts.js';
import { ClosedError, ConfigurationError } from './errors.js';
import { newMessageId } from './ids.js';
import { assertQueueName } from './names.js';
import { Producer } from './producer.js';
import type { Destination, PublishItem, Transport } from './transport.js';

/** One stored outgoing message: its position in the outbox and what to publish. */
export interface OutboxRelayEntry {
  /** Position in the outbox; entries are published in ascending `seq`. */
  readonly seq: number;
  readonly item: PublishItem;
}

/**
 * Where the relay reads outgoing messages from: an outbox table in the application's database.
 * `SqliteOutbox` (`transport.outbox()` of `@courier/sqlite`) is one; any object with these two
 * methods is another. Results may be plain values or promises.
 */
export interface OutboxSource {
  /**
   * Up to `limit` entries not yet removed, oldest (lowest `seq`) first. The relay always reads from
   * the head and never passes `afterSeq`: an entry that commits late with a lower seq, or a seq
   * reused after the table emptied, is still found.
   */
  next(limit: number, afterSeq?: number): readonly OutboxRelayEntry[] | Promise<readonly OutboxRelayEntry[]>;
  /** Removes (or marks sent) the given entries, so `next` no longer returns them. */
  remove(seqs: readonly number[]): void | Promise<void>;
}

/** Options of `startOutboxRelay`. */
export interface OutboxRelayOptions {
  /** The outbox to drain. Run one relay per outbox: two relays publish duplicates and may reorder keys. */
  source: OutboxSource;
  /** Where to publish; started by the relay if needed (`start()` is idempotent). Not closed by `stop()`. */
  transport: Transport;
  /** Most entries read and published at once (default 100). */
  batchSize?: number;
  /** Pause between polls while the outbox is empty, in ms (default 50). `flush()` cuts it short. */
  idleDelayMs?: number;
  /** First pause after a failure, in ms (default 100); doubles per consecutive failure. */
  retryDelayMs?: number;
  /** Longest pause after failures, in ms (default 5,000). */
  maxRetryDelayMs?: number;
  /** Stops the relay when aborted, like `stop()`. */
  signal?: AbortSignal;
  /**
   * Sees every failure (reading, publishing, removing); the relay then retries after a backoff.
   * Default: `console.error`. A `ClosedError` from the transport ends the relay after this call.
   */
  onError?: (error: unknown) => void;
}

/** A running relay. */
export interface OutboxRelay {
  /**
   * Finishes the batch in hand (publish, then remove), stops polling and resolves. Idempotent.
   * Pending `flush()` calls reject with `ClosedError`. The transport stays open.
   */
  stop(): Promise<void>;
  /**
   * Relays now, without waiting for the next poll, and resolves once the outbox was read empty after
   * this call, with the number of entries published and removed meanwhile. Rejects with the error
   * when a read, publish or remove fails meanwhile (the relay itself keeps retrying), and with
   * `ClosedError` when the relay stops first.
   */
  flush(): Promise<number>;
}

interface FlushWaiter {
  count: number;
  readonly resolve: (count: number) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Starts a relay that publishes an outbox's entries to `transport` and removes them.
 *
 * - **Order.** Entries go out in `seq` order, one batch per `publish` call; a failed publish is
 *   retried (after a backoff, whole batch, from the same head) and nothing behind it is published
 *   first, so later messages of a key never overtake earlier ones. An entry that can never be
 *   published (a queue that does not exist) holds the outbox until it is fixed: watch `onError`.
 * - **At-least-once.** An entry is removed only after its publish resolved; a crash in between
 *   publishes it again on restart, with the same message id and dedupId, so the transport's dedup or
 *   the consumer's `inbox()` make it take effect once.
 * - **Polling.** While the outbox is empty it is read every `idleDelayMs`; `flush()` wakes it.
 *
 * The relay keeps the process alive until stopped.
 * @example
 * const relay = startOutboxRelay({ source: appDb.outbox(), transport: sqlite({ path: './data/broker.db' }) });
 * // ... on shutdown:
 * await relay.stop();
 */
export function startOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { source, transport } = options;
  if (!source || typeof source.next !== 'function' || typeof source.remove !== 'function')
    throw new ConfigurationError('startOutboxRelay: source must have next(limit) and remove(seqs) methods');
  if (!transport || typeof transport.publish !== 'function')
    throw new ConfigurationError('startOutboxRelay: transport must be a Courier transport');
  const batchSize = positiveInteger(options.batchSize ?? 100, 'batchSize');
  const idleDelayMs = nonNegative(options.idleDelayMs ?? 50, 'idleDelayMs');
  const retryDelayMs = nonNegative(options.retryDelayMs ?? 100, 'retryDelayMs');
  const maxRetryDelayMs = Math.max(
    retryDelayMs,
    nonNegative(options.maxRetryDelayMs ?? 5_000, 'maxRetryDelayMs'),
  );
  const onError =
    options.onError ?? ((error: unknown) => console.error('courier outbox relay: will retry after', error));

  let stopping = false;
  let wake: (() => void) | undefined;
  let waiters: FlushWaiter[] = [];
  let failures = 0;

  const pause = (ms: number): Promise<void> =>
    stopping
      ? Promise.resolve()
      : new Promise((resolve) => {
          const done = () => {
            clearTimeout(timer);
            if (wake === done) wake = undefined;
            resolve();
          };
          const timer = setTimeout(done, ms);
          wake = done;
        });

  /** Reports `error`, fails pending flushes, and waits out the backoff. */
  const failed = async (error: unknown): Promise<void> => {
    failures++;
    report(error);
    const pending = waiters;
    waiters = [];
    for (const waiter of pending) waiter.reject(error);
    if (isClosed(error)) {
      stopping = true;
      return;
    }
    await pause(Math.min(maxRetryDelayMs, retryDelayMs * 2 ** Math.min(failures - 1, 30)));
  };

  const report = (error: unknown): void => {
    try {
      onError(error);
    } catch {
      // An observer that throws must not stop the relay.
    }
  };

  const run = async (): Promise<void> => {
    while (!stopping) {
      try {
        await transport.start();
        break;
      } catch (error) {
        await failed(error);
      }
    }
    while (!stopping) {
      // Flushes waiting before this read are answered by it when it comes back empty.
      const answered = waiters;
      let entries: readonly OutboxRelayEntry[];
      try {
        entries = await source.next(batchSize);
      } catch (error) {
        await failed(error);
        continue;
      }
      if (entries.length === 0) {
        failures = 0;
        waiters = waiters.filter((w) => !answered.includes(w));
        for (const waiter of answered) waiter.resolve(waiter.count);
        await pause(idleDelayMs);
        continue;
      }
      try {
        await transport.publish(entries.map((entry) => entry.item));
      } catch (error) {
        // Nothing is skipped: the next read starts at the same head.
        await failed(error);
        continue;
      }
      const seqs = entries.map((entry) => entry.seq);
      let removed = false;
      // Published: only remove is retried now, so the batch is not published again needlessly.
      while (!removed) {
        try {
          await source.remove(seqs);
          removed = true;
        } catch (error) {
          await failed(error);
          // Stopped with the batch published but not removed: the next start publishes it again
          // (same ids; caught downstream).
          if (stopping) break;
        }
      }
      if (!removed) break;
      failures = 0;
      for (const waiter of waiters) waiter.count += entries.length;
    }
  };

  const finished = run().finally(() => {
    stopping = true;
    const pending = waiters;
    waiters = [];
    for (const waiter of pending)
      waiter.reject(new ClosedError('the outbox relay stopped before the flush finished'));
  });

  const stop = (): Promise<void> => {
    stopping = true;
    wake?.();
    return finished;
  };

  if (options.signal) {
    if (options.signal.aborted) void stop();
    else options.signal.addEventListener('abort', () => void stop(), { once: true });
  }

  return {
    stop,
    flush(): Promise<number> {
      if (stopping) return Promise.reject(new ClosedError('the outbox relay is stopped'));
      return new Promise<number>((resolve, reject) => {
        waiters.push({ count: 0, resolve, reject });
        wake?.();
      });
    },
  };
}

/** Options of `outgoingMessage`: the publish options plus where the message comes from and goes. */
export interface OutgoingMessageOptions extends Omit<PublishOptions, 'dedupId'> {
  /**
   * Dedup id (default: the message's id, so a republished copy is stored once where the transport
   * deduplicates). `false`: none; then only the consumer's `inbox()` catches a republished copy.
   */
  dedupId?: string | false;
  /** The application's endpoint name: the message's `source` (CloudEvents `source`). */
  source: string;
  /**
   * The queue to send to. Required for commands (the owning endpoint's name); events go through the
   * topic to every subscribed queue unless a queue is named here.
   */
  to?: string;
  /** Clock for the message's `time`, `delayMs` and `ttlMs` (default: the machine's). */
  clock?: Clock;
  /** Largest encoded message in bytes (default 1 MiB), as `maxMessageBytes` of the bus. */
  maxMessageBytes?: number;
}

/**
 * Builds an outbox item from a contract, outside any handler: validates `data` with the contract's
 * schema, fills the message fields like `bus.publish`/`bus.send` would, and encodes it. The message
 * keeps its id through the relay, and its `dedupId` defaults to that id, so a republished copy is
 * stored once where the transport deduplicates (and the consumer's `inbox()` catches it elsewhere). Await it before opening the application's
 * transaction (better-sqlite3 transactions are synchronous), then store the item inside it.
 * Requests are refused: their reply needs a live requester.
 * @example
 * const item = await outgoingMessage(OrderPlaced, { orderId }, { source: 'orders', key: orderId });
 * db.transaction(() => {
 *   db.prepare('INSERT INTO orders (id) VALUES (?)').run(orderId);
 *   outbox.add([item]);
 * })();
 */
export async function outgoingMessage<C extends EventContract | CommandContract>(
  contract: C,
  data: InputOf<C>,
  options: OutgoingMessageOptions,
): Promise<PublishItem> {
  const { source, to, dedupId, clock = systemClock, maxMessageBytes = 1_048_576, ...publish } = options;
  const kind = (contract as { kind?: unknown } | undefined)?.kind;
  if (kind !== 'event' && kind !== 'command') {
    throw new ConfigurationError(
      `outgoingMessage: '${String((contract as { type?: unknown } | undefined)?.type)}' is not an event or command contract (requests cannot go through an outbox)`,
    );
  }
  assertQueueName(source, 'outgoingMessage: source (endpoint name)');
  let destination: Destination;
  if (to !== undefined) {
    assertQueueName(to, 'outgoingMessage: to (queue name)');
    destination = { kind: 'queue', queue: to };
  } else if (kind === 'command') {
    throw new ConfigurationError(
      `outgoingMessage: command '${contract.type}' needs to: the name of the endpoint that handles it`,
    );
  } else {
    destination = { kind: 'topic' };
  }
  const id = publish.id ?? newMessageId(clock.now());
  const producer = new Producer(source, clock, maxMessageBytes, []);
  const { item } = await producer.prepare(contract, data, {
    options: publish,
    to: destination,
    id,
    dedupId: dedupId === false ? undefined : (dedupId ?? id),
  });
  return item;
}

function isClosed(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === ClosedError.code;
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new ConfigurationError(
      `startOutboxRelay: ${name} must be a positive integer, got ${String(value)}`,
    );
  return value;
}

function nonNegative(value: number, name: string): number {
  if (!Number.isFinite(value) || value < 0)
    throw new ConfigurationError(
      `startOutboxRelay: ${name} must be a number of ms >= 0, got ${String(value)}`,
    );
  return value;
}
