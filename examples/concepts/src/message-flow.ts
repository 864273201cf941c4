/**
 * What a handler's output looks like, and when it leaves.
 * - a handler sends a command, then fails: the command is discarded with the failed attempt;
 * - the retry succeeds: the command is stored with the ack, exactly once;
 * - its id is derived from the handled message's id, so a redelivery would produce the same id;
 * - it carries causationId = the order's id and the order's correlationId;
 * - data that breaks the contract is refused at publish.
 */
import { createBus, defineCommand, defineEvent, deriveMessageId, ValidationError } from '@courier/core';
import { memory } from '@courier/memory';
import { z } from 'zod';
import type { Log } from './util.js';
import { drained, runIfMain, until } from './util.js';

const OrderPlaced = defineEvent(
  'orders.placed',
  z.object({ orderId: z.string(), total: z.number().positive() }),
);
const ChargeCard = defineCommand('payments.charge', z.object({ orderId: z.string(), amount: z.number() }));

export async function main(log: Log): Promise<void> {
  const billing = createBus({ endpoint: 'billing', transport: memory() });
  let placedId = '';
  const charges: { id: string; causationId: string | undefined; correlationId: string }[] = [];

  billing.on(OrderPlaced, async (order, ctx) => {
    placedId = ctx.id;
    await ctx.send(ChargeCard, { orderId: order.orderId, amount: order.total }); // held, not sent yet
    if (ctx.attempt === 1) {
      log(`billing: attempt 1 sent a charge, then failed: the charge is discarded`);
      throw new Error('ledger database busy');
    }
    log(`billing: attempt ${ctx.attempt} sent a charge and succeeded: the charge is stored with the ack`);
  });
  billing.handle(ChargeCard, (charge, ctx) => {
    charges.push({ id: ctx.id, causationId: ctx.causationId, correlationId: ctx.correlationId });
    log(`billing: charged ${charge.amount} for ${charge.orderId}`);
  });

  await billing.start();
  try {
    await billing.publish(OrderPlaced, { orderId: 'o-1', total: 42 }, { correlationId: 'checkout-7' });
    await until(() => charges.length === 1);
    await until(() => drained(billing));
    const [charge] = charges;
    log(`charges handled: ${charges.length}`);
    log(
      `charge id is deriveMessageId(order id, 0, 'billing'): ${charge!.id === deriveMessageId(placedId, 0, 'billing')}`,
    );
    log(`charge causationId is the order's id: ${charge!.causationId === placedId}`);
    log(`charge correlationId: ${charge!.correlationId}`);

    try {
      await billing.publish(OrderPlaced, { orderId: 'o-2', total: -5 });
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      log(`publish refused: ${error.code}: ${error.message}`);
    }
  } finally {
    await billing.stop();
  }
}

await runIfMain(import.meta.url, main);
