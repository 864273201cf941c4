/**
 * Runs of publishes share INSERT statements (insert-runs.ts): every row goes in once, whole and in
 * the order published, whatever the run's length, with keyed rows and other commands between them,
 * and nothing of a run that rolled back reaches a later transaction.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PublishItem } from '@courier/core';
import { type Batch, BatchRunner, type Command, Do } from '../src/batch.js';
import { SqliteQueues } from '../src/queues.js';
import { Item, toStoredItem } from '../src/rows.js';
import { openDatabase, type SqliteDatabase } from '../src/schema.js';
import { SqliteSagaStore } from '../src/stores.js';
import { testItem } from './items.js';

function withRunner(run: (runner: BatchRunner, db: SqliteDatabase) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'courier-runs-'));
  const db = openDatabase({ path: join(dir, 'courier.db'), synchronous: 'NORMAL', busyTimeoutMs: 20 });
  try {
    const runner = new BatchRunner(db, new SqliteQueues(db, 60_000, Date.now), new SqliteSagaStore(db));
    const declared = runner.run({
      commands: [[Do.DECLARE, { queues: [{ name: 'q' }, { name: 'other' }], bindings: [] }]],
      claims: [],
    });
    assert.equal(declared.kind, 'done');
    run(runner, db);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const one = (item: PublishItem): Command => toStoredItem(item);
const keyed = (n: number): PublishItem => {
  const item = testItem(n);
  return { ...item, envelope: { ...item.envelope, key: `k${n % 3}` } };
};

/**
 * Every row of queue 'q' in seq order: its id and key, and whether every other column holds what a
 * row inserted alone holds (the item's type, headers and body; ready, or waiting behind its key;
 * priority 0, no expiry or dedup).
 */
function rows(db: SqliteDatabase): { id: string; key: string | null; waiting: boolean; whole: boolean }[] {
  const all = db
    .prepare(
      `SELECT m.* FROM courier_messages m JOIN courier_queues q ON q.id = m.queue_id
       WHERE q.name = 'q' ORDER BY m.seq`,
    )
    .all() as Record<string, unknown>[];
  return all.map((r) => {
    const n = Number(String(r.id).slice(-12));
    const expected = toStoredItem(testItem(n));
    const whole =
      r.type === expected[Item.TYPE] &&
      r.headers === expected[Item.HEADERS] &&
      r.body === expected[Item.BODY] &&
      (r.state === 0 || (r.key !== null && r.state === 3)) &&
      r.priority === 0 &&
      r.attempt === 0 &&
      r.expires_at === null &&
      r.dedup_id === null &&
      r.lease_token === null &&
      typeof r.available_at === 'number' &&
      r.available_at === r.enqueued_at;
    return { id: String(r.id), key: r.key as string | null, waiting: r.state === 3, whole };
  });
}

const idOf = (n: number) => testItem(n).envelope.id;

for (const count of [1, 2, 31, 32, 33, 64, 77, 300]) {
  test(`a run of ${count} single publishes stores each row once, whole, in order`, () =>
    withRunner((runner, db) => {
      const batch: Batch = {
        commands: Array.from({ length: count }, (_, n) => one(testItem(n))),
        claims: [],
      };
      const result = runner.run(batch);
      assert.equal(result.kind, 'done');
      const stored = rows(db);
      assert.deepEqual(
        stored.map((r) => r.id),
        Array.from({ length: count }, (_, n) => idOf(n)),
      );
      assert.ok(
        stored.every((r) => r.whole && r.key === null),
        'stored.every((r) => r.whole && r.key === null)',
      );
    }));
}

test('keyed rows, other queues and other commands inside a run keep the order published', () =>
  withRunner((runner, db) => {
    const commands: Command[] = [];
    for (let n = 0; n < 100; n++) {
      if (n % 7 === 3) commands.push(one(keyed(n)));
      else if (n % 11 === 5)
        commands.push([
          Do.PUBLISH,
          [toStoredItem(testItem(n)), toStoredItem(testItem(n, { queue: 'other' }))],
        ]);
      else commands.push(one(testItem(n)));
      // A command that is not a publish ends the run; the next publish starts another.
      if (n % 13 === 12) commands.push([Do.INBOX_PUT, 'scope', `k${n}`, 'v', 60_000]);
    }
    const result = runner.run({ commands, claims: [] });
    assert.equal(result.kind, 'done');
    const stored = rows(db);
    // Rows that wait behind their key are parked (ranges.ts): each kind in the order published.
    const waiting = new Set(stored.filter((r) => r.waiting).map((r) => r.id));
    const all = Array.from({ length: 100 }, (_, n) => idOf(n));
    assert.deepEqual(
      stored.filter((r) => !r.waiting).map((r) => r.id),
      all.filter((id) => !waiting.has(id)),
    );
    assert.deepEqual(
      stored.filter((r) => r.waiting).map((r) => r.id),
      all.filter((id) => waiting.has(id)),
    );
    assert.equal(stored.length, 100);
    assert.ok(waiting.size > 0, 'waiting.size > 0');
    assert.ok(
      stored.every((r) => r.whole),
      'stored.every((r) => r.whole)',
    );
    assert.deepEqual(
      stored
        .filter((r) => r.key !== null)
        .map((r) => r.id)
        .sort(),
      Array.from({ length: 100 }, (_, n) => n)
        .filter((n) => n % 7 === 3)
        .map(idOf),
    );
  }));

test('a run cut short by a failing publish is redone one by one, and leaves nothing behind', () =>
  withRunner((runner, db) => {
    const commands: Command[] = Array.from({ length: 50 }, (_, n) =>
      one(n === 40 ? testItem(n, { queue: 'no-such-queue' }) : testItem(n)),
    );
    const result = runner.run({ commands, claims: [] });
    assert.ok(result.kind === 'done', "result.kind === 'done'");
    assert.equal(result.errors?.filter((e) => e !== undefined).length, 1);
    assert.ok(result.errors?.[40] !== undefined, 'result.errors?.[40] !== undefined');
    // The next transaction stores its own rows only: none of the first attempt's waiting ones.
    assert.equal(runner.run({ commands: [one(testItem(50))], claims: [] }).kind, 'done');
    assert.deepEqual(
      rows(db).map((r) => r.id),
      Array.from({ length: 51 }, (_, n) => n)
        .filter((n) => n !== 40)
        .map(idOf),
    );
  }));
