/**
 * Retries with the default policy, on a fake clock so the backoff takes no real time.
 * - a handler that always fails runs 5 times: at once, once more at once (immediate retry),
 *   then after 1 s, 2 s and 4 s of backoff, then goes to the dead-letter queue (`max-attempts`);
 * - `NonRetryableError` goes to the dead-letter queue at once (`rejected`);
 * - `DelayedRetry` asks for its own delay instead of the policy's backoff.
 */
import { createBus, DelayedRetry, defineCommand, NonRetryableError } from '@courier/core';
import { memory } from '@courier/memory';
import { FakeClock } from '@courier/testkit';
import { z } from 'zod';
import type { Log } from './util.js';
import { advance, runIfMain } from './util.js';

const ChargeCard = defineCommand('payments.charge', z.object({ orderId: z.string() }));
const IssueRefund = defineCommand('payments.refund', z.object({ orderId: z.string() }));
const SyncLedger = defineCommand('payments.sync-ledger', z.object({ day: z.string() }));

export async function main(log: Log): Promise<void> {
  const clock = new FakeClock();
  const bus = createBus({
    endpoint: 'payments',
    transport: memory({ clock }), // the broker's delays and leases run on the same clock
    clock,
    random: () => 0.5, // jitter spreads each delay by ±20 %; 0.5 lands on the middle, for a stable printout
  });
  let start = clock.now();
  const at = () => `+${clock.now() - start} ms`;

  bus.handle(ChargeCard, (_charge, ctx) => {
    log(`charge: attempt ${ctx.attempt} at ${at()} fails`);
    throw new Error('card service down');
  });
  bus.handle(IssueRefund, (_refund, ctx) => {
    log(`refund: attempt ${ctx.attempt} at ${at()} fails for good`);
    throw new NonRetryableError('order o-2 was never paid');
  });
  bus.handle(SyncLedger, (_sync, ctx) => {
    if (ctx.attempt === 1) {
      log(`sync:   attempt 1 at ${at()} is rate-limited, asks to come back in 30 s`);
      throw new DelayedRetry(30_000);
    }
    log(`sync:   attempt ${ctx.attempt} at ${at()} succeeds`);
  });

  await bus.start();
  try {
    await bus.send(ChargeCard, { orderId: 'o-1' });
    await advance(clock, 10_000);
    start = clock.now();
    await bus.send(IssueRefund, { orderId: 'o-2' });
    await advance(clock, 1_000);
    start = clock.now();
    await bus.send(SyncLedger, { day: '2026-01-01' });
    await advance(clock, 31_000);

    const { items } = await bus.deadLetters.list('payments');
    for (const letter of items) {
      const h = letter.headers;
      log(
        `dlq:    ${letter.envelope.type} reason=${h['courier-dlq-reason']} attempts=${h['courier-dlq-attempts']} error=${h['courier-dlq-error-name']}: ${h['courier-dlq-error-message']}`,
      );
    }
  } finally {
    await bus.stop();
  }
}

await runIfMain(import.meta.url, main);
