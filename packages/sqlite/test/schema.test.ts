/**
 * The file itself (issue 3, item 1): WAL and versioned migrations on a new file, reopening, the
 * refusal of files that are not Courier's or of a newer schema (left byte-identical), the durability
 * class per `synchronous`, and the default path.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigurationError } from '@courier/core';
import type { SqliteTransport } from '@courier/sqlite';
import { schemaVersion, sqlite } from '@courier/sqlite';
import Database from 'better-sqlite3';
import { testItem } from './items.js';

async function inTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'courier-'));
  try {
    await run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The file's bytes (as a hash) and every file next to it: what "left unmodified" compares. */
function snapshot(dir: string, file: string): { sha256: string; files: string[] } {
  return {
    sha256: createHash('sha256')
      .update(readFileSync(join(dir, file)))
      .digest('hex'),
    files: readdirSync(dir).sort(),
  };
}

function meta(transport: SqliteTransport, name: string): unknown {
  return transport.db.prepare('SELECT value FROM courier_meta WHERE name = ?').pluck().get(name);
}

test('a new file gets WAL mode, 8 KiB pages, in-memory statement journals and the current schema version', () =>
  inTempDir(async (dir) => {
    const transport = sqlite({ path: join(dir, 'courier.db') });
    try {
      await transport.start();
      assert.equal(schemaVersion, 7);
      assert.equal(transport.db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(transport.db.pragma('page_size', { simple: true }), 8192);
      // 2 = MEMORY: the journals of multi-row statements never spill to a temporary file.
      assert.equal(transport.db.pragma('temp_store', { simple: true }), 2);
      assert.equal(meta(transport, 'schema_version'), String(schemaVersion));
      assert.equal(meta(transport, 'owner'), 'courier');
      const tables = transport.db
        .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
        .pluck()
        .all();
      for (const table of [
        'courier_meta',
        'courier_queues',
        'courier_bindings',
        'courier_messages',
        'courier_saga_state',
        'courier_outbox',
        'courier_counts',
        'courier_ranges',
        'courier_claims',
      ]) {
        assert.ok(tables.includes(table), `has ${table}`);
      }
    } finally {
      await transport.close();
    }
  }));

test('a file made with another page size keeps it, and works', () =>
  inTempDir(async (dir) => {
    const path = join(dir, 'courier.db');
    // As a Courier version before 8 KiB pages made it: 4 KiB pages, already in WAL mode.
    const old = new Database(path);
    old.pragma('page_size = 4096');
    old.pragma('journal_mode = WAL');
    old.close();
    const transport = sqlite({ path });
    try {
      await transport.start();
      assert.equal(transport.db.pragma('page_size', { simple: true }), 4096);
      await transport.declare({ queues: [{ name: 'q' }], bindings: [] });
      await transport.publish([testItem(1), testItem(2)]);
      assert.equal((await transport.stats('q')).depth, 2);
    } finally {
      await transport.close();
    }
  }));

test('reopening a Courier file keeps its version and its data, also from a second connection', () =>
  inTempDir(async (dir) => {
    const path = join(dir, 'courier.db');
    const first = sqlite({ path });
    await first.start();
    await first.declare({
      queues: [{ name: 'orders' }],
      bindings: [{ queue: 'orders', pattern: 'orders.*' }],
    });
    // A second process opening the file while the first still has it.
    const second = sqlite({ path });
    await second.start();
    assert.equal(meta(second, 'schema_version'), String(schemaVersion));
    await second.close();
    await first.close();

    const again = sqlite({ path });
    try {
      await again.start();
      assert.equal(meta(again, 'schema_version'), String(schemaVersion));
      assert.equal(again.db.pragma('journal_mode', { simple: true }), 'wal');
      const stats = await again.stats('orders');
      assert.equal(stats.depth, 0);
      assert.deepEqual(
        again.db.prepare('SELECT pattern FROM courier_bindings').pluck().all(),
        ['orders.*'],
        'the binding survived',
      );
    } finally {
      await again.close();
    }
  }));

test('a SQLite file with other tables and no Courier tables is refused and left byte-identical', () =>
  inTempDir(async (dir) => {
    const path = join(dir, 'app.db');
    const app = new Database(path);
    app.exec(
      `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada')`,
    );
    app.close();
    const before = snapshot(dir, 'app.db');

    const transport = sqlite({ path });
    await assert.rejects(transport.start(), (error: Error) => {
      assert.ok(error instanceof ConfigurationError, `a ConfigurationError, got ${error.name}`);
      assert.match(error.message, /not a Courier database/);
      assert.match(error.message, /users/, 'names what it found');
      assert.ok(error.message.includes(path), 'names the file');
      return true;
    });
    await transport.close();
    assert.deepEqual(snapshot(dir, 'app.db'), before);
  }));

test('adoptExisting adds Courier to an application database and keeps its tables', () =>
  inTempDir(async (dir) => {
    const path = join(dir, 'app.db');
    const app = new Database(path);
    app.exec(
      `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada')`,
    );
    app.close();
    const transport = sqlite({ path, adoptExisting: true });
    try {
      await transport.start();
      assert.equal(meta(transport, 'schema_version'), String(schemaVersion));
      assert.equal(transport.db.prepare('SELECT name FROM users').pluck().get(), 'ada');
    } finally {
      await transport.close();
    }
  }));

test('a Courier file of a newer schema version (99) is refused and left byte-identical', () =>
  inTempDir(async (dir) => {
    const path = join(dir, 'courier.db');
    const creator = sqlite({ path });
    await creator.start();
    await creator.close();
    const db = new Database(path);
    db.prepare(`UPDATE courier_meta SET value = '99' WHERE name = 'schema_version'`).run();
    db.close();
    const before = snapshot(dir, 'courier.db');

    const transport = sqlite({ path });
    await assert.rejects(transport.start(), (error: Error) => {
      assert.ok(error instanceof ConfigurationError, `a ConfigurationError, got ${error.name}`);
      assert.match(error.message, /schema version 99/);
      assert.match(error.message, /newer/);
      return true;
    });
    await transport.close();
    assert.deepEqual(snapshot(dir, 'courier.db'), before);
  }));

test('a file that is not SQLite at all is refused and left byte-identical', () =>
  inTempDir(async (dir) => {
    const path = join(dir, 'notes.db');
    writeFileSync(path, 'these are my notes, not a database\n'.repeat(200));
    const before = snapshot(dir, 'notes.db');
    const transport = sqlite({ path });
    await assert.rejects(transport.start(), /is not an SQLite database: refusing to use it/);
    await transport.close();
    assert.deepEqual(snapshot(dir, 'notes.db'), before);
  }));

test("synchronous 'FULL' declares durability fsync; the default NORMAL declares process-crash", () =>
  inTempDir(async (dir) => {
    const full = sqlite({ path: join(dir, 'full.db'), synchronous: 'FULL' });
    const normal = sqlite({ path: join(dir, 'normal.db') });
    try {
      assert.equal(full.durability, 'fsync');
      assert.equal(normal.durability, 'process-crash');
      await full.start();
      await normal.start();
      // PRAGMA synchronous: 1 = NORMAL, 2 = FULL.
      assert.equal(full.db.pragma('synchronous', { simple: true }), 2);
      assert.equal(normal.db.pragma('synchronous', { simple: true }), 1);
      assert.throws(() => sqlite({ synchronous: 'OFF' as never }), ConfigurationError);
    } finally {
      await full.close();
      await normal.close();
    }
  }));

test('the page cache is 4 MiB unless cacheSizeMb says otherwise; a bad size or writerThread is refused', () =>
  inTempDir(async (dir) => {
    const small = sqlite({ path: join(dir, 'small.db') });
    const large = sqlite({ path: join(dir, 'large.db'), cacheSizeMb: 32 });
    try {
      await small.start();
      await large.start();
      // Negative cache_size is KiB.
      assert.equal(small.db.pragma('cache_size', { simple: true }), -4096);
      assert.equal(large.db.pragma('cache_size', { simple: true }), -32768);
      assert.throws(() => sqlite({ cacheSizeMb: -1 }), ConfigurationError);
      assert.throws(() => sqlite({ cacheSizeMb: Number.NaN }), ConfigurationError);
      assert.throws(() => sqlite({ writerThread: true as never }), ConfigurationError);
      assert.throws(() => sqlite({ writerThread: 'sometimes' as never }), ConfigurationError);
    } finally {
      await small.close();
      await large.close();
    }
  }));

test('the default path ./data/courier.db is created, folder included, in the working directory', () =>
  inTempDir(async (dir) => {
    const cwd = process.cwd();
    process.chdir(dir);
    const transport = sqlite();
    try {
      assert.equal(transport.path, './data/courier.db');
      assert.equal(existsSync(join(dir, 'data')), false);
      await transport.start();
      assert.ok(existsSync(join(dir, 'data', 'courier.db')), 'data/courier.db created');
      assert.equal(meta(transport, 'schema_version'), String(schemaVersion));
    } finally {
      await transport.close();
      process.chdir(cwd);
    }
  }));
