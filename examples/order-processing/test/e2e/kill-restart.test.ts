/**
 * End to end, the services as separate processes (`courier serve <service>`) on one temporary broker
 * file, the API on an ephemeral port, the saga's deadline cut to 2 s:
 *
 * - bad HTTP input answers 400 and changes nothing in the file (rows counted before and after);
 * - under a steady load of 150 orders, the payment service is SIGKILLed and restarted three times and
 *   the inventory service is stopped for longer than the saga's deadline, then restarted; afterwards
 *   every order settles, no order is charged twice, every terminal order has exactly one email, and
 *   no stock leaked to reservations that came after their order was cancelled: the checks
 *   `courier demo` makes (`packages/cli/src/checks.ts`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SqliteTransport } from '@courier/sqlite';
import { sqlite } from '@courier/sqlite';
import { checkUntilSettled, formatChecks } from '../../../../packages/cli/src/checks.js';
import type { ServiceName } from './processes.js';
import { ServiceProcess } from './processes.js';

const deadlineMs = 2_000;
const orders = 150;
const ratePerSecond = 15; // 10 s of load

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the services as separate processes, killed and restarted under load', { timeout: 170_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-e2e-'));
  const dbPath = join(dir, 'courier.db');
  const outboxDir = join(dir, 'outbox');
  const logs: string[] = [];
  const env = {
    ORDER_TIMEOUT_MS: String(deadlineMs),
    DECLINE_RATE: '0.1',
    FAILURE_RATE: '0.1',
    HOST: '127.0.0.1',
  };
  const services = new Map<ServiceName, ServiceProcess>(
    (['inventory', 'payment', 'notification', 'saga', 'order'] as const).map((name) => [
      name,
      new ServiceProcess(name, dbPath, env, (line) => logs.push(line)),
    ]),
  );
  const service = (name: ServiceName) => services.get(name)!;
  let monitor: SqliteTransport;
  let base = '';

  before(async () => {
    // The consumers first (they declare the whole topology too), then the API.
    await Promise.all(
      ['inventory', 'payment', 'notification', 'saga'].map((n) => service(n as ServiceName).start()),
    );
    await service('order').start();
    base = service('order').url;
    monitor = sqlite({ path: dbPath });
  });

  after(async () => {
    await Promise.all([...services.values()].map((s) => s.stop()));
    await monitor?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The service logs, for a failure message. */
  const tail = () => logs.slice(-60).join('\n');

  const count = (sql: string) => monitor.db.prepare(sql).pluck().get() as number;
  const snapshot = () => ({
    orders: count(`SELECT count(*) FROM orders`),
    history: count(`SELECT count(*) FROM order_history`),
    outbox: count(`SELECT count(*) FROM courier_outbox`),
    messages: count(`SELECT count(*) FROM courier_messages`),
    deadLetters: count(`SELECT count(*) FROM courier_dead_letters`),
    sagas: count(`SELECT count(*) FROM courier_saga_state`),
    reservations: count(`SELECT count(*) FROM inventory_reservations`),
    ledger: count(`SELECT count(*) FROM payments_ledger`),
    emails: emailCount(),
  });
  const emailCount = () => {
    try {
      return readdirSync(outboxDir).length;
    } catch {
      return 0;
    }
  };

  it('answers 400 to bad input and changes nothing', async () => {
    const line = { sku: 'mug-blue', qty: 1 };
    const cases: [string, string, string, string][] = [
      ['invalid JSON', '{"customerId": "c-1", "items": [', 'invalid_json', ''],
      ['an empty body', '', 'invalid_json', ''],
      ['an array', JSON.stringify([line]), 'invalid_type', ''],
      ['customerId missing', JSON.stringify({ items: [line] }), 'missing_field', 'customerId'],
      ['customerId a number', JSON.stringify({ customerId: 7, items: [line] }), 'invalid_type', 'customerId'],
      ['items missing', JSON.stringify({ customerId: 'c-1' }), 'missing_field', 'items'],
      ['items empty', JSON.stringify({ customerId: 'c-1', items: [] }), 'invalid_value', 'items'],
      [
        'qty 0',
        JSON.stringify({ customerId: 'c-1', items: [line, { sku: 'mug-blue', qty: 0 }] }),
        'invalid_quantity',
        'items[1].qty',
      ],
      [
        'qty negative',
        JSON.stringify({ customerId: 'c-1', items: [{ sku: 'mug-blue', qty: -2 }] }),
        'invalid_quantity',
        'items[0].qty',
      ],
      [
        'qty a fraction',
        JSON.stringify({ customerId: 'c-1', items: [{ sku: 'mug-blue', qty: 1.5 }] }),
        'invalid_quantity',
        'items[0].qty',
      ],
      [
        'qty a string',
        JSON.stringify({ customerId: 'c-1', items: [{ sku: 'mug-blue', qty: '2' }] }),
        'invalid_type',
        'items[0].qty',
      ],
      [
        'unknown sku',
        JSON.stringify({ customerId: 'c-1', items: [line, { sku: 'unicorn', qty: 1 }] }),
        'unknown_sku',
        'items[1].sku',
      ],
      [
        'a body over 64 KiB',
        JSON.stringify({ customerId: 'x'.repeat(70 * 1024), items: [line] }),
        'body_too_large',
        '',
      ],
    ];
    const before = snapshot();
    for (const [what, body, code, path] of cases) {
      const response = await fetch(`${base}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      const answer = (await response.json()) as { error?: { code: string; path: string } };
      assert.equal(response.status, 400, `${what}: status`);
      assert.equal(answer.error?.code, code, `${what}: code`);
      assert.equal(answer.error?.path, path, `${what}: path`);
    }
    await sleep(300); // anything published by mistake would reach the broker by now
    assert.deepEqual(snapshot(), before, 'bad input changed the file');
  });

  it('settles every order consistently while payment is SIGKILLed and inventory is down past the deadline', async () => {
    const started = Date.now();
    const inventory = (await (await fetch(`${base}/inventory`)).json()) as { items: { sku: string }[] };
    // Plentiful skus, so most orders get as far as the payment (the scarce ones would be rejected early).
    const skus = inventory.items.map((i) => i.sku).filter((sku) => !sku.startsWith('kettle'));
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const cart = () => {
      const pool = [...skus];
      const items = [];
      for (let n = 1 + Math.floor(random() * 2); n > 0; n--)
        items.push({
          sku: pool.splice(Math.floor(random() * pool.length), 1)[0]!,
          qty: 1 + Math.floor(random() * 2),
        });
      return { customerId: `e2e-${Math.floor(random() * 50)}`, items };
    };

    // The load: `orders` orders at a steady rate, whatever happens to the other services.
    const ids: string[] = [];
    const refused: string[] = [];
    const load = (async () => {
      const sends: Promise<void>[] = [];
      for (let i = 0; i < orders; i++) {
        const wait = started + (i * 1_000) / ratePerSecond - Date.now();
        if (wait > 0) await sleep(wait);
        sends.push(
          fetch(`${base}/orders`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(cart()),
          }).then(async (response) => {
            const body = (await response.json()) as { id?: string };
            if (response.status === 202 && body.id) ids.push(body.id);
            else refused.push(`${response.status} ${JSON.stringify(body)}`);
          }),
        );
      }
      await Promise.all(sends);
    })();

    // The faults, on two timelines over the 10 s of load.
    const at = (ms: number) => sleep(Math.max(0, started + ms - Date.now()));
    const payment = service('payment');
    const inventoryService = service('inventory');
    const events: string[] = [];
    const note = (what: string) => events.push(`${((Date.now() - started) / 1_000).toFixed(1)} s ${what}`);
    const crashPayment = async (atMs: number, downMs: number) => {
      await at(atMs);
      await payment.kill();
      note('payment SIGKILLed');
      await sleep(downMs);
      await payment.start();
      note('payment restarted');
    };
    const faults = Promise.all([
      (async () => {
        await crashPayment(1_500, 700);
        await crashPayment(4_500, 1_000);
        await crashPayment(8_500, 500);
      })(),
      (async () => {
        await at(3_000);
        await inventoryService.stop();
        note('inventory stopped');
        // Down for 2.5 × the saga's deadline: orders placed meanwhile time out in "reserving".
        await sleep(2.5 * deadlineMs);
        await inventoryService.start();
        note('inventory restarted');
      })(),
    ]);

    await Promise.all([load, faults]);
    const placedMs = Date.now() - started;
    assert.deepEqual(refused, [], 'every order accepted');
    assert.equal(ids.length, orders);

    // Every order settles: each is confirmed or cancelled in the API...
    const settleDeadline = Date.now() + 60_000;
    for (;;) {
      const { orders: pending } = (await (
        await fetch(`${base}/orders?status=pending&limit=1000`)
      ).json()) as {
        orders: unknown[];
      };
      if (pending.length === 0) break;
      assert.ok(Date.now() < settleDeadline, `${pending.length} orders still pending after 60 s\n${tail()}`);
      await sleep(200);
    }
    const settledMs = Date.now() - started;

    // ...and the invariants hold in the file (the last compensations and emails may lag a little).
    const report = await checkUntilSettled(monitor.db, { outboxDir, orderIds: ids, timeoutMs: 30_000 });
    assert.ok(report.ok, `checks failed:\n${formatChecks(report, false).join('\n')}\n${tail()}`);

    // The faults did what they were meant to: orders timed out while inventory was down, and the
    // reservations that came after those cancels were released; payment crashed three times.
    const released = count(`SELECT count(*) FROM inventory_reservations WHERE status = 'released'`);
    const timedOut = report.cancelReasons['timed out'] ?? 0;
    assert.ok(timedOut > 0, `no order timed out while inventory was down\n${tail()}`);
    assert.ok(released > 0, 'no late reservation was released');
    assert.equal(payment.starts, 4);
    assert.deepEqual(
      [...services.values()].flatMap((s) => s.crashes),
      [],
      'no service died on its own',
    );

    const figures = [
      `${orders} orders placed in ${(placedMs / 1_000).toFixed(1)} s, all settled ${(settledMs / 1_000).toFixed(1)} s after the first`,
      `${report.orders.confirmed} confirmed, ${report.orders.cancelled} cancelled (${Object.entries(
        report.cancelReasons,
      )
        .map(([k, n]) => `${n} ${k}`)
        .join(', ')})`,
      `${released} reservations released, ${report.ledger.charged} charges, ${report.ledger.replayed} replayed charges, ${report.ledger.refunded} refunds, ${report.ledger.failed} transient failures`,
      `${report.emails} emails; dead letters ${count(`SELECT count(*) FROM courier_dead_letters`)}`,
      ...events,
    ];
    for (const line of figures) console.log(`# ${line}`);
  });
});
