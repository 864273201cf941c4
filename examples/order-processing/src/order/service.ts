/**
 * The order service: the HTTP API, and the order rows it keeps up to date from the other services'
 * events (history entries; the final status from `orders.confirmed` / `orders.cancelled`).
 *
 * `POST /orders` stores the order row and its `orders.placed` message in one SQLite transaction: the
 * message goes into the transactional outbox (`courier_outbox`) in the same file, and the outbox
 * relay publishes it to the broker and removes it. An accepted order is never left unpublished (the
 * relay retries until the publish commits), and a rejected one is never published.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { createServer } from 'node:http';
import type { HandlerContext } from '@courier/core';
import { outgoingMessage, startOutboxRelay } from '@courier/core';
import {
  endpoints,
  OrderCancelled,
  OrderConfirmed,
  OrderPlaced,
  PaymentCharged,
  PaymentDeclined,
  PaymentRefunded,
  StockRejected,
  StockReleased,
  StockReserved,
} from '../contracts.js';
import { readStock, setUpInventory } from '../inventory/store.js';
import type { RunningService, ServiceOptions } from '../runtime.js';
import { createServiceBus, describe, logger, once, openTransport, retryWhileBusy } from '../runtime.js';
import { createHandler } from './http.js';
import type { OrderStatus } from './store.js';
import { OrderStore, setUpOrders } from './store.js';

export interface OrderServiceOptions extends ServiceOptions {
  /** Port of the API (default `PORT` or 3000; 0 picks a free one). */
  port?: number;
  /** Address of the API (default `HOST` or 127.0.0.1). */
  host?: string;
}

export interface RunningOrderService extends RunningService {
  /** The API's base URL, e.g. `http://127.0.0.1:3000`. */
  readonly url: string;
  readonly port: number;
}

export async function startOrderService(options: OrderServiceOptions = {}): Promise<RunningOrderService> {
  const log = logger(options);
  const host = options.host ?? process.env.HOST ?? '127.0.0.1';
  const port = options.port ?? Number(process.env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new RangeError(`invalid port ${port}`);

  const transport = openTransport(options);
  const db = transport.db;
  await setUpOrders(db);
  await setUpInventory(db); // GET /inventory reads the stock table in the same file
  const store = new OrderStore(db, transport.outbox());
  const bus = createServiceBus(endpoints.order, transport, options);

  const record =
    (settle?: (data: { reason?: string }) => { status: OrderStatus; reason?: string }) =>
    (data: { orderId: string; reason?: string }, ctx: HandlerContext<unknown>) => {
      const at = Date.parse(ctx.message.time);
      ctx.transact(() => store.record(data.orderId, ctx.type, at, ctx.id, settle?.(data)));
    };
  for (const contract of [
    StockReserved,
    StockRejected,
    StockReleased,
    PaymentCharged,
    PaymentDeclined,
    PaymentRefunded,
  ])
    bus.on(contract, record());
  bus.on(
    OrderConfirmed,
    record(() => ({ status: 'confirmed' })),
  );
  bus.on(
    OrderCancelled,
    record((data) => ({ status: 'cancelled', reason: data.reason ?? 'cancelled' })),
  );

  // Declares every queue and binding first, so the relay's first publish has somewhere to go.
  await bus.start();
  const relay = startOutboxRelay({
    source: transport.outbox(),
    transport,
    onError: (error) => log(`order: outbox relay will retry: ${describe(error)}`),
  });

  const handler = createHandler(
    {
      async placeOrder(order) {
        const id = randomUUID();
        const createdAt = Date.now();
        const placed = await outgoingMessage(
          OrderPlaced,
          { orderId: id, customerId: order.customerId, items: [...order.items], total: order.total },
          { source: endpoints.order },
        );
        await retryWhileBusy(() =>
          store.place(
            { id, customerId: order.customerId, items: order.items, total: order.total, createdAt },
            placed,
          ),
        );
        relay.flush().catch(() => {}); // publish now rather than at the next poll; failures are retried
        return id;
      },
      getOrder: (id) => store.get(id),
      listOrders: (status, limit) => store.list(status, limit),
      stock: () => readStock(db),
      health: () => ({ status: 'ok' }),
    },
    log,
  );
  const server = createServer({ requestTimeout: 30_000 }, handler);
  await listen(server, port, host);
  const address = server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;

  return {
    url,
    port: actualPort,
    stop: once(async (timeoutMs) => {
      await closeServer(server, Math.min(timeoutMs, 1_000));
      await relay.stop();
      await bus.stop({ timeoutMs });
    }),
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Stops accepting, lets requests in progress finish for up to `graceMs`, then cuts what is left. */
function closeServer(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
