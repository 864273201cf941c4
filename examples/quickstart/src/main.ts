/**
 * The README example: two endpoints on one in-memory broker.
 * - `orders.placed` fans out to `billing` and `shipping`;
 * - billing's handler fails twice, then succeeds on attempt 3;
 * - a poison command lands in billing's dead-letter queue with its reason;
 * - shipping asks billing a question and gets the reply.
 * Run it with `npm run example`.
 */
import { createBus, defineCommand, defineEvent, defineRequest, NonRetryableError } from '@courier/core';
import { MemoryBroker, memory } from '@courier/memory';
import { z } from 'zod';

// Contracts: shared by every service, one schema gives both the static type and runtime validation.
const OrderPlaced = defineEvent(
  'orders.placed',
  z.object({ orderId: z.string(), total: z.number().positive() }),
);
const ChargeCard = defineCommand('payments.charge', z.object({ orderId: z.string(), amount: z.number() }));
const GetBalance = defineRequest(
  'payments.balance',
  z.object({ customer: z.string() }),
  z.object({ cents: z.number() }),
);

export async function runQuickstart(log: (line: string) => void = console.log): Promise<void> {
  const broker = new MemoryBroker();
  // Small retry delays so the example finishes at once; the defaults back off from 1 s.
  const retry = { maxAttempts: 5, immediate: 1, initialDelayMs: 20 };
  const billing = createBus({ endpoint: 'billing', transport: memory({ broker }), retry });
  const shipping = createBus({
    endpoint: 'shipping',
    transport: memory({ broker }),
    routes: { 'payments.charge': 'billing', 'payments.balance': 'billing' },
  });

  const settled = new Set<string>();
  const done = (what: string) => settled.add(what);

  billing.on(OrderPlaced, async (order, ctx) => {
    if (ctx.attempt < 3) {
      log(`billing:  ${ctx.type} ${order.orderId} attempt ${ctx.attempt} fails (card service down)`);
      throw new Error('card service down');
    }
    log(`billing:  ${ctx.type} ${order.orderId} attempt ${ctx.attempt} succeeds, charging ${order.total}`);
    await ctx.send(ChargeCard, { orderId: order.orderId, amount: order.total });
    done('billing');
  });
  billing.handle(ChargeCard, async (charge, ctx) => {
    if (charge.amount > 1_000) throw new NonRetryableError(`amount ${charge.amount} is over the card limit`);
    log(
      `billing:  charged ${charge.amount} for ${charge.orderId} (caused by ${ctx.causationId?.slice(0, 8)}…)`,
    );
    done('charged');
  });
  billing.handle(GetBalance, async (query) => ({ cents: query.customer.length * 1_000 }));
  shipping.on(OrderPlaced, async (order) => {
    log(`shipping: ${'orders.placed'} ${order.orderId} packed`);
    done('shipping');
  });

  await billing.start();
  await shipping.start();
  try {
    await shipping.publish(OrderPlaced, { orderId: 'order-1', total: 42 });
    await shipping.send(ChargeCard, { orderId: 'order-2', amount: 5_000 });
    const balance = await shipping.request(GetBalance, { customer: 'ada' });
    log(`shipping: asked billing for a balance, got ${balance.cents} cents`);

    await until(() => settled.size === 3);
    await until(async () => (await billing.stats()).deadLettered === 1);
    const { items } = await billing.deadLetters.list('billing');
    for (const letter of items) {
      log(
        `dlq:      ${letter.envelope.type} reason=${letter.headers['courier-dlq-reason']}: ${letter.headers['courier-dlq-error-message']}`,
      );
    }
  } finally {
    await shipping.stop();
    await billing.stop();
  }
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('the example did not finish in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runQuickstart();
}
