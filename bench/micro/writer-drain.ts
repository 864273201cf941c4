/**
 * The writer's drain path alone: `BatchRunner` on a file holding 102,400 published messages, each
 * batch acking the rows the one before claimed and claiming the next 512, with each result packed as
 * the writer thread packs it for the event loop (`resultData`). No thread and no bus. Prints
 * microseconds per message for a few rounds; the counterpart of writer-publish.ts, and of the raw
 * queue's drain phase. Not part of `npm run bench`.
 *
 *   node --import tsx bench/micro/writer-drain.ts [rounds]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeMessage, newMessageId } from '@courier/core';
import { ACK_FIELDS } from '../../packages/sqlite/src/acks.js';
import { BatchRunner, type Command, Do } from '../../packages/sqlite/src/batch.js';
import { SqliteQueues } from '../../packages/sqlite/src/queues.js';
import { type ClaimedRow, Row, toStoredItem } from '../../packages/sqlite/src/rows.js';
import { openDatabase } from '../../packages/sqlite/src/schema.js';
import { SqliteSagaStore } from '../../packages/sqlite/src/stores.js';
import { resultData } from '../../packages/sqlite/src/writer.js';
import { makePayload } from '../payload.js';

const BATCH = 256;
const BATCHES = 400;
const CLAIM = 512;
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
    for (let b = 0; b < BATCHES; b++) runner.run({ commands: batchOf(b * BATCH), claims: [] });
    db.pragma('wal_checkpoint(TRUNCATE)');
    const queueId = 1;
    let acks: Float64Array | undefined;
    let drained = 0;
    const start = process.hrtime.bigint();
    for (let token = 1; ; token++) {
      const result = runner.run({
        acks,
        commands: [],
        claims: [[queueId, CLAIM, token, 30_000, false, true]],
      });
      if (result.kind !== 'done') throw new Error(`batch ${result.kind}`);
      resultData(result);
      const rows = result.claims[0]![0] as ClaimedRow[];
      if (rows.length === 0) break;
      drained += rows.length;
      acks = new Float64Array(rows.length * ACK_FIELDS);
      for (let i = 0; i < rows.length; i++) {
        acks.set([rows[i]![Row.SEQ], token, queueId, rows[i]![Row.PRIORITY]], i * ACK_FIELDS);
      }
    }
    if (drained !== BATCH * BATCHES) throw new Error(`drained ${drained} of ${BATCH * BATCHES}`);
    perMessage.push(Number(process.hrtime.bigint() - start) / 1e3 / drained);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
const sorted = [...perMessage].sort((a, b) => a - b);
console.log(
  `writer drain path, claims of ${CLAIM} acked in the next batch, ${BATCH * BATCHES} messages: ` +
    `${perMessage.map((us) => us.toFixed(2)).join(' · ')} µs a message (median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)})`,
);
