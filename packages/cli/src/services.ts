/**
 * The services `courier run` and `courier serve` know, how each is started on its own connection to
 * the shared broker file, and the environment they read (the same as `npm start`).
 */
import type { RunningService } from '../../../examples/order-processing/src/index.js';
import {
  startInventoryService,
  startNotificationService,
  startOrderSaga,
  startOrderService,
  startPaymentService,
} from '../../../examples/order-processing/src/index.js';
import { UsageError } from './args.js';

/** Service names in the order `courier run all` starts them: the consumers first, the API last. */
export const serviceNames = ['inventory', 'payment', 'notification', 'saga', 'order'] as const;
/** A service `courier run` and `courier serve` know. */
export type ServiceName = (typeof serviceNames)[number];

/** True when `name` is a service of the order system. */
export function isServiceName(name: string): name is ServiceName {
  return (serviceNames as readonly string[]).includes(name);
}

/** `all` expanded, duplicates dropped, unknown names refused. */
export function expandServices(names: readonly string[], usage: string): ServiceName[] {
  if (names.length === 0) throw new UsageError('name at least one service (or all)', usage);
  const chosen = new Set<ServiceName>();
  for (const name of names) {
    if (name === 'all') for (const service of serviceNames) chosen.add(service);
    else if (isServiceName(name)) chosen.add(name);
    else
      throw new UsageError(
        `unknown service ${JSON.stringify(name)}: use ${serviceNames.join(', ')} or all`,
        usage,
      );
  }
  return serviceNames.filter((name) => chosen.has(name));
}

/** How one service is started: broker file, port, rates and deadlines. */
export interface ServeSettings {
  readonly dbPath: string;
  readonly dataDir: string;
  readonly outboxDir: string;
  readonly port: number;
  readonly host: string;
  /** The saga's deadline (ORDER_TIMEOUT_MS). */
  readonly deadlineMs: number;
  readonly declineRate: number;
  readonly failureRate: number;
  readonly log: (line: string) => void;
}

/** Reads a number from the environment; a value that is not one is bad usage. */
export function numberFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text.trim() === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value)) throw new UsageError(`${name} must be a number, got ${JSON.stringify(text)}`);
  return value;
}

/** Starts one service on a connection of its own; resolves it and, for `order`, its URL. */
export async function startService(
  name: ServiceName,
  settings: ServeSettings,
): Promise<{ service: RunningService; url?: string }> {
  const common = { dbPath: settings.dbPath, dataDir: settings.dataDir, log: settings.log };
  switch (name) {
    case 'order': {
      const order = await startOrderService({ ...common, port: settings.port, host: settings.host });
      return { service: order, url: order.url };
    }
    case 'inventory':
      return { service: await startInventoryService(common) };
    case 'payment':
      return {
        service: await startPaymentService({
          ...common,
          gateway: { declineRate: settings.declineRate, failureRate: settings.failureRate },
        }),
      };
    case 'notification':
      return { service: await startNotificationService({ ...common, outboxDir: settings.outboxDir }) };
    case 'saga':
      return { service: await startOrderSaga({ ...common, deadlineMs: settings.deadlineMs }) };
  }
}

/** The help text listing the environment variables the services read. */
export const environmentHelp = `Environment (as npm start): PORT (3000), HOST (127.0.0.1), ORDER_TIMEOUT_MS (saga deadline,
10000), DECLINE_RATE (0.1), FAILURE_RATE (0.1), DATA_DIR (./data), COURIER_DB (<DATA_DIR>/courier.db).`;
