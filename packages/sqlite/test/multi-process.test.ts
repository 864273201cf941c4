/**
 * Several processes on one SQLite file (issue 3, item 5): competing consumers, fan-out, concurrent
 * writers, cross-process wake-up latency and idle CPU. Each child is a real process
 * (`test/processes/*.ts` under tsx) on a file in a fresh temp dir; every child is killed at the end.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createBus } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import Database from 'better-sqlite3';
import type { Child } from './processes/harness.js';
import { Children, quantile } from './processes/harness.js';
import { Tick, tickTopology, wallNow } from './processes/shared.js';

const TIMEOUT = 180_000;

/**
 * Runs `run` on a Courier file in a fresh temp dir. The file is created here first: processes that
 * all start at once on a new file trip over each other's migration (see the last test).
 */
async function withFile(
  run: (path: string, children: Children) => Promise<void>,
  options: { create?: boolean } = {},
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'courier-'));
  const children = new Children();
  try {
    const path = join(dir, 'courier.db');
    if (options.create !== false) {
      const creator = sqlite({ path });
      await creator.start();
      await creator.close();
    }
    await run(path, children);
  } finally {
    await children.killAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Polls the consumers' counts until together they handled `expected` (or the deadline passes). */
async function waitForHandled(consumers: readonly Child[], expected: number, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await Promise.all(consumers.map((c) => c.ask({ kind: 'count' }, 'count')));
    const total = counts.reduce((sum, c) => sum + c.handled, 0);
    if (total >= expected) break;
    if (Date.now() > deadline) {
      assert.fail(`only ${total} of ${expected} messages handled within ${timeoutMs} ms`);
    }
    await sleep(100);
  }
  // Time for a duplicate, if there were one, to show up.
  await sleep(500);
  return Promise.all(consumers.map((c) => c.ask({ kind: 'report' }, 'report')));
}

/** Rows left in the file after the consumers stopped: messages not acked, dead letters. */
function leftovers(path: string): { messages: number; deadLetters: number } {
  const db = new Database(path, { readonly: true });
  try {
    return {
      messages: db.prepare('SELECT count(*) FROM courier_messages').pluck().get() as number,
      deadLetters: db.prepare('SELECT count(*) FROM courier_dead_letters').pluck().get() as number,
    };
  } finally {
    db.close();
  }
}

function assertNoDuplicates(handled: readonly string[], what: string): void {
  const seen = new Set<string>();
  const duplicates: string[] = [];
  for (const id of handled) {
    if (seen.has(id)) duplicates.push(id);
    seen.add(id);
  }
  assert.deepEqual(duplicates.slice(0, 10), [], `${what}: handled more than once`);
}

test(
  'competing consumers: 3 processes share 5,000 messages from a 4th, each handled exactly once',
  { timeout: TIMEOUT },
  (t: TestContext) =>
    withFile(async (path, children) => {
      const endpoints = ['workers'];
      const consumers = [1, 2, 3].map((i) =>
        children.spawn('consumer', `consumer-${i}`, { path, endpoint: 'workers', endpoints }),
      );
      await Promise.all(consumers.map((c) => c.next('ready')));
      const producer = children.spawn('producer', 'producer', {
        path,
        producer: 'p',
        endpoints,
        count: 5_000,
      });
      const done = await producer.next('done', 90_000);
      assert.deepEqual(done.rejected, [], 'no publish rejects');
      assert.equal(done.resolved.length, 5_000);

      const reports = await waitForHandled(consumers, 5_000);
      const all = reports.flatMap((r) => r.handled);
      assertNoDuplicates(all, 'competing consumers');
      assert.equal(all.length, 5_000);
      assert.deepEqual(new Set(all), new Set(done.resolved.map((n) => `p:${n}`)));
      for (const [i, report] of reports.entries()) {
        assert.deepEqual(report.errors, [], `consumer ${i + 1} reported errors`);
        assert.ok(report.handled.length > 0, `consumer ${i + 1} handled nothing: no spread`);
      }
      t.diagnostic(`split across consumers: ${reports.map((r) => r.handled.length).join(' / ')}`);

      await children.stop(consumers);
      for (const c of consumers) assert.deepEqual(await c.exited, { code: 0, signal: null }, c.output());
      assert.deepEqual(leftovers(path), { messages: 0, deadLetters: 0 });
    }),
);

test(
  'fan-out across processes: two endpoints in two processes each get every event of a third',
  { timeout: TIMEOUT },
  () =>
    withFile(async (path, children) => {
      const endpoints = ['fan-a', 'fan-b'];
      const a = children.spawn('consumer', 'fan-a', { path, endpoint: 'fan-a', endpoints });
      const b = children.spawn('consumer', 'fan-b', { path, endpoint: 'fan-b', endpoints });
      await Promise.all([a.next('ready'), b.next('ready')]);
      const producer = children.spawn('producer', 'producer', {
        path,
        producer: 'p',
        endpoints,
        count: 1_000,
      });
      const done = await producer.next('done', 90_000);
      assert.deepEqual(done.rejected, []);
      const expected = new Set(done.resolved.map((n) => `p:${n}`));
      assert.equal(expected.size, 1_000);

      for (const consumer of [a, b]) {
        const [report] = await waitForHandled([consumer], 1_000);
        assertNoDuplicates(report!.handled, consumer.name);
        assert.equal(report!.handled.length, 1_000, consumer.name);
        assert.deepEqual(new Set(report!.handled), expected, consumer.name);
        assert.deepEqual(report!.errors, [], consumer.name);
      }
      await children.stop([a, b]);
      assert.deepEqual(leftovers(path), { messages: 0, deadLetters: 0 });
    }),
);

test(
  'concurrent writers: 3 producers at full speed and 2 consumers lose nothing and duplicate nothing',
  { timeout: TIMEOUT },
  (t: TestContext) =>
    withFile(async (path, children) => {
      const endpoints = ['workers'];
      const consumers = [1, 2].map((i) =>
        children.spawn('consumer', `consumer-${i}`, { path, endpoint: 'workers', endpoints }),
      );
      await Promise.all(consumers.map((c) => c.next('ready')));
      const producers = ['p1', 'p2', 'p3'].map((name) =>
        children.spawn('producer', name, { path, producer: name, endpoints, count: 3_000, waitForGo: true }),
      );
      await Promise.all(producers.map((p) => p.next('ready')));
      const started = performance.now();
      for (const p of producers) p.send({ kind: 'go' });
      const dones = await Promise.all(producers.map((p) => p.next('done', 120_000)));
      const publishMs = performance.now() - started;

      const resolved = new Set<string>();
      dones.forEach((done, i) => {
        assert.deepEqual(done.rejected.slice(0, 5), [], `producer p${i + 1}: no publish rejects`);
        for (const n of done.resolved) resolved.add(`p${i + 1}:${n}`);
      });
      assert.equal(resolved.size, 9_000);

      const reports = await waitForHandled(consumers, 9_000, 120_000);
      const all = reports.flatMap((r) => r.handled);
      assertNoDuplicates(all, 'concurrent writers');
      const handled = new Set(all);
      const lost = [...resolved].filter((id) => !handled.has(id));
      assert.deepEqual(lost.slice(0, 10), [], `${lost.length} resolved publishes never handled`);
      assert.equal(all.length, 9_000);
      for (const [i, report] of reports.entries()) assert.deepEqual(report.errors, [], `consumer ${i + 1}`);
      t.diagnostic(
        `9,000 publishes from 3 processes in ${publishMs.toFixed(0)} ms; split across consumers: ${reports
          .map((r) => r.handled.length)
          .join(' / ')}`,
      );
      await children.stop(consumers);
      assert.deepEqual(leftovers(path), { messages: 0, deadLetters: 0 });
    }),
);

test(
  'cross-process wake-up: an idle consumer sees paced publishes of another process quickly',
  { timeout: TIMEOUT },
  (t: TestContext) =>
    withFile(async (path, children) => {
      const endpoints = ['latency'];
      const consumer = children.spawn('consumer', 'consumer', { path, endpoint: 'latency', endpoints });
      await consumer.next('ready');
      const producer = children.spawn('producer', 'producer', {
        path,
        producer: 'p',
        endpoints,
        count: 200,
        spacingMs: 10,
        waitForGo: true,
      });
      await producer.next('ready');
      // Warm the consumer's handler path from this process, so its first-delivery costs (JIT,
      // first validation) are not counted as wake-up latency.
      const warm = createBus({
        endpoint: 'warm-up',
        transport: sqlite({ path }),
        topology: tickTopology(endpoints),
      });
      await warm.start();
      for (let n = 0; n < 20; n++) {
        await warm.publish(Tick, { producer: 'warm', n, sentAt: wallNow() });
        await sleep(10);
      }
      await warm.stop();
      await waitForHandled([consumer], 20);
      // Now the consumer idles for a second: its poll backs off to the slowest (pollMaxMs 50).
      await sleep(1_000);
      producer.send({ kind: 'go' });
      const done = await producer.next('done', 60_000);
      assert.deepEqual(done.rejected, []);
      const [report] = await waitForHandled([consumer], 220);
      assert.deepEqual(report!.errors, []);
      const samples = report!.handled
        .map((id, i) => ({ id, startedAt: report!.startedAt[i]!, latency: report!.latenciesMs[i]! }))
        .filter((s) => s.id.startsWith('p:'));
      assert.equal(samples.length, 200);

      const all = samples.map((s) => s.latency);
      // The first message waits for the idle poll (up to pollMaxMs = 50 ms, by design); the few
      // published while it waited are picked up with it. Those are the wake-up; the rest were
      // published to a consumer already awake.
      const first = samples.find((s) => s.id === 'p:0')!;
      const awake = samples.filter((s) => s.startedAt - s.latency > first.startedAt).map((s) => s.latency);
      const fmt = (values: number[]) =>
        `p50 ${quantile(values, 0.5).toFixed(2)} ms, p99 ${quantile(values, 0.99).toFixed(2)} ms, max ${Math.max(...values).toFixed(2)} ms`;
      t.diagnostic(
        `publish-to-handler-start across processes, 200 messages 10 ms apart after 1 s idle: all 200: ${fmt(all)}; ` +
          `wake-up (first message) ${first.latency.toFixed(2)} ms with ${200 - awake.length - 1} more waiting for it; ` +
          `the ${awake.length} published to the awake consumer: ${fmt(awake)}; ` +
          `publish-to-commit in the producer: ${fmt(done.publishMs)}`,
      );
      // Loose bounds: CI runs test files side by side on 2 cores, so tails reflect the machine, not
      // the transport; `npm run bench` measures the real 5 ms target on its own. These still catch a
      // consumer that never wakes up or polls at its idle rate while busy.
      assert.ok(first.latency < 50 + 200, `wake-up ${first.latency.toFixed(2)} ms should be under 250 ms`);
      const p50 = quantile(awake, 0.5);
      assert.ok(p50 < 25, `p50 ${p50.toFixed(2)} ms should be under 25 ms`);
      const p99 = quantile(awake, 0.99);
      assert.ok(p99 < 500, `p99 ${p99.toFixed(2)} ms should be under 500 ms`);
    }),
);

test('idle CPU: a consumer process with nothing to do stays under 5% of a core', { timeout: TIMEOUT }, (t) =>
  withFile(async (path, children) => {
    const consumer = children.spawn('consumer', 'consumer', { path, endpoint: 'idle', endpoints: ['idle'] });
    await consumer.next('ready');
    // Let start-up work settle and the poll back off to its slowest.
    await sleep(500);
    const idle = await consumer.ask({ kind: 'measure-idle', ms: 3_000 }, 'idle', 30_000);
    const percent = (idle.cpuMs / idle.wallMs) * 100;
    t.diagnostic(
      `idle consumer: ${idle.cpuMs.toFixed(1)} ms CPU over ${idle.wallMs.toFixed(0)} ms = ${percent.toFixed(2)}% of one core (target 2%)`,
    );
    assert.ok(percent < 5, `idle CPU ${percent.toFixed(2)}% should be under 5% of one core`);
    const [report] = await waitForHandled([consumer], 0);
    assert.deepEqual(report!.errors, []);
  }),
);

test(
  'processes starting at once on a new file all start',
  {
    timeout: TIMEOUT,
  },
  () =>
    withFile(
      async (path, children) => {
        const endpoints = ['workers'];
        const consumers = [1, 2, 3, 4].map((i) =>
          children.spawn('consumer', `consumer-${i}`, { path, endpoint: 'workers', endpoints }),
        );
        const results = await Promise.allSettled(consumers.map((c) => c.next('ready')));
        const failed = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
        assert.deepEqual(failed, []);
      },
      { create: false },
    ),
);

test(
  'a process starting while another holds the write lock for 300 ms waits for it and starts',
  {
    timeout: TIMEOUT,
  },
  () =>
    withFile(async (path, children) => {
      const holder = children.spawn('lock-holder', 'lock-holder', { path, holdMs: 300 });
      await holder.next('ready');
      const transport = sqlite({ path });
      try {
        await transport.start();
        await transport.declare({ queues: [{ name: 'late' }], bindings: [] });
      } finally {
        await transport.close();
      }
      assert.deepEqual(await holder.exited, { code: 0, signal: null });
    }),
);
