/**
 * Events fan out, commands go to one owner.
 * - `orders.placed` reaches billing and shipping, each on its own queue;
 * - audit binds the pattern `orders.#` and gets every `orders.*` event;
 * - the EU desk binds `orders.placed` with a header filter `{ region: 'eu' }`;
 * - `payments.charge` is sent to its one owner, billing; a command nobody owns fails with NoRouteError.
 */
import { createBus, defineCommand, defineEvent, NoRouteError } from '@courier/core';
import { MemoryBroker, memory } from '@courier/memory';
import { z } from 'zod';
import type { Log } from './util.js';
import { drained, runIfMain, until } from './util.js';

const OrderPlaced = defineEvent('orders.placed', z.object({ orderId: z.string() }));
const OrderShipped = defineEvent('orders.shipped', z.object({ orderId: z.string() }));
const ChargeCard = defineCommand('payments.charge', z.object({ orderId: z.string(), amount: z.number() }));
const IssueRefund = defineCommand('payments.refund', z.object({ orderId: z.string() }));

export async function main(log: Log): Promise<void> {
  // One broker, four endpoints: each `memory({ broker })` stands in for a separate process.
  const broker = new MemoryBroker();
  const billing = createBus({ endpoint: 'billing', transport: memory({ broker }) });
  const shipping = createBus({
    endpoint: 'shipping',
    transport: memory({ broker }),
    routes: { 'payments.charge': 'billing' }, // shipping sends a command it does not own
  });
  const audit = createBus({ endpoint: 'audit', transport: memory({ broker }) });
  const euDesk = createBus({ endpoint: 'eu-desk', transport: memory({ broker }) });
  let handled = 0;

  billing.on(OrderPlaced, (order) => {
    log(`billing:  got orders.placed ${order.orderId}`);
    handled++;
  });
  billing.handle(ChargeCard, (charge) => {
    log(`billing:  charged ${charge.amount} for ${charge.orderId}`);
    handled++;
  });
  shipping.on(OrderPlaced, (order) => {
    log(`shipping: got orders.placed ${order.orderId}`);
    handled++;
  });
  audit.on('orders.#', (_data, ctx) => {
    log(`audit:    got ${ctx.type} (pattern orders.#)`);
    handled++;
  });
  euDesk.on(
    OrderPlaced,
    (order, ctx) => {
      log(`eu-desk:  got orders.placed ${order.orderId} (region=${ctx.headers.region})`);
      handled++;
    },
    { headers: { region: 'eu' } },
  );

  const buses = [billing, shipping, audit, euDesk];
  // Bindings are declared at start(): an event published before then is kept only if some process
  // declared the subscriber's queue and binding (see topology.ts).
  for (const bus of buses) await bus.start();
  try {
    await shipping.publish(OrderPlaced, { orderId: 'o-1' }, { headers: { region: 'eu' } });
    await shipping.publish(OrderPlaced, { orderId: 'o-2' }, { headers: { region: 'us' } });
    await shipping.publish(OrderShipped, { orderId: 'o-1' });
    await shipping.send(ChargeCard, { orderId: 'o-1', amount: 42 });
    try {
      await shipping.send(IssueRefund, { orderId: 'o-1' });
    } catch (error) {
      if (!(error instanceof NoRouteError)) throw error;
      log(`shipping: ${error.code}: ${error.message}`);
    }
    // o-1 and o-2 reach billing, shipping and audit (6), o-1 reaches the EU desk (1),
    // orders.shipped reaches audit (1), the charge reaches billing (1).
    await until(() => handled === 9);
    for (const bus of buses) await until(() => drained(bus));
  } finally {
    for (const bus of buses) await bus.stop();
  }
}

await runIfMain(import.meta.url, main);
