/**
 * Claim leases (queues.ts, "Leases"): a claim writes one lease row and moves a cursor instead of
 * rewriting the rows it takes. These tests hold the rules that make that safe: a new row never lands
 * behind a cursor, rows that become ready again move past it, an expired lease gives its rows back
 * with the attempt counted and fences late settles, an extended delivery outlives its claim's lease,
 * and nothing of a lease is left once its rows are settled.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Do } from '../src/batch.js';
import { type ClaimedRow, Row, toStoredItem } from '../src/rows.js';
import { testItem as item } from './items.js';
import { numbers, withQueue } from './queue-harness.js';

test('a claim leaves its rows as they were and the next claim starts after them', () =>
  withQueue((h) => {
    h.publish(1, 2, 3, 4, 5);
    const first = h.claim(2, 101);
    assert.deepEqual(numbers(first), [1, 2]);
    assert.deepEqual(
      first.map((row) => row[Row.ATTEMPT]),
      [1, 1],
    );
    assert.deepEqual(numbers(h.claim(10, 102)), [3, 4, 5]);
    assert.deepEqual(h.stats(), { depth: 0, inFlight: 5, scheduled: 0 });
    // The rows were not written by the claims: all still ready, none with a lease of its own.
    assert.equal(h.db.prepare('SELECT count(*) FROM courier_messages WHERE state = 0').pluck().get(), 5);
  }));

test('a message published after the newest rows were acked is not hidden behind the cursor', () =>
  withQueue((h) => {
    h.publish(1, 2, 3);
    const rows = h.claim(3, 201);
    // The newest row goes while the older ones are still out: SQLite would give the next row its seq.
    assert.equal(h.ack(rows[2]!, 201), true);
    h.publish(4);
    assert.deepEqual(numbers(h.claim(10, 202)), [4]);
    assert.equal(h.ack(rows[0]!, 201), true);
    assert.equal(h.ack(rows[1]!, 201), true);
  }));

test('every row of a lease settled: the lease row is gone', () =>
  withQueue((h) => {
    h.publish(1, 2, 3);
    const rows = h.claim(3, 301);
    assert.equal(h.leaseRows(), 1);
    for (const row of rows) assert.equal(h.ack(row, 301), true);
    assert.equal(h.leaseRows(), 0);
    assert.deepEqual(h.stats(), { depth: 0, inFlight: 0, scheduled: 0 });
  }));

test('a row written by hand behind a cursor is claimed once the queue has no lease left', () =>
  withQueue((h) => {
    h.publish(1, 2);
    const [one, two] = h.claim(2, 401);
    assert.equal(h.ack(two!, 401), true);
    // Written by another tool while row 1 is out: SQLite gives it row 2's seq, behind the cursor.
    h.db
      .prepare(
        `INSERT INTO courier_messages (queue_id, state, priority, available_at, id, type, headers, body, enqueued_at)
         VALUES (?, 0, 0, 0, 'by-hand', 'test.item', '{}', '{"n":99}', 0)`,
      )
      .run(h.queueId);
    assert.deepEqual(h.claim(10, 402), [], 'hidden while lease 401 lives');
    assert.equal(h.ack(one!, 401), true);
    assert.deepEqual(numbers(h.claim(10, 403)), [99]);
  }));

test('an expired lease gives its rows back with the attempt counted, and late settles fail', () =>
  withQueue((h) => {
    h.publish(1, 2);
    const rows = h.claim(2, 501, 1_000);
    h.advance(1_001);
    const again = h.claim(10, 502, 30_000, true);
    assert.deepEqual(numbers(again), [1, 2]);
    assert.deepEqual(
      again.map((row) => row[Row.ATTEMPT]),
      [2, 2],
    );
    assert.equal(h.ack(rows[0]!, 501), false, 'the old lease is fenced');
    assert.equal(h.ack(again[0]!, 502), true);
    assert.equal(h.ack(again[1]!, 502), true);
    assert.deepEqual(h.stats(), { depth: 0, inFlight: 0, scheduled: 0 });
    assert.equal(h.leaseRows(), 0);
  }));

test('plain acks: a run of rows goes at once, a gap or a settled row one by one, each with its outcome', () =>
  withQueue((h) => {
    h.publish(1, 2, 3, 4, 5, 6);
    const rows = h.claim(6, 551);
    assert.deepEqual(h.plainAcks([rows[0]!, rows[1]!, rows[2]!, rows[4]!], 551), [1, 1, 1, 1]);
    assert.deepEqual(h.stats(), { depth: 0, inFlight: 2, scheduled: 0 });
    // Consecutive seqs, but the first is already gone: the range is refused and each row is tried.
    assert.deepEqual(h.plainAcks([rows[4]!, rows[5]!], 551), [0, 1]);
    assert.deepEqual(h.plainAcks([rows[3]!], 551), [1]);
    assert.deepEqual(h.stats(), { depth: 0, inFlight: 0, scheduled: 0 });
    assert.equal(h.leaseRows(), 0);
  }));

test('plain acks under an expired lease are fenced, rows and all', () =>
  withQueue((h) => {
    h.publish(1, 2);
    const rows = h.claim(2, 561, 1_000);
    h.advance(1_001);
    const again = h.claim(10, 562, 30_000, true);
    assert.deepEqual(h.plainAcks(rows, 561), [0, 0]);
    assert.deepEqual(h.stats(), { depth: 0, inFlight: 2, scheduled: 0 });
    assert.deepEqual(h.plainAcks(again, 562), [1, 1]);
    assert.equal(h.leaseRows(), 0);
  }));

test('an extended delivery outlives its claim lease; its siblings come back', () =>
  withQueue((h) => {
    h.publish(1, 2);
    const [one, two] = h.claim(2, 601, 1_000);
    assert.deepEqual(h.run({ commands: [[Do.EXTEND, one![Row.SEQ], 601, 60_000]] }).values, [true]);
    h.advance(1_001);
    const again = h.claim(10, 602, 30_000, true);
    assert.deepEqual(numbers(again), [2]);
    assert.equal(h.ack(one!, 601), true, 'the extended lease still holds');
    assert.equal(h.ack(two!, 601), false);
    assert.equal(h.ack(again[0]!, 602), true);
    assert.deepEqual(h.stats(), { depth: 0, inFlight: 0, scheduled: 0 });
  }));

test('a retry without delay puts the row after the cursor, with or without the attempt counted', () =>
  withQueue((h) => {
    h.publish(1, 2, 3);
    const [one, two] = h.claim(2, 701);
    const retry = (row: ClaimedRow, counted: boolean) =>
      h.run({ commands: [[Do.RETRY, row[Row.SEQ], 701, h.queueId, null, counted]] }).values[0];
    assert.equal(retry(one!, true), true);
    assert.equal(retry(two!, false), true);
    assert.equal(retry(two!, false), false, 'settled once');
    const next = h.claim(10, 702);
    assert.deepEqual(numbers(next), [3, 1, 2]);
    assert.deepEqual(
      next.map((row) => row[Row.ATTEMPT]),
      [1, 2, 1],
    );
    assert.deepEqual(h.stats(), { depth: 0, inFlight: 3, scheduled: 0 });
  }));

test('higher priorities first, each priority with its own cursor', () =>
  withQueue((h) => {
    h.run({
      commands: [
        [
          Do.PUBLISH,
          [
            item(1),
            item(2, { priority: 5 }),
            item(3),
            item(4, { priority: 5 }),
            item(5, { priority: 9 }),
          ].map(toStoredItem),
        ],
      ],
    });
    assert.deepEqual(numbers(h.claim(3, 801)), [5, 2, 4]);
    h.publish(6);
    h.run({ commands: [[Do.PUBLISH, [toStoredItem(item(7, { priority: 5 }))]]] });
    assert.deepEqual(numbers(h.claim(10, 802)), [7, 1, 3, 6]);
    assert.deepEqual(h.stats(), { depth: 0, inFlight: 7, scheduled: 0 });
  }));

test('acks of consecutive rows in one batch: one range, or one by one when a row has moved', () =>
  withQueue((h) => {
    h.publish(1, 2, 3, 4, 5, 6, 7, 8);
    const rows = h.claim(8, 901);
    const ack = (row: ClaimedRow) => [Do.ACK, row[Row.SEQ], 901, h.queueId, row[Row.KEY], null] as const;
    // Row 3 has a lease of its own now (extended): a range over it cannot be a plain delete.
    assert.deepEqual(h.run({ commands: [[Do.EXTEND, rows[2]![Row.SEQ], 901, 60_000]] }).values, [true]);
    const first = h.run({ commands: rows.slice(0, 5).map((row) => [...ack(row)]) });
    assert.deepEqual(first.values, [true, true, true, true, true]);
    assert.deepEqual(h.stats(), { depth: 0, inFlight: 3, scheduled: 0 });
    // The rest in one run, and one row acked twice: the second ack finds nothing.
    const rest = h.run({ commands: [...rows.slice(5), rows[7]!].map((row) => [...ack(row)]) });
    assert.deepEqual(rest.values, [true, true, true, false]);
    assert.deepEqual(h.stats(), { depth: 0, inFlight: 0, scheduled: 0 });
    assert.equal(h.leaseRows(), 0, 'the lease went with its last row');
    assert.equal(h.db.prepare('SELECT count(*) FROM courier_messages').pluck().get(), 0);
  }));

test('a range of acks whose lease expired acks nothing', () =>
  withQueue((h) => {
    h.publish(1, 2, 3);
    const rows = h.claim(3, 902, 1_000);
    h.advance(2_000);
    // The expired lease is reclaimed by the next due claim: its rows move, attempt counted.
    assert.deepEqual(numbers(h.claim(3, 903, 30_000, true)), [1, 2, 3]);
    const late = h.run({
      commands: rows
        .map((row) => [Do.ACK, row[Row.SEQ], 902, h.queueId, null, null] as const)
        .map((c) => [...c]),
    });
    assert.deepEqual(late.values, [false, false, false]);
    assert.deepEqual(h.stats(), { depth: 0, inFlight: 3, scheduled: 0 });
  }));
