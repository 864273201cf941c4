/**
 * The writer's publish path alone: `BatchRunner` storing batches of 256 single publishes (what a
 * busy producer's event-loop turns become), on a temporary file with Courier's settings, no thread
 * and no bus. Prints microseconds per message for a few rounds. Not part of `npm run bench`: a
 * developer's measuring tool for changes to the insert path, steadier than the end-to-end run.
 *
 *   node --import tsx bench/micro/writer-publish.ts [rounds]
 */
import { BATCH, BATCHES, publishBatch, report, withWriter } from './writer-fixture.js';

const rounds = Number(process.argv[2] ?? 5);
const perMessage: number[] = [];
for (let round = 0; round < rounds; round++) {
  perMessage.push(
    withWriter((runner) => {
      const batches = Array.from({ length: BATCHES }, (_, b) => publishBatch(b * BATCH));
      const start = process.hrtime.bigint();
      for (const commands of batches) {
        const result = runner.run({ commands, claims: [] });
        if (result.kind !== 'done') throw new Error(`batch ${result.kind}`);
      }
      return Number(process.hrtime.bigint() - start) / 1e3 / (BATCH * BATCHES);
    }),
  );
}
report(`writer publish path, ${BATCH} single publishes a batch, ${BATCHES} batches`, perMessage);
