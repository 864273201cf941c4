import type {
  DeadLetterFilter,
  DeadLetterInfo,
  DeadLetterPage,
  PublishItem,
  QueueStats,
  Topology,
} from '@courier/core';
import { matchesHeaders, matchesPattern, NoRouteError } from '@courier/core';
import type Database from 'better-sqlite3';
import { listDeadLetters, type MessageColumns } from './dead-letters.js';
import { InsertRuns } from './insert-runs.js';
import type { ClaimedRow, StoredItem } from './rows.js';
import { BYPASS_DEDUP, DROP_IF_NO_QUEUE, Item, NO_HEADERS, parseHeaders, Row, toStoredItem } from './rows.js';
import type { SqliteDatabase } from './schema.js';
import { DEAD, LEASED, prepareStatements, READY, SCHEDULED, type Statements, WAITING } from './statements.js';

/** The largest claim statement; bigger claims run it several times. */
const MAX_CLAIM_CHUNK = 1024;

/** A message row taken out of the queue to become a dead letter. */
interface TakenRow extends MessageColumns {
  id: string;
}

/** Count changes and settled lease rows not yet written (see `takeCounts`). */
export interface PendingCounts {
  readonly counts: Map<number, number[]>;
  readonly settled: Map<number, number[]>;
}

interface Binding {
  queueId: number;
  pattern: string;
  headers: Record<string, string> | undefined;
}

/**
 * The broker's operations as synchronous SQL on one connection. Every method expects to run inside a
 * transaction the caller opened (the transport batches many into one commit) that starts with
 * `begin()`. Statements are prepared once; none of the hot-path ones scans a table.
 *
 * Leases: a claim does not rewrite the rows it takes. It writes one `courier_leases` row per
 * priority it took from (token, first and last seq, end, rows not yet settled); the rows stay
 * `ready`. A queue's cursor for a priority is the last seq of its live leases there: a `ready` row at
 * or before it is leased by the live lease whose range holds it, and the next claim starts after it.
 * Two rules keep that true: a row that becomes ready again (retry, release, a due delay, a
 * reclaimed lease, the next message of a key) is copied to a new seq after every cursor, and a new
 * row's seq is too (the first insert of a transaction checks). A settle deletes or moves its row and
 * counts down its lease; the lease row goes when nothing of it is left (a cursor may then move back:
 * nothing ready is left behind it). An expired lease's rows are copied to new seqs, their attempt
 * counted, which also fences late settles: the old seqs are gone. `extendLease` turns a row into one
 * with a lease of its own (`state` leased, `lease_token`, `lease_until`), the form every settle also
 * accepts.
 */
export class SqliteQueues {
  private readonly queueIds = new Map<string, number>();
  /**
   * Changes to `courier_counts` made by the writes since the last `applyCounts`, per queue, indexed
   * by state (DEAD for dead letters). The transport applies them in the transaction that made them,
   * or drops them with it (`takeCounts`, `restoreCounts`, `discardCounts`).
   */
  private pending = new Map<number, number[]>();
  /**
   * Rows settled per lease since the last `applyCounts`, applied with the counts: by token, the
   * queue's id then a count per priority.
   */
  private settled = new Map<number, number[]>();
  /** Whether a lease (by token) is live, as looked up in this transaction. */
  private readonly alive = new Map<number, boolean>();
  /** A row inserted in this transaction already has a seq after every cursor: later ones follow it. */
  private seqSafe = false;
  /** Claim statements by their LIMIT, a power of two (see `claim`). */
  private readonly claims = new Map<number, Database.Statement>();
  private bindings: Binding[] = [];
  private readonly routes = new Map<string, Binding[]>();
  private topologyVersion = -1;
  /** The earliest time a row made `scheduled` since `takeScheduled`, so the transport knows when to look again. */
  private scheduledAt = Number.POSITIVE_INFINITY;
  private readonly s: Statements;
  private readonly runs: InsertRuns;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly dedupWindowMs: number,
    private readonly now: () => number,
  ) {
    this.s = prepareStatements(db);
    this.runs = new InsertRuns(db);
  }

  /** Call at the start of every transaction that uses these methods. */
  begin(): void {
    this.alive.clear();
    this.seqSafe = false;
    this.runs.discard();
    this.refreshBindings();
  }

  /**
   * The commands from here to `endRun` are all publishes: new rows without a key may be inserted
   * many per statement (insert-runs.ts). `endRun` before any other statement of the transaction.
   */
  beginRun(): void {
    this.runs.begin();
  }

  endRun(): void {
    this.runs.end();
  }

  /** The seq after every row and every cursor: where copied rows start (a copy never reuses a seq). */
  private seqBase(): number {
    return Math.max(
      (this.s.maxSeq.get() as number | null) ?? 0,
      (this.s.maxCursor.get() as number | null) ?? 0,
    );
  }

  /** Whether lease `token` has a live row: by a scan of the (small) lease table, once per transaction. */
  private leaseAlive(token: number): boolean {
    let alive = this.alive.get(token);
    if (alive === undefined) {
      alive = this.s.leaseAlive.get(token) !== undefined;
      this.alive.set(token, alive);
    }
    return alive;
  }

  /** `leaseAlive` for a row whose queue and priority are known: a primary-key read (acks, the hot path). */
  private leaseAliveFor(token: number, queueId: number, priority: number): boolean {
    if (this.alive.get(token) === true) return true;
    // Only a yes is remembered: it says some lease of the token lives, whatever the priority.
    const alive = this.s.leaseAliveAt.get(queueId, priority, token) !== undefined;
    if (alive) this.alive.set(token, true);
    return alive;
  }

  /** Cursors of a queue by priority (0 where it has none). */
  private cursorsOf(queueId: number): number[] {
    const cursors = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for (const [priority, seq] of this.s.cursors.all(queueId) as [number, number][]) cursors[priority] = seq;
    return cursors;
  }

  private static cursorParams(queueId: number, cursors: number[]): Record<string, number> {
    const params: Record<string, number> = { queueId };
    for (let p = 0; p < 10; p++) params[`c${p}`] = cursors[p]!;
    return params;
  }

  /** Copies the rows `statement` selects to new seqs (see "Leases"); returns how many. */
  private copy(
    statement: Database.Statement,
    params: Record<string, unknown>,
    state: number,
    availableAt: number | null,
    bump: number,
  ): number {
    return statement.run({ ...params, base: this.seqBase(), state, availableAt, bump }).changes;
  }

  private noteScheduled(at: number): void {
    if (at < this.scheduledAt) this.scheduledAt = at;
  }

  /** The earliest time a write since the last call made a row due (Infinity for none), and forgets it. */
  takeScheduled(): number {
    const at = this.scheduledAt;
    this.scheduledAt = Number.POSITIVE_INFINITY;
    return at;
  }

  /** The queue's id, or undefined when it does not exist. */
  queueId(name: string): number | undefined {
    const cached = this.queueIds.get(name);
    if (cached !== undefined) return cached;
    const id = this.s.queueId.get(name) as number | undefined;
    if (id !== undefined) this.queueIds.set(name, id);
    return id;
  }

  requireQueueId(name: string): number {
    const id = this.queueId(name);
    if (id === undefined) throw new NoRouteError(`queue '${name}' does not exist: declare it first`);
    return id;
  }

  declare(topology: Topology): void {
    let changed = false;
    for (const queue of topology.queues) {
      changed = this.s.insertQueue.run(queue.name, queue.temporary ? 1 : 0).changes > 0 || changed;
    }
    for (const binding of topology.bindings) {
      const queueId = this.requireQueueId(binding.queue);
      const headers =
        binding.headers && Object.keys(binding.headers).length > 0
          ? JSON.stringify(sortKeys(binding.headers))
          : '';
      changed = this.s.insertBinding.run(queueId, binding.pattern, headers).changes > 0 || changed;
    }
    if (changed) this.s.bumpTopology.run();
  }

  deleteQueue(name: string): void {
    const id = this.queueId(name);
    if (id === undefined) return;
    this.s.deleteQueueMessages.run(id);
    this.s.dropQueueLeases.run(id);
    this.s.dropCounts.run(id);
    this.pending.delete(id);
    this.s.deleteQueueBindings.run(id);
    this.s.deleteQueue.run(id);
    this.queueIds.delete(name);
    this.s.bumpTopology.run();
  }

  /** Reloads bindings if another connection changed the topology. One indexed read per commit. */
  refreshBindings(): void {
    const version = Number(this.s.topologyVersion.get() ?? 0);
    if (version === this.topologyVersion) return;
    this.topologyVersion = version;
    this.routes.clear();
    this.bindings = (this.s.allBindings.all() as { queueId: number; pattern: string; headers: string }[]).map(
      (b) => ({
        queueId: b.queueId,
        pattern: b.pattern,
        headers: b.headers === '' ? undefined : (JSON.parse(b.headers) as Record<string, string>),
      }),
    );
  }

  /** The bindings whose pattern matches `type`, remembered per type until the bindings change. */
  private bindingsFor(type: string): Binding[] {
    let matching = this.routes.get(type);
    if (matching === undefined) {
      matching = this.bindings.filter((b) => matchesPattern(b.pattern, type));
      // Bounded: a flood of distinct types must not grow this without end.
      if (this.routes.size >= 1_000) this.routes.clear();
      this.routes.set(type, matching);
    }
    return matching;
  }

  /** Routes and stores `item`; returns how many queue copies were stored. Throws NoRouteError for a missing queue. */
  publish(item: PublishItem, now: number): number {
    return this.publishStored(toStoredItem(item), now);
  }

  /** `publish` for an item already in its stored form (the writer thread receives these). */
  publishStored(item: StoredItem, now: number): number {
    const to = item[Item.QUEUE];
    let queueIds: number[];
    if (to !== null) {
      const id = this.queueId(to);
      if (id === undefined) {
        if (item[Item.FLAGS] & DROP_IF_NO_QUEUE) return 0;
        throw new NoRouteError(`queue '${to}' does not exist (message '${item[Item.TYPE]}')`);
      }
      queueIds = [id];
    } else {
      queueIds = [];
      let headers: Record<string, string> | undefined;
      for (const b of this.bindingsFor(item[Item.TYPE])) {
        // Header filters are rare: the stored headers are parsed only for a binding that has one.
        if (b.headers !== undefined)
          headers ??= parseHeaders(item[Item.HEADERS], item[Item.ID], item[Item.TYPE]);
        if (matchesHeaders(b.headers, headers ?? NO_HEADERS) && !queueIds.includes(b.queueId)) {
          queueIds.push(b.queueId);
        }
      }
    }
    if (queueIds.length === 0) return 0;
    const dedupId = item[Item.DEDUP_ID];
    let stored = 0;
    for (const queueId of queueIds) {
      if (dedupId !== null && !(item[Item.FLAGS] & BYPASS_DEDUP)) {
        if (this.s.dedup.run(queueId, dedupId, now + this.dedupWindowMs, now).changes === 0) continue;
      }
      this.insert(queueId, item, now);
      stored++;
    }
    return stored;
  }

  private insert(queueId: number, item: StoredItem, now: number): void {
    const deliverAt = item[Item.DELIVER_AT];
    const availableAt = deliverAt !== null && deliverAt > now ? deliverAt : now;
    let state = availableAt > now ? SCHEDULED : READY;
    if (state === SCHEDULED) this.noteScheduled(availableAt);
    const key = item[Item.KEY];
    let takesKey = false;
    let takesParkedKey = false;
    if (key !== null) {
      const lock = this.s.keyState.get(queueId, key) as
        | { holder: number | null; parkedBy: number | null }
        | undefined;
      if (!lock) takesKey = true;
      else if (lock.parkedBy !== null && this.s.parkedMessageId.get(lock.parkedBy) === item[Item.ID]) {
        // The replay of the dead letter that parks this key goes back to the head of its key.
        takesParkedKey = true;
      } else state = WAITING;
    }
    const values = [
      queueId,
      state,
      item[Item.PRIORITY],
      availableAt,
      item[Item.ID],
      item[Item.TYPE],
      key,
      item[Item.EXPIRES_AT],
      item[Item.DEDUP_ID],
      item[Item.HEADERS],
      item[Item.BODY],
      now,
    ] as const;
    if (key === null && this.seqSafe && this.runs.accepting) {
      this.runs.add(values);
      this.count(queueId, state, 1);
      return;
    }
    // A row inserted alone (a key's holder is its seq; the transaction's first row) goes after the
    // run's rows published before it.
    this.runs.flush();
    let seq: number;
    if (this.seqSafe) {
      seq = this.s.insert.run(...values).lastInsertRowid as number;
    } else {
      // SQLite gives a new row the largest seq plus one: once the newest rows are acked, that can
      // fall at or before a cursor, where no claim would look. The first insert of a transaction
      // checks; the ones after it follow it.
      const floor = (this.s.maxCursor.get() as number | null) ?? 0;
      const last = (this.s.maxSeq.get() as number | null) ?? 0;
      seq =
        last > floor
          ? (this.s.insert.run(...values).lastInsertRowid as number)
          : (this.s.insertAt.run(floor + 1, ...values).lastInsertRowid as number);
      this.seqSafe = true;
    }
    this.count(queueId, state, 1);
    if (takesKey) this.s.takeKey.run(queueId, key, seq);
    if (takesParkedKey) this.s.setKeyHolder.run(seq, queueId, key);
  }

  /**
   * Leases up to `limit` ready messages, highest priority first, then oldest: per priority that has
   * rows past its cursor, a SELECT from the cursor on, then one lease row and the cursor moved (see
   * "Leases"): the rows themselves are not written. The LIMIT is a literal: a bound LIMIT makes this
   * SQLite build re-plan the statement at every call (a claim of two rows took 47-60 us with
   * `LIMIT ?`, 12 us with a literal). So `limit` is taken in power-of-two chunks, each a statement
   * of its own, stopping at the first chunk that comes back short.
   */
  claim(queueId: number, limit: number, token: number, leaseUntil: number): ClaimedRow[] {
    const rows: ClaimedRow[] = [];
    const cursors = this.cursorsOf(queueId);
    const priorities = this.s.claimable.all(SqliteQueues.cursorParams(queueId, cursors)) as number[];
    let left = limit;
    for (const priority of priorities) {
      let after = cursors[priority]!;
      let first = -1;
      let taken = 0;
      while (left > 0) {
        const chunk = Math.min(MAX_CLAIM_CHUNK, 2 ** Math.floor(Math.log2(left)));
        // Raw rows (arrays), kept as arrays: better-sqlite3 builds row objects property by property
        // through V8's API (1.4 of a row's 5.3 us), and arrays cross to the main thread cheaper.
        const got = this.claimStatement(chunk).all(queueId, priority, after) as ClaimedRow[];
        if (got.length === 0) break;
        if (first < 0) first = got[0]![Row.SEQ];
        after = got[got.length - 1]![Row.SEQ];
        for (const row of got) {
          row[Row.ATTEMPT]++;
          rows.push(row);
        }
        taken += got.length;
        left -= got.length;
        if (got.length < chunk) break;
      }
      if (taken === 0) continue;
      this.s.addLease.run(queueId, priority, token, first, after, leaseUntil, taken);
      this.alive.set(token, true);
      this.count(queueId, READY, -taken);
      this.count(queueId, LEASED, taken);
      if (left === 0) break;
    }
    return rows;
  }

  private claimStatement(limit: number): Database.Statement {
    let statement = this.claims.get(limit);
    if (!statement) {
      statement = this.db
        .prepare(
          `SELECT seq, attempt, id, type, key, priority, expires_at, dedup_id, headers, body
           FROM courier_messages WHERE queue_id = ? AND state = ${READY} AND priority = ? AND seq > ?
           ORDER BY seq LIMIT ${limit}`,
        )
        .raw();
      this.claims.set(limit, statement);
    }
    return statement;
  }

  /** Counts a row of lease `token` settled; the lease goes once none of its rows is left (`applyCounts`). */
  private settledOne(queueId: number, priority: number, token: number, n = 1): void {
    let settled = this.settled.get(token);
    if (!settled) {
      settled = [queueId, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
      this.settled.set(token, settled);
    }
    settled[1 + priority]! += n;
  }

  /**
   * Deletes a delivered row under its lease; `queueId`, `priority` and `key` are the row's, from its
   * claim. False when the lease is gone (expired and reclaimed: the row moved) or the row is.
   */
  ack(seq: number, token: number, queueId: number, priority: number, key: string | null): boolean {
    if (this.leaseAliveFor(token, queueId, priority) && this.s.ackLeased.run(seq).changes === 1) {
      this.settledOne(queueId, priority, token);
    } else if (this.s.ack.run(seq, token).changes === 0) {
      return false;
    }
    this.count(queueId, LEASED, -1);
    if (key !== null) this.releaseKey(queueId, key);
    return true;
  }

  /**
   * `ack` of `n` rows with consecutive seqs from `first`, all under lease `token` of one queue and
   * priority and without a key: one range delete. False (and nothing done) unless every one of them
   * is a ready row under that live lease; the caller then acks them one by one.
   */
  ackRange(first: number, n: number, token: number, queueId: number, priority: number): boolean {
    const last = first + n - 1;
    if (!this.leaseAliveFor(token, queueId, priority)) return false;
    if ((this.s.countReadyRange.get(first, last) as number) !== n) return false;
    this.s.ackReadyRange.run(first, last);
    this.settledOne(queueId, priority, token, n);
    this.count(queueId, LEASED, -n);
    return true;
  }

  /** Back to the queue at `availableAt`; `counted: false` gives the attempt back (defer, release). */
  retry(
    seq: number,
    token: number,
    queueId: number,
    availableAt: number,
    now: number,
    counted: boolean,
  ): boolean {
    // A row under a claim's lease has not counted this attempt yet; one with a lease of its own has.
    let row = this.leaseAlive(token)
      ? (this.s.rowOf.get(seq) as { priority: number; key: string | null } | undefined)
      : undefined;
    const own = row === undefined;
    if (own) row = this.s.explicitRowOf.get(seq, token) as typeof row;
    if (row === undefined) return false;
    const bump = own ? (counted ? 0 : -1) : counted ? 1 : 0;
    const scheduled = availableAt > now;
    if (scheduled) {
      this.s.schedule.run(availableAt, bump, seq);
      this.noteScheduled(availableAt);
    } else {
      this.copy(this.s.copyOne, { seq }, READY, availableAt, bump);
      this.s.deleteSeq.run(seq);
    }
    if (!own) this.settledOne(queueId, row.priority, token);
    this.count(queueId, LEASED, -1);
    this.count(queueId, scheduled ? SCHEDULED : READY, 1);
    return true;
  }

  extendLease(seq: number, token: number, leaseUntil: number): boolean {
    if (this.leaseAlive(token)) {
      // Out of the claim's lease into one of its own, so it can outlive the others.
      const row = this.s.extendLeased.get(token, leaseUntil, seq) as [number, number] | undefined;
      if (row !== undefined) {
        this.settledOne(row[0], row[1], token);
        return true;
      }
    }
    return this.s.extend.run(leaseUntil, seq, token).changes === 1;
  }

  deadLetter(seq: number, token: number, info: DeadLetterInfo): boolean {
    let row = this.leaseAlive(token)
      ? (this.s.takeLeasedForDeadLetter.get(seq) as (TakenRow & { queueId: number }) | undefined)
      : undefined;
    if (row !== undefined) this.settledOne(row.queueId, row.priority, token);
    else row = this.s.takeForDeadLetter.get(seq, token) as (TakenRow & { queueId: number }) | undefined;
    if (!row) return false;
    // The newest row may be gone: the next insert checks its seq against the cursors again.
    this.seqSafe = false;
    this.count(row.queueId, LEASED, -1);
    this.storeDeadLetter(row.queueId, row, info);
    return true;
  }

  private storeDeadLetter(queueId: number, row: TakenRow, info: DeadLetterInfo): void {
    const parks = info.parkKey === true && row.key !== null;
    const deadLetterId = this.s.insertDeadLetter.run(
      queueId,
      row.id,
      row.type,
      row.key,
      row.priority,
      row.expires_at,
      row.dedup_id,
      row.headers,
      row.body,
      info.reason,
      info.errorName ?? null,
      info.errorCode ?? null,
      info.errorMessage ?? null,
      info.attempts,
      info.firstFailedAt ?? null,
      info.failedAt,
      parks ? 1 : 0,
    ).lastInsertRowid as number;
    this.count(queueId, DEAD, 1);
    if (row.key === null) return;
    if (parks) this.s.parkKey.run(deadLetterId, queueId, row.key);
    else this.releaseKey(queueId, row.key);
  }

  /** A claimed row whose time ran out goes to the dead letters instead of a consumer. */
  expire(row: ClaimedRow, token: number, now: number): void {
    this.deadLetter(row[Row.SEQ], token, {
      reason: 'expired',
      errorMessage: `expired at ${new Date(row[Row.EXPIRES_AT]!).toISOString()} before it was delivered`,
      attempts: row[Row.ATTEMPT] - 1,
      queue: '',
      failedAt: now,
    });
  }

  /** Lets the next message of `key` go, or frees the key. */
  private releaseKey(queueId: number, key: string): void {
    const next = this.s.nextWaiting.get(queueId, key) as { seq: number; availableAt: number } | undefined;
    if (!next) {
      this.s.dropKey.run(queueId, key);
      return;
    }
    const scheduled = next.availableAt > this.now();
    let holder = next.seq;
    if (scheduled) {
      this.noteScheduled(next.availableAt);
      this.s.wake.run(SCHEDULED, next.seq);
    } else {
      // Ready again: after every cursor (see "Leases").
      this.copy(this.s.copyOne, { seq: next.seq }, READY, null, 0);
      holder = this.s.maxSeq.get() as number;
      this.s.deleteSeq.run(next.seq);
    }
    this.count(queueId, WAITING, -1);
    this.count(queueId, scheduled ? SCHEDULED : READY, 1);
    this.s.setKeyHolder.run(holder, queueId, key);
  }

  /**
   * Makes due scheduled rows ready and the rows of expired leases claimable again, each copied to a
   * new seq (see "Leases"); a row of an expired claim lease counts that claim's attempt. The key a
   * moved row holds stays held (`holder_seq` keeps the seq it had when it took the key).
   */
  housekeep(queueId: number, now: number): number {
    const promoted = this.copy(this.s.copyDue, { queueId, now }, READY, null, 0);
    if (promoted > 0) this.s.deleteDue.run(queueId, now);
    // Rows with a lease of their own (extended) counted their attempt when they took it.
    let reclaimed = this.copy(this.s.copyExpiredLeases, { queueId, now }, READY, null, 0);
    if (reclaimed > 0) this.s.deleteExpiredLeases.run(queueId, now);
    const expired = this.s.expiredLeases.all(queueId, now) as [number, number, number, number][];
    for (const [token, priority, first, last] of expired) {
      const moved = this.copy(this.s.copyLeaseRange, { queueId, priority, first, last }, READY, now, 1);
      if (moved > 0) this.s.deleteLeaseRange.run(queueId, priority, first, last);
      this.s.dropLease.run(queueId, priority, token);
      this.alive.delete(token);
      reclaimed += moved;
    }
    this.count(queueId, SCHEDULED, -promoted);
    this.count(queueId, LEASED, -reclaimed);
    this.count(queueId, READY, promoted + reclaimed);
    return promoted + reclaimed;
  }

  /** Epoch ms of the next scheduled row or lease end of the queue, or undefined. */
  nextDueAt(queueId: number): number | undefined {
    const a = this.s.nextScheduled.get(queueId) as number | null;
    const b = this.s.nextLeaseEnd.get(queueId) as number | null;
    const c = this.s.nextLeaseRowEnd.get(queueId) as number | null;
    const due = Math.min(a ?? Infinity, b ?? Infinity, c ?? Infinity);
    return Number.isFinite(due) ? due : undefined;
  }

  /** Drops expired dedup and inbox rows, a thousand at a time so no commit waits long for it. */
  sweep(now: number): void {
    this.s.sweepDedup.run(now);
    this.s.sweepInbox.run(now);
  }

  inboxGet(scope: string, key: string, now: number): string | undefined {
    return this.s.inboxGet.get(scope, key, now) as string | undefined;
  }

  /** Stores unless a live value exists; returns the existing value, or undefined when it stored. */
  inboxPutIfAbsent(
    scope: string,
    key: string,
    value: string,
    expiresAt: number,
    now: number,
  ): string | undefined {
    if (this.s.inboxPut.run(scope, key, value, expiresAt, now).changes === 1) return undefined;
    return this.inboxGet(scope, key, now);
  }

  stats(name: string, now: number): QueueStats {
    const queueId = this.requireQueueId(name);
    const count = this.countsOf(queueId);
    const oldest = this.s.oldestReady.get(SqliteQueues.cursorParams(queueId, this.cursorsOf(queueId))) as
      | number
      | null;
    return {
      queue: name,
      depth: count[READY]! + count[WAITING]!,
      inFlight: count[LEASED]!,
      scheduled: count[SCHEDULED]!,
      deadLettered: count[DEAD]!,
      oldestAgeMs: oldest === null ? 0 : Math.max(0, now - oldest),
    };
  }

  listDeadLetters(
    name: string,
    filter: DeadLetterFilter,
    page: { limit: number; cursor?: string | undefined },
  ): DeadLetterPage {
    return listDeadLetters(this.db, this.requireQueueId(name), name, filter, page);
  }

  removeDeadLetters(name: string, ids: readonly string[]): number {
    const queueId = this.requireQueueId(name);
    let removed = 0;
    for (const id of ids) {
      const row = this.s.deadLetterById.get(Number(id), queueId) as
        | { id: number; key: string | null; parksKey: number }
        | undefined;
      if (!row) continue;
      this.s.deleteDeadLetter.run(row.id);
      this.count(queueId, DEAD, -1);
      removed++;
      if (row.parksKey && row.key !== null) {
        const lock = this.s.keyState.get(queueId, row.key) as
          | { holder: number | null; parkedBy: number | null }
          | undefined;
        if (lock && lock.parkedBy === row.id) this.releaseKey(queueId, row.key);
      }
    }
    return removed;
  }

  countDeadLetters(name: string): number {
    return this.countsOf(this.requireQueueId(name))[DEAD]!;
  }

  /** The committed counts of a queue by state (DEAD for dead letters): one indexed read. */
  private countsOf(queueId: number): number[] {
    const counts = [0, 0, 0, 0, 0];
    for (const row of this.s.counts.all(queueId) as { state: number; n: number }[]) counts[row.state] = row.n;
    return counts;
  }

  // ---- counts: kept per state in courier_counts so that stats() need not count rows -------------

  private count(queueId: number, state: number, n: number): void {
    if (n === 0) return;
    let counts = this.pending.get(queueId);
    if (!counts) {
      counts = [0, 0, 0, 0, 0];
      this.pending.set(queueId, counts);
    }
    counts[state]! += n;
  }

  /**
   * Writes the pending count changes, inside the transaction that made them. A count that would go
   * below zero means rows were written by something other than Courier (by hand, a tool): that
   * queue is counted again from its rows.
   */
  applyCounts(): void {
    for (const [queueId, counts] of this.pending) {
      let drifted = false;
      for (let state = 0; state < counts.length; state++) {
        if (counts[state] !== 0 && (this.s.addCount.get(queueId, state, counts[state]) as number) < 0)
          drifted = true;
      }
      if (drifted) this.recount(queueId);
    }
    this.pending.clear();
    for (const [token, settled] of this.settled) {
      const queueId = settled[0]!;
      for (let priority = 0; priority < 10; priority++) {
        const n = settled[1 + priority]!;
        if (n === 0) continue;
        const left = this.s.settleLease.get(n, queueId, priority, token) as number | undefined;
        if (left !== undefined && left <= 0) {
          this.s.dropLease.run(queueId, priority, token);
          this.alive.delete(token);
        }
      }
    }
    this.settled.clear();
  }

  /** Takes the pending count changes away (to keep them aside while a savepoint may roll back). */
  takeCounts(): PendingCounts {
    const taken = { counts: this.pending, settled: this.settled };
    this.pending = new Map();
    this.settled = new Map();
    return taken;
  }

  /** Puts count changes taken earlier back in front of the pending ones. */
  restoreCounts(taken: PendingCounts): void {
    for (const [queueId, counts] of taken.counts)
      for (let state = 0; state < counts.length; state++) this.count(queueId, state, counts[state]!);
    for (const [token, settled] of taken.settled)
      for (let priority = 0; priority < 10; priority++)
        if (settled[1 + priority]! > 0) this.settledOne(settled[0]!, priority, token, settled[1 + priority]);
  }

  /** Drops the pending count changes: their transaction rolled back. */
  discardCounts(): void {
    this.pending.clear();
    this.settled.clear();
    // Leases looked up or made, and rows inserted, in the rolled-back work may not exist.
    this.alive.clear();
    this.seqSafe = false;
  }

  /** Counts a queue's rows again (a full count: only after drift). */
  recount(queueId: number): void {
    this.s.dropCounts.run(queueId);
    this.s.recountMessages.run(queueId);
    this.s.recountDeadLetters.run(queueId);
    // Ready rows under a claim's lease are in flight.
    const leased = this.s.implicitlyLeased.get(queueId) as number;
    if (leased > 0) {
      this.s.addCount.get(queueId, READY, -leased);
      this.s.addCount.get(queueId, LEASED, leased);
    }
  }
}

function sortKeys(headers: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).sort(([a], [b]) => a.localeCompare(b)));
}
