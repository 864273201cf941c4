/**
 * Courier side of the benchmarks: the contract, the topology, the transport under test, a bounded
 * publish window and the drain wait.
 */
import { type Bus, defineEvent, defineTopology, type Transport } from '@courier/core';
import { memory } from '@courier/memory';
import { sqlite, type WriterThreadMode } from '@courier/sqlite';
import { makePayload, payloadSchema, wallClockMs } from '../payload.js';
import { delay } from './harness.js';

export const BenchEvent = defineEvent('bench.order-placed', payloadSchema);
/** A type of its own, for the rows the backlog benchmark dead-letters. */
export const PoisonEvent = defineEvent('bench.poison', payloadSchema);

/** The queue every Courier benchmark consumes. */
export const CONSUMER = 'bench-consumer';
export const PRODUCER = 'bench-producer';

/** Declared by producers and consumers alike, so whichever starts first creates queue and binding. */
export const topology = defineTopology({
  endpoints: { [CONSUMER]: { events: [BenchEvent, PoisonEvent] }, [PRODUCER]: {} },
});

/**
 * Concurrency of the consumer (BullMQ's worker runs 50 too). The benchmark buses are given no
 * `observer`: the bus builds no events when nobody observes, and an application in production
 * usually runs without one on the hot path.
 */
export const CONSUMER_CONCURRENCY = 50;
/** Publishes in flight at once: each is one `publish` call; the transport may group-commit them. */
export const PUBLISH_WINDOW = 1_000;

/**
 * The transport under test for a database file. `COURIER_BENCH_TRANSPORT=memory` swaps in the memory
 * transport to check the harness itself (in-process benchmarks only; figures from it mean nothing for
 * SQLite). `COURIER_BENCH_WRITER_THREAD` sets the transport's `writerThread` mode. Static imports, so the bundle the runner builds (bench/lib/build.ts) holds the transport.
 */
export async function openTransport(path: string): Promise<{ transport: Transport } | { skipped: string }> {
  if (usingMemoryTransport()) return { transport: memory() };
  // COURIER_BENCH_WRITER_THREAD=auto|always|never compares where the SQL runs (default: the transport's own).
  const writerThread = process.env.COURIER_BENCH_WRITER_THREAD as WriterThreadMode | undefined;
  return { transport: sqlite({ path, ...(writerThread ? { writerThread } : {}) }) };
}

/** True when the benchmarks use the memory transport (harness checks only). */
export function usingMemoryTransport(): boolean {
  return process.env.COURIER_BENCH_TRANSPORT === 'memory';
}

/**
 * Publishes `count` messages, one `publish` call each, with at most `window` unresolved at once.
 * `sentAt` is stamped with the wall clock when `stampTime` is set. Rejects on the first failed publish.
 * `onTenth` is called once, when the first tenth of the messages has been handed to `publish` (the
 * e2e benchmark's note shows what the warm-up costs with it).
 */
export async function publishMany(
  bus: Bus,
  count: number,
  options: {
    window?: number;
    stampTime?: boolean;
    firstSeq?: number;
    delayMs?: number;
    poison?: boolean;
    onTenth?: () => void;
  } = {},
): Promise<void> {
  const window = options.window ?? PUBLISH_WINDOW;
  const firstSeq = options.firstSeq ?? 0;
  const contract = options.poison ? PoisonEvent : BenchEvent;
  const publishOptions = options.delayMs === undefined ? undefined : { delayMs: options.delayMs };
  const tenth = Math.ceil(count / 10);
  let inFlight = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const settled = () => {
    inFlight--;
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  for (let i = 0; i < count; i++) {
    while (inFlight >= window) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    if (failure !== undefined) throw failure;
    if (i === tenth) options.onTenth?.();
    inFlight++;
    const seq = firstSeq + i;
    bus
      .publish(contract, makePayload(seq, options.stampTime ? wallClockMs() : 0), publishOptions)
      .then(settled, (error: unknown) => {
        failure ??= error;
        settled();
      });
  }
  while (inFlight > 0) {
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  }
  if (failure !== undefined) throw failure;
}

/** Waits until the queue holds nothing ready and nothing in flight (every ack committed). */
export async function waitDrained(bus: Bus, queue = CONSUMER, pollMs = 1): Promise<void> {
  for (;;) {
    const stats = await bus.stats(queue);
    if (stats.depth + stats.inFlight === 0) return;
    await delay(pollMs);
  }
}

/**
 * Publishes at a fixed `rate` (msg/s) for `durationMs`, stamping each payload with the wall clock at
 * its `publish` call. Ticks every millisecond and publishes whatever is due, so messages leave in
 * bursts of rate/1000 (2 at 2,000 msg/s). Resolves once every publish resolved.
 */
export async function publishAtRate(
  bus: Bus,
  rate: number,
  durationMs: number,
): Promise<{ published: number; firstAt: number; lastAt: number }> {
  const total = Math.round((rate * durationMs) / 1000);
  let failure: unknown;
  let sent = 0;
  let settled = 0;
  const onSettled = () => {
    settled++;
  };
  const start = performance.now();
  const firstAt = wallClockMs();
  let lastAt = firstAt;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
    while (sent < due) {
      lastAt = wallClockMs();
      bus.publish(BenchEvent, makePayload(sent, lastAt)).then(onSettled, (error: unknown) => {
        failure ??= error;
        onSettled();
      });
      sent++;
    }
    if (failure !== undefined) throw failure;
    await delay(1);
  }
  while (settled < sent) await delay(1);
  if (failure !== undefined) throw failure;
  return { published: sent, firstAt, lastAt };
}
