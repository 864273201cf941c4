/**
 * The dead-letter queue: list, replay, purge.
 * - billing dead-letters an order itself with `ctx.deadLetter(reason)`; shipping handles its copy;
 * - `list` shows why, `replay` puts it back on billing's queue only (shipping gets no second copy),
 *   with the same id and the attempts counted from 1 again;
 * - `purge` deletes dead letters for good.
 */
import { createBus, decodeEnvelope, defineEvent } from '@courier/core';
import { MemoryBroker, memory } from '@courier/memory';
import { z } from 'zod';
import type { Log } from './util.js';
import { drained, runIfMain, until } from './util.js';

const OrderPlaced = defineEvent('orders.placed', z.object({ orderId: z.string(), card: z.string() }));

export async function main(log: Log): Promise<void> {
  const broker = new MemoryBroker();
  const billing = createBus({ endpoint: 'billing', transport: memory({ broker }) });
  const shipping = createBus({ endpoint: 'shipping', transport: memory({ broker }) });
  const expiredCards = new Set(['4000-0000']);
  let billed = 0;
  let shipped = 0;

  let billedId = '';
  billing.on(OrderPlaced, (order, ctx) => {
    if (expiredCards.has(order.card)) ctx.deadLetter('card-expired', `card ${order.card} has expired`);
    log(`billing:  ${order.orderId} billed on attempt ${ctx.attempt}`);
    billedId = ctx.id;
    billed++;
  });
  shipping.on(OrderPlaced, (order) => {
    log(`shipping: ${order.orderId} packed`);
    shipped++;
  });

  await billing.start();
  await shipping.start();
  try {
    const sent = await billing.publish(OrderPlaced, { orderId: 'o-1', card: '4000-0000' });
    await billing.publish(OrderPlaced, { orderId: 'o-2', card: '4000-0000' });
    await until(async () => (await billing.stats()).deadLettered === 2 && shipped === 2);
    log('billing:  o-1 and o-2 dead-lettered');

    const { items } = await billing.deadLetters.list('billing', { reason: 'card-expired' });
    for (const letter of items) {
      const { data } = decodeEnvelope(letter.envelope) as { data: { orderId: string } };
      log(
        `dlq:      ${letter.envelope.type} ${data.orderId} reason=${letter.info.reason} attempts=${letter.info.attempts}: ${letter.info.errorMessage}`,
      );
    }

    // The customer updated the card for o-1: fix the cause, then replay just that letter.
    expiredCards.clear();
    const o1 = items.find((letter) => letter.envelope.id === sent.id)!;
    const replayed = await billing.deadLetters.replay('billing', { ids: [o1.deadLetterId] });
    log(`replayed ${replayed}`);
    await until(() => billed === 1);
    log(`the replayed message kept its id: ${billedId === sent.id}`);
    await until(() => drained(billing));

    const purged = await billing.deadLetters.purge('billing');
    log(`purged ${purged}; dead letters left: ${(await billing.stats()).deadLettered}`);
    await until(() => drained(shipping));
    log(`shipping handled ${shipped} messages: the replay did not reach it`);
  } finally {
    await shipping.stop();
    await billing.stop();
  }
}

await runIfMain(import.meta.url, main);
