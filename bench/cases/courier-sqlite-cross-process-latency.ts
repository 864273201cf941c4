/**
 * courier-sqlite-cross-process-latency: this process consumes, another (bench/workers/
 * courier-producer.ts) publishes to the same SQLite file at a fixed 2,000 msg/s for 10 s (3 s with
 * --quick). Latency is from the producer's `publish` call to the handler's start here, on the shared
 * wall clock `performance.timeOrigin + performance.now()`. The first 0.5 s is warm-up, left out.
 * Peak RSS is the consumer's.
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
  delay,
  envInt,
  LatencyRecorder,
  log,
  okResult,
  runBenchmark,
  skippedResult,
  startLoopDelayMonitor,
  startRssSampler,
  tempDir,
} from '../lib/harness.js';
import { wallClockMs } from '../payload.js';

const NAME = 'courier-sqlite-cross-process-latency';

await runBenchmark([NAME], async () => {
  const { quick } = benchOptions();
  const rate = envInt('BENCH_RATE', 2_000);
  const durationMs = envInt('BENCH_DURATION_MS', quick ? 3_000 : 10_000);
  const total = Math.round((rate * durationMs) / 1000);
  const warmup = Math.round(rate / 2);
  const tmp = tempDir(NAME);
  const path = `${tmp.dir}/courier.db`;
  try {
    const opened = await openTransport(path);
    if ('skipped' in opened) return [skippedResult(NAME, opened.skipped)];
    const rss = startRssSampler();
    const loop = startLoopDelayMonitor();
    const bus = createBus({
      endpoint: CONSUMER,
      transport: opened.transport,
      topology,
      concurrency: CONSUMER_CONCURRENCY,
    });
    const latencies = new LatencyRecorder(total, warmup);
    let handled = 0;
    bus.on(BenchEvent, (data) => {
      latencies.record(data.seq, wallClockMs() - data.sentAt);
      handled++;
    });
    await bus.start();
    const producer = spawnProducer({ mode: 'rate', path, rate, durationMs });
    try {
      const firstAt = await producer.started;
      const done = await producer.done;
      while (handled < done.published) await delay(1);
      await waitDrained(bus);
      const seconds = (wallClockMs() - firstAt) / 1000;
      const summary = latencies.summary();
      const note =
        `${rate} msg/s for ${durationMs / 1000} s, ${summary.count} measured after ${warmup} warm-up; ` +
        `p99.9 ${summary.p999} ms, max ${summary.max} ms; consumer ${loop.summary()}; producer peak RSS ${done.peakRssMb} MB`;
      log(`${NAME}: ${note}`);
      return [
        okResult(NAME, {
          count: done.published,
          seconds,
          rss,
          note,
          latency: { p50: summary.p50, p99: summary.p99 },
        }),
      ];
    } finally {
      rss.stop();
      loop.stop();
      if (producer.child.exitCode === null) producer.child.kill();
      await bus.stop();
    }
  } finally {
    tmp.remove();
  }
});
