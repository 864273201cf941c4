/**
 * The writer's publish path alone: `BatchRunner` storing batches of 256 single publishes (what a
 * busy producer's event-loop turns become), on a temporary file with Courier's settings, no thread
 * and no bus. Prints microseconds per message for a few rounds. Not part of `npm run bench`: a
 * developer's measuring tool for changes to the insert path, steadier than the end-to-end run.
 *
 *   node --import tsx bench/micro/writer-publish.ts [rounds]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeMessage, newMessageId } from '@courier/core';
import { BatchRunner, type Command, Do } from '../../packages/sqlite/src/batch.js';
import { SqliteQueues } from '../../packages/sqlite/src/queues.js';
import { toStoredItem } from '../../packages/sqlite/src/rows.js';
import { openDatabase } from '../../packages/sqlite/src/schema.js';
import { SqliteSagaStore } from '../../packages/sqlite/src/stores.js';
import { makePayload } from '../payload.js';

const BATCH = 256;
const BATCHES = 400;
const rounds = Number(process.argv[2] ?? 5);

/** One batch of single publishes, as the transport sends them, of Courier-encoded payloads. */
function batchOf(first: number): Command[] {
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

const perMessage: number[] = [];
for (let round = 0; round < rounds; round++) {
  const dir = mkdtempSync(join(tmpdir(), 'courier-micro-'));
  const db = openDatabase({ path: join(dir, 'courier.db'), synchronous: 'NORMAL', busyTimeoutMs: 20 });
  try {
    const runner = new BatchRunner(db, new SqliteQueues(db, 600_000, Date.now), new SqliteSagaStore(db));
    runner.run({ commands: [[Do.DECLARE, { queues: [{ name: 'q' }], bindings: [] }]], claims: [] });
    const batches = Array.from({ length: BATCHES }, (_, b) => batchOf(b * BATCH));
    const start = process.hrtime.bigint();
    for (const commands of batches) {
      const result = runner.run({ commands, claims: [] });
      if (result.kind !== 'done') throw new Error(`batch ${result.kind}`);
    }
    perMessage.push(Number(process.hrtime.bigint() - start) / 1e3 / (BATCH * BATCHES));
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
const sorted = [...perMessage].sort((a, b) => a - b);
console.log(
  `writer publish path, ${BATCH} single publishes a batch, ${BATCHES} batches: ` +
    `${perMessage.map((us) => us.toFixed(2)).join(' · ')} µs a message (median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)})`,
);
