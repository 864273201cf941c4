/**
 * BatchRunner: several batches in one transaction (what the writer thread does with batches that
 * queued behind a commit) keep each batch's results its own, a failing command fails alone, and
 * the claims of different batches never lease the same row.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PublishItem } from '@courier/core';
import { NoRouteError } from '@courier/core';
import { type Batch, BatchRunner, type ClaimRequest, Do } from '../src/batch.js';
import { SqliteQueues } from '../src/queues.js';
import { Row, toStoredItem } from '../src/rows.js';
import { openDatabase, type SqliteDatabase } from '../src/schema.js';
import { SqliteSagaStore } from '../src/stores.js';
import { testItem } from './items.js';

function withRunner(run: (runner: BatchRunner, queues: SqliteQueues, db: SqliteDatabase) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'courier-batch-'));
  const db = openDatabase({ path: join(dir, 'courier.db'), synchronous: 'NORMAL', busyTimeoutMs: 20 });
  try {
    const queues = new SqliteQueues(db, 60_000, Date.now);
    const runner = new BatchRunner(db, queues, new SqliteSagaStore(db));
    const declared = runner.run({
      commands: [[Do.DECLARE, { queues: [{ name: 'q' }], bindings: [] }]],
      claims: [],
    });
    assert.equal(declared.kind, 'done');
    run(runner, queues, db);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const publish = (...items: PublishItem[]): Batch['commands'][number] => [Do.PUBLISH, items.map(toStoredItem)];

test('batches sharing a transaction: a failing command fails alone, the rest of every batch commits', () =>
  withRunner((runner, queues) => {
    const results = runner.runAll([
      { commands: [publish(testItem(1)), publish(testItem(2))], claims: [] },
      {
        commands: [
          publish(testItem(3)),
          publish(testItem(4, { queue: 'no-such-queue' })),
          publish(testItem(5)),
        ],
        claims: [],
      },
    ]);
    assert.equal(results.length, 2);
    const [first, second] = results;
    assert.ok(
      first?.kind === 'done' && second?.kind === 'done',
      "first?.kind === 'done' && second?.kind === 'done'",
    );
    // The first batch saw no error (its errors list, when the redo ran, holds only undefined).
    assert.ok(
      first.errors === undefined || first.errors.every((e) => e === undefined),
      'first.errors === undefined || first.errors.every((e) => e === undefined)',
    );
    assert.deepEqual(
      second.errors?.map((e) => (e === undefined ? 'ok' : e instanceof NoRouteError ? 'no-route' : 'other')),
      ['ok', 'no-route', 'ok'],
    );
    assert.equal(queues.stats('q', Date.now()).depth, 4);
  }));

test('claims of batches sharing a transaction lease different rows, in order', () =>
  withRunner((runner, queues) => {
    assert.equal(
      runner.run({
        commands: [publish(testItem(1), testItem(2), testItem(3), testItem(4), testItem(5))],
        claims: [],
      }).kind,
      'done',
    );
    const queueId = queues.requireQueueId('q');
    const claim = (token: number, room: number): ClaimRequest => [queueId, room, token, 30_000, false, true];
    const results = runner.runAll([
      { commands: [], claims: [claim(1, 2)] },
      { commands: [], claims: [claim(2, 2)] },
    ]);
    const leased = results.map((r) => {
      assert.equal(r.kind, 'done');
      return r.kind === 'done' ? r.claims[0]![0].map((row) => JSON.parse(row[Row.BODY] as string).n) : [];
    });
    assert.deepEqual(leased, [
      [1, 2],
      [3, 4],
    ]);
    // Every claimed row counts this delivery as its first attempt.
    const rows = results.flatMap((r) => (r.kind === 'done' ? r.claims[0]![0] : []));
    assert.deepEqual(
      rows.map((row) => row[Row.ATTEMPT]),
      [1, 1, 1, 1],
    );
    const stats = queues.stats('q', Date.now());
    assert.equal(stats.depth, 1);
    assert.equal(stats.inFlight, 4);
  }));

test('a claim leases exactly the rows it returns, when priorities interleave in the queue', () =>
  withRunner((runner, queues) => {
    const withPriority = (n: number, priority: number) => testItem(n, { priority });
    // seq order: high, low, high, low; a claim of 2 takes both high ones, around a low one.
    const stored = runner.run({
      commands: [publish(withPriority(1, 5), withPriority(2, 0), withPriority(3, 5), withPriority(4, 0))],
      claims: [],
    });
    assert.equal(stored.kind, 'done');
    const queueId = queues.requireQueueId('q');
    const first = runner.run({ commands: [], claims: [[queueId, 2, 1, 30_000, false, true]] });
    assert.ok(first.kind === 'done', "first.kind === 'done'");
    assert.deepEqual(
      first.claims[0]![0].map((row) => JSON.parse(row[Row.BODY] as string).n),
      [1, 3],
    );
    assert.deepEqual(
      { depth: queues.stats('q', Date.now()).depth, inFlight: queues.stats('q', Date.now()).inFlight },
      { depth: 2, inFlight: 2 },
    );
    // The low-priority rows between them were not leased: the next claim gets them, first attempts.
    const second = runner.run({ commands: [], claims: [[queueId, 4, 2, 30_000, false, true]] });
    assert.ok(second.kind === 'done', "second.kind === 'done'");
    assert.deepEqual(
      second.claims[0]![0].map((row) => [JSON.parse(row[Row.BODY] as string).n, row[Row.ATTEMPT]]),
      [
        [2, 1],
        [4, 1],
      ],
    );
  }));
