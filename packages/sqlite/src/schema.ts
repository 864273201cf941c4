import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigurationError, TransportError } from '@courier/core';
import Database from 'better-sqlite3';
import { PARKING_FIRST, RANGE } from './ranges.js';

/** The better-sqlite3 connection type, for `transport.db` and `ctx.transact`. */
export type SqliteDatabase = Database.Database;

/** `NORMAL` survives a process crash (WAL); `FULL` also survives power loss (fsync at every commit). */
export type Synchronous = 'NORMAL' | 'FULL';

/** A migration: SQL to run, or a function for one that has to look at the file first. */
type Migration = string | ((db: SqliteDatabase) => void);

/**
 * Schema migrations, oldest first. The database's version is the number of migrations applied; a
 * file with a newer version than this code knows is refused and never touched.
 */
const migrations: readonly Migration[] = [
  `
  CREATE TABLE courier_queues (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    temporary INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE courier_bindings (
    queue_id INTEGER NOT NULL,
    pattern TEXT NOT NULL,
    headers TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (queue_id, pattern, headers)
  ) WITHOUT ROWID;
  -- One row per delivery: the payload lives in the row the hot path reads and deletes.
  -- state: 0 ready, 1 scheduled (delay or retry backoff), 2 leased, 3 waiting behind its key.
  CREATE TABLE courier_messages (
    seq INTEGER PRIMARY KEY,
    queue_id INTEGER NOT NULL,
    state INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    lease_token INTEGER,
    lease_until INTEGER,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT,
    expires_at INTEGER,
    dedup_id TEXT,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    enqueued_at INTEGER NOT NULL
  );
  -- Partial indexes: each state's index holds only its rows, so a million delayed rows do not
  -- slow the claim of ready ones.
  CREATE INDEX courier_messages_ready ON courier_messages (queue_id, priority DESC, seq) WHERE state = 0;
  CREATE INDEX courier_messages_scheduled ON courier_messages (queue_id, available_at) WHERE state = 1;
  CREATE INDEX courier_messages_leased ON courier_messages (queue_id, lease_until) WHERE state = 2;
  CREATE INDEX courier_messages_waiting ON courier_messages (queue_id, key, seq) WHERE state = 3;
  -- The holder of each busy key (per queue); parked_by names the dead letter that parks it.
  CREATE TABLE courier_keys (
    queue_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    holder_seq INTEGER,
    parked_by INTEGER,
    PRIMARY KEY (queue_id, key)
  ) WITHOUT ROWID;
  -- Only messages published with a dedupId get a row here.
  CREATE TABLE courier_dedup (
    queue_id INTEGER NOT NULL,
    dedup_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue_id, dedup_id)
  ) WITHOUT ROWID;
  CREATE INDEX courier_dedup_expiry ON courier_dedup (expires_at);
  CREATE TABLE courier_dead_letters (
    id INTEGER PRIMARY KEY,
    queue_id INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT,
    priority INTEGER NOT NULL,
    expires_at INTEGER,
    dedup_id TEXT,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    reason TEXT NOT NULL,
    error_name TEXT,
    error_code TEXT,
    error_message TEXT,
    attempts INTEGER NOT NULL,
    first_failed_at INTEGER,
    failed_at INTEGER NOT NULL,
    parks_key INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX courier_dead_letters_queue ON courier_dead_letters (queue_id, id);
  CREATE TABLE courier_inbox (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
  ) WITHOUT ROWID;
  CREATE INDEX courier_inbox_expiry ON courier_inbox (expires_at);
  `,
  // 2: stores for long-running processes: saga state (optimistic concurrency) and the outbox.
  `
  CREATE TABLE courier_saga_state (
    saga TEXT NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (saga, key)
  ) WITHOUT ROWID;
  -- Messages an application stored in its own transaction; a relay publishes them in seq order.
  CREATE TABLE courier_outbox (
    seq INTEGER PRIMARY KEY,
    destination TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT,
    priority INTEGER NOT NULL,
    deliver_at INTEGER,
    expires_at INTEGER,
    dedup_id TEXT,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at INTEGER NOT NULL
  );
  `,
  // 3: message and dead-letter rows may hold their headers compactly (queues.ts, storedHeaders),
  // which code of version 2 would misread; the version alone keeps that code away from the file.
  `SELECT 1;`,
  // 4: counts per queue and state (4 for dead letters), kept with every write, so stats() reads
  // them instead of counting rows (a count(*) over a million delayed rows took 45 ms).
  `
  CREATE TABLE courier_counts (
    queue_id INTEGER NOT NULL,
    state INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (queue_id, state)
  ) WITHOUT ROWID;
  INSERT INTO courier_counts (queue_id, state, n)
    SELECT queue_id, state, count(*) FROM courier_messages GROUP BY queue_id, state;
  INSERT INTO courier_counts (queue_id, state, n)
    SELECT queue_id, 4, count(*) FROM courier_dead_letters GROUP BY queue_id;
  `,
  // 5: a claim leases a run of ready rows with one lease row instead of rewriting every row it
  // takes (queues.ts, "Leases"). Rows stay ready; the claim after it starts past the last seq of
  // the live leases of that queue and priority. A file with leases of this kind must not be read by
  // code of version 4.
  `
  CREATE TABLE courier_leases (
    queue_id INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    token INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    remaining INTEGER NOT NULL,
    PRIMARY KEY (queue_id, priority, token)
  ) WITHOUT ROWID;
  `,
  // 6: headers may be stored as name/value pairs instead of JSON (rows.ts, storedHeaders), which
  // code of version 5 would read as no headers at all; the version alone keeps that code away.
  `SELECT 1;`,
  // 7: seq ranges (ranges.ts).
  toSeqRanges,
];

/**
 * Schema 7: ready rows move to a seq range per queue and priority (in their old order), the others
 * to the parking range; the ready index goes. Live claims become ready rows again with their attempt
 * counted, as their expiry would have done (the rows are delivered again; a process of the old
 * version that still holds them finds `courier_leases` gone, so its settles fail instead of
 * touching the moved rows). Key holders keep their old seqs, which only name the row that took the
 * key (queues.ts, releaseKey).
 */
function toSeqRanges(db: SqliteDatabase): void {
  const last = db.prepare('SELECT max(seq) FROM courier_messages').pluck().get() as number | null;
  // Old seqs are below the first range: moved rows never land on a row not yet moved.
  if (last !== null && last >= RANGE)
    throw new TransportError(`cannot migrate: a message row has seq ${last}, beyond the old layout`);
  db.exec(`
    CREATE TABLE courier_ranges (
      slot INTEGER PRIMARY KEY,
      queue_id INTEGER NOT NULL,
      priority INTEGER NOT NULL,
      generation INTEGER NOT NULL,
      UNIQUE (queue_id, priority, generation)
    );
    -- One row per range a claim took rows from: its stretch of seqs, its end, rows not yet settled.
    CREATE TABLE courier_claims (
      slot INTEGER NOT NULL,
      token INTEGER NOT NULL,
      queue_id INTEGER NOT NULL,
      first_seq INTEGER NOT NULL,
      last_seq INTEGER NOT NULL,
      lease_until INTEGER NOT NULL,
      remaining INTEGER NOT NULL,
      PRIMARY KEY (slot, token)
    ) WITHOUT ROWID;
    UPDATE courier_messages SET attempt = attempt + 1
     WHERE state = 0 AND EXISTS (
       SELECT 1 FROM courier_leases l WHERE l.queue_id = courier_messages.queue_id
         AND l.priority = courier_messages.priority AND courier_messages.seq BETWEEN l.first_seq AND l.last_seq);
    DROP TABLE courier_leases;
    DROP INDEX courier_messages_ready;
    INSERT INTO courier_ranges (slot, queue_id, priority, generation)
      SELECT row_number() OVER (ORDER BY queue_id, priority), queue_id, priority, 1
      FROM (SELECT DISTINCT queue_id, priority FROM courier_messages WHERE state = 0);
    CREATE TEMP TABLE courier_moves (old INTEGER PRIMARY KEY, new INTEGER NOT NULL);
    INSERT INTO courier_moves (old, new)
      SELECT m.seq, r.slot * ${RANGE} + row_number() OVER (PARTITION BY r.slot ORDER BY m.seq)
      FROM courier_messages m JOIN courier_ranges r ON r.queue_id = m.queue_id AND r.priority = m.priority
      WHERE m.state = 0;
    INSERT INTO courier_moves (old, new)
      SELECT seq, ${PARKING_FIRST - 1} + row_number() OVER (ORDER BY seq) FROM courier_messages WHERE state <> 0;
    UPDATE courier_messages SET seq = (SELECT new FROM courier_moves WHERE old = courier_messages.seq);
    DROP TABLE courier_moves;
    DELETE FROM courier_counts;
    INSERT INTO courier_counts (queue_id, state, n)
      SELECT queue_id, state, count(*) FROM courier_messages GROUP BY queue_id, state;
    INSERT INTO courier_counts (queue_id, state, n)
      SELECT queue_id, 4, count(*) FROM courier_dead_letters GROUP BY queue_id;
  `);
}

/** The Courier schema version this code writes and reads (the number of migrations). */
export const schemaVersion = migrations.length;
const marker = 'courier';

/** How `openDatabase` opens a file. */
export interface OpenOptions {
  readonly path: string;
  readonly synchronous: Synchronous;
  /** How long one statement waits for another process's lock, in ms, before SQLITE_BUSY. */
  readonly busyTimeoutMs: number;
  /** Add Courier's tables to an existing application database instead of refusing it. */
  readonly adoptExisting?: boolean;
  /** SQLite's page cache for this connection, in MiB (default 4). */
  readonly cacheSizeMb?: number;
}

/** The page cache size when none is given: draining a million-message backlog measured the same at 4 and 16 MiB, 30 MB less RSS. */
export const DEFAULT_CACHE_MB = 4;

/** The page size of files Courier creates, in bytes (SQLite's default is 4096). */
export const PAGE_SIZE = 8192;

/**
 * Opens (creating if needed) a Courier database: WAL, the chosen `synchronous`, migrations applied
 * in one transaction. Refuses a file that holds other tables but no Courier marker, or a newer schema.
 */
export function openDatabase(options: OpenOptions): SqliteDatabase {
  if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
  let db: SqliteDatabase;
  try {
    db = new Database(options.path);
  } catch (error) {
    throw new TransportError(`cannot open SQLite file '${options.path}': ${(error as Error).message}`, {
      cause: error,
    });
  }
  try {
    // Opening and migrating wait longer for other processes than the hot path does: they run once.
    db.pragma(`busy_timeout = ${Math.max(options.busyTimeoutMs, 5_000)}`);
    checkOwnership(db, options.path, options.adoptExisting ?? false);
    // Takes effect only on a new, empty file (an existing one keeps its page size). 8 KiB pages
    // halve the pages a group commit writes and a checkpoint copies for rows of a few hundred bytes:
    // -5 % process CPU for the e2e benchmark against 4 KiB (docs/performance.md).
    db.pragma(`page_size = ${PAGE_SIZE}`);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous}`);
    // Checkpoints run from the idle loop instead of inside a commit on the hot path.
    db.pragma('wal_autocheckpoint = 0');
    // Statement journals in memory: a statement that changes several rows inside a transaction
    // (the 32-row INSERTs of a run of publishes) keeps the pages it touches so it can be undone
    // alone, and past 64 KiB SQLite spills that journal to a temporary file: 850 bytes of file
    // writes per message in the e2e benchmark, for a journal no crash recovery ever reads.
    db.pragma('temp_store = MEMORY');
    // When the WAL starts over, a file that grew under a burst is cut back to this size.
    db.pragma('journal_size_limit = 67108864');
    // Negative: KiB. The hot path touches the ends of a few indexes; a bigger cache only adds RSS.
    db.pragma(`cache_size = ${-Math.round((options.cacheSizeMb ?? DEFAULT_CACHE_MB) * 1024)}`);
    migrate(db, options.path);
    db.pragma(`busy_timeout = ${options.busyTimeoutMs}`);
    return db;
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code === 'SQLITE_NOTADB') {
      throw new ConfigurationError(`'${options.path}' is not an SQLite database: refusing to use it`, {
        cause: error,
      });
    }
    throw error;
  }
}

function checkOwnership(db: SqliteDatabase, path: string, adoptExisting: boolean): void {
  const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[];
  if (tables.length === 0) return;
  const isCourier = tables.includes('courier_meta');
  if (!isCourier) {
    // An application may keep its own tables in the file (exactly-once effects), but only next to ours.
    const foreign = tables.filter((t) => !t.startsWith('courier_'));
    if (foreign.length === tables.length && !adoptExisting) {
      throw new ConfigurationError(
        `'${path}' is not a Courier database (it has tables ${foreign.slice(0, 5).join(', ')} and no courier_meta): refusing to modify it; pass adoptExisting: true to add Courier's tables to it`,
      );
    }
  }
  if (isCourier) {
    const owner = db.prepare(`SELECT value FROM courier_meta WHERE name = 'owner'`).pluck().get();
    if (owner !== marker)
      throw new ConfigurationError(
        `'${path}' has a courier_meta table that is not Courier's: refusing to modify it`,
      );
    const version = Number(
      db.prepare(`SELECT value FROM courier_meta WHERE name = 'schema_version'`).pluck().get(),
    );
    if (version > schemaVersion) {
      throw new ConfigurationError(
        `'${path}' has Courier schema version ${version}, newer than version ${schemaVersion} this code knows: upgrade @courier/sqlite; the file was not modified`,
      );
    }
  }
}

function migrate(db: SqliteDatabase, path: string): void {
  db.transaction(() => {
    db.exec(
      `CREATE TABLE IF NOT EXISTS courier_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`,
    );
    db.prepare(
      `INSERT OR IGNORE INTO courier_meta (name, value) VALUES ('owner', ?), ('schema_version', '0')`,
    ).run(marker);
    const current = Number(
      db.prepare(`SELECT value FROM courier_meta WHERE name = 'schema_version'`).pluck().get(),
    );
    if (current > schemaVersion)
      throw new ConfigurationError(`'${path}' has a newer Courier schema (${current})`);
    for (let version = current; version < schemaVersion; version++) {
      const migration = migrations[version]!;
      if (typeof migration === 'string') db.exec(migration);
      else migration(db);
    }
    db.prepare(`UPDATE courier_meta SET value = ? WHERE name = 'schema_version'`).run(String(schemaVersion));
  }).immediate();
}
