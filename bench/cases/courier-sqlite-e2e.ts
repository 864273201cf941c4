/**
 * courier-sqlite-e2e: one process, one bus on a SQLite file. A producer loop makes one `bus.publish`
 * call per message (at most PUBLISH_WINDOW unresolved at once, which lets the transport group-commit
 * them) while the bus's consumer handles them (concurrency 50, like BullMQ's worker). Timed from the
 * first publish to the last message handled and acked: after the last handler ran, it waits until
 * `stats()` shows nothing ready and nothing in flight. 100,000 messages; 20,000 with --quick.
 */
import { createBus } from '@courier/core';
import {
  BenchEvent,
  CONSUMER,
  CONSUMER_CONCURRENCY,
  openTransport,
  PUBLISH_WINDOW,
  publishMany,
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

const NAME = 'courier-sqlite-e2e';

await runBenchmark([NAME], async () => {
  const { quick } = benchOptions();
  const count = envInt('BENCH_COUNT', quick ? 20_000 : 100_000);
  const tmp = tempDir(NAME);
  try {
    const opened = await openTransport(`${tmp.dir}/courier.db`);
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
    try {
      const start = performance.now();
      // The first tenth runs before V8 has optimized the hot path and while the writer thread starts.
      let tenthAt = start;
      let handledAtTenth = 0;
      await publishMany(bus, count, {
        onTenth: () => {
          tenthAt = performance.now();
          handledAtTenth = handled;
        },
      });
      const published = performance.now();
      const handledWhenPublished = handled;
      await allHandled;
      const lastHandled = performance.now();
      await waitDrained(bus);
      const end = performance.now();
      const seconds = (end - start) / 1000;
      const note =
        `publish window ${PUBLISH_WINDOW}, concurrency ${CONSUMER_CONCURRENCY}; the first tenth of the publish calls made after ` +
        `${round((tenthAt - start) / 1000, 3)} s (${handledAtTenth} handled by then), all published after ` +
        `${round((published - start) / 1000, 2)} s (${handledWhenPublished} handled by then), last handled ${round((lastHandled - start) / 1000, 2)} s, ` +
        `drained ${round(seconds, 2)} s`;
      log(`${NAME}: ${note}`);
      return [okResult(NAME, { count, seconds, rss, note })];
    } finally {
      rss.stop();
      await bus.stop();
    }
  } finally {
    tmp.remove();
  }
});
