/**
 * Contract versions and upcasters, during a rolling deploy.
 * - the consumer knows version 2 of `orders.placed` and an upcaster from version 1;
 * - an old producer still publishes version 1: the handler gets it in the version-2 shape;
 * - a newer producer publishes version 3: the consumer cannot know that shape, so the message is
 *   dead-lettered with reason `validation`, to be replayed once the newer consumer is deployed.
 */
import { createBus, defineEvent } from '@courier/core';
import { MemoryBroker, memory } from '@courier/memory';
import { z } from 'zod';
import type { Log } from './util.js';
import { runIfMain, until } from './util.js';

// Version 1: a total in euros.
const v1Schema = z.object({ orderId: z.string(), total: z.number() });
const PlacedV1 = defineEvent('orders.placed', v1Schema);

// Version 2: cents and an explicit currency. The upcaster turns v1 data into v2 data.
const upcastV1 = (data: unknown) => {
  const old = v1Schema.parse(data);
  return { orderId: old.orderId, totalCents: Math.round(old.total * 100), currency: 'EUR' };
};
const v2Schema = z.object({ orderId: z.string(), totalCents: z.number().int(), currency: z.string() });
const PlacedV2 = defineEvent('orders.placed', v2Schema, { version: 2, upcasters: { 1: upcastV1 } });

// Version 3, deployed on the producer side first.
const PlacedV3 = defineEvent(
  'orders.placed',
  z.object({ orderId: z.string(), lines: z.array(z.object({ sku: z.string(), cents: z.number() })) }),
  {
    version: 3,
    upcasters: { 1: upcastV1, 2: (data) => ({ orderId: (data as { orderId: string }).orderId, lines: [] }) },
  },
);

export async function main(log: Log): Promise<void> {
  const broker = new MemoryBroker();
  const billing = createBus({ endpoint: 'billing', transport: memory({ broker }) });
  const oldShop = createBus({ endpoint: 'shop-old', transport: memory({ broker }) });
  const newShop = createBus({ endpoint: 'shop-new', transport: memory({ broker }) });
  let handled = 0;
  billing.on(PlacedV2, (order, ctx) => {
    log(
      `billing: ${order.orderId} (sent as version ${ctx.message.version}) total ${order.totalCents} cents ${order.currency}`,
    );
    handled++;
  });

  await billing.start();
  await oldShop.start();
  await newShop.start();
  try {
    await oldShop.publish(PlacedV1, { orderId: 'o-1', total: 12.5 });
    await billing.publish(PlacedV2, { orderId: 'o-2', totalCents: 990, currency: 'USD' });
    await newShop.publish(PlacedV3, { orderId: 'o-3', lines: [{ sku: 'pen', cents: 300 }] });
    await until(async () => handled === 2 && (await billing.stats()).deadLettered === 1);
    const { items } = await billing.deadLetters.list('billing');
    log(`dlq:     reason=${items[0]!.info.reason}: ${items[0]!.info.errorMessage}`);
  } finally {
    for (const bus of [newShop, oldShop, billing]) await bus.stop();
  }
}

await runIfMain(import.meta.url, main);
