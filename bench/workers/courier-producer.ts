/**
 * A producer process for the cross-process and backlog benchmarks (not a benchmark itself). Opens the
 * SQLite file given in BENCH_WORKER, publishes as told, and reports on stdout, one JSON line each:
 * `{"event":"started","at":<wall ms>}` right before the first publish and
 * `{"event":"done","published":n,"firstAt":..,"lastAt":..,"peakRssMb":..}` once every publish resolved.
 *
 * Modes:
 * - `bulk`: `count` messages, one publish call each, PUBLISH_WINDOW in flight;
 * - `rate`: `rate` msg/s for `durationMs`, stamped for latency;
 * - `backlog`: `dead` poison messages dead-lettered by a consumer with `maxAttempts: 1`, then `ready`
 *   messages interleaved with `delayed` ones held for an hour. Building is not what is measured, so
 *   the backlog is written straight through `transport.publish` 1,000 envelopes at a time (encoded by
 *   the core's `encodeMessage`, exactly as `bus.publish` would), which is several times faster than
 *   one `bus.publish` per message.
 */
import {
  type Contract,
  createBus,
  encodeMessage,
  NonRetryableError,
  newMessageId,
  type PublishItem,
  type Transport,
  toTransportTopology,
} from '@courier/core';
import {
  BenchEvent,
  CONSUMER,
  openTransport,
  PoisonEvent,
  PRODUCER,
  publishAtRate,
  publishMany,
  topology,
} from '../lib/courier.js';
import { delay, log, startRssSampler } from '../lib/harness.js';
import { makePayload, wallClockMs } from '../payload.js';

export type ProducerJob =
  | { mode: 'bulk'; path: string; count: number }
  | { mode: 'rate'; path: string; rate: number; durationMs: number }
  | { mode: 'backlog'; path: string; ready: number; delayed: number; dead: number };

const HOUR_MS = 3_600_000;
const CHUNK = 10_000;
const BULK = 1_000;

function report(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** Writes `count` messages of `contract` straight to the transport, BULK per `publish`. */
async function bulkPublish(
  transport: Transport,
  contract: Contract,
  firstSeq: number,
  count: number,
  delayMs?: number,
): Promise<void> {
  for (let from = 0; from < count; from += BULK) {
    const items: PublishItem[] = [];
    const now = Date.now();
    const time = new Date(now).toISOString();
    for (let i = from; i < Math.min(count, from + BULK); i++) {
      const id = newMessageId();
      const message = {
        id,
        type: contract.type,
        version: contract.version,
        data: makePayload(firstSeq + i),
        headers: {},
        time,
        source: PRODUCER,
        correlationId: id,
        priority: 0,
        deliverAt: delayMs === undefined ? undefined : now + delayMs,
      };
      items.push({ envelope: encodeMessage(message, 'binary'), to: { kind: 'topic' } });
    }
    await transport.publish(items);
  }
}

async function deadLetter(path: string, count: number): Promise<void> {
  const opened = await openTransport(path);
  if ('skipped' in opened) throw new Error(opened.skipped);
  const bus = createBus({ endpoint: CONSUMER, transport: opened.transport, topology, concurrency: 50 });
  bus.on(
    PoisonEvent,
    () => {
      throw new NonRetryableError('poison: dead-lettered on purpose by the backlog builder');
    },
    { retry: { maxAttempts: 1 } },
  );
  await bus.start();
  try {
    await bulkPublish(opened.transport, PoisonEvent, 0, count);
    for (;;) {
      const stats = await bus.stats(CONSUMER);
      if (stats.deadLettered >= count && stats.depth + stats.inFlight === 0) break;
      await delay(50);
    }
  } finally {
    await bus.stop();
  }
}

async function buildBacklog(path: string, ready: number, delayed: number): Promise<void> {
  const opened = await openTransport(path);
  if ('skipped' in opened) throw new Error(opened.skipped);
  const { transport } = opened;
  await transport.start();
  try {
    await transport.declare(toTransportTopology(topology));
    // Ready and delayed rows interleaved in chunks, so the delayed ones sit among the ready ones.
    for (let r = 0, d = 0; r < ready || d < delayed; ) {
      const readyChunk = Math.min(CHUNK, ready - r);
      if (readyChunk > 0) await bulkPublish(transport, BenchEvent, r, readyChunk);
      r += readyChunk;
      const delayedChunk = Math.min(CHUNK, delayed - d);
      if (delayedChunk > 0) await bulkPublish(transport, BenchEvent, d, delayedChunk, HOUR_MS);
      d += delayedChunk;
    }
  } finally {
    await transport.close();
  }
}

async function main(): Promise<void> {
  const job = JSON.parse(process.env.BENCH_WORKER ?? '') as ProducerJob;
  const rss = startRssSampler();
  try {
    if (job.mode === 'backlog') {
      const firstAt = wallClockMs();
      report({ event: 'started', at: firstAt });
      if (job.dead > 0) {
        await deadLetter(job.path, job.dead);
        log(
          `backlog builder: ${job.dead} dead-lettered in ${((wallClockMs() - firstAt) / 1000).toFixed(1)} s`,
        );
      }
      const buildStart = wallClockMs();
      await buildBacklog(job.path, job.ready, job.delayed);
      const lastAt = wallClockMs();
      log(
        `backlog builder: ${job.ready} ready + ${job.delayed} delayed in ${((lastAt - buildStart) / 1000).toFixed(1)} s`,
      );
      report({ event: 'done', published: job.ready, firstAt, lastAt, peakRssMb: rss.peakMb() });
      return;
    }
    const opened = await openTransport(job.path);
    if ('skipped' in opened) throw new Error(opened.skipped);
    const bus = createBus({ endpoint: PRODUCER, transport: opened.transport, topology });
    await bus.start();
    try {
      const firstAt = wallClockMs();
      report({ event: 'started', at: firstAt });
      let published: number;
      let lastAt: number;
      if (job.mode === 'bulk') {
        await publishMany(bus, job.count);
        published = job.count;
        lastAt = wallClockMs();
      } else {
        ({ published, lastAt } = await publishAtRate(bus, job.rate, job.durationMs));
      }
      report({ event: 'done', published, firstAt, lastAt, peakRssMb: rss.peakMb() });
    } finally {
      await bus.stop();
    }
  } finally {
    rss.stop();
  }
}

// Exit with the benchmark that started this process, even when it was killed (runner time-out).
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(1);
}, 500).unref();

main().catch((error: unknown) => {
  log(`courier-producer: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  report({ event: 'failed', error: String(error) });
  process.exitCode = 1;
});
