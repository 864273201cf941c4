/**
 * The saga's deadline: an order whose reservation or charge does not come in time is cancelled, and
 * the reservation or charge that comes after the cancel is compensated (released, refunded).
 * A service is simply not started until the order is cancelled, so no timing race decides the test.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { findSku } from '../src/catalogue.js';
import { startInventoryService } from '../src/inventory/service.js';
import { startNotificationService } from '../src/notification/service.js';
import { startOrderService } from '../src/order/service.js';
import { startPaymentService } from '../src/payment/service.js';
import { startOrderSaga } from '../src/saga/service.js';
import { eventually, getOrder, postOrder, Sandbox, settled } from './helpers.js';

const gateway = { declineRate: 0, failureRate: 0, latencyMs: 0 };

describe('order deadline', () => {
  let box: Sandbox;
  beforeEach(() => {
    box = new Sandbox();
  });
  afterEach(() => box.cleanup());

  it('cancels an order with no reservation in time; the late reservation is released', async () => {
    const { url } = box.track(await startOrderService(box.options));
    box.track(await startOrderSaga({ ...box.options, deadlineMs: 300 }));
    box.track(await startPaymentService({ ...box.options, gateway }));
    box.track(await startNotificationService(box.options));
    // No inventory service yet: the reserve command waits in its queue.
    const placed = await postOrder(url, { customerId: 'c-late', items: [{ sku: 'mug-blue', qty: 4 }] });
    const id: string = placed.body.id;
    const order = await settled(url, id);
    assert.equal(order.status, 'cancelled');
    assert.equal(order.reason, 'timed out: no stock reservation within 0.3 s');
    await eventually('the email', () => (box.emails().length === 1 ? true : undefined));
    assert.deepEqual(box.sagaRecord(id)?.state.awaiting, 'reservation');

    // The inventory service comes back and reserves: the saga has it released.
    box.track(await startInventoryService(box.options));
    const reservation = await eventually('the release', () =>
      box.count(
        `SELECT count(*) FROM inventory_reservations WHERE order_id = ? AND status = 'released'`,
        id,
      ) === 1
        ? true
        : undefined,
    );
    assert.ok(reservation, 'reservation');
    assert.equal(box.stock('mug-blue'), findSku('mug-blue')!.stock);
    const record = await eventually('the saga to complete', () => {
      const r = box.sagaRecord(id);
      return r?.completed ? r : undefined;
    });
    assert.equal(record.state.status, 'cancelled');
    const after = await eventually('the release in the history', async () => {
      const order = await getOrder(url, id);
      return order.history.some((h) => h.type === 'inventory.released') ? order : undefined;
    });
    assert.equal(after.status, 'cancelled');
    const types = after.history.map((h) => h.type);
    for (const type of ['orders.cancelled', 'inventory.reserved']) assert.ok(types.includes(type), type);
    assert.deepEqual(box.ledger(id), []);
    assert.equal(box.emails().length, 1);
  });

  it('cancels an order with no payment in time; the stock is released and the late charge refunded', async () => {
    const { url } = box.track(await startOrderService(box.options));
    box.track(await startOrderSaga({ ...box.options, deadlineMs: 2_000 }));
    box.track(await startInventoryService(box.options));
    box.track(await startNotificationService(box.options));
    // No payment service yet: the charge command waits in its queue.
    const placed = await postOrder(url, {
      customerId: 'c-slow',
      items: [{ sku: 'teapot-cast-iron', qty: 1 }],
    });
    const id: string = placed.body.id;
    const order = await settled(url, id);
    assert.equal(order.status, 'cancelled');
    assert.equal(order.reason, 'timed out: no payment within 2 s');
    const initial = findSku('teapot-cast-iron')!.stock;
    await eventually('the stock to come back', () =>
      box.stock('teapot-cast-iron') === initial ? true : undefined,
    );

    box.track(await startPaymentService({ ...box.options, gateway }));
    const ledger = await eventually('the refund', () => {
      const rows = box.ledger(id);
      return rows.some((row) => row.outcome === 'refunded') ? rows : undefined;
    });
    assert.deepEqual(
      ledger.map((row) => [row.kind, row.outcome]),
      [
        ['charge', 'charged'],
        ['refund', 'refunded'],
      ],
    );
    assert.equal(
      box.count(`SELECT count(*) FROM payments WHERE order_id = ? AND status = 'refunded'`, id),
      1,
    );
    await eventually('the saga to complete', () => (box.sagaRecord(id)?.completed ? true : undefined));
    const after = await eventually('the refund in the history', async () => {
      const order = await getOrder(url, id);
      return order.history.some((h) => h.type === 'payments.refunded') ? order : undefined;
    });
    assert.equal(after.status, 'cancelled');
    assert.equal(box.stock('teapot-cast-iron'), initial);
    assert.equal(box.emails().length, 1);
  });
});
