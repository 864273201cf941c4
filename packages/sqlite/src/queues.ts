import type {
  DeadLetter,
  DeadLetterFilter,
  DeadLetterInfo,
  DeadLetterPage,
  PublishItem,
  QueueStats,
  Topology,
} from '@courier/core';
import { matchesHeaders, matchesPattern, NoRouteError } from '@courier/core';
import type Database from 'better-sqlite3';
import type { ClaimedRow, StoredItem } from './rows.js';
import { BYPASS_DEDUP, DROP_IF_NO_QUEUE, Item, NO_HEADERS, parseHeaders, Row, toStoredItem } from './rows.js';
import type { SqliteDatabase } from './schema.js';

const READY = 0;
const SCHEDULED = 1;
const LEASED = 2;
const WAITING = 3;
/** `courier_counts` keeps dead letters under this state number, next to the message states. */
const DEAD = 4;
/** The largest claim statement; bigger claims run it several times. */
const MAX_CLAIM_CHUNK = 1024;

/** A message row taken out of the queue to become a dead letter. */
interface TakenRow {
  id: string;
  type: string;
  key: string | null;
  priority: number;
  expires_at: number | null;
  dedup_id: string | null;
  headers: string;
  body: string | Buffer;
}

interface Binding {
  queueId: number;
  pattern: string;
  headers: Record<string, string> | undefined;
}

/**
 * The broker's operations as synchronous SQL on one connection. Every method expects to run inside a
 * transaction the caller opened (the transport batches many into one commit). Statements are
 * prepared once; none of the hot-path ones scans a table.
 */
export class SqliteQueues {
  private readonly queueIds = new Map<string, number>();
  /**
   * Changes to `courier_counts` made by the writes since the last `applyCounts`, per queue, indexed
   * by state (DEAD for dead letters). The transport applies them in the transaction that made them,
   * or drops them with it (`takeCounts`, `restoreCounts`, `discardCounts`).
   */
  private pending = new Map<number, number[]>();
  /** Claim statements by their LIMIT, a power of two (see `claim`). */
  private readonly claims = new Map<number, { select: Database.Statement; lease: Database.Statement }>();
  private bindings: Binding[] = [];
  private readonly routes = new Map<string, Binding[]>();
  private topologyVersion = -1;
  /** The earliest time a row made `scheduled` since `takeScheduled`, so the transport knows when to look again. */
  private scheduledAt = Number.POSITIVE_INFINITY;
  private readonly s;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly dedupWindowMs: number,
    private readonly now: () => number,
  ) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      queueId: p(`SELECT id FROM courier_queues WHERE name = ?`).pluck(),
      insertQueue: p(`INSERT OR IGNORE INTO courier_queues (name, temporary) VALUES (?, ?)`),
      insertBinding: p(
        `INSERT OR IGNORE INTO courier_bindings (queue_id, pattern, headers) VALUES (?, ?, ?)`,
      ),
      allBindings: p(`SELECT queue_id AS queueId, pattern, headers FROM courier_bindings`),
      topologyVersion: p(`SELECT value FROM courier_meta WHERE name = 'topology_version'`).pluck(),
      bumpTopology: p(
        `INSERT INTO courier_meta (name, value) VALUES ('topology_version', '1')
         ON CONFLICT (name) DO UPDATE SET value = CAST(value AS INTEGER) + 1`,
      ),
      dedup: p(
        `INSERT INTO courier_dedup (queue_id, dedup_id, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (queue_id, dedup_id) DO UPDATE SET expires_at = excluded.expires_at WHERE courier_dedup.expires_at <= ?`,
      ),
      keyState: p(
        `SELECT holder_seq AS holder, parked_by AS parkedBy FROM courier_keys WHERE queue_id = ? AND key = ?`,
      ),
      parkedMessageId: p(`SELECT message_id FROM courier_dead_letters WHERE id = ?`).pluck(),
      takeKey: p(`INSERT INTO courier_keys (queue_id, key, holder_seq) VALUES (?, ?, ?)`),
      setKeyHolder: p(
        `UPDATE courier_keys SET holder_seq = ?, parked_by = NULL WHERE queue_id = ? AND key = ?`,
      ),
      parkKey: p(`UPDATE courier_keys SET holder_seq = NULL, parked_by = ? WHERE queue_id = ? AND key = ?`),
      dropKey: p(`DELETE FROM courier_keys WHERE queue_id = ? AND key = ?`),
      nextWaiting: p(
        `SELECT seq, available_at AS availableAt FROM courier_messages
         WHERE queue_id = ? AND key = ? AND state = ${WAITING} ORDER BY seq LIMIT 1`,
      ),
      wake: p(`UPDATE courier_messages SET state = ? WHERE seq = ?`),
      insert: p(
        `INSERT INTO courier_messages
          (queue_id, state, priority, available_at, id, type, key, expires_at, dedup_id, headers, body, enqueued_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      leaseRange: p(
        `UPDATE courier_messages SET state = ${LEASED}, attempt = attempt + 1, lease_token = ?, lease_until = ?
         WHERE queue_id = ? AND state = ${READY} AND priority = ? AND seq BETWEEN ? AND ?`,
      ),
      // No RETURNING: the caller knows the row's queue and key from its claim, and RETURNING makes
      // SQLite run the delete in two passes (about twice the cost on the hot path).
      ack: p(`DELETE FROM courier_messages WHERE seq = ? AND lease_token = ? AND state = ${LEASED}`),
      retry: p(
        `UPDATE courier_messages SET state = ?, available_at = ?, attempt = attempt - ?, lease_token = NULL, lease_until = NULL
         WHERE seq = ? AND lease_token = ? AND state = ${LEASED}`,
      ),
      extend: p(
        `UPDATE courier_messages SET lease_until = ? WHERE seq = ? AND lease_token = ? AND state = ${LEASED}`,
      ),
      takeForDeadLetter: p(
        `DELETE FROM courier_messages WHERE seq = ? AND lease_token = ? AND state = ${LEASED}
         RETURNING queue_id AS queueId, id, type, key, priority, expires_at, dedup_id, headers, body`,
      ),
      insertDeadLetter: p(
        `INSERT INTO courier_dead_letters
          (queue_id, message_id, type, key, priority, expires_at, dedup_id, headers, body, reason, error_name, error_code,
           error_message, attempts, first_failed_at, failed_at, parks_key)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      promote: p(
        `UPDATE courier_messages SET state = ${READY}
         WHERE queue_id = ? AND state = ${SCHEDULED} AND available_at <= ?`,
      ),
      reclaim: p(
        `UPDATE courier_messages SET state = ${READY}, lease_token = NULL, lease_until = NULL
         WHERE queue_id = ? AND state = ${LEASED} AND lease_until <= ?`,
      ),
      nextScheduled: p(
        `SELECT min(available_at) FROM courier_messages WHERE queue_id = ? AND state = ${SCHEDULED}`,
      ).pluck(),
      nextLeaseEnd: p(
        `SELECT min(lease_until) FROM courier_messages WHERE queue_id = ? AND state = ${LEASED}`,
      ).pluck(),
      counts: p(`SELECT state, n FROM courier_counts WHERE queue_id = ?`),
      addCount: p(
        `INSERT INTO courier_counts (queue_id, state, n) VALUES (?, ?, ?)
         ON CONFLICT (queue_id, state) DO UPDATE SET n = n + excluded.n RETURNING n`,
      ).pluck(),
      dropCounts: p(`DELETE FROM courier_counts WHERE queue_id = ?`),
      recountMessages: p(
        `INSERT INTO courier_counts (queue_id, state, n)
         SELECT queue_id, state, count(*) FROM courier_messages WHERE queue_id = ? GROUP BY state`,
      ),
      recountDeadLetters: p(
        `INSERT INTO courier_counts (queue_id, state, n)
         SELECT queue_id, ${DEAD}, count(*) FROM courier_dead_letters WHERE queue_id = ? GROUP BY queue_id`,
      ),
      // The oldest ready row of each priority is the first of its index range: ten seeks, no scan.
      oldestReady: p(
        `SELECT min(enqueued_at) FROM (${Array.from(
          { length: 10 },
          (_, priority) =>
            `SELECT * FROM (SELECT enqueued_at FROM courier_messages WHERE queue_id = @queueId AND state = ${READY} AND priority = ${priority} ORDER BY seq LIMIT 1)`,
        ).join(' UNION ALL ')})`,
      ).pluck(),
      deadLetterById: p(
        `SELECT id, key, parks_key AS parksKey FROM courier_dead_letters WHERE id = ? AND queue_id = ?`,
      ),
      deleteDeadLetter: p(`DELETE FROM courier_dead_letters WHERE id = ?`),
      deleteQueue: p(`DELETE FROM courier_queues WHERE id = ?`),
      deleteQueueMessages: p(`DELETE FROM courier_messages WHERE queue_id = ?`),
      deleteQueueBindings: p(`DELETE FROM courier_bindings WHERE queue_id = ?`),
      inboxGet: p(`SELECT value FROM courier_inbox WHERE scope = ? AND key = ? AND expires_at > ?`).pluck(),
      inboxPut: p(
        `INSERT INTO courier_inbox (scope, key, value, expires_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
         WHERE courier_inbox.expires_at <= ?`,
      ),
      sweepInbox: p(
        `DELETE FROM courier_inbox WHERE (scope, key) IN (SELECT scope, key FROM courier_inbox WHERE expires_at <= ? LIMIT 1000)`,
      ),
      sweepDedup: p(
        `DELETE FROM courier_dedup WHERE (queue_id, dedup_id) IN (SELECT queue_id, dedup_id FROM courier_dedup WHERE expires_at <= ? LIMIT 1000)`,
      ),
    };
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
    const seq = this.s.insert.run(
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
    ).lastInsertRowid as number;
    this.count(queueId, state, 1);
    if (takesKey) this.s.takeKey.run(queueId, key, seq);
    if (takesParkedKey) this.s.setKeyHolder.run(seq, queueId, key);
  }

  /**
   * Leases up to `limit` ready messages, highest priority first, then oldest: a SELECT of the rows,
   * then an UPDATE of the same rows (same condition and order, same transaction), which measured a
   * third cheaper than one UPDATE ... RETURNING. The LIMIT is a literal: a bound LIMIT makes this
   * SQLite build re-plan the statement at every call (a claim of two rows took 47-60 us with
   * `LIMIT ?`, 12 us with a literal). So `limit` is taken in power-of-two chunks, each a statement
   * pair of its own, stopping at the first chunk that comes back short.
   */
  claim(queueId: number, limit: number, token: number, leaseUntil: number): ClaimedRow[] {
    const rows: ClaimedRow[] = [];
    let left = limit;
    while (left > 0) {
      const chunk = Math.min(MAX_CLAIM_CHUNK, 2 ** Math.floor(Math.log2(left)));
      const statements = this.claimStatements(chunk);
      // Raw rows (arrays), kept as arrays: better-sqlite3 builds row objects property by property
      // through V8's API (1.4 of a row's 5.3 us), and arrays cross to the main thread cheaper.
      const got = statements.select.all(queueId) as ClaimedRow[];
      if (got.length === 0) break;
      // All of one priority (the usual case): they are exactly that priority's ready rows from the
      // first seq to the last, leased by a range on the ready index instead of running the claim's
      // scan again inside the UPDATE (12 % less SQL time per message, scratch measurement).
      const priority = got[0]![Row.PRIORITY];
      const last = got[got.length - 1]!;
      const leased =
        last[Row.PRIORITY] === priority
          ? this.s.leaseRange.run(token, leaseUntil, queueId, priority, got[0]![Row.SEQ], last[Row.SEQ])
              .changes
          : statements.lease.run(token, leaseUntil, queueId).changes;
      this.count(queueId, READY, -leased);
      this.count(queueId, LEASED, leased);
      for (const row of got) {
        row[Row.ATTEMPT]++;
        rows.push(row);
      }
      if (got.length < chunk) break;
      left -= chunk;
    }
    return rows;
  }

  private claimStatements(limit: number): { select: Database.Statement; lease: Database.Statement } {
    let statements = this.claims.get(limit);
    if (!statements) {
      const ready = `FROM courier_messages WHERE queue_id = ? AND state = ${READY} ORDER BY priority DESC, seq LIMIT ${limit}`;
      statements = {
        select: this.db
          .prepare(
            `SELECT seq, attempt, id, type, key, priority, expires_at, dedup_id, headers, body ${ready}`,
          )
          .raw(),
        lease: this.db.prepare(
          `UPDATE courier_messages SET state = ${LEASED}, attempt = attempt + 1, lease_token = ?, lease_until = ?
           WHERE seq IN (SELECT seq ${ready})`,
        ),
      };
      this.claims.set(limit, statements);
    }
    return statements;
  }

  /** Deletes a delivered row under its lease; `queueId` and `key` are the row's, from its claim. */
  ack(seq: number, token: number, queueId: number, key: string | null): boolean {
    if (this.s.ack.run(seq, token).changes === 0) return false;
    this.count(queueId, LEASED, -1);
    if (key !== null) this.releaseKey(queueId, key);
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
    const scheduled = availableAt > now;
    const to = scheduled ? SCHEDULED : READY;
    const done = this.s.retry.run(to, availableAt, counted ? 0 : 1, seq, token).changes === 1;
    if (!done) return false;
    this.count(queueId, LEASED, -1);
    this.count(queueId, to, 1);
    if (scheduled) this.noteScheduled(availableAt);
    return true;
  }

  extendLease(seq: number, token: number, leaseUntil: number): boolean {
    return this.s.extend.run(leaseUntil, seq, token).changes === 1;
  }

  deadLetter(seq: number, token: number, info: DeadLetterInfo): boolean {
    const row = this.s.takeForDeadLetter.get(seq, token) as (TakenRow & { queueId: number }) | undefined;
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
    const next = this.s.nextWaiting.get(queueId, key) as { seq: number; availableAt: number } | undefined;
    if (!next) {
      this.s.dropKey.run(queueId, key);
      return;
    }
    const scheduled = next.availableAt > this.now();
    if (scheduled) this.noteScheduled(next.availableAt);
    this.s.wake.run(scheduled ? SCHEDULED : READY, next.seq);
    this.count(queueId, WAITING, -1);
    this.count(queueId, scheduled ? SCHEDULED : READY, 1);
    this.s.setKeyHolder.run(next.seq, queueId, key);
  }

  /** Makes due scheduled rows ready and expired leases claimable again (the latter counts an attempt at the next claim). */
  housekeep(queueId: number, now: number): number {
    const promoted = this.s.promote.run(queueId, now).changes;
    const reclaimed = this.s.reclaim.run(queueId, now).changes;
    this.count(queueId, SCHEDULED, -promoted);
    this.count(queueId, LEASED, -reclaimed);
    this.count(queueId, READY, promoted + reclaimed);
    return promoted + reclaimed;
  }

  /** Epoch ms of the next scheduled row or lease end of the queue, or undefined. */
  nextDueAt(queueId: number): number | undefined {
    const a = this.s.nextScheduled.get(queueId) as number | null;
    const b = this.s.nextLeaseEnd.get(queueId) as number | null;
    const due = Math.min(a ?? Number.POSITIVE_INFINITY, b ?? Number.POSITIVE_INFINITY);
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
    const oldest = this.s.oldestReady.get({ queueId }) as number | null;
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
    const queueId = this.requireQueueId(name);
    const where = ['queue_id = ?', 'id > ?'];
    const params: unknown[] = [queueId, page.cursor === undefined ? 0 : Number(page.cursor)];
    const add = (condition: string, value: unknown) => {
      where.push(condition);
      params.push(value);
    };
    if (filter.type !== undefined) add('type = ?', filter.type);
    if (filter.reason !== undefined) add('reason = ?', filter.reason);
    if (filter.since !== undefined) add('failed_at >= ?', filter.since);
    if (filter.until !== undefined) add('failed_at < ?', filter.until);
    if (filter.ids !== undefined) {
      where.push(`id IN (${filter.ids.map(() => '?').join(',') || 'NULL'})`);
      params.push(...filter.ids.map(Number));
    }
    const rows = this.db
      .prepare(`SELECT * FROM courier_dead_letters WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`)
      .all(...params, page.limit + 1) as DeadLetterRow[];
    const more = rows.length > page.limit;
    const items = rows.slice(0, page.limit).map((row) => toDeadLetter(row, name));
    return { items, nextCursor: more ? items.at(-1)!.deadLetterId : undefined };
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
    if (this.pending.size === 0) return;
    for (const [queueId, counts] of this.pending) {
      let drifted = false;
      for (let state = 0; state < counts.length; state++) {
        if (counts[state] !== 0 && (this.s.addCount.get(queueId, state, counts[state]) as number) < 0)
          drifted = true;
      }
      if (drifted) this.recount(queueId);
    }
    this.pending.clear();
  }

  /** Takes the pending count changes away (to keep them aside while a savepoint may roll back). */
  takeCounts(): Map<number, number[]> {
    const taken = this.pending;
    this.pending = new Map();
    return taken;
  }

  /** Puts count changes taken earlier back in front of the pending ones. */
  restoreCounts(taken: Map<number, number[]>): void {
    for (const [queueId, counts] of taken)
      for (let state = 0; state < counts.length; state++) this.count(queueId, state, counts[state]!);
  }

  /** Drops the pending count changes: their transaction rolled back. */
  discardCounts(): void {
    this.pending.clear();
  }

  /** Counts a queue's rows again (a full count: only after drift). */
  recount(queueId: number): void {
    this.s.dropCounts.run(queueId);
    this.s.recountMessages.run(queueId);
    this.s.recountDeadLetters.run(queueId);
  }
}

interface DeadLetterRow {
  id: number;
  message_id: string;
  type: string;
  key: string | null;
  priority: number;
  expires_at: number | null;
  dedup_id: string | null;
  headers: string;
  body: string | Buffer;
  reason: string;
  error_name: string | null;
  error_code: string | null;
  error_message: string | null;
  attempts: number;
  first_failed_at: number | null;
  failed_at: number;
  parks_key: number;
}

function toDeadLetter(row: DeadLetterRow, queue: string): DeadLetter {
  return {
    deadLetterId: String(row.id),
    envelope: {
      id: row.message_id,
      type: row.type,
      headers: parseHeaders(row.headers, row.message_id, row.type),
      ...bodyOf(row.body),
      key: row.key ?? undefined,
      priority: row.priority || undefined,
      expiresAt: row.expires_at ?? undefined,
      dedupId: row.dedup_id ?? undefined,
    },
    info: {
      reason: row.reason,
      errorName: row.error_name ?? undefined,
      errorCode: row.error_code ?? undefined,
      errorMessage: row.error_message ?? undefined,
      attempts: row.attempts,
      queue,
      firstFailedAt: row.first_failed_at ?? undefined,
      failedAt: row.failed_at,
      parkKey: row.parks_key === 1,
    },
  };
}

/** An envelope's `body` (and `bodyText`) from a stored body: TEXT for JSON Courier wrote, else bytes. */
function bodyOf(stored: string | Buffer): { body: Uint8Array; bodyText?: string } {
  if (typeof stored === 'string') return { body: Buffer.from(stored, 'utf8'), bodyText: stored };
  return { body: stored };
}

function sortKeys(headers: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).sort(([a], [b]) => a.localeCompare(b)));
}
