/** Routing and topology (DESIGN.md §2.5): fan-out, competing consumers, patterns, header filters, no-route. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { HandlerContext } from '@courier/core';
import { defineCommand, defineEvent, defineTopology, NoRouteError } from '@courier/core';
import { z } from 'zod';
import { caseOptions, numbered, run, sleepOn } from '../helpers.js';
import type { CreateFixture } from '../types.js';

/** Registers the conformance cases of this area; `runTransportSuite` calls it. */
export function routingCases(create: CreateFixture): void {
  it(
    'round-trips data, headers and metadata',
    caseOptions,
    run(create, async (h) => {
      const schema = z.object({
        text: z.string(),
        amount: z.number(),
        tags: z.array(z.string()),
        nested: z.object({ ok: z.boolean(), none: z.null() }),
      });
      const Sent = defineEvent(h.type('payload.sent'), schema);
      const q = h.queue('consumer');
      const producerName = h.queue('producer');
      const got: HandlerContext<z.infer<typeof schema>>[] = [];
      await h.bus(q, (b) => b.on(Sent, (_data, ctx) => void got.push(ctx)));
      const producer = await h.bus(producerName);
      const data = {
        text: 'héllo wörld 日本 🚀 "quoted"',
        amount: 42.5,
        tags: ['a', 'b'],
        nested: { ok: true, none: null },
      };
      const sent = await producer.publish(Sent, data, {
        headers: { tenant: 'acme', 'x-note': 'é ✓' },
        key: 'key-1',
        priority: 3,
      });
      await h.eventually(() => got.length === 1, 'the event to be handled');
      const ctx = got[0]!;
      assert.deepEqual(ctx.data, data);
      assert.equal(ctx.id, sent.id);
      assert.equal(ctx.type, Sent.type);
      assert.equal(ctx.headers.tenant, 'acme');
      assert.equal(ctx.headers['x-note'], 'é ✓');
      assert.equal(ctx.key, 'key-1');
      assert.equal(ctx.message.priority, 3);
      assert.equal(ctx.message.source, producerName);
      assert.equal(ctx.correlationId, sent.id, 'a fresh message is its own correlation id');
      assert.equal(ctx.causationId, undefined);
      assert.equal(ctx.attempt, 1);
      assert.equal(ctx.queue, q);
      assert.equal(ctx.endpoint, q);
      await h.quiet(200);
      assert.equal(got.length, 1, 'handled once');
    }),
  );

  it(
    'fans an event out to every subscribed endpoint, once each',
    caseOptions,
    run(create, async (h) => {
      const Placed = defineEvent(h.type('orders.placed'), numbered);
      const Other = defineEvent(h.type('orders.other'), numbered);
      const endpoints = [h.queue('a'), h.queue('b'), h.queue('c')];
      const seen = new Map<string, number[]>(endpoints.map((e) => [e, []]));
      for (const endpoint of endpoints) {
        await h.bus(endpoint, (b) => b.on(Placed, (d) => void seen.get(endpoint)!.push(d.n)));
      }
      const bystander: number[] = [];
      await h.bus(h.queue('bystander'), (b) => b.on(Other, (d) => void bystander.push(d.n)));
      const producer = await h.bus(h.queue('producer'));
      await producer.publish(Placed, { n: 1 });
      await producer.publish(Placed, { n: 2 });
      await h.eventually(
        () => [...seen.values()].every((s) => s.length >= 2),
        'every endpoint to get both events',
      );
      await h.quiet(200);
      for (const [endpoint, got] of seen) assert.deepEqual([...got].sort(), [1, 2], `endpoint ${endpoint}`);
      assert.deepEqual(bystander, [], 'an endpoint bound to another type gets nothing');
    }),
  );

  it(
    'gives each message to one of several competing consumers',
    caseOptions,
    run(create, async (h) => {
      const Work = defineCommand(h.type('work.do'), numbered);
      const q = h.queue('workers');
      const handled: { n: number; by: string }[] = [];
      for (const by of ['a', 'b']) {
        await h.bus(
          q,
          (b) =>
            b.handle(Work, async (d) => {
              await sleepOn(h.clock, 5);
              handled.push({ n: d.n, by });
            }),
          { concurrency: 1, prefetch: 1 },
        );
      }
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Work.type]: q } });
      const count = 20;
      for (let n = 0; n < count; n++) await producer.send(Work, { n });
      await h.eventually(() => handled.length >= count, `${count} messages handled`, { step: 5 });
      await h.quiet(200);
      assert.deepEqual(
        handled.map((x) => x.n).sort((a, b) => a - b),
        Array.from({ length: count }, (_, i) => i),
        'each message exactly once',
      );
      assert.ok(
        handled.some((x) => x.by === 'a') && handled.some((x) => x.by === 'b'),
        'both consumers took part (prefetch 1 each)',
      );
    }),
  );

  it(
    "routes '*' to exactly one segment",
    caseOptions,
    run(create, async (h) => {
      const types = ['orders', 'orders.placed', 'orders.shipped', 'orders.placed.eu', 'payments.placed'];
      const contracts = types.map((t) => defineEvent(h.type(t), numbered));
      const got: string[] = [];
      await h.bus(
        h.queue('star'),
        (b) => b.on(`${h.prefix}.orders.*`, (_d, ctx) => void got.push(ctx.type)),
        {
          contracts,
        },
      );
      const producer = await h.bus(h.queue('producer'));
      for (const c of contracts) await producer.publish(c, { n: 1 });
      await h.eventually(() => got.length >= 2, 'the matching events');
      await h.quiet(200);
      assert.deepEqual([...got].sort(), [h.type('orders.placed'), h.type('orders.shipped')]);
    }),
  );

  it(
    "routes '#' to zero or more segments ('orders.#' matches 'orders')",
    caseOptions,
    run(create, async (h) => {
      const types = ['orders', 'orders.placed', 'orders.placed.eu', 'ordersx', 'payments.orders'];
      const contracts = types.map((t) => defineEvent(h.type(t), numbered));
      const got: string[] = [];
      await h.bus(
        h.queue('hash'),
        (b) => b.on(`${h.prefix}.orders.#`, (_d, ctx) => void got.push(ctx.type)),
        {
          contracts,
        },
      );
      const producer = await h.bus(h.queue('producer'));
      for (const c of contracts) await producer.publish(c, { n: 1 });
      await h.eventually(() => got.length >= 3, 'the matching events');
      await h.quiet(200);
      assert.deepEqual(
        [...got].sort(),
        [h.type('orders'), h.type('orders.placed'), h.type('orders.placed.eu')].sort(),
      );
    }),
  );

  it(
    'routes by header filter',
    caseOptions,
    run(create, async (h, t) => {
      if (await h.skipWithout(t, 'headerFilter')) return;
      const Placed = defineEvent(h.type('orders.placed'), numbered);
      const eu: number[] = [];
      const all: number[] = [];
      const euQueue = h.queue('eu');
      const euBus = await h.bus(euQueue, (b) =>
        b.on(Placed, (d) => void eu.push(d.n), { headers: { region: 'eu' } }),
      );
      await h.bus(h.queue('all'), (b) => b.on(Placed, (d) => void all.push(d.n)));
      const producer = await h.bus(h.queue('producer'));
      await producer.publish(Placed, { n: 1 }, { headers: { region: 'eu' } });
      await producer.publish(Placed, { n: 2 }, { headers: { region: 'us' } });
      await producer.publish(Placed, { n: 3 });
      await producer.publish(Placed, { n: 4 }, { headers: { region: 'eu', tier: 'gold' } });
      await h.eventually(() => all.length >= 4 && eu.length >= 2, 'all four to the unfiltered endpoint');
      await h.quiet(200);
      assert.deepEqual([...eu].sort(), [1, 4]);
      assert.deepEqual([...all].sort(), [1, 2, 3, 4]);
      const stats = await euBus.stats(euQueue);
      assert.equal(
        stats.depth + stats.inFlight + stats.scheduled,
        0,
        'nothing left waiting on the filtered queue',
      );
      assert.equal(stats.deadLettered, 0, 'filtered-out messages are not dead letters');
    }),
  );

  it(
    'rejects a command with no owner with NoRouteError naming the type',
    caseOptions,
    run(create, async (h) => {
      const Orphan = defineCommand(h.type('orphan.do'), numbered);
      const producer = await h.bus(h.queue('producer'));
      await assert.rejects(producer.send(Orphan, { n: 1 }), (error: unknown) => {
        assert.ok(error instanceof NoRouteError, `expected NoRouteError, got ${String(error)}`);
        assert.equal(error.code, 'COURIER_NO_ROUTE');
        assert.match(error.message, new RegExp(Orphan.type.replaceAll('.', '\\.')));
        return true;
      });
    }),
  );

  it(
    'rejects a command routed to a queue that does not exist with NoRouteError naming the queue',
    caseOptions,
    run(create, async (h) => {
      const Cmd = defineCommand(h.type('missing.do'), numbered);
      const missing = h.queue('missing');
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Cmd.type]: missing } });
      await assert.rejects(producer.send(Cmd, { n: 1 }), (error: unknown) => {
        assert.ok(error instanceof NoRouteError, `expected NoRouteError, got ${String(error)}`);
        assert.match(error.message, new RegExp(missing));
        return true;
      });
    }),
  );

  it(
    'delivers a command to its owner through routes',
    caseOptions,
    run(create, async (h) => {
      const Charge = defineCommand(h.type('payments.charge'), numbered);
      const q = h.queue('payments');
      const got: number[] = [];
      await h.bus(q, (b) => b.handle(Charge, (d) => void got.push(d.n)));
      const producer = await h.bus(h.queue('producer'), undefined, { routes: { [Charge.type]: q } });
      await producer.send(Charge, { n: 7 });
      await h.eventually(() => got.length === 1, 'the command to be handled');
      assert.deepEqual(got, [7]);
    }),
  );

  it(
    "keeps an event for a subscriber declared by another process's topology before its first start",
    caseOptions,
    run(create, async (h) => {
      const Placed = defineEvent(h.type('orders.placed'), numbered);
      const Reserve = defineCommand(h.type('inventory.reserve'), numbered);
      const inventory = h.queue('inventory');
      const topology = defineTopology({
        endpoints: { [inventory]: { events: [Placed], commands: [Reserve] } },
      });
      const producer = await h.bus(h.queue('orders'), undefined, { topology });
      await producer.publish(Placed, { n: 1 });
      await producer.send(Reserve, { n: 2 });
      await h.quiet(100);
      const got: string[] = [];
      await h.bus(inventory, (b) => {
        b.on(Placed, (d) => void got.push(`placed:${d.n}`));
        b.handle(Reserve, (d) => void got.push(`reserve:${d.n}`));
      });
      await h.eventually(() => got.length === 2, 'both messages kept for the late subscriber');
      assert.deepEqual([...got].sort(), ['placed:1', 'reserve:2']);
    }),
  );

  it(
    'resolves the publish of an event nobody subscribes to',
    caseOptions,
    run(create, async (h) => {
      const Lonely = defineEvent(h.type('nobody.listens'), numbered);
      const producer = await h.bus(h.queue('producer'));
      const message = await producer.publish(Lonely, { n: 1 });
      assert.equal(message.type, Lonely.type);
    }),
  );
}
