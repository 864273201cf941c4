/**
 * The background checkpointer keeps the WAL bounded while a writer never pauses: passive
 * checkpoints alone never let the WAL start over, so it would grow with every commit. It goes on
 * beside a transport's writer thread, which runs no checkpoints of its own.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PublishItem } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import { CHECKPOINTS, startCheckpointer } from '../src/checkpointer.js';
import { openDatabase } from '../src/schema.js';

function walBytes(path: string): number {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}

test('a WAL that grows fast is started over right after each passive checkpoint, long before its size limit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-checkpointer-'));
  const path = join(dir, 'courier.db');
  const db = openDatabase({ path, synchronous: 'NORMAL', busyTimeoutMs: 20 });
  // The size limit is far away (256 MiB); only the growth rule can keep the WAL small.
  const checkpointer = startCheckpointer(path, {
    ...CHECKPOINTS,
    intervalMs: 50,
    restartBytes: 256 * 1024 * 1024,
    busyBytes: 1024 * 1024,
  });
  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const { written, largest } = await busyWriter(db, path, 100 * 1024 * 1024);
    assert.ok(written >= 100 * 1024 * 1024, `wrote only ${written} bytes in 20 s`);
    // Without the rule the WAL would hold all 100 MB; with it, a few ticks' worth at most.
    assert.ok(largest < 32 * 1024 * 1024, `the WAL reached ${largest} bytes`);
  } finally {
    await checkpointer.stop();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A writer that never pauses: commits 100 KB at a time with a timer turn between (short gaps) until
 * `total` bytes went in (or 20 s passed). `atHalf`: the largest WAL seen in the first half.
 */
async function busyWriter(
  db: ReturnType<typeof openDatabase>,
  path: string,
  total: number,
): Promise<{ written: number; largest: number; atHalf: number }> {
  db.exec('CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, body BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO filler (body) VALUES (?)');
  const remove = db.prepare('DELETE FROM filler WHERE id <= ?');
  const body = Buffer.alloc(2_000, 7);
  const commit = db.transaction((from: number) => {
    for (let i = 0; i < 50; i++) insert.run(body);
    remove.run(from);
  });
  let written = 0;
  let largest = 0;
  let atHalf = 0;
  let id = 0;
  const deadline = Date.now() + 20_000;
  while (written < total && Date.now() < deadline) {
    try {
      commit(id);
      id += 50;
      written += 50 * body.length;
    } catch (error) {
      // A RESTART holds the write lock for a moment; a busy writer retries, as the transport does.
      if ((error as { code?: string }).code !== 'SQLITE_BUSY') throw error;
    }
    largest = Math.max(largest, walBytes(path));
    if (written <= total / 2) atHalf = largest;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return { written, largest, atHalf };
}

test('a writer that never pauses: the WAL stays near its restart size instead of growing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-checkpointer-'));
  const path = join(dir, 'courier.db');
  const db = openDatabase({ path, synchronous: 'NORMAL', busyTimeoutMs: 20 });
  // Small thresholds so the test writes tens of megabytes, not gigabytes: RESTART past 2 MiB (and
  // never for growth alone: the next test covers that).
  const checkpointer = startCheckpointer(path, {
    intervalMs: 10,
    restartBytes: 2 * 1024 * 1024,
    busyBytes: Number.POSITIVE_INFINITY,
    restartWaitMs: 100,
  });
  try {
    // The worker takes a moment to start (a thread, better-sqlite3, a connection).
    await new Promise((resolve) => setTimeout(resolve, 500));
    // ~100 MB of pages.
    const { written, largest, atHalf } = await busyWriter(db, path, 100 * 1024 * 1024);
    assert.ok(written >= 100 * 1024 * 1024, `wrote only ${written} bytes in 20 s`);
    // Without the RESTART the WAL holds every page written since the start (over 100 MB here), and
    // grows through the second half as through the first. With it, the file stops growing: what the
    // second 50 MB of writes find is the space the first ones left.
    assert.ok(largest < 32 * 1024 * 1024, `the WAL reached ${largest} bytes`);
    assert.ok(
      largest - atHalf < 4 * 1024 * 1024,
      `the WAL grew from ${atHalf} to ${largest} bytes in the second half`,
    );
  } finally {
    await checkpointer.stop();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with a writer thread, checkpoints go on: pages reach the database file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-checkpointer-'));
  const path = join(dir, 'courier.db');
  const transport = sqlite({ path, writerThread: 'always' });
  try {
    await transport.declare({ queues: [{ name: 'q' }], bindings: [] });
    const before = statSync(path).size;
    const body = Buffer.alloc(1_000, 7);
    const items = Array.from({ length: 2_000 }, (_, n) =>
      testItem(`00000000-0000-7000-8000-${String(n).padStart(12, '0')}`, body),
    );
    await transport.publish(items);
    // Two megabytes went to the WAL; the checkpoint thread's passive checkpoint (every 250 ms) copies them.
    const deadline = Date.now() + 5_000;
    while (statSync(path).size < before + 1_000_000 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(
      statSync(path).size >= before + 1_000_000,
      `the database file is ${statSync(path).size} bytes (was ${before}): nothing was checkpointed`,
    );
  } finally {
    await transport.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

function testItem(id: string, body: Uint8Array): PublishItem {
  return {
    to: { kind: 'queue', queue: 'q' },
    envelope: { id, type: 'test.filler', headers: { 'ce-id': id, 'ce-type': 'test.filler' }, body },
  };
}
