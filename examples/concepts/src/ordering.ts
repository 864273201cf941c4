/**
 * Ordering: priority, FIFO, and per-key order.
 * - a backlog is handled highest priority first, then in publish order;
 * - messages with the same key run one at a time in publish order, even when one of them is retried;
 * - after a keyed message is dead-lettered, `onDeadLetter: 'release'` (default) lets the key move on,
 *   `'park'` holds the rest of the key until the dead letter is replayed or purged.
 */
import { createBus, defineCommand, defineEvent, defineTopology, NonRetryableError } from '@courier/core';
import { MemoryBroker, memory } from '@courier/memory';
import { z } from 'zod';
import type { Log } from './util.js';
import { drained, runIfMain, until } from './util.js';

const RunJob = defineCommand('jobs.run', z.object({ name: z.string() }));
const EntryPosted = defineEvent(
  'accounts.entry-posted',
  z.object({ account: z.string(), seq: z.number(), amount: z.number() }),
);

export async function main(log: Log): Promise<void> {
  await priorityThenFifo(log);
  await perKeyOrder(log);
  await releaseOrPark(log);
}

async function priorityThenFifo(log: Log): Promise<void> {
  const broker = new MemoryBroker();
  // The scheduler declares the worker's queue (topology), so jobs wait there before the worker starts.
  const topology = defineTopology({ endpoints: { worker: { commands: [RunJob] } } });
  const scheduler = createBus({ endpoint: 'scheduler', transport: memory({ broker }), topology });
  const worker = createBus({ endpoint: 'worker', transport: memory({ broker }), concurrency: 1 });
  const order: string[] = [];
  worker.handle(RunJob, (job) => {
    order.push(job.name);
  });

  await scheduler.start();
  try {
    await scheduler.send(RunJob, { name: 'a (priority 0)' });
    await scheduler.send(RunJob, { name: 'b (priority 0)' });
    await scheduler.send(RunJob, { name: 'c (priority 5)' }, { priority: 5 });
    await scheduler.send(RunJob, { name: 'd (priority 9)' }, { priority: 9 });
    await scheduler.send(RunJob, { name: 'e (priority 5)' }, { priority: 5 });
    await worker.start();
    await until(() => order.length === 5);
    log(`priority: handled ${order.join(', ')}`);
  } finally {
    await worker.stop();
    await scheduler.stop();
  }
}

async function perKeyOrder(log: Log): Promise<void> {
  const ledger = createBus({ endpoint: 'ledger', transport: memory(), concurrency: 8 });
  const seen = new Map<string, number[]>();
  const running = new Set<string>();
  let overlapped = false;
  ledger.on(EntryPosted, async (entry, ctx) => {
    if (running.has(entry.account)) overlapped = true;
    running.add(entry.account);
    try {
      await new Promise((resolve) => setTimeout(resolve, 5)); // some work, so overlaps would show
      if (entry.account === 'acct-A' && entry.seq === 2 && ctx.attempt === 1) {
        log(`key:      acct-A #2 attempt 1 fails; acct-A #3 waits for it`);
        throw new Error('ledger row locked');
      }
      seen.set(entry.account, [...(seen.get(entry.account) ?? []), entry.seq]);
    } finally {
      running.delete(entry.account);
    }
  });

  await ledger.start();
  try {
    for (const [account, seq] of [
      ['acct-A', 1],
      ['acct-B', 1],
      ['acct-A', 2],
      ['acct-B', 2],
      ['acct-A', 3],
    ] as const) {
      await ledger.publish(EntryPosted, { account, seq, amount: 10 }, { key: account });
    }
    await until(() => (seen.get('acct-A')?.length ?? 0) === 3 && (seen.get('acct-B')?.length ?? 0) === 2);
    log(
      `key:      acct-A handled ${seen.get('acct-A')!.join(', ')}; acct-B handled ${seen.get('acct-B')!.join(', ')}`,
    );
    log(`key:      two handlers of one key ever ran at once: ${overlapped}`);
  } finally {
    await ledger.stop();
  }
}

async function releaseOrPark(log: Log): Promise<void> {
  const broker = new MemoryBroker();
  const lenient = createBus({ endpoint: 'lenient', transport: memory({ broker }) });
  const strict = createBus({ endpoint: 'strict', transport: memory({ broker }) });
  let approved = false;
  const handled = { lenient: [] as number[], strict: [] as number[] };
  const handler = (name: 'lenient' | 'strict') => (entry: { seq: number; amount: number }) => {
    if (entry.amount < 0 && !approved) throw new NonRetryableError('a negative amount needs approval');
    handled[name].push(entry.seq);
  };
  lenient.on(EntryPosted, handler('lenient')); // onDeadLetter: 'release' is the default
  strict.on(EntryPosted, handler('strict'), { onDeadLetter: 'park' });

  await lenient.start();
  await strict.start();
  try {
    for (const [seq, amount] of [
      [1, 10],
      [2, -99],
      [3, 10],
    ] as const) {
      await lenient.publish(EntryPosted, { account: 'acct-C', seq, amount }, { key: 'acct-C' });
    }
    await until(() => handled.lenient.length === 2);
    await until(async () => (await strict.stats()).deadLettered === 1);
    log(`release:  lenient handled ${handled.lenient.join(', ')} (#2 dead-lettered, the key moved on)`);
    const parked = await strict.stats();
    log(
      `park:     strict handled ${handled.strict.join(', ')}; #3 waits behind the parked key (depth ${parked.depth})`,
    );

    approved = true;
    await strict.deadLetters.replay('strict');
    await until(() => handled.strict.length === 3);
    await until(() => drained(strict));
    log(`park:     after the replay strict handled ${handled.strict.join(', ')}`);
  } finally {
    await strict.stop();
    await lenient.stop();
  }
}

await runIfMain(import.meta.url, main);
