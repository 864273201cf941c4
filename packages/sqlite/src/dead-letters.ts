/** Reading a queue's dead letters a page at a time (`transport.deadLetters.list`). */
import type { DeadLetter, DeadLetterFilter, DeadLetterPage } from '@courier/core';
import { parseHeaders } from './rows.js';
import type { SqliteDatabase } from './schema.js';

/** One page of `queueId`'s dead letters matching `filter`, oldest first; the cursor is the last id. */
export function listDeadLetters(
  db: SqliteDatabase,
  queueId: number,
  name: string,
  filter: DeadLetterFilter,
  page: { limit: number; cursor?: string | undefined },
): DeadLetterPage {
  const where = ['queue_id = ?', 'id > ?'];
  const params: unknown[] = [queueId, page.cursor === undefined ? 0 : Number(page.cursor)];
  const add = (condition: string, value: unknown) => {
    where.push(condition);
    params.push(value);
  };
  if (filter.type !== undefined) add('type = ?', filter.type);
  if (filter.reason !== undefined) add('reason = ?', filter.reason);
  if (filter.since !== undefined) add('failed_at >= ?', filter.since);
  if (filter.until !== undefined) add('failed_at < ?', filter.until);
  if (filter.ids !== undefined) {
    where.push(`id IN (${filter.ids.map(() => '?').join(',') || 'NULL'})`);
    params.push(...filter.ids.map(Number));
  }
  const rows = db
    .prepare(`SELECT * FROM courier_dead_letters WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`)
    .all(...params, page.limit + 1) as DeadLetterRow[];
  const more = rows.length > page.limit;
  const items = rows.slice(0, page.limit).map((row) => toDeadLetter(row, name));
  return { items, nextCursor: more ? items.at(-1)!.deadLetterId : undefined };
}

/** The message columns a dead letter keeps from its row in `courier_messages` (SQL names). */
export interface MessageColumns {
  type: string;
  key: string | null;
  priority: number;
  expires_at: number | null;
  dedup_id: string | null;
  headers: string;
  body: string | Buffer;
}

interface DeadLetterRow extends MessageColumns {
  id: number;
  message_id: string;
  reason: string;
  error_name: string | null;
  error_code: string | null;
  error_message: string | null;
  attempts: number;
  first_failed_at: number | null;
  failed_at: number;
  parks_key: number;
}

function toDeadLetter(row: DeadLetterRow, queue: string): DeadLetter {
  return {
    deadLetterId: String(row.id),
    envelope: {
      id: row.message_id,
      type: row.type,
      headers: parseHeaders(row.headers, row.message_id, row.type),
      ...bodyOf(row.body),
      key: row.key ?? undefined,
      priority: row.priority || undefined,
      expiresAt: row.expires_at ?? undefined,
      dedupId: row.dedup_id ?? undefined,
    },
    info: {
      reason: row.reason,
      errorName: row.error_name ?? undefined,
      errorCode: row.error_code ?? undefined,
      errorMessage: row.error_message ?? undefined,
      attempts: row.attempts,
      queue,
      firstFailedAt: row.first_failed_at ?? undefined,
      failedAt: row.failed_at,
      parkKey: row.parks_key === 1,
    },
  };
}

/** An envelope's `body` (and `bodyText`) from a stored body: TEXT for JSON Courier wrote, else bytes. */
function bodyOf(stored: string | Buffer): { body: Uint8Array; bodyText?: string } {
  if (typeof stored === 'string') return { body: Buffer.from(stored, 'utf8'), bodyText: stored };
  return { body: stored };
}
