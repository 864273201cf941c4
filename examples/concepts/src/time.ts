/**
 * Delay and time-to-live, on a fake clock.
 * - `delayMs` (or `deliverAt`) holds a message until its time;
 * - `ttlMs` (or `expiresAt`) stops it being delivered after its time: it is dead-lettered `expired`.
 */
import { createBus, defineCommand, defineTopology } from '@courier/core';
import { MemoryBroker, memory } from '@courier/memory';
import { FakeClock } from '@courier/testkit';
import { z } from 'zod';
import type { Log } from './util.js';
import { advance, runIfMain, until } from './util.js';

const SendReminder = defineCommand('reminders.send', z.object({ to: z.string() }));

export async function main(log: Log): Promise<void> {
  const clock = new FakeClock();
  const broker = new MemoryBroker({ clock });
  const topology = defineTopology({ endpoints: { reminders: { commands: [SendReminder] } } });
  const app = createBus({ endpoint: 'app', transport: memory({ broker }), clock, topology });
  const reminders = createBus({ endpoint: 'reminders', transport: memory({ broker }), clock });
  let start = clock.now();
  const sent: string[] = [];
  reminders.handle(SendReminder, (reminder) => {
    log(`reminders: sent to ${reminder.to} at +${clock.now() - start} ms`);
    sent.push(reminder.to);
  });

  await app.start();
  try {
    // Nobody consumes yet: this one may wait at most 5 s, and 10 s pass.
    await app.send(SendReminder, { to: 'late@example.com' }, { ttlMs: 5_000 });
    await advance(clock, 10_000);
    await reminders.start();
    await until(async () => (await reminders.stats()).deadLettered === 1);
    const { items } = await reminders.deadLetters.list('reminders');
    log(`reminders: the first one was dead-lettered, reason=${items[0]!.info.reason}`);

    start = clock.now();
    await app.send(SendReminder, { to: 'ada@example.com' }, { delayMs: 60_000 });
    await app.send(SendReminder, { to: 'alan@example.com' }, { deliverAt: new Date(start + 90_000) });
    await advance(clock, 59_900);
    log(`reminders: ${sent.length} sent after 59.9 s`);
    await advance(clock, 40_000);
    log(`reminders: ${sent.length} sent after 99.9 s`);
  } finally {
    await reminders.stop();
    await app.stop();
  }
}

await runIfMain(import.meta.url, main);
