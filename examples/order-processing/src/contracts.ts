/**
 * The contracts every service of the order-processing system shares: events and commands with their
 * schemas, the endpoint names, and the topology (who takes which events, who owns which command), so
 * whichever process starts first declares every queue and binding and nothing published is lost.
 *
 * Money is in integer cents everywhere on the wire.
 */
import { defineCommand, defineEvent, defineTopology } from '@courier/core';
import { z } from 'zod';

/** Endpoint (and queue) names. */
export const endpoints = {
  order: 'order',
  saga: 'order-saga',
  inventory: 'inventory',
  payment: 'payment',
  notification: 'notification',
} as const;

const orderId = z.string().min(1).max(200);
const cents = z.number().int().nonnegative();
const line = z.object({ sku: z.string().min(1), qty: z.number().int().positive() });
const pricedLine = line.extend({ unitPrice: cents });

/** An order was accepted by the API (stored with its row in one transaction). */
export const OrderPlaced = defineEvent(
  'orders.placed',
  z.object({
    orderId,
    customerId: z.string().min(1),
    items: z.array(pricedLine).min(1),
    total: cents,
  }),
);

/** Reserve the order's items, all or nothing (owned by inventory). */
export const ReserveStock = defineCommand(
  'inventory.reserve',
  z.object({ orderId, items: z.array(line).min(1) }),
);
export const StockReserved = defineEvent('inventory.reserved', z.object({ orderId }));
export const StockRejected = defineEvent(
  'inventory.rejected',
  z.object({ orderId, reason: z.string(), sku: z.string().optional() }),
);
/** Put back what the order reserved (compensation; owned by inventory). */
export const ReleaseStock = defineCommand('inventory.release', z.object({ orderId, reason: z.string() }));
export const StockReleased = defineEvent('inventory.released', z.object({ orderId }));

/** Charge the customer (owned by payment). */
export const ChargePayment = defineCommand(
  'payments.charge',
  z.object({ orderId, customerId: z.string(), amount: cents }),
);
export const PaymentCharged = defineEvent(
  'payments.charged',
  z.object({ orderId, amount: cents, reference: z.string() }),
);
/** A business outcome (card declined), not a failure: the saga cancels the order. */
export const PaymentDeclined = defineEvent('payments.declined', z.object({ orderId, reason: z.string() }));
/** Give the money back (compensation for a charge that arrived after the cancel; owned by payment). */
export const RefundPayment = defineCommand('payments.refund', z.object({ orderId, reason: z.string() }));
export const PaymentRefunded = defineEvent('payments.refunded', z.object({ orderId, amount: cents }));

export const OrderConfirmed = defineEvent(
  'orders.confirmed',
  z.object({ orderId, customerId: z.string(), total: cents }),
);
export const OrderCancelled = defineEvent(
  'orders.cancelled',
  z.object({ orderId, customerId: z.string(), total: cents, reason: z.string() }),
);

/** The whole system: any process declares every queue and binding from this. */
export const topology = defineTopology({
  endpoints: {
    // The order service keeps each order's history from these, and its status from the last two.
    [endpoints.order]: {
      events: [
        StockReserved,
        StockRejected,
        StockReleased,
        PaymentCharged,
        PaymentDeclined,
        PaymentRefunded,
        OrderConfirmed,
        OrderCancelled,
      ],
    },
    [endpoints.saga]: {
      events: [OrderPlaced, StockReserved, StockRejected, PaymentCharged, PaymentDeclined],
    },
    [endpoints.inventory]: { commands: [ReserveStock, ReleaseStock] },
    [endpoints.payment]: { commands: [ChargePayment, RefundPayment] },
    [endpoints.notification]: { events: [OrderConfirmed, OrderCancelled] },
  },
});

/** Every queue of the system, in the order the status line and `courier queues` show them. */
export const queues: readonly string[] = Object.keys(topology.endpoints);
