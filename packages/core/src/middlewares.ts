import type { ConsumeMiddleware, HandlerContext } from './bus-types.js';
import type { Context } from './context.js';
import { ConfigurationError } from './errors.js';
import type { InboxStore } from './stores.js';

/** Options of `inbox()`. */
export interface InboxOptions {
  store: InboxStore;
  /** How long a handled id is remembered, in ms (default 7 days). Redeliveries after that run again. */
  retentionMs?: number;
}

/**
 * The idempotent inbox (DESIGN.md §2.10): a redelivered message that this endpoint's queue already
 * handled is acked without running the handler again. The id is recorded after the ack, so a crash
 * between the two runs the handler again (at-least-once), and its output keeps its ids for dedup.
 */
export function inbox(options: InboxOptions): ConsumeMiddleware {
  const retentionMs = options.retentionMs ?? 7 * 24 * 3_600_000;
  if (!options.store)
    throw new ConfigurationError('inbox: a store is required (memoryInboxStore(), or a SQLite one)');
  if (!(retentionMs > 0))
    throw new ConfigurationError(`inbox: retentionMs must be > 0, got ${String(retentionMs)}`);
  const { store } = options;
  return async function inboxMiddleware(ctx: HandlerContext, next) {
    const scope = `${ctx.queue}#inbox`;
    if ((await store.get(scope, ctx.id)) !== undefined) {
      (ctx as Context).skipped = true;
      return;
    }
    await next();
    (ctx as Context).afterAck.push(async () => {
      await store.putIfAbsent(scope, ctx.id, '1', retentionMs);
    });
  };
}

/** What the logging hook reports for each handled message. */
export interface HandlingLogEntry {
  readonly outcome: 'handled' | 'failed';
  readonly type: string;
  readonly id: string;
  readonly queue: string;
  readonly attempt: number;
  readonly durationMs: number;
  readonly error?: unknown;
}

/**
 * Calls `log` once per handling with its outcome and duration. Plug in any logger.
 * @example logging({ log: (e) => console.log(`${e.outcome} ${e.type} #${e.attempt} in ${e.durationMs} ms`) })
 */
export function logging(options: {
  log: (entry: HandlingLogEntry) => void;
  now?: () => number;
}): ConsumeMiddleware {
  if (typeof options.log !== 'function') throw new ConfigurationError('logging: log must be a function');
  const now = options.now ?? (() => performance.now());
  return async function loggingMiddleware(ctx, next) {
    const started = now();
    const base = { type: ctx.type, id: ctx.id, queue: ctx.queue, attempt: ctx.attempt };
    try {
      await next();
      options.log({ ...base, outcome: 'handled', durationMs: now() - started });
    } catch (error) {
      options.log({ ...base, outcome: 'failed', durationMs: now() - started, error });
      throw error;
    }
  };
}
