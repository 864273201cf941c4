/**
 * Concurrency, prefetch and leases.
 * - `concurrency` bounds the handlers in flight per queue; `prefetch` bounds what the bus buffers;
 * - a handler that needs other limits gets a queue of its own (`queue`, then `concurrency`, ...);
 * - a long handler asks for more time with `ctx.extendLease(ms)` before its lease runs out.
 */
import { createBus, defineCommand } from '@courier/core';
import { memory } from '@courier/memory';
import { z } from 'zod';
import type { Log } from './util.js';
import { runIfMain, until } from './util.js';

const SendEmail = defineCommand('mail.send', z.object({ n: z.number() }));
const RenderVideo = defineCommand('media.render', z.object({ n: z.number() }));

/** Counts handlers running at once. */
function gauge() {
  const g = {
    running: 0,
    max: 0,
    done: 0,
    async around(work: () => Promise<void>) {
      g.running++;
      g.max = Math.max(g.max, g.running);
      try {
        await work();
      } finally {
        g.running--;
        g.done++;
      }
    },
  };
  return g;
}

export async function main(log: Log): Promise<void> {
  const bus = createBus({
    endpoint: 'media',
    transport: memory(),
    concurrency: 4, // handlers in flight on the endpoint's queue
    prefetch: 8, // deliveries buffered from the broker for that queue
    leaseMs: 30_000,
  });
  const mail = gauge();
  const video = gauge();
  let extended: boolean | undefined;
  const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

  bus.handle(SendEmail, () => mail.around(() => pause(5)));
  bus.handle(
    RenderVideo,
    (_job, ctx) =>
      video.around(async () => {
        // Rendering may outlast the 30 s lease: ask for more before it runs out.
        extended ??= await ctx.extendLease(120_000);
        await pause(5);
      }),
    { queue: 'media.render', concurrency: 1, leaseMs: 60_000 },
  );

  await bus.start();
  try {
    for (let n = 0; n < 20; n++) await bus.send(SendEmail, { n });
    for (let n = 0; n < 5; n++) await bus.send(RenderVideo, { n });
    await until(() => mail.done === 20 && video.done === 5);
    log(`media:        20 emails, at most ${mail.max} at once (concurrency 4)`);
    log(`media.render: 5 videos, at most ${video.max} at once (concurrency 1, its own queue)`);
    log(`media.render: lease extended: ${extended}`);
  } finally {
    await bus.stop();
  }
}

await runIfMain(import.meta.url, main);
