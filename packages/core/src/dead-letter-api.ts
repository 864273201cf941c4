import type { DeadLetterApi, DeadLetterView } from './bus-types.js';
import type { DeadLetter, DeadLetterFilter, DeadLetterStore, Envelope, Transport } from './transport.js';
import { copyEnvelope } from './wire.js';

/** The dead-letter reason and failure details as headers, for display and export. */
export function deadLetterHeaders(letter: DeadLetter): Record<string, string> {
  const { info } = letter;
  const headers: Record<string, string> = {
    'courier-dlq-reason': info.reason,
    'courier-dlq-queue': info.queue,
    'courier-dlq-attempts': String(info.attempts),
    'courier-dlq-failed-at': new Date(info.failedAt).toISOString(),
  };
  if (info.errorName !== undefined) headers['courier-dlq-error-name'] = info.errorName;
  if (info.errorCode !== undefined) headers['courier-dlq-error-code'] = info.errorCode;
  if (info.errorMessage !== undefined) headers['courier-dlq-error-message'] = info.errorMessage;
  if (info.firstFailedAt !== undefined)
    headers['courier-dlq-first-failed-at'] = new Date(info.firstFailedAt).toISOString();
  return headers;
}

const PAGE = 100;

/**
 * List, replay and purge over a `DeadLetterStore` (DESIGN.md §2.7). Replay publishes each letter
 * straight to its original queue, then removes it: a crash in between replays it twice (same id,
 * caught by an inbox), never loses it.
 */
export function createDeadLetterApi(transport: Transport, store: DeadLetterStore): DeadLetterApi {
  const each = async (
    queue: string,
    filter: DeadLetterFilter,
    visit: (letters: readonly DeadLetter[]) => Promise<void>,
  ) => {
    let cursor: string | undefined;
    do {
      const page = await store.list(queue, filter, { limit: PAGE, cursor });
      if (page.items.length > 0) await visit(page.items);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
  };
  return {
    async list(queue, options = {}) {
      const { limit = PAGE, cursor, ...filter } = options;
      const page = await store.list(queue, filter, { limit, cursor });
      const items: DeadLetterView[] = page.items.map((letter) => ({
        ...letter,
        headers: deadLetterHeaders(letter),
      }));
      return { items, nextCursor: page.nextCursor };
    },
    async replay(queue, filter = {}) {
      let replayed = 0;
      await each(queue, filter, async (letters) => {
        const now = transport.now();
        await transport.publish(
          letters.map((letter) => ({
            envelope: clearPastExpiry(letter.envelope, now),
            to: { kind: 'queue', queue: letter.info.queue },
            bypassDedup: true,
          })),
        );
        replayed += await store.remove(
          queue,
          letters.map((l) => l.deadLetterId),
        );
      });
      return replayed;
    },
    async purge(queue, filter = {}) {
      const ids: string[] = [];
      await each(queue, filter, async (letters) => {
        for (const letter of letters) ids.push(letter.deadLetterId);
      });
      return ids.length === 0 ? 0 : store.remove(queue, ids);
    },
  };
}

/** A replayed message whose time ran out must not expire again at once (DESIGN.md §2.7). */
function clearPastExpiry(envelope: Envelope, now: number): Envelope {
  if (envelope.expiresAt === undefined || envelope.expiresAt > now) return envelope;
  const { 'ce-expiresat': _cleared, ...headers } = envelope.headers;
  return copyEnvelope(envelope, { expiresAt: undefined, headers });
}
