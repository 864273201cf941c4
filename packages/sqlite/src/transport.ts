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
import { ClosedError, ConfigurationError, TransportError } from '@courier/core';
import type Database from 'better-sqlite3';
import { startCheckpointer } from './checkpointer.js';
import type { ClaimedRow } from './queues.js';
import { parseHeaders, SqliteQueues } from './queues.js';
import type { SqliteDatabase, Synchronous } from './schema.js';
import { DEFAULT_CACHE_MB, openDatabase } from './schema.js';
import { SqliteOutbox, SqliteSagaStore } from './stores.js';

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
}

interface Op {
  readonly run: (now: number) => unknown;
  readonly resolve: (value: never) => void;
  readonly reject: (error: unknown) => void;
  /** Runs when the write fails for good (a settle gives its consumer's slot back). */
  readonly onFail: (() => void) | undefined;
}

function fail(op: Op, error: unknown): void {
  op.onFail?.();
  op.reject(error);
}

/** What an ack needs to know of its row besides the lease: its queue and its ordering key. */
interface RowKey {
  readonly queueId: number;
  readonly key: string | null;
}

/** What one flush leased for one consumer. */
interface Claimed {
  readonly consumer: LocalConsumer;
  readonly rows: ClaimedRow[];
  readonly token: number;
}

interface LocalConsumer {
  readonly queue: string;
  readonly queueId: number;
  readonly options: ConsumeOptions;
  readonly onDelivery: (delivery: Delivery) => void;
  unsettled: number;
  active: boolean;
  /** False once a claim came back short and nothing has changed since. */
  mayHaveMore: boolean;
  nextDueAt: number;
}

const capabilities: Capabilities = Object.freeze({
  delay: 'native',
  priority: 'native',
  keyOrdering: 'native',
  ttl: 'native',
  dedup: 'native',
  deadLetter: 'native',
  leaseExtension: 'native',
  durableAttempts: 'native',
  headerFilter: 'native',
});

/**
 * The embedded durable broker: queues in one SQLite file (WAL), shared by every process that opens
 * it. Writes of one event-loop turn (publishes, claims, acks) are committed together; other
 * processes' commits are noticed by polling `PRAGMA data_version`.
 */
export class SqliteTransport implements Transport {
  readonly name = 'sqlite';
  readonly durability: Durability;
  readonly capabilities = capabilities;
  readonly path: string;
  private readonly options: Required<Omit<SqliteOptions, 'path' | 'adoptExisting'>>;
  private readonly adoptExisting: boolean;
  private database: SqliteDatabase | undefined;
  private store: SqliteQueues | undefined;
  private ops: Op[] = [];
  private flushScheduled = false;
  private busyRetryMs = 1;
  private readonly consumers = new Set<LocalConsumer>();
  private readonly held = new Map<number, { token: number; consumer: LocalConsumer }>();
  private readonly temporaryQueues = new Set<string>();
  private tokenCounter = 0;
  private readonly tokenBase = randomInt(0, 2 ** 32) * 2 ** 20;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private pollMs: number;
  private dataVersion = -1;
  private quietTicks = 0;
  private busyStatements: { long: Database.Statement; normal: Database.Statement } | undefined;
  private dataVersionStatement: Database.Statement<[], number> | undefined;
  private checkpointer: { stop(): Promise<void> } | undefined;
  private batch: Database.Transaction<(ops: Op[], values: unknown[]) => Claimed[]> | undefined;
  private lastDedupSweep = 0;
  private closed = false;

  constructor(options: SqliteOptions = {}) {
    this.path = options.path ?? './data/courier.db';
    const synchronous = options.synchronous ?? 'NORMAL';
    if (synchronous !== 'NORMAL' && synchronous !== 'FULL') {
      throw new ConfigurationError(
        `sqlite: synchronous must be 'NORMAL' or 'FULL', got ${JSON.stringify(options.synchronous)}`,
      );
    }
    this.options = {
      synchronous,
      busyTimeoutMs: nonNegative(options.busyTimeoutMs ?? 20, 'busyTimeoutMs'),
      dedupWindowMs: nonNegative(options.dedupWindowMs ?? 600_000, 'dedupWindowMs'),
      pollMinMs: nonNegative(options.pollMinMs ?? 1, 'pollMinMs'),
      pollMaxMs: nonNegative(options.pollMaxMs ?? 50, 'pollMaxMs'),
      cacheSizeMb: nonNegative(options.cacheSizeMb ?? DEFAULT_CACHE_MB, 'cacheSizeMb'),
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
    this.database = openDatabase({
      path: this.path,
      synchronous: this.options.synchronous,
      busyTimeoutMs: this.options.busyTimeoutMs,
      adoptExisting: this.adoptExisting,
      cacheSizeMb: this.options.cacheSizeMb,
    });
    // One transaction function for every flush (making one per flush showed in profiles).
    this.batch = this.database.transaction((ops: Op[], values: unknown[]): Claimed[] => {
      const now = this.now();
      this.queues.refreshBindings();
      // Optimistic: run every op bare; if one throws, the caller redoes them with savepoints.
      try {
        for (const op of ops) values.push(op.run(now));
      } catch {
        throw retryWithSavepoints;
      }
      const claimed = this.claimAll(now);
      this.queues.applyCounts();
      return claimed;
    });
    this.store = new SqliteQueues(
      this.database,
      this.options.dedupWindowMs,
      () => this.now(),
      (at) => {
        for (const consumer of this.consumers) consumer.nextDueAt = Math.min(consumer.nextDueAt, at);
      },
    );
    // After the file is known to be Courier's and migrated: the worker only ever checkpoints it.
    if (this.path !== ':memory:') this.checkpointer = startCheckpointer(this.path);
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
    return this.write(() => this.queues.declare(topology));
  }

  publish(items: readonly PublishItem[]): Promise<void> {
    return this.write((now) => {
      for (const item of items) this.queues.publish(item, now);
      this.wakeConsumers();
    });
  }

  async consume(
    queue: string,
    options: ConsumeOptions,
    onDelivery: (delivery: Delivery) => void,
  ): Promise<ConsumerHandle> {
    this.assertOpen();
    const queueId = this.queues.requireQueueId(queue);
    const consumer: LocalConsumer = {
      queue,
      queueId,
      options,
      onDelivery,
      unsettled: 0,
      active: true,
      mayHaveMore: true,
      nextDueAt: 0,
    };
    this.consumers.add(consumer);
    this.scheduleFlush();
    this.startPolling();
    return {
      stop: async () => {
        consumer.active = false;
        this.consumers.delete(consumer);
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
    remove: (queue, ids) =>
      this.write(() => {
        const removed = this.queues.removeDeadLetters(queue, ids);
        this.wakeConsumers();
        return removed;
      }),
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
        this.write((now) => this.queues.inboxPutIfAbsent(scope, key, value, now + retentionMs, now)),
    };
  }

  /** Saga state in this file; its async writes share the broker's group commits. */
  sagaStore(): SqliteSagaStore {
    return new SqliteSagaStore(this.db, (work) => this.write(work));
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
      // Writes already asked for are committed; a crash stand-in (abandon) leaves leases to expire.
      await this.flushNow();
      if (!options.abandon) {
        const now = this.now();
        this.database
          .transaction(() => {
            for (const [seq, { token, consumer }] of this.held)
              this.queues.retry(seq, token, consumer.queueId, now, now, false);
            for (const queue of this.temporaryQueues) this.queues.deleteQueue(queue);
            this.queues.applyCounts();
          })
          .immediate();
        try {
          this.database.pragma('wal_checkpoint(PASSIVE)');
        } catch {
          // Another process holds the WAL; it checkpoints later.
        }
      }
      this.held.clear();
      this.database.close();
    }
    await this.checkpointer?.stop();
    this.closed = true;
    for (const op of this.ops.splice(0))
      fail(op, new ClosedError('the sqlite transport closed before the write ran'));
  }

  // ---- writes: one transaction per event-loop turn -------------------------------------------

  /** Queues `run` for the next group commit; resolves its result once committed. */
  private write<T>(run: (now: number) => T, onFail?: () => void): Promise<T> {
    if (this.closed) {
      onFail?.();
      return Promise.reject(new ClosedError('the sqlite transport is closed'));
    }
    if (!this.database) {
      // Writes before start() open the file too, rather than waiting for a flush that cannot run.
      try {
        this.open();
      } catch (error) {
        onFail?.();
        return Promise.reject(error);
      }
    }
    return new Promise<T>((resolve, reject) => {
      this.ops.push({ run, resolve: resolve as (value: never) => void, reject, onFail });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.closed) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private async flushNow(): Promise<void> {
    while (this.ops.length > 0) {
      this.flush();
      if (this.ops.length > 0) await new Promise((resolve) => setTimeout(resolve, this.busyRetryMs));
    }
  }

  private flush(): void {
    if (this.closed || !this.database) return;
    const ops = this.ops;
    this.ops = [];
    const now = this.now();
    let wantsClaim = false;
    for (const c of this.consumers) {
      if (c.active && c.unsettled < c.options.prefetch && (c.mayHaveMore || c.nextDueAt <= now))
        wantsClaim = true;
    }
    if (ops.length === 0 && !wantsClaim) return;
    // The common case: every op succeeds, their values in order.
    const values: unknown[] = [];
    let results: { ok: boolean; value: unknown }[] | undefined;
    let claimed: Claimed[];
    try {
      claimed = this.batch!.immediate(ops, values);
    } catch (error) {
      // The transaction rolled back, and the count changes its writes made with it.
      this.queues.discardCounts();
      if (error !== retryWithSavepoints) {
        this.onFlushFailed(ops, error);
        return;
      }
      // An op threw: redo them one savepoint each, so only that one fails.
      const redone: { ok: boolean; value: unknown }[] = [];
      results = redone;
      try {
        claimed = this.database
          .transaction(() => {
            const now = this.now();
            for (const op of ops) {
              // Count changes of the ops before this one are set aside: a failed op's go with its savepoint.
              const before = this.queues.takeCounts();
              try {
                redone.push({ ok: true, value: this.database!.transaction(() => op.run(now))() });
              } catch (opError) {
                redone.push({ ok: false, value: opError });
                this.queues.discardCounts();
              }
              this.queues.restoreCounts(before);
            }
            const leased = this.claimAll(now);
            this.queues.applyCounts();
            return leased;
          })
          .immediate();
      } catch (secondError) {
        this.queues.discardCounts();
        this.onFlushFailed(ops, secondError);
        return;
      }
    }
    this.busyRetryMs = 1;
    if (results === undefined) {
      for (let i = 0; i < ops.length; i++) ops[i]!.resolve(values[i] as never);
    } else {
      for (let i = 0; i < ops.length; i++) {
        const result = results[i]!;
        if (result.ok) ops[i]!.resolve(result.value as never);
        else fail(ops[i]!, result.value);
      }
    }
    for (const { consumer, rows, token } of claimed) this.deliver(consumer, rows, token);
    if (this.ops.length > 0 || claimed.some((c) => c.rows.length > 0)) this.scheduleFlush();
  }

  private onFlushFailed(ops: Op[], error: unknown): void {
    if (isBusy(error)) {
      // Another process holds the write lock: put the ops back and try again soon, off the event loop.
      this.ops = ops.concat(this.ops);
      const wait = this.busyRetryMs;
      this.busyRetryMs = Math.min(this.busyRetryMs * 2, 50);
      setTimeout(() => this.scheduleFlush(), wait);
      return;
    }
    const failure = new TransportError(`sqlite write failed on '${this.path}': ${(error as Error).message}`, {
      cause: error,
    });
    for (const op of ops) fail(op, failure);
  }

  /** Inside the flush transaction: lease what each consumer has room for. */
  private claimAll(now: number): Claimed[] {
    const out: Claimed[] = [];
    for (const consumer of this.consumers) {
      const room = consumer.options.prefetch - consumer.unsettled;
      // While deliveries are out, wait until a quarter of the prefetch is free: fewer, larger claims.
      if (!consumer.active || room <= 0 || (consumer.unsettled > 0 && room < consumer.options.prefetch / 4))
        continue;
      if (consumer.nextDueAt <= now) {
        if (this.queues.housekeep(consumer.queueId, now) > 0) consumer.mayHaveMore = true;
        consumer.nextDueAt = this.queues.nextDueAt(consumer.queueId) ?? Number.POSITIVE_INFINITY;
      }
      if (!consumer.mayHaveMore) continue;
      const token = this.tokenBase + ++this.tokenCounter;
      const rows = this.queues.claim(consumer.queueId, room, token, now + consumer.options.leaseMs);
      const live: ClaimedRow[] = [];
      for (const row of rows) {
        if (row.expires_at !== null && row.expires_at <= now) this.queues.expire(row, token, now);
        else live.push(row);
      }
      if (rows.length < room) consumer.mayHaveMore = false;
      if (live.length > 0) {
        consumer.unsettled += live.length;
        // The leases just taken end before anything else we know of.
        consumer.nextDueAt = Math.min(consumer.nextDueAt, now + consumer.options.leaseMs);
        out.push({ consumer, rows: live, token });
      }
    }
    if (now - this.lastDedupSweep > 60_000) {
      this.lastDedupSweep = now;
      this.queues.sweep(now);
    }
    return out;
  }

  /** Something was stored or freed here: claim again at the next flush. */
  private wakeConsumers(): void {
    for (const consumer of this.consumers) consumer.mayHaveMore = true;
  }

  private deliver(consumer: LocalConsumer, rows: ClaimedRow[], token: number): void {
    for (const row of rows) {
      this.held.set(row.seq, { token, consumer });
      if (!consumer.active) {
        void this.settle(row.seq, token, (now) =>
          this.queues.retry(row.seq, token, consumer.queueId, now, now, false),
        );
        continue;
      }
      consumer.onDelivery(this.delivery(consumer, row, token));
    }
  }

  private delivery(consumer: LocalConsumer, row: ClaimedRow, token: number): Delivery {
    return new SqliteDelivery(this, consumer.queue, consumer.queueId, row, token);
  }

  /** The settles of `SqliteDelivery`, each one write in the next group commit. */
  ackDelivery(seq: number, token: number, row: RowKey, outgoing: readonly PublishItem[]): Promise<boolean> {
    return this.settle(seq, token, (now) => {
      for (const item of outgoing) this.queues.publish(item, now);
      if (outgoing.length > 0) this.wakeConsumers();
      return this.queues.ack(seq, token, row.queueId, row.key);
    });
  }

  retryDelivery(
    seq: number,
    token: number,
    queueId: number,
    availableAt: number | undefined,
    counted: boolean,
  ): Promise<boolean> {
    return this.settle(seq, token, (now) =>
      this.queues.retry(seq, token, queueId, availableAt ?? now, now, counted),
    );
  }

  deadLetterDelivery(seq: number, token: number, info: DeadLetterInfo): Promise<boolean> {
    return this.settle(seq, token, () => this.queues.deadLetter(seq, token, info));
  }

  extendDeliveryLease(seq: number, token: number, ms: number): Promise<boolean> {
    return this.write((now) => this.queues.extendLease(seq, token, now + ms));
  }

  /** Runs one settle in the next group commit; frees the consumer's slot whatever the outcome. */
  private settle(seq: number, token: number, run: (now: number) => boolean): Promise<boolean> {
    return this.write(
      (now) => {
        const settled = run(now);
        // Free the slot now, inside the commit: the claim at the end of this same flush may lease the
        // row again (a retry without delay), and must find the slot already given back.
        this.releaseSlot(seq, token);
        // The settled row may free a key or a slot: look again at the next claim.
        this.wakeConsumers();
        return settled;
      },
      // A write that fails for good still gives the slot back.
      () => this.releaseSlot(seq, token),
    );
  }

  private releaseSlot(seq: number, token: number): void {
    const held = this.held.get(seq);
    if (held?.token !== token) return;
    this.held.delete(seq);
    held.consumer.unsettled--;
    this.scheduleFlush();
  }

  /**
   * Exactly-once effects (DESIGN.md §2): `work` writes the application's tables, then the handler's
   * output is stored and the delivery acked, all in one transaction. A lost lease rolls it all back.
   */
  transact<R>(
    seq: number,
    token: number,
    row: RowKey,
    work: (db: unknown) => R,
    outgoing: readonly PublishItem[],
  ): R {
    const db = this.db;
    // Synchronous, so it cannot step aside like the group commit: wait longer for another process's lock.
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
          this.queues.refreshBindings();
          for (const item of outgoing) this.queues.publish(item, now);
          if (!this.queues.ack(seq, token, row.queueId, row.key)) {
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
      throw error;
    } finally {
      this.busyStatements.normal.run();
    }
    this.wakeConsumers();
    this.releaseSlot(seq, token);
    return result;
  }

  // ---- noticing other processes ----------------------------------------------------------------

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
      const due = [...this.consumers].some((c) => c.nextDueAt <= now);
      if (changed) {
        // Another process wrote: it may have stored, scheduled or leased anything; look at all of it.
        for (const consumer of this.consumers) {
          consumer.mayHaveMore = true;
          consumer.nextDueAt = 0;
        }
      }
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

const retryWithSavepoints = Symbol('retry with savepoints');

/**
 * One claimed row handed to a consumer. A class rather than an object of closures: one is made per
 * message, and its methods only name the row (`seq`) and the lease (`token`) they settle.
 */
class SqliteDelivery implements Delivery {
  readonly envelope: Delivery['envelope'];
  readonly attempt: number;
  private readonly seq: number;
  private readonly row: RowKey;

  constructor(
    private readonly transport: SqliteTransport,
    readonly queue: string,
    queueId: number,
    row: ClaimedRow,
    private readonly token: number,
  ) {
    this.seq = row.seq;
    this.row = { queueId, key: row.key };
    this.attempt = row.attempt;
    const stored = row.body;
    this.envelope = {
      id: row.id,
      type: row.type,
      headers: parseHeaders(row.headers, row.id, row.type),
      // A JSON body is TEXT: bytes from the Buffer pool, and the text for the decoder as it is.
      body: typeof stored === 'string' ? Buffer.from(stored, 'utf8') : stored,
      bodyText: typeof stored === 'string' ? stored : undefined,
      key: row.key ?? undefined,
      priority: row.priority || undefined,
      expiresAt: row.expires_at ?? undefined,
      dedupId: row.dedup_id ?? undefined,
    };
  }

  ack(outgoing: readonly PublishItem[] = []): Promise<boolean> {
    return this.transport.ackDelivery(this.seq, this.token, this.row, outgoing);
  }

  retry(delayMs: number): Promise<boolean> {
    return this.transport.retryDelivery(this.seq, this.token, this.row.queueId, Date.now() + delayMs, true);
  }

  defer(untilMs: number): Promise<boolean> {
    return this.transport.retryDelivery(this.seq, this.token, this.row.queueId, untilMs, false);
  }

  release(): Promise<boolean> {
    return this.transport.retryDelivery(this.seq, this.token, this.row.queueId, undefined, false);
  }

  deadLetter(info: DeadLetterInfo): Promise<boolean> {
    return this.transport.deadLetterDelivery(this.seq, this.token, info);
  }

  extendLease(ms: number): Promise<boolean> {
    return this.transport.extendDeliveryLease(this.seq, this.token, ms);
  }

  transact<R>(work: (db: unknown) => R, outgoing: readonly PublishItem[]): R {
    return this.transport.transact(this.seq, this.token, this.row, work, outgoing);
  }
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || code === 'SQLITE_BUSY_SNAPSHOT';
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
