/**
 * Where a message row's `seq` puts it. The ready rows of one queue and priority live in a range of
 * seqs of their own, `slot × RANGE + 1` up to `slot × RANGE + RANGE − 1`, in the order they became
 * ready; rows that are not ready when stored (delayed, scheduled for a retry, waiting behind their
 * key) live in the parking range of negative seqs, found through their states' indexes. So a claim
 * reads its rows as a stretch of the table's primary key, and no index over ready rows has to be kept
 * up at every insert and delete (the ready index it replaces cost about 4 % of the e2e benchmark's
 * throughput: docs/performance.md).
 *
 * `courier_ranges` maps slots to (queue, priority, generation). A range that is nearly used up (at
 * 100,000 messages a second, after about four months without its queue ever running empty) gets a
 * successor of the next generation: new rows go there, claims finish the older one first, and an
 * older one is given back once nothing is left in it. Slot 0, the seqs of files written before
 * schema 7, is never handed out.
 */
import { TransportError } from '@courier/core';
import type { Statements } from './statements.js';

/** Seqs per range. */
export const RANGE = 2 ** 40;
/** The highest slot: its range ends at `Number.MAX_SAFE_INTEGER`. */
const LAST_SLOT = 2 ** 53 / RANGE - 1;
/**
 * A range takes no new rows once fewer seqs than this are left, so one statement that copies rows
 * into it (at most a billion rows at once) always fits.
 */
const RESERVE = 2 ** 30;
/** Parked rows take seqs from here up to -1 (nine quadrillion of them). */
export const PARKING_FIRST = Number.MIN_SAFE_INTEGER + 1;
/** The key of the parking range in `next`. */
const PARKING = -1;

/** The slot of a seq in a range (a parked seq gives a negative number). */
export function slotOf(seq: number): number {
  return Math.floor(seq / RANGE);
}

/** The first seq of a slot's range. */
export function rangeStart(slot: number): number {
  return slot * RANGE;
}

/** The last seq of a slot's range. */
export function rangeEnd(slot: number): number {
  return slot * RANGE + (RANGE - 1);
}

/**
 * A range of a queue as a claim reads it: `[slot, priority, cursor or null]`. In `SeqRanges.of`'s
 * order the newest generation of a priority is the last of its ranges.
 */
export type RangeOfQueue = [slot: number, priority: number, cursor: number | null];

/**
 * Hands out seqs inside one transaction of the connection it was made for: `begin()` at the start of
 * every transaction (and after a rollback), since other connections write between them.
 */
export class SeqRanges {
  /** The newest slot of (queue, priority), by `queueId * 10 + priority`, as read in this transaction. */
  private readonly newest = new Map<number, number>();
  /** The next seq each range (or the parking range) gives, once read in this transaction. */
  private readonly next = new Map<number, number>();

  constructor(private readonly s: Statements) {}

  begin(): void {
    this.newest.clear();
    this.next.clear();
  }

  /**
   * A new seq for a ready row of `queueId` at `priority`: after every row of its range and after
   * the range's cursor, so no claim has passed it already.
   */
  ready(queueId: number, priority: number): number {
    const slot = this.room(queueId, priority);
    const seq = this.next.get(slot)!;
    this.next.set(slot, seq + 1);
    return seq;
  }

  /**
   * For a statement that copies an unknown number of rows (fewer than `RESERVE`) of one queue and
   * priority: the seq after which they go. Tell `used` how many it copied.
   */
  copyBase(queueId: number, priority: number): number {
    return this.next.get(this.room(queueId, priority))! - 1;
  }

  /** `n` rows were copied after `copyBase(queueId, priority)`. */
  used(queueId: number, priority: number, n: number): void {
    const slot = this.newest.get(queueId * 10 + priority)!;
    this.next.set(slot, this.next.get(slot)! + n);
  }

  /** The newest slot of (queue, priority) with its next seq known and `RESERVE` seqs left after it. */
  private room(queueId: number, priority: number): number {
    const key = queueId * 10 + priority;
    let slot = this.newest.get(key);
    if (slot === undefined) {
      slot = (this.s.latestSlot.get(queueId, priority) as number | undefined) ?? this.open(queueId, priority);
      this.newest.set(key, slot);
    }
    let next = this.next.get(slot);
    if (next === undefined) {
      const last =
        (this.s.maxSeqIn.get(rangeStart(slot), rangeEnd(slot)) as number | null) ?? rangeStart(slot);
      const cursor = (this.s.rangeCursor.get(slot) as number | null) ?? 0;
      next = Math.max(last, cursor) + 1;
      this.next.set(slot, next);
    }
    if (next > rangeEnd(slot) - RESERVE) {
      slot = this.open(queueId, priority);
      this.newest.set(key, slot);
      this.next.set(slot, rangeStart(slot) + 1);
    }
    return slot;
  }

  /** A new seq in the parking range, after every parked row. */
  parked(): number {
    let seq = this.next.get(PARKING);
    if (seq === undefined)
      seq = ((this.s.maxSeqIn.get(PARKING_FIRST, -1) as number | null) ?? PARKING_FIRST - 1) + 1;
    if (seq >= 0) throw new TransportError('the parking range of the sqlite file is used up');
    this.next.set(PARKING, seq + 1);
    return seq;
  }

  /** A claim found nothing in `slot`, an older generation: it is given back once nothing is left in it. */
  drained(slot: number): void {
    if (this.s.rangeHasClaims.get(slot) !== undefined) return;
    if (this.s.rangeHasRows.get(rangeStart(slot), rangeEnd(slot)) !== undefined) return;
    this.s.dropRange.run(slot);
  }

  /** The ranges of a queue in claim order: highest priority first, then oldest generation. */
  of(queueId: number): RangeOfQueue[] {
    return this.s.rangesOf.all(queueId) as RangeOfQueue[];
  }

  /** The priority whose rows `slot` holds, or undefined when it was given back. */
  priorityOf(slot: number): number | undefined {
    return this.s.priorityOfSlot.get(slot) as number | undefined;
  }

  /** Deletes a queue's rows in its ranges and gives the ranges back (the queue is being deleted). */
  dropQueue(queueId: number): void {
    for (const [slot] of this.of(queueId)) this.s.deleteRangeRows.run(rangeStart(slot), rangeEnd(slot));
    this.s.dropQueueRanges.run(queueId);
    this.begin();
  }

  /** A new range of the next generation for (queue, priority), in the lowest free slot. */
  private open(queueId: number, priority: number): number {
    const slot = this.s.freeSlot.get() as number;
    if (slot > LAST_SLOT)
      throw new TransportError(
        `the sqlite file has no free seq range left for queue ${queueId} at priority ${priority}: ${LAST_SLOT} queue and priority pairs hold rows; delete unused queues`,
      );
    this.s.addRange.run({ slot, queueId, priority });
    return slot;
  }
}
