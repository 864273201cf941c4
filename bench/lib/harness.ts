/**
 * What every benchmark process shares: options from argv/env, the peak-RSS sampler, percentiles,
 * temp files and the one-line result protocol the runner reads back (`RESULT_PREFIX` + JSON).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Lines on stdout starting with this carry a result; everything else a benchmark prints goes to stderr. */
export const RESULT_PREFIX = '@@bench-result ';

export type BenchStatus = 'ok' | 'skipped' | 'failed';

/** What a benchmark reports. The first five fields are the public `--json` shape. */
export interface BenchResult {
  name: string;
  msgs_per_s: number | null;
  p50_ms: number | null;
  p99_ms: number | null;
  peak_rss_mb: number | null;
  status: BenchStatus;
  /** `process.resourceUsage().maxRSS` of the measured process, the cross-check of `peak_rss_mb`. */
  max_rss_mb?: number | null;
  /** RSS when measuring began (Node, tsx's loader thread, the imports): the floor under `peak_rss_mb`. */
  start_rss_mb?: number | null;
  /** Messages measured. */
  count?: number;
  /** Seconds measured. */
  seconds?: number;
  /** Why skipped or failed, or what to know about the figures. */
  note?: string;
}

export interface BenchOptions {
  quick: boolean;
}

/** `--quick` on the command line (or BENCH_QUICK=1). */
export function benchOptions(argv: readonly string[] = process.argv.slice(2)): BenchOptions {
  return { quick: argv.includes('--quick') || process.env.BENCH_QUICK === '1' };
}

/** A positive integer from the environment (`BENCH_COUNT=5000`), else `fallback`. For exploring. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name}='${raw}' must be a positive integer`);
  return value;
}

const MB = 1024 * 1024;

export function round(value: number, digits = 2): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** The RSS figures of the measured process (see `startRssSampler`). */
export interface RssSampler {
  peakMb(): number;
  maxRssMb(): number;
  /** With `heapAtPeak`: the main thread's heap when the RSS last grew by 2 MB, for the note ('' without). */
  heapAtPeak(): string;
  startMb: number;
  stop(): void;
}

/**
 * An `ok` result: `count` messages in `seconds` (msgs/s is their ratio), the RSS figures of `rss`,
 * and p50/p99 when the benchmark measures latency.
 */
export function okResult(
  name: string,
  figures: {
    count: number;
    seconds: number;
    rss: RssSampler;
    note: string;
    latency?: { p50: number | null; p99: number | null };
  },
): BenchResult {
  const { count, seconds, rss, note, latency } = figures;
  return {
    name,
    msgs_per_s: round(count / seconds, 0),
    p50_ms: latency?.p50 ?? null,
    p99_ms: latency?.p99 ?? null,
    peak_rss_mb: rss.peakMb(),
    max_rss_mb: rss.maxRssMb(),
    start_rss_mb: rss.startMb,
    count,
    seconds: round(seconds, 3),
    status: 'ok',
    note,
  };
}

/**
 * Samples the RSS every 20 ms. A benchmark that blocks the event loop for long stretches is sampled
 * less often, which is why `maxRSS` (the kernel's high-water mark) is reported beside it. Read with
 * `process.memoryUsage.rss()`: `process.memoryUsage()` also gathers the JavaScript heap's
 * statistics, which took 1.5 % of the e2e benchmark's event loop (`--cpu-prof`) for the same RSS.
 * `heapAtPeak` (the backlog benchmark, whose RSS is a target) also records the main thread's heap
 * each time the peak has grown by 2 MB, so a peak over the target says which part grew.
 */
export function startRssSampler(intervalMs = 20, options: { heapAtPeak?: boolean } = {}): RssSampler {
  let peak = process.memoryUsage.rss();
  const startMb = round(peak / MB, 1);
  let heapAtPeak = '';
  let heapTakenAt = 0;
  const sample = () => {
    const rss = process.memoryUsage.rss();
    if (rss <= peak) return;
    peak = rss;
    // The heap's figures cost a heap walk: taken only when the peak has grown by 2 MB since.
    if (options.heapAtPeak && rss - heapTakenAt >= 2 * MB) {
      heapTakenAt = rss;
      const m = process.memoryUsage();
      heapAtPeak =
        `at ${round(rss / MB, 1)} MB RSS: this thread's heap ${round(m.heapTotal / MB, 1)} MB ` +
        `(${round(m.heapUsed / MB, 1)} used), external ${round(m.external / MB, 1)} MB, ` +
        `the rest other threads, SQLite and Node`;
    }
  };
  const timer = setInterval(sample, intervalMs);
  timer.unref();
  return {
    peakMb() {
      sample();
      return round(peak / MB, 1);
    },
    // maxRSS is in kilobytes.
    maxRssMb: () => round((process.resourceUsage().maxRSS * 1024) / MB, 1),
    heapAtPeak: () => heapAtPeak,
    startMb,
    stop: () => clearInterval(timer),
  };
}

/** The `p`-th percentile (0..100) of ascending `sorted`, nearest-rank; null when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? null;
}

/** Sorted copy of the first `length` values. */
export function sortedPrefix(values: Float64Array, length: number): Float64Array {
  return values.slice(0, length).sort();
}

/** A fresh temporary directory, removed by the returned function. */
export function tempDir(label: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `courier-bench-${label}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function emit(result: BenchResult): void {
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
}

export function skippedResult(name: string, note: string): BenchResult {
  return { name, msgs_per_s: null, p50_ms: null, p99_ms: null, peak_rss_mb: null, status: 'skipped', note };
}

export function failedResult(name: string, note: string): BenchResult {
  return { name, msgs_per_s: null, p50_ms: null, p99_ms: null, peak_rss_mb: null, status: 'failed', note };
}

/** Logs to stderr, which the runner passes through (stdout is the result channel). */
export function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * Runs a benchmark's `main`, emits what it returns, and turns a throw into failed results for
 * `names`, so the runner always reads one line per name.
 */
export async function runBenchmark(
  names: readonly string[],
  main: () => Promise<BenchResult[]>,
): Promise<void> {
  try {
    const results = await main();
    for (const result of results) emit(result);
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    log(message);
    const first = message.split('\n')[0] ?? 'failed';
    for (const name of names) emit(failedResult(name, first));
    process.exitCode = 1;
  }
}

/** Resolves after `ms` (for pacing and polling, never for correctness). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Yields to the event loop once (lets timers, such as the RSS sampler, run). */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Latencies by message `seq`; those below `warmup` are left out of the percentiles. */
export class LatencyRecorder {
  private readonly values: Float64Array;
  private recorded = 0;
  private max = 0;

  constructor(
    capacity: number,
    private readonly warmup: number,
  ) {
    this.values = new Float64Array(capacity);
  }

  record(seq: number, latencyMs: number): void {
    if (seq < this.warmup || this.recorded >= this.values.length) return;
    this.values[this.recorded++] = latencyMs;
    if (latencyMs > this.max) this.max = latencyMs;
  }

  summary(): { count: number; p50: number | null; p99: number | null; p999: number | null; max: number } {
    const sorted = sortedPrefix(this.values, this.recorded);
    const at = (p: number) => {
      const value = percentile(sorted, p);
      return value === null ? null : round(value, 3);
    };
    return { count: this.recorded, p50: at(50), p99: at(99), p999: at(99.9), max: round(this.max, 3) };
  }
}

/** Event-loop delay of this process (how late timers fire), to tell the loop's own stalls from the broker's. */
export function startLoopDelayMonitor(): { summary(): string; stop(): void } {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  return {
    summary: () =>
      `event-loop delay p50 ${round(histogram.percentile(50) / 1e6, 2)} ms, p99 ${round(histogram.percentile(99) / 1e6, 2)} ms, max ${round(histogram.max / 1e6, 2)} ms`,
    stop: () => histogram.disable(),
  };
}
