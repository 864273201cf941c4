/**
 * Bad input (issue 3, item 9; DESIGN.md §2.6): rows written by hand into `courier_messages` by
 * another connection, as a foreign client or a corrupted file would leave them. Each goes to the
 * dead-letter queue with the right reason and the consumer keeps running.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Bus, DeadLetterView } from '@courier/core';
import { createBus } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import Database from 'better-sqlite3';
import { foreignReadySeq } from './layouts.js';
import { Children } from './processes/harness.js';
import { Tick, tickTopology, wallNow } from './processes/shared.js';

const MAX_BYTES = 16_384;

/** A second connection on the file, writing rows the way a foreign client would. */
function handWriter(path: string, queue: string) {
  const db = new Database(path);
  db.pragma('busy_timeout = 5000');
  const queueId = db.prepare('SELECT id FROM courier_queues WHERE name = ?').pluck().get(queue) as number;
  assert.ok(queueId !== undefined, `queue '${queue}' exists`);
  const insert = db.prepare(
    `INSERT INTO courier_messages (seq, queue_id, state, priority, available_at, id, type, headers, body, enqueued_at)
     VALUES (?, ?, 0, 0, ?, ?, ?, ?, ?, ?)`,
  );
  return {
    insert(row: { id: string; type: string; headers: string; body: Buffer | string }): void {
      const now = Date.now();
      // In one transaction with the seq it chose: Courier's own writers may commit in between.
      db.transaction(() =>
        insert.run(foreignReadySeq(db, queueId), queueId, now, row.id, row.type, row.headers, row.body, now),
      ).immediate();
    },
    close: () => db.close(),
  };
}

/** The binary-mode CloudEvent headers Courier itself would write, minus `omit`, plus `extra`. */
function headers(id: string, type: string, omit: string[] = [], extra: Record<string, unknown> = {}): string {
  const all: Record<string, unknown> = {
    'ce-specversion': '1.0',
    'ce-id': id,
    'ce-type': type,
    'ce-source': 'hand-written',
    'content-type': 'application/json',
    ...extra,
  };
  for (const name of omit) delete all[name];
  return JSON.stringify(all);
}

function tickBody(n: number): Buffer {
  return Buffer.from(JSON.stringify({ producer: 'hand', n, sentAt: wallNow() }));
}

async function allDeadLetters(bus: Bus, queue: string): Promise<DeadLetterView[]> {
  const items: DeadLetterView[] = [];
  let cursor: string | undefined;
  do {
    const page = await bus.deadLetters.list(queue, cursor === undefined ? {} : { cursor });
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return items;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('hand-written bad rows are dead-lettered with their reason and the consumer keeps running', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-'));
  const path = join(dir, 'courier.db');
  const handled: string[] = [];
  const errors: unknown[] = [];
  const bus = createBus({
    endpoint: 'bad',
    transport: sqlite({ path }),
    maxMessageBytes: MAX_BYTES,
    observer: (event) => {
      if (event.kind === 'error') errors.push(event.error);
    },
  });
  bus.on(Tick, (data) => {
    handled.push(`${data.producer}:${data.n}`);
  });
  let writer: ReturnType<typeof handWriter> | undefined;
  try {
    await bus.start();
    writer = handWriter(path, 'bad');
    const expected: Record<string, string> = {};
    const bad = (
      id: string,
      reason: string,
      row: { type?: string; headers?: string; body?: Buffer | string },
    ) => {
      expected[id] = reason;
      writer!.insert({
        id,
        type: row.type ?? Tick.type,
        headers: row.headers ?? headers(id, row.type ?? Tick.type),
        body: row.body ?? tickBody(0),
      });
    };
    bad('not-json', 'decode', { body: Buffer.from('{"producer": "hand", "n": ') });
    bad('not-utf8', 'decode', { body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) });
    bad('unknown-type', 'rejected', { type: 'bad.unknown', body: Buffer.from('{}') });
    bad('no-ce-id', 'decode', { headers: headers('no-ce-id', Tick.type, ['ce-id']) });
    bad('no-specversion', 'decode', { headers: headers('no-specversion', Tick.type, ['ce-specversion']) });
    bad('specversion-0.3', 'decode', {
      headers: headers('specversion-0.3', Tick.type, [], { 'ce-specversion': '0.3' }),
    });
    bad('no-ce-type', 'decode', { headers: headers('no-ce-type', Tick.type, ['ce-type']) });
    bad('header-not-string', 'decode', {
      headers: headers('header-not-string', Tick.type, [], { 'x-n': 5 }),
    });
    bad('headers-array', 'decode', { headers: '["ce-id"]' });
    bad('headers-null', 'decode', { headers: 'null' });
    bad('fails-schema', 'validation', { body: Buffer.from('{"producer": 1}') });
    // Bodies stored as TEXT (as Courier stores JSON) are read the same way.
    bad('text-not-json', 'decode', { body: '{"producer": "hand", "n": ' });
    bad('text-fails-schema', 'validation', { body: '{"producer": 1}' });
    bad('text-too-large', 'too-large', {
      body: JSON.stringify({ producer: 'é'.repeat(MAX_BYTES / 2), n: 0, sentAt: 0 }),
    });
    bad('too-large', 'too-large', {
      body: Buffer.from(JSON.stringify({ producer: 'x'.repeat(MAX_BYTES), n: 0, sentAt: 0 })),
    });
    // A good row written the same way, then one published through a bus: both are handled.
    writer.insert({
      id: 'good-row',
      type: Tick.type,
      headers: headers('good-row', Tick.type),
      body: tickBody(1),
    });
    await bus.publish(Tick, { producer: 'bus', n: 2, sentAt: wallNow() });

    await until('every bad row to be dead-lettered', async () => {
      const letters = await allDeadLetters(bus, 'bad');
      return letters.length >= Object.keys(expected).length;
    });
    await until('the good messages to be handled', () => handled.length >= 2);
    assert.deepEqual(handled.sort(), ['bus:2', 'hand:1']);

    const letters = await allDeadLetters(bus, 'bad');
    const got = Object.fromEntries(letters.map((l) => [l.envelope.id, l.info.reason]));
    assert.deepEqual(got, expected);
    for (const letter of letters) {
      assert.equal(letter.info.queue, 'bad');
      assert.equal(letter.headers['courier-dlq-reason'], letter.info.reason);
      assert.ok(letter.info.errorMessage, `${letter.envelope.id} says why`);
    }
    const tooLarge = letters.find((l) => l.envelope.id === 'too-large')!;
    assert.match(tooLarge.info.errorMessage!, /16384/);
    assert.deepEqual(errors, []);
    // A handler has run before its ack commits: wait for the queue to show nothing left.
    await until('every ack to be committed', async () => {
      const left = await bus.stats('bad');
      return left.depth + left.inFlight + left.scheduled === 0;
    });
    const stats = await bus.stats('bad');
    assert.equal(stats.deadLettered, Object.keys(expected).length);
  } finally {
    writer?.close();
    await bus.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a row whose headers are not JSON is dead-lettered (decode) and does not crash the consumer process', {
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-'));
  const path = join(dir, 'courier.db');
  const children = new Children();
  const inspector = createBus({
    endpoint: 'inspector',
    transport: sqlite({ path }),
    topology: tickTopology(['bad']),
  });
  let writer: ReturnType<typeof handWriter> | undefined;
  try {
    // The consumer runs in its own process: if the row crashes it, only the child dies.
    const consumer = children.spawn('consumer', 'consumer', { path, endpoint: 'bad', endpoints: ['bad'] });
    await consumer.next('ready');
    await inspector.start();
    writer = handWriter(path, 'bad');
    writer.insert({ id: 'headers-not-json', type: Tick.type, headers: '{"ce-id": "x", ', body: tickBody(0) });
    writer.insert({
      id: 'good-row',
      type: Tick.type,
      headers: headers('good-row', Tick.type),
      body: tickBody(1),
    });

    await until(
      'the good row to be handled',
      async () => {
        assert.ok(consumer.alive(), `the consumer process died:\n${consumer.output()}`);
        const count = await consumer.ask({ kind: 'count' }, 'count');
        return count.handled >= 1;
      },
      10_000,
    );
    // Its dead-lettering is a write of its own: it may commit after the good row was handled.
    let letters: Awaited<ReturnType<typeof allDeadLetters>> = [];
    await until(
      'the bad row to be dead-lettered',
      async () => {
        letters = await allDeadLetters(inspector, 'bad');
        return letters.length >= 1;
      },
      10_000,
    );
    assert.deepEqual(
      letters.map((l) => [l.envelope.id, l.info.reason]),
      [['headers-not-json', 'decode']],
    );
    const report = await consumer.ask({ kind: 'report' }, 'report');
    assert.deepEqual(report.handled, ['hand:1']);
    assert.ok(consumer.alive(), 'consumer.alive()');
  } finally {
    writer?.close();
    await children.killAll();
    await inspector.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
