/**
 * Plain acks (no key to release, no output to store) travel apart from the other writes: three
 * numbers each in one Float64Array per batch, copied to the writer thread with the batch, and one byte
 * each back. As commands, each ack was an array of seven values that structured clone wrote and the
 * thread read back (0.16 and 0.25 µs in a micro-benchmark; about 1 % of the e2e benchmark's CPU).
 */
import type { SqliteQueues } from './queues.js';

/** Numbers per ack in `AckBatch`: seq, lease token, queue id. */
export const ACK_FIELDS = 3;

/** The acks of one batch: `ACK_FIELDS` numbers each, in the order they were asked for. */
export type AckBatch = Float64Array;

/** Each ack's outcome, in order: 1 when the row was deleted, 0 when its lease was gone. */
export type AckOutcomes = Uint8Array;

interface Settle {
  resolve(acked: boolean): void;
  reject(error: unknown): void;
}

/** The acks gathered for the next batch, and their callers' promises. */
export class PendingAcks {
  private numbers = new Float64Array(ACK_FIELDS * 64);
  private settles: Settle[] = [];

  get size(): number {
    return this.settles.length;
  }

  add(seq: number, token: number, queueId: number): Promise<boolean> {
    const at = this.settles.length * ACK_FIELDS;
    if (at + ACK_FIELDS > this.numbers.length) {
      const grown = new Float64Array(this.numbers.length * 2);
      grown.set(this.numbers);
      this.numbers = grown;
    }
    this.numbers[at] = seq;
    this.numbers[at + 1] = token;
    this.numbers[at + 2] = queueId;
    return new Promise<boolean>((resolve, reject) => {
      this.settles.push({ resolve, reject });
    });
  }

  /** Everything gathered, as a batch's acks (a buffer of its own). */
  take(): { acks: AckBatch; settles: Settle[] } | undefined {
    if (this.settles.length === 0) return undefined;
    const acks = this.numbers.slice(0, this.settles.length * ACK_FIELDS);
    const settles = this.settles;
    this.settles = [];
    return { acks, settles };
  }

  /** A batch that did not run (busy): its acks go into the next one. */
  putBack(taken: { acks: AckBatch; settles: Settle[] }): void {
    const { acks, settles } = taken;
    for (let i = 0; i < settles.length; i++) {
      const o = i * ACK_FIELDS;
      void this.add(acks[o]!, acks[o + 1]!, acks[o + 2]!).then(settles[i]!.resolve, settles[i]!.reject);
    }
  }

  rejectAll(error: unknown): void {
    for (const settle of this.settles.splice(0)) settle.reject(error);
  }
}

/** Settles `settles` with the outcomes a batch reported (`failure` when it did not run). */
export function settleAcks(
  settles: readonly Settle[],
  outcomes: AckOutcomes | undefined,
  failure?: unknown,
): void {
  for (let i = 0; i < settles.length; i++) {
    if (outcomes === undefined) settles[i]!.reject(failure);
    else settles[i]!.resolve(outcomes[i] === 1);
  }
}

/**
 * Runs a batch's acks in the writer's transaction. A consumer whose handlers take about the same
 * time acks in the order its claim handed the rows out, so most acks are runs of consecutive rows
 * under one lease: each run is one range delete (`SqliteQueues.ackRange`), one by one only when the
 * range is not all ready rows under a live lease.
 */
export function runAcks(queues: SqliteQueues, acks: AckBatch): AckOutcomes {
  const n = acks.length / ACK_FIELDS;
  const outcomes = new Uint8Array(n);
  for (let i = 0; i < n; ) {
    const o = i * ACK_FIELDS;
    const seq = acks[o]!;
    const token = acks[o + 1]!;
    const queueId = acks[o + 2]!;
    let run = 1;
    while (i + run < n) {
      const p = (i + run) * ACK_FIELDS;
      if (acks[p] !== seq + run || acks[p + 1] !== token || acks[p + 2] !== queueId) break;
      run++;
    }
    if (run > 1 && queues.ackRange(seq, run, token, queueId)) {
      outcomes.fill(1, i, i + run);
    } else {
      for (let k = 0; k < run; k++) {
        const q = (i + k) * ACK_FIELDS;
        outcomes[i + k] = queues.ack(acks[q]!, acks[q + 1]!, acks[q + 2]!, null) ? 1 : 0;
      }
    }
    i += run;
  }
  return outcomes;
}
