import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { DeadLetter, DeadLetterFilter, DeadLetterPage, DeadLetterStore } from './transport.js';

/**
 * Remembers keys for a while: the idempotent inbox records handled message ids in it, and the core's
 * dedup emulation records which message first used a dedupId. Implementations: in memory (here),
 * SQLite and PostgreSQL (their packages).
 */
export interface InboxStore {
  /** The value stored under `key` in `scope`, if its retention has not run out. */
  get(scope: string, key: string): Promise<string | undefined>;
  /** Stores `value` unless a live value exists; resolves the existing value, or undefined when it stored. */
  putIfAbsent(scope: string, key: string, value: string, retentionMs: number): Promise<string | undefined>;
}

/** An `InboxStore` in process memory. Expired keys are swept in small steps as puts come in, never in one long pause. */
export function memoryInboxStore(clock: Clock = systemClock): InboxStore {
  const scopes = new Map<string, Map<string, { value: string; expiresAt: number }>>();
  let putsSinceSweep = 0;
  // Keys go in in put order, which is expiry order for one retention: stop at the first live key, so
  // a sweep only touches what it removes.
  const sweep = () => {
    const now = clock.now();
    for (const keys of scopes.values()) {
      for (const [key, { expiresAt }] of keys) {
        if (expiresAt > now) break;
        keys.delete(key);
      }
    }
  };
  const get = (scope: string, key: string) => {
    const entry = scopes.get(scope)?.get(key);
    return entry !== undefined && entry.expiresAt > clock.now() ? entry.value : undefined;
  };
  return {
    async get(scope, key) {
      return get(scope, key);
    },
    async putIfAbsent(scope, key, value, retentionMs) {
      const existing = get(scope, key);
      if (existing !== undefined) return existing;
      let keys = scopes.get(scope);
      if (!keys) {
        keys = new Map();
        scopes.set(scope, keys);
      }
      keys.set(key, { value, expiresAt: clock.now() + retentionMs });
      if (++putsSinceSweep >= 1_000) {
        putsSinceSweep = 0;
        sweep();
      }
      return undefined;
    },
  };
}

/** A saga instance's stored state and its version (for optimistic concurrency). */
export interface SagaRecord {
  readonly state: unknown;
  /** 1 after the first save; each save increments it. */
  readonly version: number;
}

/**
 * Saga state per (saga, correlation key), with optimistic concurrency: a save names the version it
 * read, and fails (resolves false) if another save came first. Implementations: in memory (here),
 * SQLite (`@courier/sqlite`), PostgreSQL later.
 */
export interface SagaStore {
  load(saga: string, key: string): Promise<SagaRecord | undefined>;
  /** Saves `state` if the stored version is `expectedVersion` (0: must not exist yet). False on a conflict. */
  save(saga: string, key: string, state: unknown, expectedVersion: number): Promise<boolean>;
  /** Removes the instance if its version is `expectedVersion`. False on a conflict. */
  remove(saga: string, key: string, expectedVersion: number): Promise<boolean>;
}

/** A `SagaStore` in process memory. States are copied through JSON, as a durable store would. */
export function memorySagaStore(): SagaStore {
  const records = new Map<string, { json: string; version: number }>();
  const id = (saga: string, key: string) => `${saga}\u0000${key}`;
  return {
    async load(saga, key) {
      const record = records.get(id(saga, key));
      return record && { state: JSON.parse(record.json), version: record.version };
    },
    async save(saga, key, state, expectedVersion) {
      const current = records.get(id(saga, key))?.version ?? 0;
      if (current !== expectedVersion) return false;
      records.set(id(saga, key), { json: JSON.stringify(state), version: current + 1 });
      return true;
    },
    async remove(saga, key, expectedVersion) {
      if ((records.get(id(saga, key))?.version ?? 0) !== expectedVersion) return false;
      return records.delete(id(saga, key));
    },
  };
}

/** Filters and pages dead letters held in an array in insertion order; shared by in-memory stores. */
export function pageDeadLetters(
  letters: readonly DeadLetter[],
  filter: DeadLetterFilter,
  page: { limit: number; cursor?: string | undefined },
): DeadLetterPage {
  const after = page.cursor === undefined ? -1 : Number(page.cursor);
  const ids = filter.ids ? new Set(filter.ids) : undefined;
  const items: DeadLetter[] = [];
  for (const letter of letters) {
    const seq = Number(letter.deadLetterId);
    if (seq <= after) continue;
    if (ids && !ids.has(letter.deadLetterId)) continue;
    if (filter.type !== undefined && letter.envelope.type !== filter.type) continue;
    if (filter.reason !== undefined && letter.info.reason !== filter.reason) continue;
    if (filter.since !== undefined && letter.info.failedAt < filter.since) continue;
    if (filter.until !== undefined && letter.info.failedAt >= filter.until) continue;
    if (items.length === page.limit) return { items, nextCursor: items.at(-1)!.deadLetterId };
    items.push(letter);
  }
  return { items };
}

/** A `DeadLetterStore` in process memory, for the core's DLQ emulation on transports without one. */
export function memoryDeadLetterStore(): DeadLetterStore {
  const queues = new Map<string, DeadLetter[]>();
  let seq = 0;
  return {
    async add(letter) {
      let list = queues.get(letter.info.queue);
      if (!list) {
        list = [];
        queues.set(letter.info.queue, list);
      }
      list.push({ ...letter, deadLetterId: String(++seq) });
    },
    async list(queue, filter, page) {
      return pageDeadLetters(queues.get(queue) ?? [], filter, page);
    },
    async remove(queue, deadLetterIds) {
      const list = queues.get(queue);
      if (!list) return 0;
      const remove = new Set(deadLetterIds);
      const kept = list.filter((l) => !remove.has(l.deadLetterId));
      queues.set(queue, kept);
      return list.length - kept.length;
    },
    async count(queue) {
      return queues.get(queue)?.length ?? 0;
    },
  };
}
