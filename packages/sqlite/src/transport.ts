import { randomInt } from 'node:crypto';
import type {
  Capabilities,
  ConsumeOptions,
  ConsumerHandle,
  DeadLetterInfo,
  DeadLetterStore,
  Delivery,
  Durability,
  InboxStore,
  PublishItem,
  QueueStats,
  Topology,
  Transport,
} from '@courier/core';
import { ClosedError, ConfigurationError, SlotSet, TransportError } from '@courier/core';
import type Database from 'better-sqlite3';
import { PendingAcks, settleAcks } from './acks.js';
import { type Batch, BatchRunner, type ClaimRequest, type Command, Do } from './batch.js';
import { startCheckpointer } from './checkpointer.js';
import { availableCpus } from './cpus.js';
import {
  type DeliverySettler,
  type LocalConsumer,
  packedDeliveries,
  resize,
  SqliteDelivery,
  WINDOW_WAIT_MS,
} from './deliveries.js';
import { SqliteQueues } from './queues.js';
import type { ClaimedRows } from './rows.js';
import { PACKED, toStoredItem } from './rows.js';
import type { SqliteDatabase, Synchronous } from './schema.js';
import { DEFAULT_CACHE_MB, openDatabase } from './schema.js';
import { SqliteOutbox, SqliteSagaStore } from './stores.js';
import { InlineWriter, ThreadWriter, type Writer, type WriterResult } from './writer.js';

/** Options of `sqlite()`; docs/sqlite.md lists them with their defaults. */
export interface SqliteOptions {
  /** Database file (default `./data/courier.db`; its folder is created). `:memory:` for a private in-process broker. */
  path?: string;
  /** `NORMAL` (default): a resolved publish survives the process being killed. `FULL`: it also survives power loss, slower. */
  synchronous?: Synchronous;
  /** How long one statement waits for another process's write lock before retrying later, in ms (default 20). */
  busyTimeoutMs?: number;
  /** How long a dedupId is remembered per queue, in ms (default 10 minutes). */
  dedupWindowMs?: number;
  /** SQLite's page cache, in MiB (default 4). Larger helps applications that read their own tables in `ctx.transact`. */
  cacheSizeMb?: number;
  /** Fastest poll for other processes' writes, in ms (default 1); the poll slows to `pollMaxMs` while idle. */
  pollMinMs?: number;
  /** Slowest poll while idle, in ms (default 50): the longest a message from another process waits. */
  pollMaxMs?: number;
  /**
   * Add Courier's tables to an existing application database (for the outbox or `ctx.transact`)
   * instead of refusing a file that has only someone else's tables (default false).
   */
  adoptExisting?: boolean;
  /**
   * Where the SQL of publishes, claims and settles runs. `auto` (default): on a worker thread with a
   * connection of its own while batches are in flight or large, so it overlaps with the handlers on
   * the event loop, and on the event loop when the thread would be idle (a thread hop costs more
   * than a small batch's SQL); the thread starts with the first consumer, or with the first large
   * batch of a process that only publishes; a process that may use one CPU at most (its CPU
   * affinity, or its cgroup's CPU quota as in `docker run --cpus=1`) keeps every batch on the event
   * loop, as `never`. `always`: every batch on the thread. `never`: every batch on the event loop.
   * `:memory:` is always `never` (its database lives in one connection).
   */
  writerThread?: WriterThreadMode;
}

/** See `SqliteOptions.writerThread`. */
export type WriterThreadMode = 'auto' | 'always' | 'never';

const WRITER_THREAD_MODES: readonly WriterThreadMode[] = ['auto', 'always', 'never'];

/**
 * The mode a transport runs with. `:memory:` has one connection, so no thread. `auto` with at most
 * one CPU (`cpus`, asked only then: the process's affinity or its cgroup's CPU quota, whichever is
 * smaller; see cpus.ts) runs on the event loop: the thread would only take turns with it and add
 * the hand-over. courier-sqlite-e2e under `taskset -c 0`: 50.6-65.4k msg/s on the event loop
 * against 39.5-53.4k with the thread (ten alternating pairs, nine won); in a cgroup with a quota of
 * one CPU, 48.7-62.5k against 40.0-46.0k (six pairs, all won). With a quota of 1.5 CPUs the thread
 * wins (62.3-73.7k against 56.1-70.0k, six pairs, five won), so it is one CPU, not two, below which
 * 'auto' goes without.
 */
export function writerThreadFor(mode: WriterThreadMode, path: string, cpus: () => number): WriterThreadMode {
  if (path === ':memory:') return 'never';
  return mode === 'auto' && cpus() <= 1 ? 'never' : mode;
}

/** A batch's plain acks and their callers' promises (`PendingAcks.take`). */
type TakenAcks = NonNullable<ReturnType<PendingAcks['take']>>;

/** The promise of a write's caller, settled when its batch comes back. */
interface Caller {
  readonly resolve: (value: never) => void;
  readonly reject: (error: unknown) => void;
}

/** The longest `consume` waits for the writer thread to start (`startThreadForConsumer`). */
const THREAD_START_WAIT_MS = 2_000;

/** At most this many batches are with the writer thread at once. */
const MAX_BATCHES_IN_FLIGHT = 4;
/** The most writes a batch may hold and still run on the event loop while the writer thread is idle. */
const INLINE_MAX_WRITES = 32;
/**
 * With the writer thread, a turn that has gathered this many writes sends them at once instead of
 * at the end of the turn: the thread starts on them while the event loop makes the rest. 512 since
 * the consumer keeps pace with a producer in the same process (the thread's results are taken a
 * turn at a time, ThreadWriter): half as many batches for a busy producer, each carrying the
 * consumer's settles and claim: +1 to +6.5 % in courier-sqlite-e2e against 256 (medians of four
 * series of six to eight alternating runs; 1,024: -5 %, 128: level).
 */
const EARLY_FLUSH_WRITES = 512;

/** A claim sent in a batch: for whom, how much room it reserved, the wake count when sent. */
interface Asked {
  readonly consumer: LocalConsumer;
  readonly room: number;
  readonly token: number;
  readonly wakes: number;
  /** It asked for a due check (its `nextDueAt` was set aside until the answer). */
  readonly due: boolean;
}

const capabilities: Capabilities = Object.freeze({
  delay: 'native',
  priority: 'native',
  keyOrdering: 'native',
  ttl: 'native',
  dedup: 'native',
  deadLetter: 'native',
  leaseExtension: 'native',
  fencedLeases: 'native',
  durableAttempts: 'native',
  headerFilter: 'native',
});

/**
 * The embedded durable broker: queues in one SQLite file (WAL), shared by every process that opens
 * it. Writes of one event-loop turn (publishes, claims, acks) are committed together; other
 * processes' commits are noticed by polling `PRAGMA data_version`.
 */
export class SqliteTransport implements Transport, DeliverySettler {
  readonly name = 'sqlite';
  readonly durability: Durability;
  readonly capabilities = capabilities;
  readonly path: string;
  private readonly options: Required<Omit<SqliteOptions, 'path' | 'adoptExisting'>>;
  private readonly adoptExisting: boolean;
  private database: SqliteDatabase | undefined;
  private store: SqliteQueues | undefined;
  /** Runs batches on this connection, on the event loop: always for `:memory:`, else when the thread is idle. */
  private inline: InlineWriter | undefined;
  private thread: ThreadWriter | undefined;
  /** Why there is no writer thread (it could not start, or died); batches then run on the event loop. */
  private threadFailure: unknown;
  /**
   * Writes for the next batch, and beside them their callers. Apart, so that once a batch has gone
   * to the writer thread (a copy) only the callers stay alive: a thousand publishes in flight no
   * longer keep their rows' strings through every young-generation GC until they commit.
   */
  private commands: Command[] = [];
  private callers: Caller[] = [];
  /** Plain acks for the next batch (acks.ts), apart from the other writes. */
  private readonly acks = new PendingAcks();
  private batchesInFlight = 0;
  private flushScheduled = false;
  private busyRetryMs = 1;
  private readonly consumers = new Set<LocalConsumer>();
  /** Deliveries handed out and not settled yet (`SlotSet`, not a Map by seq: see there why). */
  private readonly held = new SlotSet<SqliteDelivery>();
  private readonly temporaryQueues = new Set<string>();
  /** Counts `wakeConsumers` calls: a short claim clears `mayHaveMore` only if nothing woke it since. */
  private wakes = 0;
  private tokenCounter = 0;
  private readonly tokenBase = randomInt(0, 2 ** 32) * 2 ** 20;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private pollMs: number;
  private dataVersion = -1;
  private quietTicks = 0;
  private busyStatements: { long: Database.Statement; normal: Database.Statement } | undefined;
  private dataVersionStatement: Database.Statement<[], number> | undefined;
  private checkpointer: { stop(): Promise<void> } | undefined;
  private closed = false;

  constructor(options: SqliteOptions = {}) {
    this.path = options.path ?? './data/courier.db';
    const synchronous = options.synchronous ?? 'NORMAL';
    if (synchronous !== 'NORMAL' && synchronous !== 'FULL') {
      throw new ConfigurationError(
        `sqlite: synchronous must be 'NORMAL' or 'FULL', got ${JSON.stringify(options.synchronous)}`,
      );
    }
    const writerThread = options.writerThread ?? 'auto';
    if (!WRITER_THREAD_MODES.includes(writerThread)) {
      throw new ConfigurationError(
        `sqlite: writerThread must be 'auto', 'always' or 'never', got ${JSON.stringify(options.writerThread)}`,
      );
    }
    this.options = {
      synchronous,
      busyTimeoutMs: nonNegative(options.busyTimeoutMs ?? 20, 'busyTimeoutMs'),
      dedupWindowMs: nonNegative(options.dedupWindowMs ?? 600_000, 'dedupWindowMs'),
      pollMinMs: nonNegative(options.pollMinMs ?? 1, 'pollMinMs'),
      pollMaxMs: nonNegative(options.pollMaxMs ?? 50, 'pollMaxMs'),
      cacheSizeMb: nonNegative(options.cacheSizeMb ?? DEFAULT_CACHE_MB, 'cacheSizeMb'),
      writerThread: writerThreadFor(writerThread, this.path, availableCpus),
    };
    this.durability = synchronous === 'FULL' ? 'fsync' : 'process-crash';
    this.adoptExisting = options.adoptExisting ?? false;
    this.pollMs = this.options.pollMinMs;
  }

  /** The open connection, for applications keeping their own tables in the same file (`ctx.transact`). */
  get db(): SqliteDatabase {
    this.assertOpen();
    if (!this.database) this.open();
    return this.database!;
  }

  private get queues(): SqliteQueues {
    if (!this.store) this.open();
    return this.store!;
  }

  private open(): void {
    const database = openDatabase({
      path: this.path,
      synchronous: this.options.synchronous,
      busyTimeoutMs: this.options.busyTimeoutMs,
      adoptExisting: this.adoptExisting,
      cacheSizeMb: this.options.cacheSizeMb,
    });
    const queues = new SqliteQueues(database, this.options.dedupWindowMs, () => this.now());
    // After the file is known to be Courier's and migrated: the other threads only use it.
    this.inline = new InlineWriter(
      new BatchRunner(database, queues, new SqliteSagaStore(database), () => this.now()),
    );
    this.database = database;
    this.store = queues;
    if (this.path !== ':memory:') this.checkpointer = startCheckpointer(this.path);
  }

  /**
   * Started with the first consumer, or the first time a batch needs it: a process that only
   * publishes, and stays idle or writes little, never pays for it.
   */
  private writerThread(): Writer {
    if (this.threadFailure !== undefined) return this.inline!;
    if (this.thread === undefined) {
      try {
        this.thread = new ThreadWriter({
          path: this.path,
          synchronous: this.options.synchronous,
          busyTimeoutMs: this.options.busyTimeoutMs,
          cacheSizeMb: this.options.cacheSizeMb,
          dedupWindowMs: this.options.dedupWindowMs,
        });
      } catch (error) {
        // No thread here (a loader it cannot find, say): the event loop runs every batch instead.
        this.threadFailure = error;
        return this.inline!;
      }
    }
    if (this.thread.failure !== undefined) {
      // It died: the batches it held failed with TransportError; the event loop takes over from here
      // (the checkpoint thread runs on, as it did beside the writer thread).
      this.threadFailure = this.thread.failure;
      this.thread = undefined;
      return this.inline!;
    }
    return this.thread;
  }

  /**
   * A process that consumes hands its batches to the thread as soon as messages flow, so its thread
   * starts with the first consumer and is ready before that consumer's first claim, instead of
   * starting in the middle of the first burst and competing with it for the cores. Bounded: until a
   * slow thread is ready, batches run on the event loop, as they always do while it starts.
   */
  private async startThreadForConsumer(): Promise<void> {
    const writer = this.writerThread();
    if (writer !== this.thread || this.thread.ready) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.thread.started,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, THREAD_START_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
  }

  now(): number {
    return Date.now();
  }

  async start(): Promise<void> {
    this.assertOpen();
    if (!this.database) this.open();
  }

  declare(topology: Topology): Promise<void> {
    for (const queue of topology.queues) if (queue.temporary) this.temporaryQueues.add(queue.name);
    // Plain data only: it may cross to the writer thread.
    const plain: Topology = {
      queues: topology.queues.map((q) => ({ name: q.name, temporary: q.temporary === true })),
      bindings: topology.bindings.map((b) => ({
        queue: b.queue,
        pattern: b.pattern,
        ...(b.headers ? { headers: { ...b.headers } } : {}),
      })),
    };
    return this.write([Do.DECLARE, plain]);
  }

  publish(items: readonly PublishItem[]): Promise<void> {
    let stored: Command;
    try {
      stored = items.length === 1 ? toStoredItem(items[0]!) : [Do.PUBLISH, items.map(toStoredItem)];
    } catch (error) {
      return Promise.reject(error);
    }
    const done = this.write<void>(stored);
    this.wakeConsumers();
    return done;
  }

  async consume(
    queue: string,
    options: ConsumeOptions,
    onDelivery: (delivery: Delivery) => void,
  ): Promise<ConsumerHandle> {
    this.assertOpen();
    const queueId = this.queues.requireQueueId(queue);
    if (this.options.writerThread === 'auto') await this.startThreadForConsumer();
    const consumer: LocalConsumer = {
      queue,
      queueId,
      options,
      onDelivery,
      unsettled: 0,
      active: true,
      mayHaveMore: true,
      nextDueAt: 0,
      window: options.prefetch,
      probeSeq: -1,
      probeAt: 0,
    };
    this.consumers.add(consumer);
    this.scheduleFlush();
    this.startPolling();
    return {
      stop: async () => {
        consumer.active = false;
        this.consumers.delete(consumer);
        if (this.consumers.size === 0) this.stopPolling();
      },
    };
  }

  async stats(queue: string): Promise<QueueStats> {
    this.assertOpen();
    return this.queues.stats(queue, this.now());
  }

  readonly deadLetters: DeadLetterStore = {
    add: async () => {
      throw new TransportError('the sqlite transport dead-letters through Delivery.deadLetter');
    },
    list: async (queue, filter, page) => {
      this.assertOpen();
      return this.queues.listDeadLetters(queue, filter, page);
    },
    remove: (queue, ids) => {
      const done = this.write<number>([Do.REMOVE_DEAD_LETTERS, queue, [...ids]]);
      this.wakeConsumers();
      return done;
    },
    count: async (queue) => {
      this.assertOpen();
      return this.queues.countDeadLetters(queue);
    },
  };

  /**
   * An `InboxStore` in this database file (table `courier_inbox`), for the idempotent inbox and the
   * core's dedup: its writes share the broker's group commits. Expired rows are swept in small steps.
   * @example createBus({ ..., middleware: [inbox({ store: transport.inboxStore() })] })
   */
  inboxStore(): InboxStore {
    return {
      get: async (scope, key) => {
        this.assertOpen();
        return this.queues.inboxGet(scope, key, this.now());
      },
      putIfAbsent: (scope, key, value, retentionMs) =>
        this.write([Do.INBOX_PUT, scope, key, value, retentionMs]),
    };
  }

  /** Saga state in this file; its async writes share the broker's group commits. */
  sagaStore(): SqliteSagaStore {
    return new SqliteSagaStore(this.db, {
      save: (saga, key, json, expectedVersion) =>
        this.write([Do.SAGA_SAVE, saga, key, json, expectedVersion]),
      remove: (saga, key, expectedVersion) => this.write([Do.SAGA_REMOVE, saga, key, expectedVersion]),
    });
  }

  /** The transactional outbox in this file (for an application that keeps its data here). */
  outbox(): SqliteOutbox {
    return new SqliteOutbox(this.db);
  }

  async close(options: { abandon?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.stopPolling();
    for (const consumer of this.consumers) consumer.active = false;
    this.consumers.clear();
    if (this.database) {
      // Writes already asked for are committed (claims still out come back and are released).
      await this.flushNow();
      if (!options.abandon) {
        // Deliveries not settled go back to their queues at once; a crash stand-in (abandon) leaves
        // their leases to expire.
        const releases: Promise<unknown>[] = [];
        for (const { seq, token, queueId } of this.held.values())
          releases.push(this.write([Do.RETRY, seq, token, queueId, null, false]));
        for (const queue of this.temporaryQueues) releases.push(this.write([Do.DELETE_QUEUE, queue]));
        await this.flushNow();
        await Promise.allSettled(releases);
      }
      this.held.clear();
      await this.thread?.close();
      if (!options.abandon) {
        try {
          this.database.pragma('wal_checkpoint(PASSIVE)');
        } catch {
          // Another process holds the WAL; it checkpoints later.
        }
      }
      this.database.close();
    }
    await this.checkpointer?.stop();
    this.closed = true;
    const closedError = new ClosedError('the sqlite transport closed before the write ran');
    this.commands = [];
    for (const caller of this.callers.splice(0)) caller.reject(closedError);
    this.acks.rejectAll(closedError);
  }

  // ---- writes: one batch per event-loop turn --------------------------------------------------

  /** Queues `command` for the next batch; resolves its result once committed. */
  private write<T>(command: Command): Promise<T> {
    if (this.closed) return Promise.reject(new ClosedError('the sqlite transport is closed'));
    if (!this.database) {
      // Writes before start() open the file too, rather than waiting for a flush that cannot run.
      try {
        this.open();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return new Promise<T>((resolve, reject) => {
      this.commands.push(command);
      this.callers.push({ resolve: resolve as (value: never) => void, reject });
      this.queued();
    });
  }

  /** A write was queued: flush now when enough have gathered for the thread, else at the turn's end. */
  private queued(): void {
    // The inline writer runs a batch on the spot: never from inside a caller's write.
    if (
      this.callers.length + this.acks.size >= EARLY_FLUSH_WRITES &&
      (this.options.writerThread === 'always' ||
        (this.options.writerThread === 'auto' && this.threadRunning()))
    )
      this.flush();
    else this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.closed) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Until every write asked for so far has run (and the claims out have come back). */
  private async flushNow(): Promise<void> {
    while (this.callers.length > 0 || this.acks.size > 0 || this.batchesInFlight > 0) {
      this.flush();
      await new Promise((resolve) => setTimeout(resolve, this.busyRetryMs));
    }
  }

  /**
   * Sends the pending writes and the claims consumers have room for to the writer, as one batch.
   * `threadOnly`: never on the event loop (the caller is in the middle of handing out deliveries).
   */
  private flush(threadOnly = false): void {
    const limit = this.options.writerThread === 'never' ? 1 : MAX_BATCHES_IN_FLIGHT;
    if (this.closed || !this.inline || this.batchesInFlight >= limit) return;
    // No thread ready (starting, failed or died): the next turn's flush runs it on the event loop.
    if (threadOnly && !this.threadRunning()) return;
    const now = this.now();
    const claims: ClaimRequest[] = [];
    const asked: Asked[] = [];
    for (const consumer of this.consumers) {
      // A probe still out past the budget (a slow or stuck handler) shrinks the window now.
      if (consumer.probeSeq >= 0 && now - consumer.probeAt > WINDOW_WAIT_MS)
        resize(consumer, now - consumer.probeAt);
      const room = consumer.window - consumer.unsettled;
      // While deliveries are out, wait until a quarter of the window is free: fewer, larger claims.
      if (!consumer.active || room <= 0 || (consumer.unsettled > 0 && room < consumer.window / 4)) continue;
      const due = consumer.nextDueAt <= now;
      if (!consumer.mayHaveMore && !due) continue;
      const token = this.tokenBase + ++this.tokenCounter;
      claims.push([consumer.queueId, room, token, consumer.options.leaseMs, due, consumer.mayHaveMore]);
      asked.push({ consumer, room, token, wakes: this.wakes, due });
      // Reserved until the batch comes back: a second batch in flight must not lease it too.
      consumer.unsettled += room;
      // Looked at again when the result says when it is due next.
      if (due) consumer.nextDueAt = Number.POSITIVE_INFINITY;
    }
    const { commands, callers } = this;
    if (commands.length === 0 && claims.length === 0 && this.acks.size === 0) return;
    this.commands = [];
    this.callers = [];
    const acks = this.acks.take();
    const batch: Batch = { acks: acks?.acks, commands, claims };
    // A small batch while the thread is idle runs here at once: a hop to the thread and back costs
    // more than its SQL (tens of microseconds at the median, a millisecond at the 99th percentile).
    const mode = this.options.writerThread;
    let writer =
      mode === 'always' ||
      (mode === 'auto' &&
        (threadOnly ||
          this.batchesInFlight > 0 ||
          commands.length + (acks?.settles.length ?? 0) > INLINE_MAX_WRITES))
        ? this.writerThread()
        : this.inline;
    // A thread still starting would hold this batch for its whole start: it runs here meanwhile.
    if (mode === 'auto' && writer === this.thread && !this.thread.ready) writer = this.inline;
    this.batchesInFlight++;
    // Only the inline writer can come back busy, and then its commands are sent again.
    const again = writer === this.inline ? commands : undefined;
    writer.run(batch, (result) => this.finish(callers, again, acks, asked, result));
  }

  private finish(
    callers: Caller[],
    commands: Command[] | undefined,
    acks: TakenAcks | undefined,
    asked: Asked[],
    result: WriterResult,
  ): void {
    this.batchesInFlight--;
    if (result.kind !== 'done') {
      for (const { consumer, room, due } of asked) {
        consumer.unsettled -= room;
        // Its due check did not happen: still due.
        if (due) consumer.nextDueAt = 0;
      }
      // Another process holds the write lock (inline writer): try again soon, off the event loop.
      // (The writer thread retries a busy batch itself, so it never says busy.)
      if (result.kind === 'busy' && commands !== undefined) {
        this.commands = commands.concat(this.commands);
        this.callers = callers.concat(this.callers);
        if (acks) this.acks.putBack(acks);
        const wait = this.busyRetryMs;
        this.busyRetryMs = Math.min(this.busyRetryMs * 2, 50);
        setTimeout(() => this.scheduleFlush(), wait);
        return;
      }
      const error =
        result.kind === 'failed' ? (result.error as Error) : new TransportError('the writer came back busy');
      const failure =
        error instanceof TransportError
          ? error
          : new TransportError(`sqlite write failed on '${this.path}': ${error.message}`, { cause: error });
      for (const caller of callers) caller.reject(failure);
      if (acks) settleAcks(acks.settles, undefined, failure);
      // Writes that came while this batch was out; not the claims alone, which would fail again at
      // once (a file that went away): they wait for the next write or poll.
      if (this.callers.length > 0 || this.acks.size > 0) this.scheduleFlush();
      return;
    }
    this.busyRetryMs = 1;
    const { values, errors } = result;
    if (acks) settleAcks(acks.settles, result.acked);
    if (errors === undefined) {
      for (let i = 0; i < callers.length; i++) callers[i]!.resolve(values[i] as never);
    } else {
      for (let i = 0; i < callers.length; i++) {
        if (errors[i] === undefined) callers[i]!.resolve(values[i] as never);
        else callers[i]!.reject(errors[i]);
      }
    }
    if (result.scheduledAt !== Number.POSITIVE_INFINITY) this.noteScheduled(result.scheduledAt);
    let leased = false;
    const now = this.now();
    for (let i = 0; i < asked.length; i++) {
      const { consumer, room, token, wakes } = asked[i]!;
      const [rows, short, nextDueAt, housekept] = result.claims[i]!;
      const count = Array.isArray(rows) ? rows.length : rows.numbers.length / PACKED;
      consumer.unsettled -= room - count;
      if (nextDueAt !== undefined)
        consumer.nextDueAt = Math.min(consumer.nextDueAt, nextDueAt ?? Number.POSITIVE_INFINITY);
      if (housekept) consumer.mayHaveMore = true;
      if (short && wakes === this.wakes) consumer.mayHaveMore = false;
      if (count === 0) continue;
      leased = true;
      // The leases just taken end before anything else we know of.
      consumer.nextDueAt = Math.min(consumer.nextDueAt, now + consumer.options.leaseMs);
      this.deliver(consumer, rows, token);
    }
    if (this.callers.length > 0 || this.acks.size > 0 || leased) this.scheduleFlush();
  }

  /** Rows became due at `at` (a delay, a retry's backoff): every consumer looks again then. */
  private noteScheduled(at: number): void {
    for (const consumer of this.consumers) consumer.nextDueAt = Math.min(consumer.nextDueAt, at);
  }

  /** Something was stored or freed here: claim again at the next flush. */
  private wakeConsumers(): void {
    this.wakes++;
    for (const consumer of this.consumers) consumer.mayHaveMore = true;
  }

  private deliver(consumer: LocalConsumer, rows: ClaimedRows, token: number): void {
    const deliveries = Array.isArray(rows)
      ? rows.map((row) => SqliteDelivery.ofRow(this, consumer, row, token))
      : packedDeliveries(this, consumer, rows, token);
    // Times the claim's last row: it waits longest behind the others.
    if (consumer.probeSeq < 0 && (consumer.options.maxPrefetch ?? 0) > consumer.options.prefetch) {
      consumer.probeSeq = deliveries[deliveries.length - 1]!.seq;
      consumer.probeAt = this.now();
    }
    for (const delivery of deliveries) {
      this.held.add(delivery);
      if (!consumer.active) {
        void this.retryDelivery(delivery, undefined, false).catch(() => {});
        continue;
      }
      consumer.onDelivery(delivery);
    }
  }

  /** The settles of `SqliteDelivery`, each one write in the next group commit. */
  ackDelivery(delivery: SqliteDelivery, outgoing: readonly PublishItem[]): Promise<boolean> {
    const { seq, token } = delivery;
    if (outgoing.length === 0 && delivery.key === null && !this.closed) {
      const done = this.acks.add(seq, token, delivery.queueId);
      this.queued();
      return this.settle(delivery, done);
    }
    let stored: Command;
    try {
      stored = [
        Do.ACK,
        seq,
        token,
        delivery.queueId,
        delivery.key,
        outgoing.length > 0 ? outgoing.map(toStoredItem) : null,
      ];
    } catch (error) {
      this.releaseSlot(delivery);
      return Promise.reject(error);
    }
    return this.settle(delivery, this.write<boolean>(stored));
  }

  retryDelivery(
    delivery: SqliteDelivery,
    availableAt: number | undefined,
    counted: boolean,
  ): Promise<boolean> {
    const { seq, token, queueId } = delivery;
    return this.settle(
      delivery,
      this.write<boolean>([Do.RETRY, seq, token, queueId, availableAt ?? null, counted]),
    );
  }

  deadLetterDelivery(delivery: SqliteDelivery, info: DeadLetterInfo): Promise<boolean> {
    return this.settle(delivery, this.write<boolean>([Do.DEAD_LETTER, delivery.seq, delivery.token, info]));
  }

  extendDeliveryLease(delivery: SqliteDelivery, ms: number): Promise<boolean> {
    return this.write([Do.EXTEND, delivery.seq, delivery.token, ms]);
  }

  /**
   * A settle already queued for the next batch (`done`): gives its consumer's slot back now,
   * whatever the outcome: the claim in that same batch runs after the settle and may lease the row
   * again (a retry without delay).
   */
  private settle(delivery: SqliteDelivery, done: Promise<boolean>): Promise<boolean> {
    this.releaseSlot(delivery);
    // The settled row may free a key or a slot: look again at the next claim.
    this.wakeConsumers();
    return done;
  }

  private threadRunning(): boolean {
    return this.thread?.ready === true;
  }

  /** `delivery` is settled (or as good as: its settle is queued): its slot and window room are free. */
  private releaseSlot(delivery: SqliteDelivery): void {
    // Settled already (a second settle, which its lease's fence will refuse), or never held.
    if (!this.held.delete(delivery)) return;
    const consumer = delivery.consumer;
    consumer.unsettled--;
    if (delivery.seq === consumer.probeSeq) resize(consumer, this.now() - consumer.probeAt);
    // Half the window is free: claim now, on the writer thread, while the event loop handles the
    // other half (a consumer whose handlers finish synchronously would otherwise handle all of it
    // first, and then wait for the writer with nothing to do). Only once the thread runs: starting
    // it takes longer than a quiet consumer's batch on the event loop.
    if (consumer.window - consumer.unsettled === Math.ceil(consumer.window / 2) && this.threadRunning()) {
      this.flush(true);
    }
    this.scheduleFlush();
  }

  /**
   * Exactly-once effects (DESIGN.md §2): `work` writes the application's tables, then the handler's
   * output is stored and the delivery acked, all in one transaction. A lost lease rolls it all back.
   * It runs on the event loop's own connection: the handler's `work` is synchronous.
   */
  transact<R>(delivery: SqliteDelivery, work: (db: unknown) => R, outgoing: readonly PublishItem[]): R {
    const { seq, token } = delivery;
    const db = this.db;
    // Synchronous, so it cannot step aside like the group commit: wait longer for another writer's lock.
    this.busyStatements ??= {
      long: db.prepare(`PRAGMA busy_timeout = ${Math.max(this.options.busyTimeoutMs, 2_000)}`),
      normal: db.prepare(`PRAGMA busy_timeout = ${this.options.busyTimeoutMs}`),
    };
    this.busyStatements.long.run();
    let result: R;
    try {
      result = db
        .transaction(() => {
          const value = work(db);
          const now = this.now();
          this.queues.begin();
          for (const item of outgoing) this.queues.publish(item, now);
          if (!this.queues.ack(seq, token, delivery.queueId, delivery.key)) {
            throw new TransportError(
              `the lease of message ${seq} expired before its transaction committed: rolled back`,
            );
          }
          this.queues.applyCounts();
          return value;
        })
        .immediate();
    } catch (error) {
      this.queues.discardCounts();
      this.queues.takeScheduled();
      throw error;
    } finally {
      this.busyStatements.normal.run();
    }
    const scheduledAt = this.queues.takeScheduled();
    if (scheduledAt !== Number.POSITIVE_INFINITY) this.noteScheduled(scheduledAt);
    this.wakeConsumers();
    this.releaseSlot(delivery);
    return result;
  }

  // ---- noticing other processes ----------------------------------------------------------------

  /** Another connection committed: it may have stored, scheduled or leased anything; look at all of it. */
  private onOtherWriters(): void {
    for (const consumer of this.consumers) {
      consumer.mayHaveMore = true;
      consumer.nextDueAt = 0;
    }
    this.wakes++;
    this.scheduleFlush();
  }

  /**
   * While consuming: a timer that claims again when a scheduled row or a lease comes due, and polls
   * `PRAGMA data_version` on this connection for other connections' commits. The writer thread's
   * commits count as others' too: they come while this process is busy anyway, and cost it at most
   * one extra claim per tick.
   */
  private startPolling(): void {
    if (this.pollTimer !== undefined || this.closed) return;
    const tick = () => {
      this.pollTimer = undefined;
      if (this.closed || this.consumers.size === 0) return;
      const now = this.now();
      let changed = false;
      try {
        this.dataVersionStatement ??= this.database!.prepare<[], number>('PRAGMA data_version').pluck();
        const version = this.dataVersionStatement.get()!;
        changed = version !== this.dataVersion;
        this.dataVersion = version;
      } catch {
        changed = true;
      }
      let due = false;
      for (const consumer of this.consumers) if (consumer.nextDueAt <= now) due = true;
      if (changed) this.onOtherWriters();
      if (changed || due) {
        this.pollMs = this.options.pollMinMs;
        this.quietTicks = 0;
        this.scheduleFlush();
      } else {
        // Stay quick for a while after the last change (a burst has gaps), then back off to idle.
        if (++this.quietTicks > 50)
          this.pollMs = Math.min(this.options.pollMaxMs, Math.max(1, this.pollMs * 2));
      }
      // Not unref'd: a process whose work is consuming must stay alive while it consumes.
      this.pollTimer = setTimeout(tick, this.pollMs);
    };
    this.pollTimer = setTimeout(tick, this.pollMs);
  }

  private stopPolling(): void {
    if (this.pollTimer !== undefined) clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError(`the sqlite transport on '${this.path}' is closed`);
  }
}

function nonNegative(value: number, name: string): number {
  if (!Number.isFinite(value) || value < 0)
    throw new ConfigurationError(`sqlite: ${name} must be a number >= 0, got ${String(value)}`);
  return value;
}

/**
 * The embedded durable broker (the default transport): one SQLite file, nothing to install.
 * @example const bus = createBus({ endpoint: 'orders', transport: sqlite({ path: './data/shop.db' }) });
 */
export function sqlite(options: SqliteOptions = {}): SqliteTransport {
  return new SqliteTransport(options);
}
