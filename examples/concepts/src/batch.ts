/**
 * Batch handlers.
 * - `onBatch` hands over up to `size` messages at once, or what arrived within `maxWaitMs`;
 * - `item.fail(error)` fails one message alone (retried or dead-lettered by the policy); the rest are acked.
 */
import { createBus, defineEvent, NonRetryableError } from '@courier/core';
import { memory } from '@courier/memory';
import { z } from 'zod';
import type { Log } from './util.js';
import { drained, runIfMain, until } from './util.js';

const ReadingRecorded = defineEvent(
  'meters.reading-recorded',
  z.object({ meter: z.string(), kwh: z.number() }),
);

export async function main(log: Log): Promise<void> {
  const bus = createBus({ endpoint: 'metering', transport: memory() });
  const batchSizes: number[] = [];
  let stored = 0;
  bus.onBatch(
    ReadingRecorded,
    async (items) => {
      batchSizes.push(items.length);
      for (const item of items) {
        if (item.data.kwh < 0) item.fail(new NonRetryableError(`meter ${item.data.meter}: negative reading`));
        else stored++; // a real handler would write the valid rows in one insert
      }
    },
    { size: 10, maxWaitMs: 20 },
  );

  await bus.start();
  try {
    for (let n = 0; n < 25; n++) {
      await bus.publish(ReadingRecorded, { meter: `m-${n}`, kwh: n === 7 ? -1 : n });
    }
    await until(async () => stored === 24 && (await bus.stats()).deadLettered === 1);
    await until(() => drained(bus));
    log(`metering: 25 readings in ${batchSizes.length} batches of at most 10 (${batchSizes.join(', ')})`);
    log(`metering: ${stored} stored`);
    const { items } = await bus.deadLetters.list('metering');
    log(`dlq:      reason=${items[0]!.info.reason}: ${items[0]!.info.errorMessage}`);
  } finally {
    await bus.stop();
  }
}

await runIfMain(import.meta.url, main);
