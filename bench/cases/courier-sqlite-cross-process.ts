/**
 * courier-sqlite-cross-process: like courier-sqlite-e2e, but the producer runs in another process
 * (bench/workers/courier-producer.ts) on the same SQLite file; this process is the consumer, started
 * first. Timed on the shared wall clock from the producer's first publish to the last message handled
 * and acked here. Peak RSS is the consumer's. 100,000 messages; 20,000 with --quick.
 */
import { createBus } from '@courier/core';
import { spawnProducer } from '../lib/child.js';
import {
  BenchEvent,
  CONSUMER,
  CONSUMER_CONCURRENCY,
  openTransport,
  PUBLISH_WINDOW,
  topology,
  waitDrained,
} from '../lib/courier.js';
import {
  benchOptions,
  envInt,
  log,
  okResult,
  round,
  runBenchmark,
  skippedResult,
  startRssSampler,
  tempDir,
} from '../lib/harness.js';
import { wallClockMs } from '../payload.js';

const NAME = 'courier-sqlite-cross-process';

await runBenchmark([NAME], async () => {
  const { quick } = benchOptions();
  const count = envInt('BENCH_COUNT', quick ? 20_000 : 100_000);
  const tmp = tempDir(NAME);
  const path = `${tmp.dir}/courier.db`;
  try {
    const opened = await openTransport(path);
    if ('skipped' in opened) return [skippedResult(NAME, opened.skipped)];
    const rss = startRssSampler();
    const bus = createBus({
      endpoint: CONSUMER,
      transport: opened.transport,
      topology,
      concurrency: CONSUMER_CONCURRENCY,
    });
    let handled = 0;
    let resolveAll!: () => void;
    const allHandled = new Promise<void>((resolve) => {
      resolveAll = resolve;
    });
    bus.on(BenchEvent, () => {
      handled++;
      if (handled === count) resolveAll();
    });
    await bus.start();
    const producer = spawnProducer({ mode: 'bulk', path, count });
    try {
      const firstAt = await producer.started;
      await Promise.race([allHandled, producer.done.then(() => allHandled)]);
      await waitDrained(bus);
      const end = wallClockMs();
      const done = await producer.done;
      const seconds = (end - firstAt) / 1000;
      const note =
        `publish window ${PUBLISH_WINDOW}, concurrency ${CONSUMER_CONCURRENCY}; producer done after ` +
        `${round((done.lastAt - firstAt) / 1000, 2)} s (its peak RSS ${done.peakRssMb} MB), drained ${round(seconds, 2)} s`;
      log(`${NAME}: ${note}`);
      return [okResult(NAME, { count, seconds, rss, note })];
    } finally {
      rss.stop();
      if (producer.child.exitCode === null) producer.child.kill();
      await bus.stop();
    }
  } finally {
    tmp.remove();
  }
});
