/**
 * courier-sqlite-backlog-first / -last: does draining slow down as a big file drains? Another process
 * (bench/workers/courier-producer.ts, mode `backlog`) builds the file: DEAD poison messages
 * dead-lettered by a consumer with `maxAttempts: 1`, then READY messages interleaved with DELAYED ones
 * held for an hour. This process then starts a fresh consumer and drains the READY messages; it
 * reports the throughput of the first WINDOW drained (from the first message handled, so start-up
 * is not counted against it) and of the last WINDOW (ending when its acks are committed), and this
 * process's peak RSS for both.
 * Full: 1,000,000 ready, 1,000,000 delayed, 100,000 dead. --quick: 200,000 ready, 50,000 delayed,
 * 5,000 dead (the whole quick run must stay under a minute; the full build takes minutes).
 */
import { createBus } from '@courier/core';
import { spawnProducer } from '../lib/child.js';
import {
  BenchEvent,
  CONSUMER,
  CONSUMER_CONCURRENCY,
  openTransport,
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

const FIRST = 'courier-sqlite-backlog-first';
const LAST = 'courier-sqlite-backlog-last';

await runBenchmark([FIRST, LAST], async () => {
  const { quick } = benchOptions();
  const ready = envInt('BENCH_BACKLOG', quick ? 200_000 : 1_000_000);
  const delayed = envInt('BENCH_DELAYED', quick ? 50_000 : 1_000_000);
  const dead = envInt('BENCH_DEAD', quick ? 5_000 : 100_000);
  const window = Math.min(envInt('BENCH_WINDOW', 100_000), Math.floor(ready / 2));

  const tmp = tempDir('courier-sqlite-backlog');
  const path = `${tmp.dir}/courier.db`;
  try {
    const buildStart = performance.now();
    const builder = spawnProducer({ mode: 'backlog', path, ready, delayed, dead });
    await builder.done;
    const buildSeconds = (performance.now() - buildStart) / 1000;
    log(
      `backlog: built in ${round(buildSeconds, 1)} s (builder peak RSS ${(await builder.done).peakRssMb} MB)`,
    );

    // The peak RSS is a target here: the note says what the main thread's heap held near it.
    const rss = startRssSampler(20, { heapAtPeak: true });
    const opened = await openTransport(path);
    if ('skipped' in opened)
      return [skippedResult(FIRST, opened.skipped), skippedResult(LAST, opened.skipped)];
    const bus = createBus({
      endpoint: CONSUMER,
      transport: opened.transport,
      topology,
      concurrency: CONSUMER_CONCURRENCY,
    });
    let handled = 0;
    let firstStart = 0;
    let firstEnd = 0;
    let lastStart = 0;
    let resolveAll!: () => void;
    const allHandled = new Promise<void>((resolve) => {
      resolveAll = resolve;
    });
    bus.on(BenchEvent, () => {
      handled++;
      if (handled === 1) firstStart = performance.now();
      if (handled === window) firstEnd = performance.now();
      if (handled === ready - window) lastStart = performance.now();
      if (handled === ready) resolveAll();
    });
    const start = performance.now();
    await bus.start();
    try {
      await allHandled;
      await waitDrained(bus);
      const end = performance.now();
      const stats = await bus.stats(CONSUMER);
      const firstSeconds = (firstEnd - firstStart) / 1000;
      const lastSeconds = (end - lastStart) / 1000;
      const note =
        `first message handled ${round(firstStart - start, 0)} ms after start(); ` +
        `${ready} ready drained in ${round((end - start) / 1000, 2)} s (${round(ready / ((end - start) / 1000), 0)}/s) ` +
        `among ${delayed} delayed and ${dead} dead-lettered rows (left: scheduled ${stats.scheduled}, ` +
        `dead-lettered ${stats.deadLettered}); build ${round(buildSeconds, 1)} s; ${rss.heapAtPeak()}`;
      log(`backlog: ${note}`);
      if (stats.scheduled !== delayed || stats.deadLettered !== dead) {
        log(`backlog: WARNING expected scheduled ${delayed} and dead-lettered ${dead}`);
      }
      return [
        okResult(FIRST, { count: window, seconds: firstSeconds, rss, note }),
        okResult(LAST, { count: window, seconds: lastSeconds, rss, note }),
      ];
    } finally {
      rss.stop();
      await bus.stop();
    }
  } finally {
    tmp.remove();
  }
});
