import type { Destination, Envelope, PublishItem, SagaStore } from '@courier/core';
import type { SqliteDatabase } from './schema.js';

/** The transport's group-committed saga writes (they run where its other writes run, maybe on its writer thread). */
export interface SagaWrites {
  save(saga: string, key: string, stateJson: string, expectedVersion: number): Promise<boolean>;
  remove(saga: string, key: string, expectedVersion: number): Promise<boolean>;
}

/**
 * Saga state in the broker's file (`courier_saga_state`), with a version column for optimistic
 * concurrency. The async methods share the broker's group commits; `saveIn`/`removeIn` run inside a
 * transaction the caller holds (`ctx.transact`), so state, output and ack commit together.
 */
export class SqliteSagaStore implements SagaStore {
  private readonly s;

  constructor(
    db: SqliteDatabase,
    /** Absent where the store only runs inside transactions (the writer thread). */
    private readonly writes?: SagaWrites,
  ) {
    this.s = {
      load: db.prepare(`SELECT state, version FROM courier_saga_state WHERE saga = ? AND key = ?`),
      insert: db.prepare(
        `INSERT INTO courier_saga_state (saga, key, state, version, updated_at) VALUES (?, ?, ?, 1, ?) ON CONFLICT DO NOTHING`,
      ),
      update: db.prepare(
        `UPDATE courier_saga_state SET state = ?, version = version + 1, updated_at = ? WHERE saga = ? AND key = ? AND version = ?`,
      ),
      remove: db.prepare(`DELETE FROM courier_saga_state WHERE saga = ? AND key = ? AND version = ?`),
    };
  }

  async load(saga: string, key: string) {
    const row = this.s.load.get(saga, key) as { state: string; version: number } | undefined;
    return row && { state: JSON.parse(row.state) as unknown, version: row.version };
  }

  save(saga: string, key: string, state: unknown, expectedVersion: number): Promise<boolean> {
    return this.asyncWrites().save(saga, key, JSON.stringify(state), expectedVersion);
  }

  remove(saga: string, key: string, expectedVersion: number): Promise<boolean> {
    return this.asyncWrites().remove(saga, key, expectedVersion);
  }

  private asyncWrites(): SagaWrites {
    if (!this.writes) throw new Error('this saga store only writes inside a transaction (saveIn, removeIn)');
    return this.writes;
  }

  /** Synchronous save for use inside a transaction the caller holds. */
  saveIn(saga: string, key: string, state: unknown, expectedVersion: number, now = Date.now()): boolean {
    return this.saveJsonIn(saga, key, JSON.stringify(state), expectedVersion, now);
  }

  /** `saveIn` with the state already serialized. */
  saveJsonIn(saga: string, key: string, json: string, expectedVersion: number, now: number): boolean {
    if (expectedVersion === 0) return this.s.insert.run(saga, key, json, now).changes === 1;
    return this.s.update.run(json, now, saga, key, expectedVersion).changes === 1;
  }

  removeIn(saga: string, key: string, expectedVersion: number): boolean {
    return this.s.remove.run(saga, key, expectedVersion).changes === 1;
  }
}

/** A message waiting in the outbox, in the order it was stored. */
export interface OutboxEntry {
  readonly seq: number;
  readonly item: PublishItem;
}

/**
 * The transactional outbox in an application's SQLite file (`courier_outbox`): `add` runs inside the
 * application's own transaction; a relay reads entries in order, publishes them to any transport and
 * removes them. Entries keep their message ids, so a relay crash between publish and remove is
 * caught downstream by dedup or the inbox.
 */
export class SqliteOutbox {
  private readonly s;

  constructor(private readonly db: SqliteDatabase) {
    this.s = {
      add: db.prepare(
        `INSERT INTO courier_outbox (destination, id, type, key, priority, deliver_at, expires_at, dedup_id, headers, body, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      next: db.prepare(`SELECT * FROM courier_outbox WHERE seq > ? ORDER BY seq LIMIT ?`),
      remove: db.prepare(`DELETE FROM courier_outbox WHERE seq = ?`),
      count: db.prepare(`SELECT count(*) FROM courier_outbox`).pluck(),
    };
  }

  /** Stores `items`; call inside the application's transaction (`db.transaction(() => ...)`). */
  add(items: readonly PublishItem[], now = Date.now()): void {
    for (const { envelope: e, to } of items) {
      this.s.add.run(
        to.kind === 'topic' ? '' : to.queue,
        e.id,
        e.type,
        e.key ?? null,
        e.priority ?? 0,
        e.deliverAt ?? null,
        e.expiresAt ?? null,
        e.dedupId ?? null,
        JSON.stringify(e.headers),
        e.body,
        now,
      );
    }
  }

  /** Up to `limit` entries after `afterSeq`, oldest first. */
  next(limit: number, afterSeq = 0): OutboxEntry[] {
    return (this.s.next.all(afterSeq, limit) as OutboxRow[]).map((row) => ({
      seq: row.seq,
      item: toItem(row),
    }));
  }

  /** Removes published entries. */
  remove(seqs: readonly number[]): void {
    this.db.transaction(() => {
      for (const seq of seqs) this.s.remove.run(seq);
    })();
  }

  count(): number {
    return this.s.count.get() as number;
  }
}

interface OutboxRow {
  seq: number;
  destination: string;
  id: string;
  type: string;
  key: string | null;
  priority: number;
  deliver_at: number | null;
  expires_at: number | null;
  dedup_id: string | null;
  headers: string;
  body: Buffer;
}

function toItem(row: OutboxRow): PublishItem {
  const envelope: Envelope = {
    id: row.id,
    type: row.type,
    headers: JSON.parse(row.headers) as Record<string, string>,
    body: new Uint8Array(row.body),
    key: row.key ?? undefined,
    priority: row.priority || undefined,
    deliverAt: row.deliver_at ?? undefined,
    expiresAt: row.expires_at ?? undefined,
    dedupId: row.dedup_id ?? undefined,
  };
  const to: Destination =
    row.destination === '' ? { kind: 'topic' } : { kind: 'queue', queue: row.destination };
  return { envelope, to };
}
