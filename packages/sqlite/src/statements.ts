/**
 * The SQL of the SQLite transport's queues (queues.ts), prepared once per connection. Message rows
 * are in one of the states below; see schema.ts for the tables, ranges.ts for where a row's seq
 * puts it, and queues.ts ("Leases") for what a ready row at or before its range's cursor means.
 */
import type { SqliteDatabase } from './schema.js';

/** Claimable, unless at or before its range's cursor (then a claim's lease holds it). */
export const READY = 0;
/** Waiting for `available_at` (a delay or a retry's backoff). */
export const SCHEDULED = 1;
/** Under a lease of its own (`lease_token`, `lease_until`): a delivery whose lease was extended. */
export const LEASED = 2;
/** Behind an earlier message of the same key. */
export const WAITING = 3;
/** `courier_counts` keeps dead letters under this state number, next to the message states. */
export const DEAD = 4;

/** Every statement of `SqliteQueues` but the claim's (one per LIMIT) and the dead-letter listing. */
export function prepareStatements(db: SqliteDatabase) {
  const p = (sql: string) => db.prepare(sql);
  return {
    queueId: p(`SELECT id FROM courier_queues WHERE name = ?`).pluck(),
    insertQueue: p(`INSERT OR IGNORE INTO courier_queues (name, temporary) VALUES (?, ?)`),
    insertBinding: p(`INSERT OR IGNORE INTO courier_bindings (queue_id, pattern, headers) VALUES (?, ?, ?)`),
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
      `SELECT seq, available_at AS availableAt, priority FROM courier_messages
       WHERE queue_id = ? AND key = ? AND state = ${WAITING} ORDER BY seq LIMIT 1`,
    ),
    wake: p(`UPDATE courier_messages SET state = ? WHERE seq = ?`),
    // Seq ranges (ranges.ts): the newest row of a range or of the parking range, a few seeks.
    maxSeqIn: p(`SELECT max(seq) FROM courier_messages WHERE seq BETWEEN ? AND ?`).pluck(),
    rangeCursor: p(`SELECT max(last_seq) FROM courier_claims WHERE slot = ?`).pluck(),
    latestSlot: p(
      `SELECT slot FROM courier_ranges WHERE queue_id = ? AND priority = ? ORDER BY generation DESC LIMIT 1`,
    ).pluck(),
    // The smallest slot no range holds, from 1 (slot 0 is the seqs of files before schema 7).
    freeSlot: p(
      `SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM courier_ranges WHERE slot = 1) THEN 1 ELSE
         (SELECT min(r.slot) + 1 FROM courier_ranges r WHERE NOT EXISTS (SELECT 1 FROM courier_ranges t WHERE t.slot = r.slot + 1))
       END`,
    ).pluck(),
    addRange: p(
      `INSERT INTO courier_ranges (slot, queue_id, priority, generation)
       VALUES (@slot, @queueId, @priority,
         coalesce((SELECT max(generation) FROM courier_ranges WHERE queue_id = @queueId AND priority = @priority), 0) + 1)`,
    ),
    // A queue's ranges, highest priority first, then oldest generation, each with its cursor (the
    // last seq of its live claims, see "Leases" in queues.ts).
    rangesOf: p(
      `SELECT r.slot, r.priority, (SELECT max(c.last_seq) FROM courier_claims c WHERE c.slot = r.slot)
       FROM courier_ranges r WHERE r.queue_id = ? ORDER BY r.priority DESC, r.generation`,
    ).raw(),
    priorityOfSlot: p(`SELECT priority FROM courier_ranges WHERE slot = ?`).pluck(),
    rangeHasRows: p(`SELECT 1 FROM courier_messages WHERE seq BETWEEN ? AND ? LIMIT 1`).pluck(),
    rangeHasClaims: p(`SELECT 1 FROM courier_claims WHERE slot = ? LIMIT 1`).pluck(),
    dropRange: p(`DELETE FROM courier_ranges WHERE slot = ?`),
    dropQueueRanges: p(`DELETE FROM courier_ranges WHERE queue_id = ?`),
    deleteRangeRows: p(`DELETE FROM courier_messages WHERE seq BETWEEN ? AND ?`),
    // A queue's rows outside its ranges, each state through its own partial index.
    deleteScheduledOf: p(`DELETE FROM courier_messages WHERE queue_id = ? AND state = ${SCHEDULED}`),
    deleteLeasedOf: p(`DELETE FROM courier_messages WHERE queue_id = ? AND state = ${LEASED}`),
    deleteWaitingOf: p(`DELETE FROM courier_messages WHERE queue_id = ? AND state = ${WAITING}`),
    addLease: p(
      `INSERT INTO courier_claims (slot, token, queue_id, first_seq, last_seq, lease_until, remaining)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (slot, token) DO UPDATE SET last_seq = excluded.last_seq, remaining = remaining + excluded.remaining`,
    ),
    leaseAliveAt: p(`SELECT 1 FROM courier_claims WHERE slot = ? AND token = ?`).pluck(),
    settleLease: p(
      `UPDATE courier_claims SET remaining = remaining - ? WHERE slot = ? AND token = ? RETURNING remaining`,
    ).pluck(),
    dropLease: p(`DELETE FROM courier_claims WHERE slot = ? AND token = ?`),
    expiredLeases: p(
      `SELECT token, slot, first_seq, last_seq FROM courier_claims WHERE queue_id = ? AND lease_until <= ?`,
    ).raw(),
    nextLeaseRowEnd: p(`SELECT min(lease_until) FROM courier_claims WHERE queue_id = ?`).pluck(),
    dropQueueLeases: p(`DELETE FROM courier_claims WHERE queue_id = ?`),
    implicitlyLeased: p(
      `SELECT count(*) FROM courier_claims l JOIN courier_messages m
         ON m.seq BETWEEN l.first_seq AND l.last_seq AND m.state = ${READY}
       WHERE l.queue_id = ?`,
    ).pluck(),
    ackLeased: p(`DELETE FROM courier_messages WHERE seq = ? AND state = ${READY}`),
    countReadyRange: p(
      `SELECT count(*) FROM courier_messages WHERE seq BETWEEN ? AND ? AND state = ${READY}`,
    ).pluck(),
    ackReadyRange: p(`DELETE FROM courier_messages WHERE seq BETWEEN ? AND ? AND state = ${READY}`),
    rowOf: p(`SELECT priority, key FROM courier_messages WHERE seq = ? AND state = ${READY}`),
    explicitRowOf: p(
      `SELECT priority, key FROM courier_messages WHERE seq = ? AND state = ${LEASED} AND lease_token = ?`,
    ),
    deleteSeq: p(`DELETE FROM courier_messages WHERE seq = ?`),
    takeLeasedForDeadLetter: p(
      `DELETE FROM courier_messages WHERE seq = ? AND state = ${READY}
       RETURNING queue_id AS queueId, id, type, key, priority, expires_at, dedup_id, headers, body`,
    ),
    extendLeased: p(
      `UPDATE courier_messages SET state = ${LEASED}, attempt = attempt + 1, lease_token = ?, lease_until = ?
       WHERE seq = ? AND state = ${READY}`,
    ),
    copyOne: p(copyRows(`seq = @seq`, `seq`)),
    copyLeaseRange: p(copyRows(`seq BETWEEN @first AND @last AND state = ${READY}`, `seq`)),
    expiredLeasePriorities: p(
      `SELECT DISTINCT priority FROM courier_messages WHERE queue_id = ? AND state = ${LEASED} AND lease_until <= ?`,
    ).pluck(),
    copyExpiredLeases: p(
      copyRows(
        `queue_id = @queueId AND state = ${LEASED} AND lease_until <= @now AND priority = @priority`,
        `seq`,
      ),
    ),
    deleteExpiredLeases: p(
      `DELETE FROM courier_messages WHERE queue_id = ? AND state = ${LEASED} AND lease_until <= ?`,
    ),
    duePriorities: p(
      `SELECT DISTINCT priority FROM courier_messages WHERE queue_id = ? AND state = ${SCHEDULED} AND available_at <= ?`,
    ).pluck(),
    copyDue: p(
      copyRows(
        `queue_id = @queueId AND state = ${SCHEDULED} AND available_at <= @now AND priority = @priority`,
        `available_at, seq`,
      ),
    ),
    deleteDue: p(
      `DELETE FROM courier_messages WHERE queue_id = ? AND state = ${SCHEDULED} AND available_at <= ?`,
    ),
    insertAt: p(
      `INSERT INTO courier_messages
        (seq, queue_id, state, priority, available_at, id, type, key, expires_at, dedup_id, headers, body, enqueued_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    // No RETURNING: the caller knows the row's queue and key from its claim, and RETURNING makes
    // SQLite run the delete in two passes (about twice the cost on the hot path).
    ack: p(`DELETE FROM courier_messages WHERE seq = ? AND lease_token = ? AND state = ${LEASED}`),
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
    // Counting a queue's rows again: its ready rows range by range (countReadyRange), the rows of
    // the other states by their indexes (a leased row may be in a range or parked).
    countOtherStatesOf: [SCHEDULED, LEASED, WAITING].map(
      (state) =>
        [
          state,
          p(`SELECT count(*) FROM courier_messages WHERE queue_id = ? AND state = ${state}`).pluck(),
        ] as const,
    ),
    recountDeadLetters: p(
      `INSERT INTO courier_counts (queue_id, state, n)
       SELECT queue_id, ${DEAD}, count(*) FROM courier_dead_letters WHERE queue_id = ? GROUP BY queue_id`,
    ),
    // The oldest unclaimed row of a range is the first past its cursor: one seek.
    oldestInRange: p(
      `SELECT enqueued_at FROM courier_messages WHERE seq > ? AND seq <= ? AND state = ${READY} ORDER BY seq LIMIT 1`,
    ).pluck(),
    deadLetterById: p(
      `SELECT id, key, parks_key AS parksKey FROM courier_dead_letters WHERE id = ? AND queue_id = ?`,
    ),
    deleteDeadLetter: p(`DELETE FROM courier_dead_letters WHERE id = ?`),
    deleteQueue: p(`DELETE FROM courier_queues WHERE id = ?`),
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

/** The prepared statements of one connection. */
export type Statements = ReturnType<typeof prepareStatements>;

/**
 * An INSERT ... SELECT that copies the rows matching `where` to new seqs after `@base`, in `order`:
 * a row that becomes ready again must come after its range's cursor (see "Leases" on SqliteQueues),
 * a row that waits goes to the parking range (ranges.ts).
 * `@state`, `@availableAt` (null keeps the row's) and `@bump` (added to `attempt`) are bound.
 */
function copyRows(where: string, order: string): string {
  return `INSERT INTO courier_messages
      (seq, queue_id, state, priority, available_at, attempt, id, type, key, expires_at, dedup_id, headers, body, enqueued_at)
    SELECT @base + row_number() OVER (ORDER BY ${order}), queue_id, @state, priority, coalesce(@availableAt, available_at),
      attempt + @bump, id, type, key, expires_at, dedup_id, headers, body, enqueued_at
    FROM courier_messages WHERE ${where}`;
}
