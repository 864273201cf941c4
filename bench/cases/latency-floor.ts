/**
 * latency-floor: the control for the two latency benchmarks, with no Courier code. Same pacing
 * (2,000 msg/s for 10 s, 3 s with --quick, ticking every millisecond), same payload and clock; a
 * "publish" JSON-encodes the payload and hands it to the handler on the next event-loop turn
 * (`setImmediate`), which decodes it and records the latency. What this shows at p99 is what the
 * machine (a shared 2-core box), Node's event loop and GC add at that moment; read the Courier
 * latencies against it, in the same run.
 */
import {
  benchOptions,
  delay,
  envInt,
  LatencyRecorder,
  log,
  okResult,
  runBenchmark,
  startLoopDelayMonitor,
  startRssSampler,
} from '../lib/harness.js';
import { makePayload, type Payload, wallClockMs } from '../payload.js';

const NAME = 'latency-floor';

await runBenchmark([NAME], async () => {
  const { quick } = benchOptions();
  const rate = envInt('BENCH_RATE', 2_000);
  const durationMs = envInt('BENCH_DURATION_MS', quick ? 3_000 : 10_000);
  const total = Math.round((rate * durationMs) / 1000);
  const warmup = Math.round(rate / 2);
  const rss = startRssSampler();
  const loop = startLoopDelayMonitor();
  const latencies = new LatencyRecorder(total, warmup);
  let handled = 0;
  const handle = (body: Buffer) => {
    const data = JSON.parse(body.toString('utf8')) as Payload;
    latencies.record(data.seq, wallClockMs() - data.sentAt);
    handled++;
  };
  try {
    let sent = 0;
    const start = performance.now();
    const firstAt = wallClockMs();
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
      while (sent < due) {
        const body = Buffer.from(JSON.stringify(makePayload(sent, wallClockMs())));
        setImmediate(handle, body);
        sent++;
      }
      await delay(1);
    }
    while (handled < sent) await delay(1);
    const seconds = (wallClockMs() - firstAt) / 1000;
    const summary = latencies.summary();
    const note =
      `${rate} msg/s for ${durationMs / 1000} s, ${summary.count} measured after ${warmup} warm-up; ` +
      `p99.9 ${summary.p999} ms, max ${summary.max} ms; ${loop.summary()}`;
    log(`${NAME}: ${note}`);
    return [
      okResult(NAME, { count: sent, seconds, rss, note, latency: { p50: summary.p50, p99: summary.p99 } }),
    ];
  } finally {
    rss.stop();
    loop.stop();
  }
});
