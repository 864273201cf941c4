/** Runs the order saga on an endpoint of its own (`order-saga`), its state in the shared SQLite file. */
import { endpoints } from '../contracts.js';
import type { RunningService, ServiceOptions } from '../runtime.js';
import { createServiceBus, once, openTransport } from '../runtime.js';
import type { OrderSagaOptions } from './order-saga.js';
import { defineOrderSaga } from './order-saga.js';

export interface OrderSagaServiceOptions extends ServiceOptions, OrderSagaOptions {}

export async function startOrderSaga(options: OrderSagaServiceOptions = {}): Promise<RunningService> {
  const transport = openTransport(options);
  const bus = createServiceBus(endpoints.saga, transport, options);
  bus.saga(defineOrderSaga(options), { store: transport.sagaStore() });
  await bus.start();
  return { stop: once((timeoutMs) => bus.stop({ timeoutMs })) };
}
