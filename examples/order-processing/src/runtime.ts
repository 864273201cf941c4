/**
 * What every service of the example shares: where the SQLite file is, how its bus is made, schema
 * setup that waits out other processes, and a one-shot `stop`.
 */
import { dirname, join, resolve } from 'node:path';
import type { Bus, BusEvent, RetryPolicy } from '@courier/core';
import { createBus } from '@courier/core';
import type { SqliteDatabase, SqliteTransport } from '@courier/sqlite';
import { sqlite } from '@courier/sqlite';
import { topology } from './contracts.js';

/** Options every `start...Service` takes. */
export interface ServiceOptions {
  /** Folder of the SQLite file and the email outbox (default `./data`). */
  dataDir?: string;
  /** The SQLite file: broker and the services' own tables (default `<dataDir>/courier.db`). */
  dbPath?: string;
  /** Overrides of the services' retry policy (default: 10 attempts, backoff from 50 ms to 2 s). */
  retry?: Partial<RetryPolicy>;
  /** Slowest poll for other connections' commits while idle, in ms (the transport's `pollMaxMs`). */
  pollMaxMs?: number;
  /**
   * Lease of a delivery, in ms (default 5,000): the handlers here take milliseconds, and what a killed
   * service had in flight comes back to the queue this soon (the bus's default is 30 s).
   */
  leaseMs?: number;
  /**
   * A transport to share with other services of this process instead of a connection of its own;
   * the service does not close it (its owner does, after stopping the services).
   */
  transport?: SqliteTransport;
  /** Where the service reports handler failures, dead letters and background errors (default stderr). */
  log?: (line: string) => void;
}

/** A started service. */
export interface RunningService {
  /** Graceful stop: in-flight handlers finish (up to `timeoutMs`, default 3 s); idempotent. */
  stop(timeoutMs?: number): Promise<void>;
}

/** Small delays so an order settles fast; enough attempts that a 10 % transient failure rate never dead-letters. */
export const defaultRetry: Partial<RetryPolicy> = {
  maxAttempts: 10,
  immediate: 1,
  initialDelayMs: 50,
  maxDelayMs: 2_000,
};

export function resolvePaths(options: ServiceOptions): { dataDir: string; dbPath: string } {
  if (options.dbPath !== undefined) {
    const dbPath = resolve(options.dbPath);
    return { dbPath, dataDir: resolve(options.dataDir ?? dirname(dbPath)) };
  }
  const dataDir = resolve(options.dataDir ?? './data');
  return { dataDir, dbPath: join(dataDir, 'courier.db') };
}

/**
 * The service's transport: `options.transport` shared (its `close` left to its owner), or a
 * connection of its own to the file (the bus closes it on stop).
 */
export function openTransport(options: ServiceOptions): SqliteTransport {
  if (options.transport) return borrowed(options.transport);
  return sqlite({
    path: resolvePaths(options).dbPath,
    ...(options.pollMaxMs !== undefined ? { pollMaxMs: options.pollMaxMs } : {}),
  });
}

export function logger(options: ServiceOptions): (line: string) => void {
  return options.log ?? ((line) => console.error(line));
}

/** The service's bus: the system's topology, the example's retry policy, failures reported to `log`. */
export function createServiceBus(endpoint: string, transport: SqliteTransport, options: ServiceOptions): Bus {
  const log = logger(options);
  return createBus({
    endpoint,
    transport,
    topology,
    retry: { ...defaultRetry, ...options.retry },
    leaseMs: options.leaseMs ?? 5_000,
    observer: (event: BusEvent) => {
      // Retries are expected (the simulated gateway fails on purpose): only dead letters and errors are news.
      if (event.kind === 'dead-lettered')
        log(
          `${endpoint}: ${event.type} ${event.id} dead-lettered (${event.reason}${event.error ? `: ${describe(event.error)}` : ''})`,
        );
      else if (event.kind === 'error') log(`${endpoint}: ${describe(event.error)}`);
    },
  });
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Thrown inside `ctx.transact` when what the handler read changed before its transaction (another
 * consumer got there first): the transaction rolls back and the message is retried on fresh data.
 */
export class ConflictError extends Error {
  override readonly name = 'ConflictError';
}

export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_LOCKED';
}

/**
 * Runs the synchronous `work` (a write on the shared file), retrying while another process holds the
 * write lock, for up to `timeoutMs`. The event loop is never blocked for more than the busy timeout.
 */
export async function retryWhileBusy<T>(work: () => T, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    try {
      return work();
    } catch (error) {
      if (!isBusy(error) || Date.now() >= deadline) throw error;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Creates the service's tables (idempotent; safe when several processes start at once). */
export function migrate(db: SqliteDatabase, sql: string): Promise<void> {
  return retryWhileBusy(() => {
    db.transaction(() => db.exec(sql)).immediate();
  }, 10_000);
}

/** Makes `stop` run once, whoever calls it. */
export function once(stop: (timeoutMs: number) => Promise<void>): (timeoutMs?: number) => Promise<void> {
  let stopping: Promise<void> | undefined;
  return (timeoutMs = 3_000) => {
    stopping ??= stop(timeoutMs);
    return stopping;
  };
}

/** `transport` with a `close` that does nothing: the bus that stops does not close it for the others. */
function borrowed(transport: SqliteTransport): SqliteTransport {
  return new Proxy(transport, {
    get(target, property) {
      if (property === 'close') return async () => {};
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
