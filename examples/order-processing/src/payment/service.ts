/**
 * The payment service: charges an order (`payments.charge`) through the simulated gateway, answering
 * `payments.charged` or `payments.declined`; a transient gateway failure is thrown, so the bus retries
 * it with backoff. Refunds a charge on `payments.refund` (a charge that arrived after the order was
 * cancelled). Idempotent per order: the `payments` row is written with the answer and the ack in one
 * transaction (`ctx.transact`), and the gateway itself answers a repeated charge with the first outcome.
 */
import type { SqliteDatabase } from '@courier/sqlite';
import {
  ChargePayment,
  endpoints,
  PaymentCharged,
  PaymentDeclined,
  PaymentRefunded,
  RefundPayment,
} from '../contracts.js';
import type { RunningService, ServiceOptions } from '../runtime.js';
import { ConflictError, createServiceBus, migrate, once, openTransport } from '../runtime.js';
import type { GatewayOptions } from './gateway.js';
import { SimulatedGateway, setUpLedger } from './gateway.js';

export interface PaymentServiceOptions extends ServiceOptions {
  /** The simulated gateway: decline rate, transient failure rate, latency. */
  gateway?: GatewayOptions;
}

type PaymentStatus = 'charged' | 'declined' | 'refunded';

const schema = `
  CREATE TABLE IF NOT EXISTS payments (
    order_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    reference TEXT,
    updated_at INTEGER NOT NULL
  );
`;

class PaymentStore {
  private readonly s;

  constructor(db: SqliteDatabase) {
    this.s = {
      get: db.prepare(`SELECT status, amount_cents AS amount, reference FROM payments WHERE order_id = ?`),
      insert: db.prepare(
        `INSERT INTO payments (order_id, status, amount_cents, reference, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ),
      refunded: db.prepare(
        `UPDATE payments SET status = 'refunded', updated_at = ? WHERE order_id = ? AND status = 'charged'`,
      ),
    };
  }

  get(orderId: string): { status: PaymentStatus; amount: number; reference: string | null } | undefined {
    return this.s.get.get(orderId) as ReturnType<PaymentStore['get']>;
  }

  record(orderId: string, status: PaymentStatus, amount: number, reference: string | null): void {
    if (this.s.insert.run(orderId, status, amount, reference, Date.now()).changes !== 1)
      throw new ConflictError(`order ${orderId} was answered meanwhile`);
  }

  markRefunded(orderId: string): void {
    if (this.s.refunded.run(Date.now(), orderId).changes !== 1)
      throw new ConflictError(`payment of ${orderId} changed meanwhile`);
  }
}

export async function startPaymentService(options: PaymentServiceOptions = {}): Promise<RunningService> {
  const transport = openTransport(options);
  await migrate(transport.db, schema);
  await setUpLedger(transport.db);
  const store = new PaymentStore(transport.db);
  const gateway = new SimulatedGateway(transport.db, options.gateway);
  const bus = createServiceBus(endpoints.payment, transport, options);

  bus.handle(ChargePayment, async ({ orderId, amount }, ctx) => {
    // Answered before: the answer was stored with the row.
    if (store.get(orderId)) return;
    const result = await gateway.charge(orderId, amount); // throws on a transient failure: retried
    if (result.outcome === 'charged') {
      await ctx.publish(PaymentCharged, { orderId, amount, reference: result.reference });
      ctx.transact(() => store.record(orderId, 'charged', amount, result.reference));
    } else {
      await ctx.publish(PaymentDeclined, { orderId, reason: result.reason });
      ctx.transact(() => store.record(orderId, 'declined', amount, null));
    }
  });

  bus.handle(RefundPayment, async ({ orderId }, ctx) => {
    const payment = store.get(orderId);
    // The saga asks for a refund only after it saw the charge, which commits with the row: retry
    // (and dead-letter, for an operator to look at) rather than drop a refund.
    if (!payment) throw new Error(`no payment of ${orderId} to refund yet`);
    if (payment.status !== 'charged') return; // declined (nothing taken) or refunded already
    await gateway.refund(orderId, payment.amount);
    await ctx.publish(PaymentRefunded, { orderId, amount: payment.amount });
    ctx.transact(() => store.markRefunded(orderId));
  });

  await bus.start();
  return { stop: once((timeoutMs) => bus.stop({ timeoutMs })) };
}
