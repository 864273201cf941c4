/**
 * Duplicates: publish dedup and the idempotent inbox.
 * - two publishes with the same `dedupId` are stored once;
 * - the inbox middleware remembers handled message ids: a message that comes again with an id this
 *   queue already handled is acked without running the handler.
 */
import { createBus, defineCommand, inbox, memoryInboxStore } from '@courier/core';
import { memory } from '@courier/memory';
import { z } from 'zod';
import type { Log } from './util.js';
import { drained, runIfMain, until } from './util.js';

const CapturePayment = defineCommand(
  'payments.capture',
  z.object({ orderId: z.string(), amount: z.number() }),
);

export async function main(log: Log): Promise<void> {
  const payments = createBus({
    endpoint: 'payments',
    transport: memory(),
    middleware: [inbox({ store: memoryInboxStore() })], // use a durable store in production
  });
  let captures = 0;
  payments.handle(CapturePayment, (payment, ctx) => {
    captures++;
    log(`payments: captured ${payment.amount} for ${payment.orderId} (message ${ctx.id.slice(0, 15)})`);
  });

  await payments.start();
  try {
    // A client retried its HTTP call: same business operation, same dedupId.
    await payments.send(CapturePayment, { orderId: 'o-1', amount: 42 }, { dedupId: 'capture-o-1' });
    await payments.send(CapturePayment, { orderId: 'o-1', amount: 42 }, { dedupId: 'capture-o-1' });
    await until(() => captures === 1);
    await until(() => drained(payments));
    log(`dedup:    2 publishes with one dedupId, ${captures} capture`);

    // The same message (same id) arriving again, as after a crash between the handler and the ack.
    await payments.send(CapturePayment, { orderId: 'o-2', amount: 7 }, { id: 'capture-o-2-msg' });
    await until(() => captures === 2);
    await until(() => drained(payments));
    await payments.send(CapturePayment, { orderId: 'o-2', amount: 7 }, { id: 'capture-o-2-msg' });
    await until(() => drained(payments));
    log(`inbox:    message capture-o-2-msg delivered twice, ${captures - 1} capture`);
  } finally {
    await payments.stop();
  }
}

await runIfMain(import.meta.url, main);
