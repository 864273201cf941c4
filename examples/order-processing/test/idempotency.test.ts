/**
 * Each service applied to the same request twice (two messages, as a duplicate publish or a replayed
 * dead letter would deliver): stock is taken once, the card charged once, one email written.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { createBus } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import { findSku } from '../src/catalogue.js';
import { ChargePayment, OrderConfirmed, ReleaseStock, ReserveStock, topology } from '../src/contracts.js';
import { startInventoryService } from '../src/inventory/service.js';
import { startNotificationService } from '../src/notification/service.js';
import { startPaymentService } from '../src/payment/service.js';
import { eventually, Sandbox } from './helpers.js';

describe('idempotency per order', () => {
  let box: Sandbox;
  beforeEach(() => {
    box = new Sandbox();
  });
  afterEach(() => box.cleanup());

  const tester = async () => {
    const bus = box.track(
      createBus({ endpoint: 'tester', transport: sqlite({ path: box.dbPath }), topology }),
    );
    await bus.start();
    return bus;
  };
  const settledCount = (queue: string) =>
    box.count(
      `SELECT count(*) FROM courier_messages m JOIN courier_queues q ON q.id = m.queue_id WHERE q.name = ?`,
      queue,
    );

  it('inventory: a second reserve takes nothing, a second release gives nothing back', async () => {
    box.track(await startInventoryService(box.options));
    const bus = await tester();
    const items = [{ sku: 'mug-blue', qty: 5 }];
    await bus.send(ReserveStock, { orderId: 'o-1', items });
    await bus.send(ReserveStock, { orderId: 'o-1', items });
    await eventually('both handled', () => (settledCount('inventory') === 0 ? true : undefined));
    assert.equal(box.stock('mug-blue'), findSku('mug-blue')!.stock - 5);
    await bus.send(ReleaseStock, { orderId: 'o-1', reason: 'test' });
    await bus.send(ReleaseStock, { orderId: 'o-1', reason: 'test' });
    await eventually('both handled', () => (settledCount('inventory') === 0 ? true : undefined));
    assert.equal(box.stock('mug-blue'), findSku('mug-blue')!.stock);
    // A release before any reserve: the reserve that comes later is refused.
    await bus.send(ReleaseStock, { orderId: 'o-2', reason: 'test' });
    await bus.send(ReserveStock, { orderId: 'o-2', items });
    await eventually('both handled', () => (settledCount('inventory') === 0 ? true : undefined));
    assert.equal(box.stock('mug-blue'), findSku('mug-blue')!.stock);
  });

  it('payment: a second charge of an order never reaches the card', async () => {
    box.track(
      await startPaymentService({
        ...box.options,
        gateway: { declineRate: 0, failureRate: 0, latencyMs: 0 },
      }),
    );
    const bus = await tester();
    await bus.send(ChargePayment, { orderId: 'o-1', customerId: 'c', amount: 1_000 });
    await bus.send(ChargePayment, { orderId: 'o-1', customerId: 'c', amount: 1_000 });
    await eventually('both handled', () => (settledCount('payment') === 0 ? true : undefined));
    assert.deepEqual(
      box.ledger('o-1').map((row) => row.outcome),
      ['charged'],
    );
    // The ledger refuses to be rewritten.
    assert.throws(
      () => box.db.prepare(`UPDATE payments_ledger SET outcome = 'declined'`).run(),
      /append-only/,
    );
    assert.throws(() => box.db.prepare(`DELETE FROM payments_ledger`).run(), /append-only/);
  });

  it('notification: a second confirmation writes no second email', async () => {
    box.track(await startNotificationService(box.options));
    const bus = await tester();
    await bus.publish(OrderConfirmed, {
      orderId: 'o-1',
      customerId: 'c\r\nBcc: x@evil.example',
      total: 1_234,
    });
    await eventually('the email', () => (box.emails().length === 1 ? true : undefined));
    const first = readFileSync(join(box.outboxDir, 'o-1.eml'), 'utf8');
    await bus.publish(OrderConfirmed, { orderId: 'o-1', customerId: 'someone else', total: 1 });
    await eventually('handled', () => (settledCount('notification') === 0 ? true : undefined));
    assert.deepEqual(box.emails(), ['o-1.eml']);
    assert.equal(readFileSync(join(box.outboxDir, 'o-1.eml'), 'utf8'), first);
    assert.match(first, /Total charged: 12\.34 EUR/);
    assert.doesNotMatch(first, /\r\nBcc:/);
  });
});
