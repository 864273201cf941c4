/**
 * A group commit as data. The transport turns the writes of one event-loop turn (publishes, settles,
 * saga and inbox writes...) and the claims its consumers have room for into a `Batch`, and a
 * `BatchRunner` runs it in one transaction, on the main thread or on the writer thread
 * (writer-thread.ts). Everything in a batch and its result is plain data, so it can cross threads.
 */
import type { DeadLetterInfo, Topology } from '@courier/core';
import { type AckBatch, type AckOutcomes, runAcks } from './acks.js';
import type { SqliteQueues } from './queues.js';
import type { ClaimedRow, ClaimedRows, StoredItem } from './rows.js';
import { Row, STORE_ONE } from './rows.js';
import type { SqliteDatabase } from './schema.js';
import type { SqliteSagaStore } from './stores.js';

/** What a `Command` does: its first element. */
export const Do = {
  PUBLISH: 0,
  ACK: 1,
  RETRY: 2,
  DEAD_LETTER: 3,
  EXTEND: 4,
  DECLARE: 5,
  REMOVE_DEAD_LETTERS: 6,
  INBOX_PUT: 7,
  SAGA_SAVE: 8,
  SAGA_REMOVE: 9,
  DELETE_QUEUE: 10,
  /** One message, the usual size of a publish call: the command is the `StoredItem` itself. */
  PUBLISH_ONE: STORE_ONE,
} as const;

/** One write. Settles name their row by `seq` and their lease by `token`. */
export type Command =
  | [typeof Do.PUBLISH, StoredItem[]]
  | StoredItem
  | [
      typeof Do.ACK,
      seq: number,
      token: number,
      queueId: number,
      key: string | null,
      outgoing: StoredItem[] | null,
    ]
  /** `availableAt` null: ready again now. `counted` false gives the attempt back. */
  | [
      typeof Do.RETRY,
      seq: number,
      token: number,
      queueId: number,
      availableAt: number | null,
      counted: boolean,
    ]
  | [typeof Do.DEAD_LETTER, seq: number, token: number, info: DeadLetterInfo]
  | [typeof Do.EXTEND, seq: number, token: number, ms: number]
  | [typeof Do.DECLARE, Topology]
  | [typeof Do.REMOVE_DEAD_LETTERS, queue: string, ids: readonly string[]]
  | [typeof Do.INBOX_PUT, scope: string, key: string, value: string, retentionMs: number]
  | [typeof Do.SAGA_SAVE, saga: string, key: string, stateJson: string, expectedVersion: number]
  | [typeof Do.SAGA_REMOVE, saga: string, key: string, expectedVersion: number]
  | [typeof Do.DELETE_QUEUE, queue: string];

/**
 * A claim (results come back in the same order): lease up to `room` rows of its queue under `token`. `due`: its next scheduled
 * row or lease end has come, so promote and reclaim first. `mayHaveMore`: something was stored or
 * freed since its last claim came back short.
 */
export type ClaimRequest = [
  queueId: number,
  room: number,
  token: number,
  leaseMs: number,
  due: boolean,
  mayHaveMore: boolean,
];

/**
 * What a claim leased (expired rows already dead-lettered), whether it came back short, and after a
 * due check the queue's next due time (null for none; undefined when not looked at). The rows are
 * arrays where the batch ran, and may be packed once they crossed from the writer thread.
 */
export type ClaimResult<Rows extends ClaimedRows = ClaimedRow[]> = [
  rows: Rows,
  short: boolean,
  nextDueAt: number | null | undefined,
  housekept: boolean,
];

/** One group commit's worth of writes and claims. */
export interface Batch {
  /** Plain acks, run before the commands (acks.ts). */
  readonly acks?: AckBatch | undefined;
  readonly commands: Command[];
  readonly claims: ClaimRequest[];
}

/** How a batch went: each command's value or error and each claim's rows, or why nothing ran. */
export type BatchResult<Rows extends ClaimedRows = ClaimedRow[]> =
  | {
      readonly kind: 'done';
      /** Each plain ack's outcome, when the batch had any. */
      readonly acked: AckOutcomes | undefined;
      /** Each command's value, in order. */
      readonly values: unknown[];
      /** When a command failed: each command's error (undefined for those that succeeded). */
      readonly errors: unknown[] | undefined;
      readonly claims: ClaimResult<Rows>[];
      /** The earliest time a row this batch scheduled becomes due (Infinity for none). */
      readonly scheduledAt: number;
    }
  /** Another connection held the write lock: nothing ran. */
  | { readonly kind: 'busy' }
  /** The transaction failed as a whole: nothing ran. */
  | { readonly kind: 'failed'; readonly error: unknown };

const retryWithSavepoints = Symbol('retry with savepoints');
const SWEEP_EVERY_MS = 60_000;

/** Runs batches on one connection, one transaction each. */
export class BatchRunner {
  private lastSweep = 0;
  private readonly optimistic;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly queues: SqliteQueues,
    private readonly sagas: SqliteSagaStore,
    private readonly now: () => number = Date.now,
  ) {
    // One transaction function for every commit (making one per flush showed in profiles).
    this.optimistic = db.transaction(
      (
        batches: readonly Batch[],
        values: unknown[][],
        acked: (AckOutcomes | undefined)[],
      ): ClaimResult[][] => {
        const now = this.now();
        this.queues.begin();
        const claims: ClaimResult[][] = [];
        for (const batch of batches) {
          const batchValues: unknown[] = [];
          values.push(batchValues);
          // Optimistic: run every command bare; if one throws, `runAll` redoes them with savepoints.
          try {
            acked.push(batch.acks === undefined ? undefined : runAcks(this.queues, batch.acks));
            // Consecutive publishes form a run whose rows may share INSERTs (insert-runs.ts).
            let inRun = false;
            for (const command of batch.commands) {
              const publishes = command[0] === Do.PUBLISH_ONE || command[0] === Do.PUBLISH;
              if (publishes !== inRun) {
                if (publishes) this.queues.beginRun();
                else this.queues.endRun();
                inRun = publishes;
              }
              batchValues.push(this.execute(command, now));
            }
            if (inRun) this.queues.endRun();
          } catch {
            throw retryWithSavepoints;
          }
          claims.push(this.claim(batch.claims, now));
        }
        this.queues.applyCounts();
        return claims;
      },
    );
  }

  run(batch: Batch): BatchResult {
    return this.runAll([batch])[0]!;
  }

  /**
   * Runs `batches` in order in one transaction: batches that queued up behind a busy writer share
   * one commit, so fewer pages are written per message the busier it gets. One result per batch.
   */
  runAll(batches: readonly Batch[]): BatchResult[] {
    const values: unknown[][] = [];
    const acked: (AckOutcomes | undefined)[] = [];
    try {
      const claims = this.optimistic.immediate(batches, values, acked);
      const scheduledAt = this.queues.takeScheduled();
      return batches.map((_, i) => ({
        kind: 'done',
        acked: acked[i],
        values: values[i]!,
        errors: undefined,
        claims: claims[i]!,
        scheduledAt,
      }));
    } catch (error) {
      // The transaction rolled back, and the count changes and schedules its writes made with it.
      this.queues.discardCounts();
      this.queues.takeScheduled();
      if (error !== retryWithSavepoints) return batches.map(() => failure(error));
    }
    return this.runWithSavepoints(batches);
  }

  /** A command threw: redo them one savepoint each, so only that one fails. */
  private runWithSavepoints(batches: readonly Batch[]): BatchResult[] {
    const values: unknown[][] = [];
    const errors: unknown[][] = [];
    const acked: (AckOutcomes | undefined)[] = [];
    try {
      const claims = this.db
        .transaction(() => {
          const now = this.now();
          this.queues.begin();
          const claimed: ClaimResult[][] = [];
          for (const batch of batches) {
            const batchValues: unknown[] = [];
            const batchErrors: unknown[] = [];
            values.push(batchValues);
            errors.push(batchErrors);
            // Acks do not throw for a bad input of theirs: an error here fails the whole transaction.
            acked.push(batch.acks === undefined ? undefined : runAcks(this.queues, batch.acks));
            for (const command of batch.commands) {
              // Count changes of the commands before this one are set aside: a failed one's go with its savepoint.
              const before = this.queues.takeCounts();
              try {
                batchValues.push(this.db.transaction(() => this.execute(command, now))());
                batchErrors.push(undefined);
              } catch (error) {
                batchValues.push(undefined);
                batchErrors.push(error);
                this.queues.discardCounts();
              }
              this.queues.restoreCounts(before);
            }
            claimed.push(this.claim(batch.claims, now));
          }
          this.queues.applyCounts();
          return claimed;
        })
        .immediate();
      const scheduledAt = this.queues.takeScheduled();
      return batches.map((_, i) => ({
        kind: 'done',
        acked: acked[i],
        values: values[i]!,
        errors: errors[i]!,
        claims: claims[i]!,
        scheduledAt,
      }));
    } catch (error) {
      this.queues.discardCounts();
      this.queues.takeScheduled();
      return batches.map(() => failure(error));
    }
  }

  private execute(command: Command, now: number): unknown {
    const q = this.queues;
    switch (command[0]) {
      case Do.PUBLISH: {
        for (const item of command[1]) q.publishStored(item, now);
        return undefined;
      }
      case Do.PUBLISH_ONE:
        q.publishStored(command, now);
        return undefined;
      case Do.ACK: {
        const outgoing = command[5];
        if (outgoing !== null) for (const item of outgoing) q.publishStored(item, now);
        return q.ack(command[1], command[2], command[3], command[4]);
      }
      case Do.RETRY:
        return q.retry(command[1], command[2], command[3], command[4] ?? now, now, command[5]);
      case Do.DEAD_LETTER:
        return q.deadLetter(command[1], command[2], command[3]);
      case Do.EXTEND:
        return q.extendLease(command[1], command[2], now + command[3]);
      case Do.DECLARE:
        return q.declare(command[1]);
      case Do.REMOVE_DEAD_LETTERS:
        return q.removeDeadLetters(command[1], command[2]);
      case Do.INBOX_PUT:
        return q.inboxPutIfAbsent(command[1], command[2], command[3], now + command[4], now);
      case Do.SAGA_SAVE:
        return this.sagas.saveJsonIn(command[1], command[2], command[3], command[4], now);
      case Do.SAGA_REMOVE:
        return this.sagas.removeIn(command[1], command[2], command[3]);
      case Do.DELETE_QUEUE:
        return q.deleteQueue(command[1]);
    }
  }

  /** After the commands, in the same transaction: lease what each consumer has room for. */
  private claim(requests: ClaimRequest[], now: number): ClaimResult[] {
    const out: ClaimResult[] = [];
    for (const [queueId, room, token, leaseMs, due, mayHaveMore] of requests) {
      let nextDueAt: number | null | undefined;
      let housekept = false;
      if (due) {
        // Asked often (every commit of another connection makes it due): look before housekeeping.
        nextDueAt = this.queues.nextDueAt(queueId) ?? null;
        if (nextDueAt !== null && nextDueAt <= now) {
          housekept = this.queues.housekeep(queueId, now) > 0;
          nextDueAt = this.queues.nextDueAt(queueId) ?? null;
        }
      }
      if (!mayHaveMore && !housekept) {
        out.push([[], true, nextDueAt, housekept]);
        continue;
      }
      const rows = this.queues.claim(queueId, room, token, now + leaseMs);
      let live = rows;
      for (let i = 0; i < rows.length; i++) {
        const expiresAt = rows[i]![Row.EXPIRES_AT];
        if (expiresAt === null || expiresAt > now) continue;
        // A row whose time ran out goes to the dead letters instead of the consumer.
        live = rows.filter((row) => {
          const at = row[Row.EXPIRES_AT];
          if (at === null || at > now) return true;
          this.queues.expire(row, token, now);
          return false;
        });
        break;
      }
      out.push([live, rows.length < room, nextDueAt, housekept]);
    }
    if (now - this.lastSweep > SWEEP_EVERY_MS) {
      this.lastSweep = now;
      this.queues.sweep(now);
    }
    return out;
  }
}

function failure(error: unknown): BatchResult {
  return isBusy(error) ? { kind: 'busy' } : { kind: 'failed', error };
}

/** SQLite's "another connection holds the lock" errors. */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || code === 'SQLITE_BUSY_SNAPSHOT';
}
