/**
 * The writer's drain path alone: `BatchRunner` on a file holding 102,400 published messages, each
 * batch acking the rows the one before claimed and claiming the next 512, with each result packed as
 * the writer thread packs it for the event loop (`resultData`). No thread and no bus. Prints
 * microseconds per message for a few rounds; the counterpart of writer-publish.ts, and of the raw
 * queue's drain phase. Not part of `npm run bench`.
 *
 *   node --import tsx bench/micro/writer-drain.ts [rounds]
 */
import { ACK_FIELDS } from '../../packages/sqlite/src/acks.js';
import { type ClaimedRow, Row } from '../../packages/sqlite/src/rows.js';
import { resultData } from '../../packages/sqlite/src/writer.js';
import { BATCH, BATCHES, publishBatch, QUEUE_ID, report, withWriter } from './writer-fixture.js';

const CLAIM = 512;
const rounds = Number(process.argv[2] ?? 5);
const perMessage: number[] = [];
for (let round = 0; round < rounds; round++) {
  perMessage.push(
    withWriter((runner, db) => {
      for (let b = 0; b < BATCHES; b++) runner.run({ commands: publishBatch(b * BATCH), claims: [] });
      db.pragma('wal_checkpoint(TRUNCATE)');
      let acks: Float64Array | undefined;
      let drained = 0;
      const start = process.hrtime.bigint();
      for (let token = 1; ; token++) {
        const result = runner.run({
          acks,
          commands: [],
          claims: [[QUEUE_ID, CLAIM, token, 30_000, false, true]],
        });
        if (result.kind !== 'done') throw new Error(`batch ${result.kind}`);
        resultData(result);
        const rows = result.claims[0]![0] as ClaimedRow[];
        if (rows.length === 0) break;
        drained += rows.length;
        acks = new Float64Array(rows.length * ACK_FIELDS);
        for (let i = 0; i < rows.length; i++) {
          acks.set([rows[i]![Row.SEQ], token, QUEUE_ID], i * ACK_FIELDS);
        }
      }
      if (drained !== BATCH * BATCHES) throw new Error(`drained ${drained} of ${BATCH * BATCHES}`);
      return Number(process.hrtime.bigint() - start) / 1e3 / drained;
    }),
  );
}
report(
  `writer drain path, claims of ${CLAIM} acked in the next batch, ${BATCH * BATCHES} messages`,
  perMessage,
);
