/**
 * The HTTP API's edges: every bad input of the issue answers 400 with a code and the path of the
 * field, and nothing is stored or published; unknown ids 404; the other routes.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startSystem } from '../src/system.js';
import type { Body } from './helpers.js';
import { call, postOrder, Sandbox, settled } from './helpers.js';

describe('order API', () => {
  const box = new Sandbox();
  let url = '';
  let port = 0;
  before(async () => {
    const system = box.track(
      await startSystem({ ...box.options, gateway: { declineRate: 0, failureRate: 0, latencyMs: 0 } }),
    );
    url = system.url;
    port = system.port;
  });
  after(() => box.cleanup());

  const line = { sku: 'mug-blue', qty: 1 };
  const cases: [string, string | object, string, string][] = [
    ['invalid JSON', '{"customerId": "c-1", "items": [', 'invalid_json', ''],
    ['an empty body', '', 'invalid_json', ''],
    ['a body that is not an object', '[1, 2]', 'invalid_type', ''],
    ['customerId missing', { items: [line] }, 'missing_field', 'customerId'],
    ['customerId of the wrong type', { customerId: 42, items: [line] }, 'invalid_type', 'customerId'],
    ['customerId empty', { customerId: ' ', items: [line] }, 'invalid_value', 'customerId'],
    ['items missing', { customerId: 'c-1' }, 'missing_field', 'items'],
    ['items of the wrong type', { customerId: 'c-1', items: { sku: 'mug-blue' } }, 'invalid_type', 'items'],
    ['items empty', { customerId: 'c-1', items: [] }, 'invalid_value', 'items'],
    ['a line that is not an object', { customerId: 'c-1', items: [line, 'mug'] }, 'invalid_type', 'items[1]'],
    ['sku missing', { customerId: 'c-1', items: [{ qty: 1 }] }, 'missing_field', 'items[0].sku'],
    [
      'sku of the wrong type',
      { customerId: 'c-1', items: [{ sku: 7, qty: 1 }] },
      'invalid_type',
      'items[0].sku',
    ],
    ['qty missing', { customerId: 'c-1', items: [{ sku: 'mug-blue' }] }, 'missing_field', 'items[0].qty'],
    [
      'qty a string',
      { customerId: 'c-1', items: [{ sku: 'mug-blue', qty: '2' }] },
      'invalid_type',
      'items[0].qty',
    ],
    [
      'qty 0',
      { customerId: 'c-1', items: [line, { sku: 'mug-blue', qty: 0 }] },
      'invalid_quantity',
      'items[1].qty',
    ],
    [
      'qty negative',
      { customerId: 'c-1', items: [{ sku: 'mug-blue', qty: -3 }] },
      'invalid_quantity',
      'items[0].qty',
    ],
    [
      'qty not whole',
      { customerId: 'c-1', items: [{ sku: 'mug-blue', qty: 1.5 }] },
      'invalid_quantity',
      'items[0].qty',
    ],
    [
      'an unknown sku',
      { customerId: 'c-1', items: [line, { sku: 'nope', qty: 1 }] },
      'unknown_sku',
      'items[1].sku',
    ],
    [
      'a body over 64 KiB',
      { customerId: 'c-1', items: [line], padding: 'x'.repeat(64 * 1024) },
      'body_too_large',
      '',
    ],
  ];

  it('answers 400 with the code and path for each bad input, and stores and publishes nothing', async () => {
    for (const [name, body, code, path] of cases) {
      const reply = await postOrder(url, body);
      assert.equal(reply.status, 400, name);
      assert.equal(reply.body.error.code, code, name);
      assert.equal(reply.body.error.path, path, name);
      assert.equal(typeof reply.body.error.message, 'string', name);
      assert.match(reply.headers.get('content-type') ?? '', /^application\/json/, name);
    }
    // Streamed (chunked, no content-length) past the limit.
    const streamed = await new Promise<{ status: number; body: Body }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/orders' }, (res) => {
        let text = '';
        res.on('data', (chunk) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      req.write(`{"customerId": "c-1", "items": [{"sku": "mug-blue", "qty": 1}], "padding": "`);
      for (let i = 0; i < 20; i++) req.write('y'.repeat(4096));
      req.end('"}');
    });
    assert.equal(streamed.status, 400);
    assert.equal(streamed.body.error.code, 'body_too_large');

    // Give a wrongly accepted order time to travel, then look everywhere it could be.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(box.count(`SELECT count(*) FROM orders`), 0);
    assert.equal(box.count(`SELECT count(*) FROM order_history`), 0);
    assert.equal(box.count(`SELECT count(*) FROM courier_outbox`), 0);
    assert.equal(box.count(`SELECT count(*) FROM courier_messages`), 0);
    assert.equal(box.count(`SELECT count(*) FROM courier_saga_state`), 0);
    assert.equal(box.count(`SELECT count(*) FROM inventory_reservations`), 0);
  });

  it('accepts a body of exactly 64 KiB', async () => {
    const base = JSON.stringify({ customerId: 'c-edge', items: [line] });
    const body = base.slice(0, -1) + `,"padding":"${'z'.repeat(64 * 1024 - base.length - 13)}"}`;
    assert.equal(Buffer.byteLength(body), 64 * 1024);
    const reply = await postOrder(url, body);
    assert.equal(reply.status, 202);
    assert.equal((await settled(url, reply.body.id)).status, 'confirmed');
  });

  it('404 for an unknown order or route, 405 for a wrong method', async () => {
    const missing = await call(`${url}/orders/no-such-order`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'not_found');
    assert.equal(typeof missing.body.error.path, 'string');
    assert.equal((await call(`${url}/nowhere`)).status, 404);
    const wrong = await call(`${url}/orders`, { method: 'DELETE' });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'GET, POST');
  });

  it('lists orders by status and rejects an unknown status', async () => {
    const bad = await call(`${url}/orders?status=shipped`);
    assert.equal(bad.status, 400);
    assert.deepEqual([bad.body.error.code, bad.body.error.path], ['invalid_query', 'status']);
    const all = await call(`${url}/orders?limit=5`);
    assert.equal(all.status, 200);
    assert.ok(Array.isArray(all.body.orders), 'Array.isArray(all.body.orders)');
    for (const order of all.body.orders)
      assert.ok(['pending', 'confirmed', 'cancelled'].includes(order.status), `status ${order.status}`);
  });

  it('serves the stock and the health', async () => {
    const health = await call(`${url}/health`);
    assert.deepEqual([health.status, health.body.status], [200, 'ok']);
    const inventory = await call(`${url}/inventory`);
    assert.equal(inventory.status, 200);
    const skus = inventory.body.items.map((i: { sku: string }) => i.sku);
    assert.ok(skus.includes('coffee-beans'), "skus.includes('coffee-beans')");
    for (const item of inventory.body.items) assert.equal(typeof item.stock, 'number');
  });
});
