/**
 * Middleware around handlers and around publishes.
 * - consume middleware wraps every handler, outermost first: `logging()` reports each outcome, a
 *   custom one dead-letters messages without a `tenant` header before the handler runs;
 * - publish middleware sees every message this bus publishes, sends or replies, before it is stored,
 *   and may refuse it by throwing.
 */
import type { ConsumeMiddleware, PublishMiddleware } from '@courier/core';
import { createBus, defineEvent, logging } from '@courier/core';
import { memory } from '@courier/memory';
import { z } from 'zod';
import type { Log } from './util.js';
import { drained, runIfMain, until } from './util.js';

const OrderPlaced = defineEvent('orders.placed', z.object({ orderId: z.string() }));

export async function main(log: Log): Promise<void> {
  const requireTenant: ConsumeMiddleware = async (ctx, next) => {
    if (ctx.headers.tenant === undefined)
      ctx.deadLetter('no-tenant', `message ${ctx.type} has no tenant header`);
    await next();
  };
  const auditPublishes: PublishMiddleware = async (ctx, next) => {
    log(`publish: ${ctx.message.type} to ${ctx.to.kind} (tenant=${ctx.message.headers.tenant ?? '-'})`);
    await next();
  };
  const bus = createBus({
    endpoint: 'billing',
    transport: memory(),
    middleware: [
      logging({ log: (e) => log(`handled: ${e.type} attempt ${e.attempt}: ${e.outcome}`) }),
      requireTenant,
    ],
    publishMiddleware: [auditPublishes],
  });
  let billed = 0;
  bus.on(OrderPlaced, (order, ctx) => {
    log(`billing: ${order.orderId} for tenant ${ctx.headers.tenant}`);
    billed++;
  });

  await bus.start();
  try {
    await bus.publish(OrderPlaced, { orderId: 'o-1' }, { headers: { tenant: 'acme' } });
    await until(() => billed === 1);
    await bus.publish(OrderPlaced, { orderId: 'o-2' });
    await until(async () => (await bus.stats()).deadLettered === 1);
    await until(() => drained(bus));
    const { items } = await bus.deadLetters.list('billing');
    log(`dlq:     reason=${items[0]!.info.reason}`);
  } finally {
    await bus.stop();
  }
}

await runIfMain(import.meta.url, main);
