/**
 * A snapshot of the whole system read from the shared file: orders per status (the order table) and
 * each queue's depth, in-flight, scheduled and dead-letter counts (the broker). For the live status
 * line of `npm start` and for tools that watch the system from outside.
 */
import type { QueueStats } from '@courier/core';
import type { SqliteTransport } from '@courier/sqlite';
import { queues } from './contracts.js';
import { readOrderCounts } from './order/store.js';

export interface SystemStatus {
  readonly orders: { placed: number; pending: number; confirmed: number; cancelled: number };
  readonly queues: readonly QueueStats[];
  /** Dead letters over all queues. */
  readonly deadLettered: number;
}

export async function readStatus(transport: SqliteTransport): Promise<SystemStatus> {
  const stats: QueueStats[] = [];
  for (const queue of queues) {
    try {
      stats.push(await transport.stats(queue));
    } catch {
      // Not declared yet: no service has started.
    }
  }
  let orders: SystemStatus['orders'] = { placed: 0, pending: 0, confirmed: 0, cancelled: 0 };
  try {
    orders = readOrderCounts(transport.db);
  } catch {
    // The order table does not exist until the order service first starts.
  }
  return { orders, queues: stats, deadLettered: stats.reduce((sum, q) => sum + q.deadLettered, 0) };
}

/** One line: `orders 12 placed · 10 confirmed · 1 cancelled · 1 pending | queues order 0 ... | DLQ 0`. */
export function formatStatus(status: SystemStatus): string {
  const { orders } = status;
  const queueText = status.queues
    .map((q) => `${q.queue} ${q.depth + q.inFlight}${q.scheduled ? ` (+${q.scheduled} sched)` : ''}`)
    .join(' · ');
  return (
    `orders ${orders.placed} placed · ${orders.confirmed} confirmed · ${orders.cancelled} cancelled · ${orders.pending} pending` +
    ` | queues ${queueText} | DLQ ${status.deadLettered}`
  );
}

/** The status in at most `width` characters: the full line if it fits, else totals only. */
export function formatStatusToFit(status: SystemStatus, width: number): string {
  const full = formatStatus(status);
  if (full.length <= width) return full;
  const { orders } = status;
  const queued = status.queues.reduce((sum, q) => sum + q.depth + q.inFlight, 0);
  const compact =
    `${orders.placed} placed · ${orders.confirmed} confirmed · ${orders.cancelled} cancelled · ${orders.pending} pending` +
    ` | queued ${queued} | DLQ ${status.deadLettered}`;
  return compact.slice(0, Math.max(1, width));
}
