/** A connection of the command's own to an existing broker file, and the queues it holds. */
import type { SqliteTransport } from '@courier/sqlite';
import { sqlite } from '@courier/sqlite';
import { CommandError, requireDatabase } from './args.js';

/** Opens the broker file (it must exist: a typo should not create an empty one). */
export function openBroker(dbPath: string): SqliteTransport {
  requireDatabase(dbPath);
  return sqlite({ path: dbPath });
}

/** Every durable queue of the file, in declaration order. */
export function listQueues(transport: SqliteTransport): string[] {
  return transport.db
    .prepare(`SELECT name FROM courier_queues WHERE temporary = 0 ORDER BY id`)
    .pluck()
    .all() as string[];
}

/** Refuses a queue the file does not have, naming the ones it has. */
export function requireQueue(transport: SqliteTransport, queue: string): void {
  const queues = listQueues(transport);
  if (!queues.includes(queue))
    throw new CommandError(
      `no queue ${JSON.stringify(queue)} in ${transport.path}${queues.length ? ` (queues: ${queues.join(', ')})` : ''}`,
    );
}
