/**
 * What the writer micro-benchmarks share: batches of single publishes as the transport sends them,
 * a `BatchRunner` on a temporary file with Courier's settings and one queue `q`, and the report line.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeMessage, newMessageId } from '@courier/core';
import { BatchRunner, type Command, Do } from '../../packages/sqlite/src/batch.js';
import { SqliteQueues } from '../../packages/sqlite/src/queues.js';
import { toStoredItem } from '../../packages/sqlite/src/rows.js';
import { openDatabase, type SqliteDatabase } from '../../packages/sqlite/src/schema.js';
import { SqliteSagaStore } from '../../packages/sqlite/src/stores.js';
import { makePayload } from '../payload.js';

/** Single publishes per batch: what a busy producer's event-loop turn becomes. */
export const BATCH = 256;
export const BATCHES = 400;
/** The id of queue `q` on a fresh file. */
export const QUEUE_ID = 1;

/** One batch of single publishes to `q`, as the transport sends them, of Courier-encoded payloads. */
export function publishBatch(first: number): Command[] {
  return Array.from({ length: BATCH }, (_, i) => {
    const id = newMessageId();
    const envelope = encodeMessage(
      {
        id,
        type: 'bench.order-placed',
        version: 1,
        source: 'bench',
        time: new Date().toISOString(),
        correlationId: id,
        priority: 0,
        headers: {},
        data: makePayload(first + i, 0),
      },
      'binary',
    );
    return toStoredItem({ to: { kind: 'queue', queue: 'q' }, envelope });
  });
}

/** Runs `measure` on a runner over a new file with queue `q` declared; returns what it returns. */
export function withWriter(measure: (runner: BatchRunner, db: SqliteDatabase) => number): number {
  const dir = mkdtempSync(join(tmpdir(), 'courier-micro-'));
  const db = openDatabase({ path: join(dir, 'courier.db'), synchronous: 'NORMAL', busyTimeoutMs: 20 });
  try {
    const runner = new BatchRunner(db, new SqliteQueues(db, 600_000, Date.now), new SqliteSagaStore(db));
    runner.run({ commands: [[Do.DECLARE, { queues: [{ name: 'q' }], bindings: [] }]], claims: [] });
    return measure(runner, db);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Prints `what` with each round's microseconds a message and their median. */
export function report(what: string, perMessage: readonly number[]): void {
  const sorted = [...perMessage].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  console.log(
    `${what}: ${perMessage.map((us) => us.toFixed(2)).join(' · ')} µs a message (median ${median.toFixed(2)})`,
  );
}
