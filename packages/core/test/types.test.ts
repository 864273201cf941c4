// Type tests: `npx tsc -p tsconfig.json --noEmit` fails if a handler's payload type stops flowing
// from its schema, or if wrong data stops being a compile error. Running the file only checks that
// the bus accepts these registrations.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { memory } from '@courier/memory';
import { expectTypeOf } from 'expect-type';
import * as v from 'valibot';
import { z } from 'zod';
import type { DataOf, HandlerContext, InputOf, Message, ReplyInputOf, ReplyOf } from '../src/index.js';
import { ConfigurationError, createBus, defineCommand, defineEvent, defineRequest } from '../src/index.js';

// zod: input and output differ (a default and a transform), so each side is checked.
const OrderPlaced = defineEvent(
  'orders.placed',
  z.object({
    orderId: z.string(),
    total: z.number(),
    currency: z.string().default('EUR'),
    placedAt: z.string().transform((s) => new Date(s)),
  }),
);
type OrderPlacedInput = { orderId: string; total: number; currency?: string | undefined; placedAt: string };
type OrderPlacedData = { orderId: string; total: number; currency: string; placedAt: Date };

// valibot: the same split with `optional` + default and a `transform`.
const ChargePayment = defineCommand(
  'payments.charge',
  v.object({
    orderId: v.string(),
    amountCents: v.pipe(v.number(), v.integer()),
    attempts: v.optional(v.number(), 1),
    reference: v.pipe(
      v.string(),
      v.transform((s) => s.toUpperCase() as Uppercase<string>),
    ),
  }),
);
type ChargePaymentData = {
  orderId: string;
  amountCents: number;
  attempts: number;
  reference: Uppercase<string>;
};

// A request whose reply schema also has different input and output.
const CheckStock = defineRequest(
  'inventory.check-stock',
  v.object({ sku: v.string() }),
  z.object({ available: z.number(), checkedAt: z.number().transform((ms) => new Date(ms)) }),
);
type CheckStockReplyInput = { available: number; checkedAt: number };
type CheckStockReply = { available: number; checkedAt: Date };

const OrderShipped = defineEvent('orders.shipped', v.object({ orderId: v.string(), carrier: v.string() }));

it('handler, publish and request types flow from zod and valibot schemas', () => {
  const bus = createBus({ endpoint: 'types', transport: memory() });

  expectTypeOf<DataOf<typeof OrderPlaced>>().toEqualTypeOf<OrderPlacedData>();
  expectTypeOf<InputOf<typeof OrderPlaced>>().toEqualTypeOf<OrderPlacedInput>();
  expectTypeOf<DataOf<typeof ChargePayment>>().toEqualTypeOf<ChargePaymentData>();
  expectTypeOf<ReplyInputOf<typeof CheckStock>>().toEqualTypeOf<CheckStockReplyInput>();
  expectTypeOf<ReplyOf<typeof CheckStock>>().toEqualTypeOf<CheckStockReply>();
  expectTypeOf(OrderPlaced.type).toEqualTypeOf<'orders.placed'>();
  expectTypeOf(CheckStock.kind).toEqualTypeOf<'request'>();

  bus.on(OrderPlaced, async (data, ctx) => {
    expectTypeOf(data).toEqualTypeOf<OrderPlacedData>();
    expectTypeOf(ctx).toEqualTypeOf<HandlerContext<OrderPlacedData>>();
    expectTypeOf(ctx.data).toEqualTypeOf<OrderPlacedData>();
    expectTypeOf(ctx.message).toEqualTypeOf<Message<OrderPlacedData>>();

    await ctx.send(ChargePayment, { orderId: data.orderId, amountCents: 100, reference: 'r-1' });
    await ctx.publish(OrderShipped, { orderId: data.orderId, carrier: 'dhl' });
    // @ts-expect-error carrier is missing
    await ctx.publish(OrderShipped, { orderId: data.orderId });
    // @ts-expect-error orderId must be a string
    await ctx.publish(OrderShipped, { orderId: 1, carrier: 'dhl' });
    // @ts-expect-error a command contract cannot be published as an event
    await ctx.publish(ChargePayment, { orderId: 'o', amountCents: 1, reference: 'r' });
    // @ts-expect-error amountCents is missing
    await ctx.send(ChargePayment, { orderId: 'o', reference: 'r' });
  });

  bus.on('orders.#', (data, ctx) => {
    expectTypeOf(data).toBeUnknown();
    expectTypeOf(ctx.data).toBeUnknown();
  });

  bus.handle(ChargePayment, (data, ctx) => {
    expectTypeOf(data).toEqualTypeOf<ChargePaymentData>();
    expectTypeOf(data.reference).toEqualTypeOf<Uppercase<string>>();
    expectTypeOf(ctx.attempt).toBeNumber();
  });

  bus.handle(CheckStock, (data) => {
    expectTypeOf(data).toEqualTypeOf<{ sku: string }>();
    // The reply input: the transform to Date runs when the requester validates it.
    return { available: 3, checkedAt: Date.now() };
  });
  bus.handle(CheckStock, async () => ({ available: 3, checkedAt: 0 }));
  // @ts-expect-error the reply must be the reply schema's input: checkedAt is a number, not a Date
  bus.handle(CheckStock, () => ({ available: 3, checkedAt: new Date() }));
  // @ts-expect-error available is missing from the reply
  bus.handle(CheckStock, async () => ({ checkedAt: 0 }));

  assert.throws(
    // @ts-expect-error bus.on takes event contracts, not commands
    () => bus.on(ChargePayment, () => {}),
    ConfigurationError,
  );

  assert.equal(bus.endpoint, 'types');
});

it('publish, send and request check their data at compile time and type their results', () => {
  const bus = createBus({ endpoint: 'types', transport: memory() });
  // Only the types matter here: the calls are never made.
  const typeOnly = (_calls: () => unknown) => {};

  typeOnly(() => {
    expectTypeOf(
      bus.publish(OrderPlaced, { orderId: 'o-1', total: 10, placedAt: '2026-01-01' }),
    ).resolves.toEqualTypeOf<Message<OrderPlacedData>>();
    expectTypeOf(bus.request(CheckStock, { sku: 'a' })).resolves.toEqualTypeOf<CheckStockReply>();
    expectTypeOf(
      bus.send(ChargePayment, { orderId: 'o', amountCents: 1, reference: 'r' }),
    ).resolves.toEqualTypeOf<Message<ChargePaymentData>>();

    // @ts-expect-error total is missing
    void bus.publish(OrderPlaced, { orderId: 'o-1', placedAt: '2026-01-01' });
    // @ts-expect-error placedAt is the input (a string), not the output (a Date)
    void bus.publish(OrderPlaced, { orderId: 'o-1', total: 1, placedAt: new Date() });
    // @ts-expect-error total must be a number
    void bus.publish(OrderPlaced, { orderId: 'o-1', total: '10', placedAt: '2026-01-01' });
    // @ts-expect-error a command is sent, not published
    void bus.publish(ChargePayment, { orderId: 'o', amountCents: 1, reference: 'r' });
    // @ts-expect-error amountCents must be a number
    void bus.send(ChargePayment, { orderId: 'o', amountCents: '1', reference: 'r' });
    // @ts-expect-error sku must be a string
    void bus.request(CheckStock, { sku: 1 });
  });

  assert.equal(bus.endpoint, 'types');
});
