/**
 * Graceful stop.
 * - `bus.stop({ timeoutMs })` takes no new deliveries and waits for handlers in flight;
 * - a handler still running at the deadline sees `ctx.signal` abort, and its message goes back to
 *   the queue unacked, without counting an attempt;
 * - the next process to start takes it (attempt 1 again).
 */
import { createBus, defineCommand } from '@courier/core';
import { MemoryBroker, memory } from '@courier/memory';
import { z } from 'zod';
import type { Log } from './util.js';
import { runIfMain, until } from './util.js';

const Export = defineCommand('reports.export', z.object({ name: z.string(), slow: z.boolean() }));

export async function main(log: Log): Promise<void> {
  const broker = new MemoryBroker();
  const first = createBus({ endpoint: 'reports', transport: memory({ broker }) });
  const started: string[] = [];
  let quickDone = false;

  first.handle(Export, async (job, ctx) => {
    started.push(job.name);
    log(`first:  ${job.name} started (attempt ${ctx.attempt})`);
    if (!job.slow) {
      quickDone = true;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, 10_000);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        log(`first:  ${job.name} aborted: ${(ctx.signal.reason as Error).message}`);
        reject(ctx.signal.reason);
      });
    });
  });

  await first.start();
  await first.send(Export, { name: 'quick report', slow: false });
  await first.send(Export, { name: 'yearly report', slow: true });
  await until(() => quickDone && started.length === 2);
  await first.stop({ timeoutMs: 50 });
  const stats = await memory({ broker }).stats('reports');
  log(`broker: after the stop 'reports' holds ${stats.depth} message`);

  const second = createBus({ endpoint: 'reports', transport: memory({ broker }) });
  let resumed = '';
  second.handle(Export, (job, ctx) => {
    resumed = `${job.name} (attempt ${ctx.attempt})`;
  });
  await second.start();
  try {
    await until(() => resumed !== '');
    log(`second: took over ${resumed}`);
  } finally {
    await second.stop();
  }
}

await runIfMain(import.meta.url, main);
