/** All four services and the order saga in one process, on one connection to the shared file. */
import { sqlite } from '@courier/sqlite';
import { startInventoryService } from './inventory/service.js';
import { startNotificationService } from './notification/service.js';
import type { OrderServiceOptions } from './order/service.js';
import { startOrderService } from './order/service.js';
import type { GatewayOptions } from './payment/gateway.js';
import { startPaymentService } from './payment/service.js';
import type { RunningService } from './runtime.js';
import { resolvePaths } from './runtime.js';
import { startOrderSaga } from './saga/service.js';

export interface SystemOptions extends OrderServiceOptions {
  /** The simulated payment gateway (decline and transient failure rates, latency). */
  gateway?: GatewayOptions;
  /** Cancel orders not confirmed within this many ms (default 10,000). */
  deadlineMs?: number;
  /** Where the emails go (default `<dataDir>/outbox`). */
  outboxDir?: string;
  /**
   * One connection (and one broker poller) for all the services of this process (default true):
   * a message between two of them wakes its consumer at once instead of at the next poll.
   * `false` gives each service its own, as separate processes would have.
   */
  shareConnection?: boolean;
}

export interface RunningSystem extends RunningService {
  readonly url: string;
  readonly port: number;
}

export async function startSystem(options: SystemOptions = {}): Promise<RunningSystem> {
  const started: RunningService[] = [];
  const shared =
    options.transport ??
    (options.shareConnection === false
      ? undefined
      : sqlite({
          path: resolvePaths(options).dbPath,
          ...(options.pollMaxMs !== undefined ? { pollMaxMs: options.pollMaxMs } : {}),
        }));
  const owned = options.transport === undefined ? shared : undefined;
  if (shared) options = { ...options, transport: shared };
  try {
    // The consumers first, then the API that feeds them.
    started.push(await startInventoryService(options));
    started.push(await startPaymentService(options));
    started.push(await startNotificationService(options));
    started.push(await startOrderSaga(options));
    const order = await startOrderService(options);
    started.unshift(order);
    let stopping: Promise<void> | undefined;
    return {
      url: order.url,
      port: order.port,
      stop(timeoutMs = 3_000) {
        stopping ??= (async () => {
          // All at once: the order service closes its API first; what is in flight stays in the queues.
          await Promise.all(started.map((service) => service.stop(timeoutMs)));
          await owned?.close();
        })();
        return stopping;
      },
    };
  } catch (error) {
    await Promise.allSettled(started.map((service) => service.stop()));
    await owned?.close();
    throw error;
  }
}
