/**
 * Seq ranges (ranges.ts): ready rows of each queue and priority in a range of their own, rows that
 * wait parked, a range near its end followed by a new generation, ranges given back with their queue,
 * and files of schema 6 moved into the layout with nothing lost and live claims handed back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { BatchRunner, Do } from '../src/batch.js';
import { SqliteQueues } from '../src/queues.js';
import { RANGE, rangeEnd, slotOf } from '../src/ranges.js';
import { type ClaimedRow, Row, toStoredItem } from '../src/rows.js';
import { openDatabase } from '../src/schema.js';
import { SqliteSagaStore } from '../src/stores.js';
import { testItem as item } from './items.js';
import { toSchema6 } from './layouts.js';
import { type Harness, numbers, withQueue } from './queue-harness.js';

/** Each row of the table: its seq, state and `n`, in seq order. */
function table(h: Harness): { seq: number; state: number; n: number }[] {
  return (
    h.db.prepare('SELECT seq, state, body FROM courier_messages ORDER BY seq').all() as {
      seq: number;
      state: number;
      body: string;
    }[]
  ).map((r) => ({ seq: r.seq, state: r.state, n: (JSON.parse(r.body) as { n: number }).n }));
}

const ranges = (h: Harness) =>
  h.db.prepare('SELECT slot, queue_id, priority, generation FROM courier_ranges ORDER BY slot').raw().all();

test('ready rows go to a range per queue and priority; delayed and waiting rows are parked', () =>
  withQueue((h) => {
    const keyed = (n: number) => {
      const base = item(n);
      return { ...base, envelope: { ...base.envelope, key: 'k' } };
    };
    const delayed = item(4);
    const later = { ...delayed, envelope: { ...delayed.envelope, deliverAt: Date.now() + 3_600_000 } };
    h.run({
      commands: [
        [
          Do.PUBLISH,
          [item(1), item(2, { priority: 5 }), item(3), later, keyed(5), keyed(6)].map(toStoredItem),
        ],
      ],
    });
    const rows = new Map(table(h).map((r) => [r.n, r]));
    const slot = (n: number) => slotOf(rows.get(n)!.seq);
    assert.ok(slot(1) >= 1, 'slot(1) >= 1');
    assert.equal(slot(3), slot(1));
    assert.notEqual(slot(2), slot(1), 'priority 5 has a range of its own');
    assert.ok(rows.get(1)!.seq < rows.get(3)!.seq, 'rows.get(1)!.seq < rows.get(3)!.seq');
    assert.equal(slot(5), slot(1), 'the key holder is ready');
    assert.ok(rows.get(4)!.seq < 0 && rows.get(4)!.state === 1, 'the delayed row is parked');
    assert.ok(rows.get(6)!.seq < 0 && rows.get(6)!.state === 3, 'the waiting row is parked');
    assert.deepEqual(ranges(h), [
      [slot(1), h.queueId, 0, 1],
      [slot(2), h.queueId, 5, 1],
    ]);
    assert.deepEqual(numbers(h.claim(10, 11)), [2, 1, 3, 5]);
    assert.deepEqual(h.stats(), { depth: 1, inFlight: 4, scheduled: 1 });
  }));

test('a retry with a backoff is parked, comes back to the end of its range when due, attempt counted', () =>
  withQueue((h) => {
    h.publish(1, 2, 3);
    const [one] = h.claim(1, 21);
    assert.deepEqual(
      h.run({ commands: [[Do.RETRY, one![Row.SEQ], 21, h.queueId, Date.now() + 5_000, true]] }).values,
      [true],
    );
    const parked = table(h).find((r) => r.n === 1)!;
    assert.ok(parked.seq < 0 && parked.state === 1, 'parked.seq < 0 && parked.state === 1');
    assert.deepEqual(h.stats(), { depth: 2, inFlight: 0, scheduled: 1 });
    assert.deepEqual(numbers(h.claim(10, 22)), [2, 3]);
    h.advance(10_000);
    const again = h.claim(10, 23, 30_000, true);
    assert.deepEqual(numbers(again), [1]);
    assert.equal(again[0]![Row.ATTEMPT], 2);
    assert.equal(slotOf(again[0]![Row.SEQ]), slotOf(one![Row.SEQ]));
  }));

test('a range near its end gets a successor; claims finish the older one first, then it is given back', () =>
  withQueue((h) => {
    h.publish(1);
    const slot = slotOf(table(h)[0]!.seq);
    // A row by hand at the last seq new rows may take in this range: the next one needs a new range.
    h.db
      .prepare(
        `INSERT INTO courier_messages (seq, queue_id, state, priority, available_at, id, type, headers, body, enqueued_at)
         SELECT ?, queue_id, 0, 0, available_at, 'by-hand', type, headers, '{"n":2}', enqueued_at FROM courier_messages`,
      )
      .run(rangeEnd(slot) - 2 ** 30);
    h.db.prepare(`UPDATE courier_counts SET n = n + 1 WHERE queue_id = ? AND state = 0`).run(h.queueId);
    h.publish(3, 4);
    const seqs = table(h).map((r) => r.seq);
    assert.equal(slotOf(seqs[2]!), slotOf(seqs[3]!));
    assert.notEqual(slotOf(seqs[2]!), slot);
    const generations = new Map((ranges(h) as number[][]).map((r) => [r[3], r[0]]));
    assert.equal(generations.get(1), slot);
    assert.equal(generations.get(2), slotOf(seqs[2]!));
    const first = h.claim(3, 31);
    assert.deepEqual(numbers(first), [1, 2, 3]);
    for (const row of first) assert.equal(h.ack(row, 31), true);
    const rest = h.claim(10, 32);
    assert.deepEqual(numbers(rest), [4]);
    assert.deepEqual(
      ranges(h).map((r) => (r as number[])[3]),
      [2],
      'the drained older range was given back',
    );
    assert.equal(h.ack(rest[0]!, 32), true);
    assert.deepEqual(h.stats(), { depth: 0, inFlight: 0, scheduled: 0 });
  }));

test('deleting a queue deletes its rows and gives its ranges back for the next queue', () =>
  withQueue((h) => {
    const declare = (name: string) =>
      h.run({ commands: [[Do.DECLARE, { queues: [{ name }], bindings: [] }]] });
    declare('other');
    h.run({ commands: [[Do.PUBLISH, [1, 2].map((n) => toStoredItem(item(n, { queue: 'other' })))]] });
    const delayed = item(3, { queue: 'other' });
    h.run({
      commands: [
        [
          Do.PUBLISH,
          [toStoredItem({ ...delayed, envelope: { ...delayed.envelope, deliverAt: Date.now() + 60_000 } })],
        ],
      ],
    });
    h.publish(4);
    const otherSlot = slotOf(table(h).find((r) => r.n === 1)!.seq);
    h.run({ commands: [[Do.DELETE_QUEUE, 'other']] });
    assert.deepEqual(
      table(h).map((r) => r.n),
      [4],
    );
    assert.equal(ranges(h).length, 1);
    declare('third');
    h.run({ commands: [[Do.PUBLISH, [toStoredItem(item(5, { queue: 'third' }))]]] });
    assert.equal(slotOf(table(h).find((r) => r.n === 5)!.seq), otherSlot, 'the lowest free slot');
  }));

test('a file of schema 6 moves into ranges: order kept, live claims handed back with the attempt counted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-ranges-'));
  const path = join(dir, 'courier.db');
  try {
    openDatabase({ path, synchronous: 'NORMAL', busyTimeoutMs: 20 }).close();
    const old = new Database(path);
    toSchema6(old);
    old.exec(`INSERT INTO courier_queues (id, name) VALUES (1, 'q'), (2, 'r')`);
    const insert = old.prepare(
      `INSERT INTO courier_messages (seq, queue_id, state, priority, available_at, attempt, id, type, key, headers, body, enqueued_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'test.item', ?, '{}', ?, 0)`,
    );
    const row = (
      seq: number,
      queue: number,
      state: number,
      priority: number,
      n: number,
      key: string | null = null,
    ) =>
      insert.run(
        seq,
        queue,
        state,
        priority,
        state === 1 ? Date.now() + 3_600_000 : 0,
        0,
        `m${n}`,
        key,
        `{"n":${n}}`,
      );
    // Queue q: 1 and 2 under a live claim of token 7, then 3, 5; 4 at priority 5; 6 delayed;
    // 8 holds key k and 9 waits behind it. Queue r: 10.
    row(1, 1, 0, 0, 1);
    row(2, 1, 0, 0, 2);
    row(3, 1, 0, 0, 3);
    row(4, 1, 0, 5, 4);
    row(5, 2, 0, 0, 10);
    row(6, 1, 0, 0, 5);
    row(7, 1, 1, 0, 6);
    row(8, 1, 0, 0, 8, 'k');
    row(9, 1, 3, 0, 9, 'k');
    old.exec(`INSERT INTO courier_keys (queue_id, key, holder_seq) VALUES (1, 'k', 8)`);
    old.exec(
      `INSERT INTO courier_leases (queue_id, priority, token, first_seq, last_seq, lease_until, remaining)
       VALUES (1, 0, 7, 1, 2, ${Date.now() + 60_000}, 2)`,
    );
    old.exec(
      `DELETE FROM courier_counts;
       INSERT INTO courier_counts (queue_id, state, n) VALUES (1, 0, 4), (1, 2, 2), (1, 1, 1), (1, 3, 1), (2, 0, 1)`,
    );
    old.close();

    const db = openDatabase({ path, synchronous: 'NORMAL', busyTimeoutMs: 20 });
    try {
      const clock = Date.now();
      const queues = new SqliteQueues(db, 60_000, () => clock);
      const runner = new BatchRunner(db, queues, new SqliteSagaStore(db), () => clock);
      assert.deepEqual(
        queues.stats('q', clock).depth,
        7,
        'the claimed rows are ready again, the waiting one counts',
      );
      assert.deepEqual(queues.stats('q', clock).inFlight, 0);
      assert.deepEqual(queues.stats('q', clock).scheduled, 1);
      const claim = (queueId: number, token: number): ClaimedRow[] => {
        const result = runner.run({ commands: [], claims: [[queueId, 100, token, 30_000, false, true]] });
        assert.equal(result.kind, 'done');
        return result.kind === 'done' ? (result.claims[0]![0] as ClaimedRow[]) : [];
      };
      const claimed = claim(1, 11);
      assert.deepEqual(numbers(claimed), [4, 1, 2, 3, 5, 8]);
      assert.deepEqual(
        claimed.map((r) => r[Row.ATTEMPT]),
        [1, 2, 2, 1, 1, 1],
        'the rows of the live claim count that attempt',
      );
      assert.ok(
        claimed.every((r) => r[Row.SEQ] >= RANGE),
        'claimed.every((r) => r[Row.SEQ] >= RANGE)',
      );
      assert.deepEqual(numbers(claim(2, 12)), [10]);
      // The key's holder acked: the waiting row comes next.
      const holder = claimed.find((r) => r[Row.KEY] === 'k')!;
      const acked = runner.run({ commands: [[Do.ACK, holder[Row.SEQ], 11, 1, 'k', null]], claims: [] });
      assert.ok(
        acked.kind === 'done' && acked.values[0] === true,
        "acked.kind === 'done' && acked.values[0] === true",
      );
      assert.deepEqual(numbers(claim(1, 13)), [9]);
      assert.equal(db.prepare('SELECT count(*) FROM courier_messages WHERE seq < 0').pluck().get(), 1);
    } finally {
      db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a late second settle is fenced by its own claim, not by another live claim of the same token', () =>
  withQueue((h) => {
    h.run({ commands: [[Do.PUBLISH, [item(1), item(2, { priority: 5 })].map(toStoredItem)]] });
    // One claim, two ranges: token 41 holds row 2 (priority 5) and row 1 (priority 0).
    const [two, one] = h.claim(10, 41);
    assert.deepEqual(numbers([two!, one!]), [2, 1]);
    assert.equal(h.ack(one!, 41), true);
    // Priority 0's range is empty and has no claim left: the next row there takes row 1's seq again.
    h.publish(3);
    assert.equal(table(h).find((r) => r.n === 3)!.seq, one![Row.SEQ]);
    // In one transaction: token 41 is seen alive (row 2), then row 1 is acked a second time.
    const ack = (row: ClaimedRow) => [Do.ACK, row[Row.SEQ], 41, h.queueId, null, null] as const;
    const late = h.run({ commands: [[...ack(two!)], [...ack(one!)]] });
    assert.deepEqual(late.values, [true, false], 'the second ack of row 1 is refused');
    assert.deepEqual(numbers(h.claim(10, 42)), [3], 'row 3 is still there');
  }));
