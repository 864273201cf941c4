/**
 * A producer process: publishes `count` `Tick`s on the shared SQLite file, either at full speed
 * (`lanes` publishes in flight, each awaiting its own before the next) or one every `spacingMs`.
 * Each Tick stamps the shared wall clock just before its publish. Reports which publishes resolved
 * and which rejected, then stops its bus and exits.
 */
import { createBus } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import { childConfig, onParent, sleep, Tick, tickTopology, toParent, wallNow } from './shared.js';

export interface ProducerConfig {
  path: string;
  /** Names this producer in every Tick (`producer:n`). */
  producer: string;
  endpoints: string[];
  count: number;
  /** Full speed: publishes in flight at once (default 50). */
  lanes?: number;
  /** Paced: one publish every `spacingMs`, on an absolute schedule so delays do not accumulate. */
  spacingMs?: number;
  /** Wait for the parent's `go` after `ready`. */
  waitForGo?: boolean;
}

const config = childConfig<ProducerConfig>();
const resolved: number[] = [];
const rejected: string[] = [];
const publishMs: number[] = [];

const bus = createBus({
  endpoint: `producer-${config.producer}`,
  transport: sqlite({ path: config.path }),
  topology: tickTopology(config.endpoints),
});

let go: () => void = () => {};
const started = new Promise<void>((resolve) => {
  go = resolve;
});
onParent((message) => {
  if (message.kind === 'go') go();
});

const publishOne = async (n: number) => {
  try {
    const sentAt = wallNow();
    await bus.publish(Tick, { producer: config.producer, n, sentAt });
    publishMs.push(wallNow() - sentAt);
    resolved.push(n);
  } catch (error) {
    rejected.push(`${n}: ${String(error)}`);
  }
};

await bus.start();
await toParent({ kind: 'ready', pid: process.pid });
if (config.waitForGo) await started;

if (config.spacingMs !== undefined) {
  const inFlight: Promise<void>[] = [];
  const t0 = performance.now();
  for (let n = 0; n < config.count; n++) {
    const wait = t0 + n * config.spacingMs - performance.now();
    if (wait > 0) await sleep(wait);
    inFlight.push(publishOne(n));
  }
  await Promise.all(inFlight);
} else {
  let next = 0;
  const lane = async () => {
    while (next < config.count) await publishOne(next++);
  };
  await Promise.all(Array.from({ length: config.lanes ?? 50 }, lane));
}

await toParent({ kind: 'done', resolved, rejected, publishMs });
await bus.stop({ timeoutMs: 5_000 });
process.exit(0);
