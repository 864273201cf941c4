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
import { rangeEnd, rangeStart, SeqRanges, slotOf } from './ranges.js';
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
  readonly settled: Settled;
}

/** Rows settled per claim lease: by token, then by the slot of the range the lease is in. */
type Settled = Map<number, Map<number, number>>;

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
 * Ready rows live in a seq range per queue and priority, rows that wait in the parking range
 * (ranges.ts). Leases: a claim does not rewrite the rows it takes. It writes one `courier_claims` row
 * per range it took from (token, first and last seq, end, rows not yet settled); the rows stay
 * `ready`. A range's cursor is the last seq of its live claims: a `ready` row at or before it is
 * leased by the live claim whose stretch holds it, and the next claim starts after it. Two rules
 * keep that true: a row that becomes ready again (retry, release, a due delay, a reclaimed lease, the
 * next message of a key) is copied to a new seq of its range after the cursor, and a new row's seq is
 * too (ranges.ts). A settle deletes or moves its row and counts down its claim; the claim row goes
 * when nothing of it is left (the cursor may then move back: nothing ready is left behind it, and a
 * row that waits for a retry's backoff has moved to the parking range). An expired claim's rows are
 * copied to new seqs, their attempt counted, which also fences late settles: the old seqs are gone.
 * `extendLease` turns a row into one with a lease of its own (`state` leased, `lease_token`,
 * `lease_until`), the form every settle also accepts; it stays where it is, behind the cursor.
 */
export class SqliteQueues {
  private readonly queueIds = new Map<string, number>();
  /**
   * Changes to `courier_counts` made by the writes since the last `applyCounts`, per queue, indexed
   * by state (DEAD for dead letters). The transport applies them in the transaction that made them,
   * or drops them with it (`takeCounts`, `restoreCounts`, `discardCounts`).
   */
  private pending = new Map<number, number[]>();
  /** Rows settled per claim lease since the last `applyCounts`, applied with the counts. */
  private settled: Settled = new Map();
  /**
   * The claims (by token) known to be live in this transaction, per slot. Per slot, not per token:
   * one claim may hold rows in several ranges, and a part of it that is gone must fence its late
   * settles while another part lives (a range that ran empty gives its seqs out again).
   */
  private readonly alive = new Map<number, Set<number>>();
  /** Claim statements by their LIMIT, a power of two (see `claim`). */
  private readonly claims = new Map<number, Database.Statement>();
  private bindings: Binding[] = [];
  private readonly routes = new Map<string, Binding[]>();
  private topologyVersion = -1;
  /** The earliest time a row made `scheduled` since `takeScheduled`, so the transport knows when to look again. */
  private scheduledAt = Number.POSITIVE_INFINITY;
  private readonly s: Statements;
  private readonly runs: InsertRuns;
  private readonly ranges: SeqRanges;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly dedupWindowMs: number,
    private readonly now: () => number,
  ) {
    this.s = prepareStatements(db);
    this.runs = new InsertRuns(db);
    this.ranges = new SeqRanges(this.s);
  }

  /** Call at the start of every transaction that uses these methods. */
  begin(): void {
    this.alive.clear();
    this.ranges.begin();
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

  /**
   * Whether the row at `seq` may be under a live claim of `token`: the claim's part in the row's
   * range lives (a primary-key read, remembered for the transaction when it does). A ready row of
   * that range at or before the cursor is then the claim's: no new row gets a seq there while it
   * lives (see "Leases").
   */
  private claimAlive(token: number, seq: number): boolean {
    const slot = slotOf(seq);
    if (this.alive.get(slot)?.has(token)) return true;
    const alive = this.s.leaseAliveAt.get(slot, token) !== undefined;
    if (alive) this.noteAlive(slot, token);
    return alive;
  }

  private noteAlive(slot: number, token: number): void {
    let tokens = this.alive.get(slot);
    if (!tokens) {
      tokens = new Set();
      this.alive.set(slot, tokens);
    }
    tokens.add(token);
  }

  /**
   * Copies the rows `statement` selects, all of one queue and priority, to new seqs at the end of
   * their range (see "Leases"); returns how many.
   */
  private copyReady(
    statement: Database.Statement,
    params: Record<string, unknown>,
    queueId: number,
    priority: number,
    availableAt: number | null,
    bump: number,
  ): number {
    const base = this.ranges.copyBase(queueId, priority);
    const copied = statement.run({ ...params, base, state: READY, availableAt, bump }).changes;
    this.ranges.used(queueId, priority, copied);
    return copied;
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
    this.ranges.dropQueue(id);
    this.s.deleteScheduledOf.run(id);
    this.s.deleteLeasedOf.run(id);
    this.s.deleteWaitingOf.run(id);
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
    const priority = item[Item.PRIORITY];
    const seq = state === READY ? this.ranges.ready(queueId, priority) : this.ranges.parked();
    const values = [
      seq,
      queueId,
      state,
      priority,
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
    this.count(queueId, state, 1);
    if (this.runs.accepting) this.runs.add(values);
    else this.s.insertAt.run(...values);
    if (takesKey) this.s.takeKey.run(queueId, key, seq);
    if (takesParkedKey) this.s.setKeyHolder.run(seq, queueId, key);
  }

  /**
   * Leases up to `limit` ready messages, highest priority first, then oldest: per range of the queue
   * that has rows past its cursor, a SELECT of the primary key from the cursor on, then one claim row
   * and the cursor moved (see "Leases"): the rows themselves are not written. An older generation
   * found empty is given back (ranges.ts). The LIMIT is a literal: a bound LIMIT makes this SQLite
   * build re-plan the statement at every call (a claim of two rows took 47-60 us with `LIMIT ?`,
   * 12 us with a literal). So `limit` is taken in power-of-two chunks, each a statement of its own,
   * stopping at the first chunk that comes back short.
   */
  claim(queueId: number, limit: number, token: number, leaseUntil: number): ClaimedRow[] {
    const rows: ClaimedRow[] = [];
    let left = limit;
    const ranges = this.ranges.of(queueId);
    for (let i = 0; i < ranges.length; i++) {
      const [slot, priority, cursor] = ranges[i]!;
      const end = rangeEnd(slot);
      let after = cursor ?? rangeStart(slot);
      let first = -1;
      let taken = 0;
      while (left > 0) {
        const chunk = Math.min(MAX_CLAIM_CHUNK, 2 ** Math.floor(Math.log2(left)));
        // Raw rows (arrays), kept as arrays: better-sqlite3 builds row objects property by property
        // through V8's API (1.4 of a row's 5.3 us), and arrays cross to the main thread cheaper.
        const got = this.claimStatement(chunk).all(after, end, queueId, priority) as ClaimedRow[];
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
      if (taken === 0) {
        // Not the newest generation of its priority (another range of it follows): give it back.
        if (ranges[i + 1]?.[1] === priority) this.ranges.drained(slot);
        continue;
      }
      this.s.addLease.run(slot, token, queueId, first, after, leaseUntil, taken);
      this.noteAlive(slot, token);
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
           FROM courier_messages WHERE seq > ? AND seq <= ? AND state = ${READY} AND queue_id = ? AND priority = ?
           ORDER BY seq LIMIT ${limit}`,
        )
        .raw();
      this.claims.set(limit, statement);
    }
    return statement;
  }

  /**
   * Counts `n` rows of claim `token` in the range of `slot` settled; the claim row goes once none of
   * its rows is left (`applyCounts`).
   */
  private settledOne(slot: number, token: number, n = 1): void {
    let settled = this.settled.get(token);
    if (!settled) {
      settled = new Map();
      this.settled.set(token, settled);
    }
    settled.set(slot, (settled.get(slot) ?? 0) + n);
  }

  /**
   * Deletes a delivered row under its lease; `queueId` and `key` are the row's, from its claim.
   * False when the lease is gone (expired and reclaimed: the row moved) or the row is.
   */
  ack(seq: number, token: number, queueId: number, key: string | null): boolean {
    if (this.claimAlive(token, seq) && this.s.ackLeased.run(seq).changes === 1) {
      this.settledOne(slotOf(seq), token);
    } else if (this.s.ack.run(seq, token).changes === 0) {
      return false;
    }
    this.count(queueId, LEASED, -1);
    if (key !== null) this.releaseKey(queueId, key);
    return true;
  }

  /**
   * `ack` of `n` rows with consecutive seqs from `first`, all under claim `token` in one range and
   * without a key: one range delete. False (and nothing done) unless every one of them is a ready
   * row under that live claim; the caller then acks them one by one.
   */
  ackRange(first: number, n: number, token: number, queueId: number): boolean {
    const last = first + n - 1;
    const slot = slotOf(first);
    if (slotOf(last) !== slot || !this.claimAlive(token, first)) return false;
    if ((this.s.countReadyRange.get(first, last) as number) !== n) return false;
    this.s.ackReadyRange.run(first, last);
    this.settledOne(slot, token, n);
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
    let row = this.claimAlive(token, seq)
      ? (this.s.rowOf.get(seq) as { priority: number; key: string | null } | undefined)
      : undefined;
    const own = row === undefined;
    if (own) row = this.s.explicitRowOf.get(seq, token) as typeof row;
    if (row === undefined) return false;
    const bump = own ? (counted ? 0 : -1) : counted ? 1 : 0;
    const scheduled = availableAt > now;
    if (scheduled) {
      // To the parking range: left behind the cursor, it would be walked over once the cursor fell back.
      const base = this.ranges.parked() - 1;
      this.s.copyOne.run({ seq, base, state: SCHEDULED, availableAt, bump });
      this.noteScheduled(availableAt);
    } else {
      this.copyReady(this.s.copyOne, { seq }, queueId, row.priority, availableAt, bump);
    }
    this.s.deleteSeq.run(seq);
    if (!own) this.settledOne(slotOf(seq), token);
    this.count(queueId, LEASED, -1);
    this.count(queueId, scheduled ? SCHEDULED : READY, 1);
    return true;
  }

  extendLease(seq: number, token: number, leaseUntil: number): boolean {
    if (this.claimAlive(token, seq)) {
      // Out of the claim's lease into one of its own, so it can outlive the others.
      if (this.s.extendLeased.run(token, leaseUntil, seq).changes === 1) {
        this.settledOne(slotOf(seq), token);
        return true;
      }
    }
    return this.s.extend.run(leaseUntil, seq, token).changes === 1;
  }

  deadLetter(seq: number, token: number, info: DeadLetterInfo): boolean {
    let row = this.claimAlive(token, seq)
      ? (this.s.takeLeasedForDeadLetter.get(seq) as (TakenRow & { queueId: number }) | undefined)
      : undefined;
    if (row !== undefined) this.settledOne(slotOf(seq), token);
    else row = this.s.takeForDeadLetter.get(seq, token) as (TakenRow & { queueId: number }) | undefined;
    if (!row) return false;
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
    const next = this.s.nextWaiting.get(queueId, key) as
      | { seq: number; availableAt: number; priority: number }
      | undefined;
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
      // Ready again: at the end of its range (see "Leases").
      holder = this.ranges.copyBase(queueId, next.priority) + 1;
      this.copyReady(this.s.copyOne, { seq: next.seq }, queueId, next.priority, null, 0);
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
    let promoted = 0;
    for (const priority of this.s.duePriorities.all(queueId, now) as number[])
      promoted += this.copyReady(this.s.copyDue, { queueId, now, priority }, queueId, priority, null, 0);
    if (promoted > 0) this.s.deleteDue.run(queueId, now);
    // Rows with a lease of their own (extended) counted their attempt when they took it.
    let reclaimed = 0;
    for (const priority of this.s.expiredLeasePriorities.all(queueId, now) as number[])
      reclaimed += this.copyReady(
        this.s.copyExpiredLeases,
        { queueId, now, priority },
        queueId,
        priority,
        null,
        0,
      );
    if (reclaimed > 0) this.s.deleteExpiredLeases.run(queueId, now);
    const expired = this.s.expiredLeases.all(queueId, now) as [number, number, number, number][];
    for (const [token, slot, first, last] of expired) {
      const priority = this.ranges.priorityOf(slot);
      const moved =
        priority === undefined
          ? 0
          : this.copyReady(this.s.copyLeaseRange, { first, last }, queueId, priority, now, 1);
      if (moved > 0) this.s.ackReadyRange.run(first, last);
      this.s.dropLease.run(slot, token);
      this.alive.get(slot)?.delete(token);
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
    let oldest: number | null = null;
    for (const [slot, , cursor] of this.ranges.of(queueId)) {
      const at = this.s.oldestInRange.get(cursor ?? rangeStart(slot), rangeEnd(slot)) as number | undefined;
      if (at !== undefined && (oldest === null || at < oldest)) oldest = at;
    }
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
    for (const [token, slots] of this.settled) {
      for (const [slot, n] of slots) {
        const left = this.s.settleLease.get(n, slot, token) as number | undefined;
        if (left !== undefined && left <= 0) {
          this.s.dropLease.run(slot, token);
          this.alive.get(slot)?.delete(token);
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
    for (const [token, slots] of taken.settled)
      for (const [slot, n] of slots) this.settledOne(slot, token, n);
  }

  /** Drops the pending count changes: their transaction rolled back. */
  discardCounts(): void {
    this.pending.clear();
    this.settled.clear();
    // Leases looked up or made, ranges opened and rows inserted in the rolled-back work may not exist.
    this.alive.clear();
    this.ranges.begin();
  }

  /** Counts a queue's rows again (a full count: only after drift). */
  recount(queueId: number): void {
    this.s.dropCounts.run(queueId);
    let ready = 0;
    for (const [slot] of this.ranges.of(queueId))
      ready += this.s.countReadyRange.get(rangeStart(slot), rangeEnd(slot)) as number;
    if (ready > 0) this.s.addCount.get(queueId, READY, ready);
    for (const [state, count] of this.s.countOtherStatesOf) {
      const n = count.get(queueId) as number;
      if (n > 0) this.s.addCount.get(queueId, state, n);
    }
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
