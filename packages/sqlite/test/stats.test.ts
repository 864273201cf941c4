/**
 * stats() reads counts kept with every write (courier_counts) instead of counting rows. These tests
 * hold the counts against the rows themselves after every kind of state change, after rows written
 * by hand, and in a file migrated from a version without counts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createBus, defineEvent, defineTopology, encodeMessage, NonRetryableError } from '@courier/core';
import type { SqliteTransport } from '@courier/sqlite';
import { sqlite } from '@courier/sqlite';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { foreignReadySeq, toSchema6 } from './layouts.js';

const Job = defineEvent('stats.job', z.object({ n: z.number(), kind: z.string() }));
const topology = defineTopology({ endpoints: { worker: { events: [Job] } } });

/** What the rows say, by the same definitions as QueueStats. */
function truth(transport: SqliteTransport, queue: string) {
  const db = transport.db;
  const queueId = db.prepare('SELECT id FROM courier_queues WHERE name = ?').pluck().get(queue);
  const count = (state: number) =>
    db
      .prepare('SELECT count(*) FROM courier_messages WHERE queue_id = ? AND state = ?')
      .pluck()
      .get(queueId, state) as number;
  // A ready row inside a live claim lease's range is in flight (queues.ts, "Leases").
  const underClaim = db
    .prepare(
      `SELECT count(*) FROM courier_claims l JOIN courier_messages m
         ON m.queue_id = l.queue_id AND m.state = 0 AND m.seq BETWEEN l.first_seq AND l.last_seq
       WHERE l.queue_id = ?`,
    )
    .pluck()
    .get(queueId) as number;
  return {
    depth: count(0) - underClaim + count(3),
    inFlight: count(2) + underClaim,
    scheduled: count(1),
    deadLettered: db
      .prepare('SELECT count(*) FROM courier_dead_letters WHERE queue_id = ?')
      .pluck()
      .get(queueId) as number,
  };
}

async function counted(transport: SqliteTransport, queue: string) {
  const { depth, inFlight, scheduled, deadLettered } = await transport.stats(queue);
  return { depth, inFlight, scheduled, deadLettered };
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('counts match the rows through ready, scheduled, leased, waiting, retried, dead-lettered, replayed and purged messages', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-stats-'));
  const transport = sqlite({ path: join(dir, 'courier.db') });
  const bus = createBus({ endpoint: 'worker', transport, topology, concurrency: 8 });
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const seen = new Map<number, number>();
  bus.on(
    Job,
    async ({ n, kind }) => {
      seen.set(n, (seen.get(n) ?? 0) + 1);
      if (kind === 'hold') await gate;
      if (kind === 'dead') throw new NonRetryableError('no');
      if (kind === 'flaky' && seen.get(n) === 1) throw new Error('first attempt fails');
    },
    { retry: { maxAttempts: 3, immediate: 0, initialDelayMs: 5, maxDelayMs: 5 } },
  );
  try {
    await bus.start();
    // Held handlers keep messages leased, and same-key messages waiting behind them.
    for (let n = 0; n < 4; n++) await bus.publish(Job, { n, kind: 'hold' }, { key: `k${n}` });
    for (let n = 4; n < 10; n++) await bus.publish(Job, { n, kind: 'ok' }, { key: `k${n % 4}` });
    for (let n = 10; n < 15; n++) await bus.publish(Job, { n, kind: 'later' }, { delayMs: 3_600_000 });
    for (let n = 15; n < 20; n++) await bus.publish(Job, { n, kind: 'dead' });
    for (let n = 20; n < 25; n++) await bus.publish(Job, { n, kind: 'flaky' });
    await until('the held and the failing messages to settle', async () => {
      const now = await counted(transport, 'worker');
      const flakyDone = [20, 21, 22, 23, 24].every((n) => (seen.get(n) ?? 0) >= 2);
      return flakyDone && now.inFlight === 4 && now.deadLettered === 5 && now.scheduled === 5;
    });
    assert.deepEqual(await counted(transport, 'worker'), truth(transport, 'worker'));
    const midway = await counted(transport, 'worker');
    assert.equal(midway.scheduled, 5);
    assert.equal(midway.depth, 6, 'six keyed messages wait behind the held ones');

    release();
    await until('everything but the delayed and the dead to be handled', async () => {
      const now = await counted(transport, 'worker');
      return now.depth + now.inFlight === 0;
    });
    assert.deepEqual(await counted(transport, 'worker'), truth(transport, 'worker'));

    // Replay two dead letters (their handler still throws: they come back) and purge the rest.
    const letters = await bus.deadLetters.list('worker', { limit: 10 });
    await bus.deadLetters.replay('worker', { ids: letters.items.slice(0, 2).map((l) => l.deadLetterId) });
    await until('the replayed letters to be dead again', async () => {
      const now = await counted(transport, 'worker');
      return now.depth + now.inFlight === 0 && now.deadLettered === 5;
    });
    assert.deepEqual(await counted(transport, 'worker'), truth(transport, 'worker'));
    await bus.deadLetters.purge('worker', {});
    assert.deepEqual(await counted(transport, 'worker'), truth(transport, 'worker'));
    assert.equal((await counted(transport, 'worker')).deadLettered, 0);
  } finally {
    release();
    await bus.stop();
    await transport.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rows written by hand: the counts are corrected from the rows once they are consumed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-stats-'));
  const path = join(dir, 'courier.db');
  const transport = sqlite({ path });
  const bus = createBus({ endpoint: 'worker', transport, topology });
  let handled = 0;
  bus.on(Job, () => {
    handled++;
  });
  const writer = new Database(path);
  try {
    await bus.start();
    const queueId = writer
      .prepare('SELECT id FROM courier_queues WHERE name = ?')
      .pluck()
      .get('worker') as number;
    const insert = writer.prepare(
      `INSERT INTO courier_messages (seq, queue_id, state, priority, available_at, id, type, headers, body, enqueued_at)
       VALUES (?, ?, 0, 0, 0, ?, ?, ?, ?, 0)`,
    );
    for (let n = 0; n < 3; n++) {
      const envelope = encodeMessage(
        {
          id: `hand-${n}`,
          type: Job.type,
          version: 1,
          data: { n, kind: 'ok' },
          headers: {},
          time: new Date().toISOString(),
          source: 'hand',
          correlationId: `hand-${n}`,
          priority: 0,
        },
        'binary',
      );
      writer
        .transaction(() =>
          insert.run(
            foreignReadySeq(writer, queueId),
            queueId,
            envelope.id,
            envelope.type,
            JSON.stringify(envelope.headers),
            Buffer.from(envelope.body),
          ),
        )
        .immediate();
    }
    await until('the hand-written rows to be handled', () => handled === 3);
    await until(
      'their acks to be committed',
      async () => (await counted(transport, 'worker')).inFlight === 0,
    );
    assert.deepEqual(await counted(transport, 'worker'), truth(transport, 'worker'));
  } finally {
    writer.close();
    await bus.stop();
    await transport.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file from before the counts gets them from its rows when it is migrated', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-stats-'));
  const path = join(dir, 'courier.db');
  try {
    const first = sqlite({ path });
    const bus = createBus({ endpoint: 'worker', transport: first, topology });
    bus.on(Job, () => {});
    await bus.start();
    for (let n = 0; n < 7; n++) await bus.publish(Job, { n, kind: 'later' }, { delayMs: 3_600_000 });
    await bus.stop();
    await first.close();
    // Back to version 3: no counts table.
    const db = new Database(path);
    toSchema6(db);
    db.exec(
      `DROP TABLE courier_counts; DROP TABLE courier_leases; UPDATE courier_meta SET value = '3' WHERE name = 'schema_version'`,
    );
    db.close();
    const again = sqlite({ path });
    await again.start();
    try {
      assert.deepEqual(await counted(again, 'worker'), {
        depth: 0,
        inFlight: 0,
        scheduled: 7,
        deadLettered: 0,
      });
    } finally {
      await again.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
