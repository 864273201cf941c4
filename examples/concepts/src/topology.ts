/**
 * The system's topology, declared from the shared contracts.
 * - `defineTopology` says which endpoint takes which events and owns which commands;
 * - any process that passes it declares every queue and binding at start(), so an event published
 *   before its subscriber ever started is kept for it;
 * - commands find their owner from the topology: no `routes` needed.
 */
import { createBus, defineCommand, defineEvent, defineTopology } from '@courier/core';
import { MemoryBroker, memory } from '@courier/memory';
import { z } from 'zod';
import type { Log } from './util.js';
import { runIfMain, until } from './util.js';

const OrderPlaced = defineEvent('orders.placed', z.object({ orderId: z.string() }));
const OrderCancelled = defineEvent('orders.cancelled', z.object({ orderId: z.string() }));
const ChargeCard = defineCommand('payments.charge', z.object({ orderId: z.string(), amount: z.number() }));

// Shared by every service, like the contracts.
const topology = defineTopology({
  endpoints: {
    billing: { events: [OrderPlaced], commands: [ChargeCard] },
    shipping: { events: ['orders.*'] },
    vip: { events: [{ pattern: 'orders.placed', headers: { tier: 'gold' } }] },
  },
});

export async function main(log: Log): Promise<void> {
  const broker = new MemoryBroker();
  const orders = createBus({ endpoint: 'orders', transport: memory({ broker }), topology });
  await orders.start(); // declares billing, shipping and vip with their bindings, and orders
  await orders.publish(OrderPlaced, { orderId: 'o-1' }, { headers: { tier: 'gold' } });
  await orders.publish(OrderCancelled, { orderId: 'o-0' });
  await orders.send(ChargeCard, { orderId: 'o-1', amount: 42 }); // routed to billing by the topology
  log('orders:   published and sent before any other service started');

  const billing = createBus({ endpoint: 'billing', transport: memory({ broker }) });
  const shipping = createBus({
    endpoint: 'shipping',
    transport: memory({ broker }),
    contracts: [OrderPlaced, OrderCancelled],
  });
  const vip = createBus({ endpoint: 'vip', transport: memory({ broker }) });
  const seen: string[] = [];
  billing.on(OrderPlaced, (order) => void seen.push(`billing:  orders.placed ${order.orderId}`));
  billing.handle(ChargeCard, (charge) => void seen.push(`billing:  payments.charge ${charge.orderId}`));
  shipping.on('orders.*', (_data, ctx) => void seen.push(`shipping: ${ctx.type}`));
  vip.on(OrderPlaced, (order) => void seen.push(`vip:      orders.placed ${order.orderId}`), {
    headers: { tier: 'gold' },
  });

  for (const bus of [billing, shipping, vip]) await bus.start();
  try {
    await until(() => seen.length === 5);
    for (const line of seen.sort()) log(line);
  } finally {
    for (const bus of [vip, shipping, billing, orders]) await bus.stop();
  }
}

await runIfMain(import.meta.url, main);
