/**
 * The order flow end to end, in one process on a real SQLite file: confirmed, out of stock, declined,
 * and transient gateway failures retried.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { findSku } from '../src/catalogue.js';
import type { SystemOptions } from '../src/system.js';
import { startSystem } from '../src/system.js';
import { call, eventually, getOrder, postOrder, Sandbox, settled } from './helpers.js';

const noFailures = { declineRate: 0, failureRate: 0, latencyMs: 0 };

describe('order flow', () => {
  let box: Sandbox;
  beforeEach(() => {
    box = new Sandbox();
  });
  afterEach(() => box.cleanup());

  const start = async (options: SystemOptions = {}) =>
    box.track(await startSystem({ ...box.options, gateway: noFailures, ...options }));

  it('a placed order is confirmed: one charge in the ledger, one email, stock taken', async () => {
    const { url } = await start();
    const placed = await postOrder(url, {
      customerId: 'c-1',
      items: [
        { sku: 'coffee-beans', qty: 2 },
        { sku: 'mug-blue', qty: 1 },
        { sku: 'coffee-beans', qty: 1 },
      ],
    });
    assert.equal(placed.status, 202);
    const id: string = placed.body.id;
    assert.equal(placed.headers.get('location'), `/orders/${id}`);

    const order = await settled(url, id);
    assert.equal(order.status, 'confirmed');
    assert.equal(order.reason, undefined);
    assert.equal(order.total, (3 * findSku('coffee-beans')!.price + findSku('mug-blue')!.price) / 100);
    assert.deepEqual(
      order.items.map((l: { sku: string; qty: number }) => [l.sku, l.qty]),
      [
        ['coffee-beans', 3],
        ['mug-blue', 1],
      ],
    );
    // The history comes from the other services' events, each on its own way: wait for all of them.
    const history = await eventually('the full history', async () => {
      const { history } = await getOrder(url, id);
      return history.length >= 4 ? history : undefined;
    });
    assert.deepEqual(history.map((h) => h.type).sort(), [
      'inventory.reserved',
      'orders.confirmed',
      'orders.placed',
      'payments.charged',
    ]);
    assert.equal(history[0]?.type, 'orders.placed');
    for (const entry of history) assert.ok(!Number.isNaN(Date.parse(entry.at)), `at ${entry.at}`);

    const email = await eventually('the email', () => (box.emails().length > 0 ? box.emails() : undefined));
    assert.deepEqual(email, [`${id}.eml`]);
    const text = readFileSync(join(box.outboxDir, `${id}.eml`), 'utf8');
    assert.match(text, /Subject: Your order .* is confirmed/);
    assert.match(text, /Total charged: 83\.70 EUR/);

    const ledger = box.ledger(id);
    assert.deepEqual(
      ledger.map((row) => [row.kind, row.outcome, row.amount]),
      [['charge', 'charged', 8_370]],
    );
    assert.equal(box.stock('coffee-beans'), findSku('coffee-beans')!.stock - 3);
    assert.equal(box.stock('mug-blue'), findSku('mug-blue')!.stock - 1);

    const list = (await call(`${url}/orders?status=confirmed`)).body;
    assert.deepEqual(
      list.orders.map((o: { id: string }) => o.id),
      [id],
    );
    const pending = (await call(`${url}/orders?status=pending`)).body;
    assert.deepEqual(pending.orders, []);
    const inventory = (await call(`${url}/inventory`)).body;
    assert.equal(inventory.items.find((i) => i.sku === 'mug-blue')?.stock, findSku('mug-blue')!.stock - 1);
  });

  it('out of stock: cancelled with the reason, stock unchanged, nothing charged', async () => {
    const { url } = await start();
    const kettle = findSku('kettle-gooseneck')!;
    const placed = await postOrder(url, {
      customerId: 'c-2',
      items: [
        { sku: 'tea-earl-grey', qty: 1 },
        { sku: 'kettle-gooseneck', qty: kettle.stock + 1 },
      ],
    });
    assert.equal(placed.status, 202);
    const order = await settled(url, placed.body.id);
    assert.equal(order.status, 'cancelled');
    assert.match(order.reason ?? '', /^out of stock: kettle-gooseneck/);
    assert.equal(box.stock('kettle-gooseneck'), kettle.stock);
    assert.equal(box.stock('tea-earl-grey'), findSku('tea-earl-grey')!.stock);
    assert.deepEqual(box.ledger(placed.body.id), []);
    await eventually('the email', () => (box.emails().length === 1 ? true : undefined));
    assert.match(readFileSync(join(box.outboxDir, box.emails()[0]!), 'utf8'), /Reason: out of stock/);
  });

  it('payment declined: cancelled, the reserved stock released', async () => {
    const { url } = await start({ gateway: { ...noFailures, declineRate: 1 } });
    const placed = await postOrder(url, { customerId: 'c-3', items: [{ sku: 'teapot-cast-iron', qty: 2 }] });
    const id = placed.body.id;
    const order = await settled(url, id);
    assert.equal(order.status, 'cancelled');
    assert.equal(order.reason, 'payment declined: card declined');
    const initial = findSku('teapot-cast-iron')!.stock;
    await eventually('the stock to come back', () =>
      box.stock('teapot-cast-iron') === initial ? true : undefined,
    );
    assert.deepEqual(
      box.ledger(id).map((row) => row.outcome),
      ['declined'],
    );
    await eventually('the email', () => (box.emails().length === 1 ? true : undefined));
    const history = await eventually('the release in the history', async () => {
      const body = await getOrder(url, id);
      const types = body.history.map((h: { type: string }) => h.type);
      return types.includes('inventory.released') ? types : undefined;
    });
    assert.ok(history.includes('payments.declined'), "history.includes('payments.declined')");
  });

  it('transient gateway failures are retried: two failed attempts, then one charge', async () => {
    // failure, failure, then neither a failure nor a decline.
    const script = [0.1, 0.1, 0.9, 0.9];
    const { url } = await start({
      gateway: { declineRate: 0.5, failureRate: 0.5, latencyMs: 0, random: () => script.shift() ?? 0.9 },
    });
    const placed = await postOrder(url, { customerId: 'c-4', items: [{ sku: 'grinder-manual', qty: 1 }] });
    const order = await settled(url, placed.body.id);
    assert.equal(order.status, 'confirmed');
    assert.deepEqual(
      box.ledger(placed.body.id).map((row) => row.outcome),
      ['failed', 'failed', 'charged'],
    );
    assert.equal(box.count(`SELECT count(*) FROM courier_dead_letters`), 0);
  });
});
