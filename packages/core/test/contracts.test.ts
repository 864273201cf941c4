import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { MemoryBroker, memory } from '@courier/memory';
import * as v from 'valibot';
import { z } from 'zod';
import type { BusEvent } from '../src/bus-types.js';
import { defineCommand, defineEvent, defineRequest, upcast, validate } from '../src/contracts.js';
import { ConfigurationError, InvalidNameError, ValidationError } from '../src/errors.js';
import { createBus } from '../src/index.js';

const zodOrder = z.object({
  orderId: z.string(),
  items: z.array(z.object({ sku: z.string(), qty: z.number().int().positive() })),
});
const valibotOrder = v.object({
  orderId: v.string(),
  items: v.array(v.object({ sku: v.string(), qty: v.pipe(v.number(), v.integer(), v.minValue(1)) })),
});
const badOrder = { orderId: 'o-1', items: [{ sku: 'a', qty: 0 }] };

/** Resolves with the first observed bus event that `matches`. */
function nextEvent(
  subscribe: (listener: (event: BusEvent) => void) => void,
  matches: (e: BusEvent) => boolean,
) {
  return new Promise<BusEvent>((resolve) => subscribe((event) => matches(event) && resolve(event)));
}

describe('defineEvent, defineCommand, defineRequest', () => {
  it('take zod and valibot schemas and return frozen contracts', () => {
    const placed = defineEvent('orders.placed', zodOrder);
    assert.equal(placed.kind, 'event');
    assert.equal(placed.type, 'orders.placed');
    assert.equal(placed.version, 1);
    assert.equal(placed.schema, zodOrder);
    assert.deepEqual(placed.upcasters, {});
    assert.ok(Object.isFrozen(placed), 'Object.isFrozen(placed)');

    const charge = defineCommand('payments.charge', valibotOrder);
    assert.equal(charge.kind, 'command');
    assert.equal(charge.schema, valibotOrder);

    const replySchema = v.object({ available: v.number() });
    const check = defineRequest('inventory.check-stock', z.object({ sku: z.string() }), replySchema);
    assert.equal(check.kind, 'request');
    assert.equal(check.replySchema, replySchema);
    assert.ok(Object.isFrozen(check), 'Object.isFrozen(check)');
  });

  it('reject a type that breaks the naming rules with InvalidNameError', () => {
    const schema = z.object({});
    for (const type of ['Orders.Placed', 'orders placed', '', 'orders..placed', '.orders', 'orders.']) {
      assert.throws(() => defineEvent(type, schema), InvalidNameError, `event type ${JSON.stringify(type)}`);
    }
    assert.throws(() => defineCommand('payments/charge', schema), InvalidNameError);
    assert.throws(() => defineRequest('inventory.*', schema, schema), InvalidNameError);
    assert.throws(() => defineEvent('orders placed', schema), /message type "orders placed" is invalid/);
  });

  it('reject a schema that is not a Standard Schema with ConfigurationError', () => {
    const good = z.object({});
    const notSchemas: unknown[] = [
      undefined,
      null,
      {},
      { parse: () => ({}) },
      { '~standard': { version: 2, validate: () => ({ value: 1 }) } },
      { '~standard': { version: 1 } },
    ];
    for (const schema of notSchemas) {
      assert.throws(() => defineEvent('orders.placed', schema as never), ConfigurationError);
      assert.throws(() => defineCommand('payments.charge', schema as never), ConfigurationError);
      assert.throws(() => defineRequest('stock.check', schema as never, good), ConfigurationError);
      assert.throws(() => defineRequest('stock.check', good, schema as never), ConfigurationError);
    }
    assert.throws(
      () => defineEvent('orders.placed', {} as never),
      /contract 'orders\.placed': schema is not a Standard Schema v1/,
    );
  });

  it('reject a version without an upcaster from every older version with ConfigurationError', () => {
    const schema = z.object({});
    assert.throws(
      () => defineEvent('orders.placed', schema, { version: 3, upcasters: { 1: (d) => d } }),
      (error: Error) =>
        error instanceof ConfigurationError &&
        /'orders\.placed' is version 3 but has no upcaster from version 2/.test(error.message),
    );
    assert.throws(() => defineCommand('payments.charge', schema, { version: 2 }), ConfigurationError);
    for (const version of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => defineEvent('orders.placed', schema, { version }), ConfigurationError);
    }
    const v3 = defineEvent('orders.placed', schema, { version: 3, upcasters: { 1: (d) => d, 2: (d) => d } });
    assert.equal(v3.version, 3);
  });
});

describe('validate', () => {
  for (const [library, schema] of [
    ['zod', zodOrder],
    ['valibot', valibotOrder],
  ] as const) {
    it(`with ${library}: resolves the output or throws ValidationError naming the path at fault`, async () => {
      const good = { orderId: 'o-1', items: [{ sku: 'a', qty: 2 }] };
      assert.deepEqual(await validate(schema, good, "message 'orders.placed'"), good);

      const error = await validate(schema, badOrder, "message 'orders.placed'").then(
        () => assert.fail('expected a ValidationError'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ValidationError, 'error instanceof ValidationError');
      assert.equal(error.code, 'COURIER_VALIDATION');
      assert.deepEqual(
        error.issues.map((i) => i.path),
        ['items[0].qty'],
      );
      assert.match(error.message, /^message 'orders\.placed' is invalid: items\[0\]\.qty: /);
    });

    it(`with ${library}: names every path at fault and the root`, async () => {
      const error = await validate(
        schema,
        { orderId: 7, items: [{ sku: 'a', qty: 1 }, { qty: 1 }] },
        'order',
      ).then(
        () => assert.fail('expected a ValidationError'),
        (e: unknown) => e as ValidationError,
      );
      assert.deepEqual(error.issues.map((i) => i.path).sort(), ['items[1].sku', 'orderId']);
      assert.match(error.message, /orderId: /);
      assert.match(error.message, /items\[1\]\.sku: /);

      const root = await validate(schema, 'not an object', 'order').catch((e: ValidationError) => e);
      assert.ok(root instanceof ValidationError, 'root instanceof ValidationError');
      assert.equal(root.issues[0]?.path, '');
      assert.match(root.message, /^order is invalid: \(root\): /);
    });
  }

  it('returns the schema output (defaults, transforms) and awaits async schemas', async () => {
    const schema = z.object({ qty: z.number().default(1), name: z.string().transform((s) => s.trim()) });
    assert.deepEqual(await validate(schema, { name: ' a ' }, 'x'), { qty: 1, name: 'a' });

    const asyncSchema = z.object({
      sku: z.string().refine(async (sku) => sku.startsWith('sku-'), 'unknown sku'),
    });
    assert.deepEqual(await validate(asyncSchema, { sku: 'sku-1' }, 'x'), { sku: 'sku-1' });
    await assert.rejects(validate(asyncSchema, { sku: 'nope' }, 'x'), /x is invalid: sku: unknown sku/);
  });
});

describe('producer-side validation through a bus on the memory transport', () => {
  for (const [library, schema] of [
    ['zod', zodOrder],
    ['valibot', valibotOrder],
  ] as const) {
    it(`with ${library}: publish, send and request of bad data reject with ValidationError and deliver nothing`, async () => {
      const OrderPlaced = defineEvent('orders.placed', schema);
      const ChargeOrder = defineCommand('payments.charge', schema);
      const QuoteOrder = defineRequest('payments.quote', schema, z.object({ cents: z.number() }));
      const events: BusEvent[] = [];
      let listener: (event: BusEvent) => void = () => {};
      const bus = createBus({
        endpoint: `orders-${randomUUID()}`,
        transport: memory(),
        observer: (event) => {
          events.push(event);
          listener(event);
        },
      });
      const handled: unknown[] = [];
      bus.on(OrderPlaced, (order) => void handled.push(order));
      bus.handle(ChargeOrder, (order) => void handled.push(order));
      bus.handle(QuoteOrder, (order) => {
        handled.push(order);
        return { cents: 1 };
      });
      await bus.start();
      try {
        for (const attempt of [
          () => bus.publish(OrderPlaced, badOrder),
          () => bus.send(ChargeOrder, badOrder),
          () => bus.request(QuoteOrder, badOrder, { timeoutMs: 60_000 }),
        ]) {
          await assert.rejects(attempt, (error: unknown) => {
            assert.ok(error instanceof ValidationError, 'error instanceof ValidationError');
            assert.deepEqual(
              error.issues.map((i) => i.path),
              ['items[0].qty'],
            );
            assert.match(error.message, /items\[0\]\.qty/);
            return true;
          });
        }
        assert.deepEqual(events, [], 'nothing was published');
        const stats = await bus.stats();
        assert.equal(stats.depth + stats.inFlight + stats.scheduled + stats.deadLettered, 0);

        // A good message still goes through, and is the only one handled.
        const good = { orderId: 'o-2', items: [{ sku: 'b', qty: 1 }] };
        const consumed = nextEvent(
          (l) => (listener = l),
          (e) => e.kind === 'consumed',
        );
        await bus.publish(OrderPlaced, good);
        await consumed;
        assert.deepEqual(handled, [good]);
      } finally {
        await bus.stop();
      }
    });
  }

  it('a handler output with bad data fails the handler and publishes nothing', async () => {
    const OrderPlaced = defineEvent('orders.placed', z.object({ orderId: z.string() }));
    const OrderBilled = defineEvent('orders.billed', zodOrder);
    let listener: (event: BusEvent) => void = () => {};
    const events: BusEvent[] = [];
    const bus = createBus({
      endpoint: `billing-${randomUUID()}`,
      transport: memory(),
      retry: { maxAttempts: 1 },
      observer: (event) => {
        events.push(event);
        listener(event);
      },
    });
    const errors: unknown[] = [];
    bus.on(OrderPlaced, async (_order, ctx) => {
      await ctx.publish(OrderBilled, badOrder).catch((error: unknown) => {
        errors.push(error);
        throw error;
      });
    });
    await bus.start();
    try {
      const dead = nextEvent(
        (l) => (listener = l),
        (e) => e.kind === 'dead-lettered',
      );
      await bus.publish(OrderPlaced, { orderId: 'o-1' });
      await dead;
      assert.ok(errors[0] instanceof ValidationError, 'errors[0] instanceof ValidationError');
      assert.match(
        (errors[0] as ValidationError).message,
        /message 'orders\.billed' is invalid: items\[0\]\.qty/,
      );
      assert.deepEqual(
        events.filter((e) => e.kind === 'published').map((e) => e.message.type),
        ['orders.placed'],
      );
    } finally {
      await bus.stop();
    }
  });
});

describe('upcast', () => {
  const v1 = z.object({ name: z.string() });
  const v3 = z.object({ firstName: z.string(), lastName: z.string(), email: z.string().nullable() });
  const upcasters = {
    // v1 → v2: split the name.
    1: (data: unknown) => {
      const [firstName = '', lastName = ''] = (data as { name: string }).name.split(' ');
      return { firstName, lastName };
    },
    // v2 → v3: email added.
    2: (data: unknown) => ({ ...(data as object), email: null }),
  };
  const CustomerCreatedV3 = defineEvent('customers.created', v3, { version: 3, upcasters });

  it('runs the chain from the given version up to the contract version', () => {
    assert.deepEqual(upcast(CustomerCreatedV3, { name: 'Ada Lovelace' }, 1), {
      firstName: 'Ada',
      lastName: 'Lovelace',
      email: null,
    });
    assert.deepEqual(upcast(CustomerCreatedV3, { firstName: 'Ada', lastName: 'L' }, 2), {
      firstName: 'Ada',
      lastName: 'L',
      email: null,
    });
    const current = { firstName: 'A', lastName: 'L', email: 'a@l' };
    assert.equal(upcast(CustomerCreatedV3, current, 3), current);
  });

  it('throws ValidationError for a version newer than the contract, naming both versions', () => {
    assert.throws(
      () => upcast(CustomerCreatedV3, {}, 4),
      (error: unknown) =>
        error instanceof ValidationError &&
        /message 'customers\.created' is version 4, newer than version 3/.test(error.message),
    );
    const unversioned = defineEvent('customers.created', v1);
    assert.throws(() => upcast(unversioned, { name: 'x' }, 2), ValidationError);
  });

  it('a v3 consumer handles v1 messages; a v1 consumer dead-letters v3 ones with reason validation', async () => {
    const broker = new MemoryBroker();
    const CustomerCreatedV1 = defineEvent('customers.created', v1);
    let listener: (event: BusEvent) => void = () => {};
    const observer = (event: BusEvent) => listener(event);
    const oldService = createBus({
      endpoint: `old-${randomUUID()}`,
      transport: memory({ broker }),
      observer,
    });
    const newService = createBus({
      endpoint: `new-${randomUUID()}`,
      transport: memory({ broker }),
      observer,
    });
    const seenByOld: unknown[] = [];
    const seenByNew: unknown[] = [];
    oldService.on(CustomerCreatedV1, (data) => void seenByOld.push(data));
    newService.on(CustomerCreatedV3, (data) => void seenByNew.push(data));
    await oldService.start();
    await newService.start();
    try {
      // Both subscribe: the v1 message is consumed by both, the v3 one by the new service only.
      let settled = 0;
      const done = new Promise<BusEvent[]>((resolve) => {
        const outcomes: BusEvent[] = [];
        listener = (event) => {
          if (event.kind !== 'consumed' && event.kind !== 'dead-lettered') return;
          outcomes.push(event);
          if (++settled === 4) resolve(outcomes);
        };
      });
      await oldService.publish(CustomerCreatedV1, { name: 'Ada Lovelace' });
      await newService.publish(CustomerCreatedV3, { firstName: 'Grace', lastName: 'Hopper', email: 'g@h' });
      const outcomes = await done;

      assert.deepEqual(seenByOld, [{ name: 'Ada Lovelace' }]);
      assert.deepEqual(seenByNew, [
        { firstName: 'Ada', lastName: 'Lovelace', email: null },
        { firstName: 'Grace', lastName: 'Hopper', email: 'g@h' },
      ]);
      const dead = outcomes.find((e) => e.kind === 'dead-lettered');
      assert.ok(dead?.kind === 'dead-lettered', "dead?.kind === 'dead-lettered'");
      assert.equal(dead.queue, oldService.endpoint);
      assert.equal(dead.reason, 'validation');
      assert.match(String(dead.error), /is version 3, newer than version 1/);
    } finally {
      await oldService.stop();
      await newService.stop();
    }
  });
});
