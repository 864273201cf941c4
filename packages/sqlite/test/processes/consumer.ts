/**
 * A consumer process: a bus on the shared SQLite file handling `Tick` on its endpoint. It records
 * what it handled (`producer:n`), the publish-to-handler-start latency on the shared wall clock, and
 * every error, retry or dead letter the bus reports; the parent asks for them over IPC.
 */
import { createBus } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import { childConfig, onParent, sleep, Tick, tickTopology, toParent, wallNow } from './shared.js';

export interface ConsumerConfig {
  path: string;
  endpoint: string;
  /** Every endpoint of the test's topology. */
  endpoints: string[];
  maxMessageBytes?: number;
}

const config = childConfig<ConsumerConfig>();
const handled: string[] = [];
const startedAt: number[] = [];
const latenciesMs: number[] = [];
const errors: string[] = [];

const bus = createBus({
  endpoint: config.endpoint,
  transport: sqlite({ path: config.path }),
  topology: tickTopology(config.endpoints),
  ...(config.maxMessageBytes !== undefined ? { maxMessageBytes: config.maxMessageBytes } : {}),
  observer: (event) => {
    if (event.kind === 'error') errors.push(`error: ${String(event.error)}`);
    if (event.kind === 'retried') errors.push(`retried ${event.message.id}: ${String(event.error)}`);
    if (event.kind === 'dead-lettered') errors.push(`dead-lettered ${event.id} (${event.reason})`);
  },
});

bus.on(Tick, (data) => {
  const now = wallNow();
  startedAt.push(now);
  latenciesMs.push(now - data.sentAt);
  handled.push(`${data.producer}:${data.n}`);
});

onParent((message) => {
  void (async () => {
    switch (message.kind) {
      case 'count':
        await toParent({ kind: 'count', handled: handled.length, errors: errors.length });
        break;
      case 'report':
        await toParent({ kind: 'report', handled, startedAt, latenciesMs, errors });
        break;
      case 'measure-idle': {
        const wallStart = performance.now();
        const before = process.cpuUsage();
        await sleep(message.ms);
        const used = process.cpuUsage(before);
        const wallMs = performance.now() - wallStart;
        await toParent({ kind: 'idle', cpuMs: (used.user + used.system) / 1000, wallMs });
        break;
      }
      case 'stop':
        await bus.stop({ timeoutMs: 5_000 });
        process.exit(0);
        break;
      default:
        break;
    }
  })();
});

await bus.start();
await toParent({ kind: 'ready', pid: process.pid });
