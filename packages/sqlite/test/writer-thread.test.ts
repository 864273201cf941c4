/**
 * When the writer thread starts (with the first consumer, or the first large batch), and its failure
 * paths: a thread that cannot start fails its batches with TransportError, and a transport whose
 * thread died goes on with every batch on the event loop.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { TransportError } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import type { Batch } from '../src/batch.js';
import { availableCpus } from '../src/cpus.js';
import type { WriterResult, WriterThreadData } from '../src/writer.js';
import { ThreadWriter } from '../src/writer.js';
import { consumeIds, testItem } from './items.js';
import { runOneCpuConsumer } from './one-cpu.js';

/** Tests of when 'auto' starts the thread need two CPUs: with one it starts none (tested below). */
const AUTO_STARTS_NO_THREAD = availableCpus() <= 1 && "one CPU: 'auto' starts no writer thread";

function withDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'courier-writer-'));
  return run(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** What a thread of these tests opens: a file in `dir`, a short busy timeout. */
function threadData(dir: string): WriterThreadData {
  return {
    path: join(dir, 'courier.db'),
    synchronous: 'NORMAL',
    busyTimeoutMs: 20,
    cacheSizeMb: 1,
    dedupWindowMs: 1_000,
  };
}

test('a writer thread that cannot start fails its batches with TransportError', () =>
  withDir(async (dir) => {
    const writer = new ThreadWriter(
      threadData(dir),
      new URL(`file://${join(dir, 'no-such-writer-thread.js')}`),
    );
    const result = await new Promise<WriterResult>((resolve) =>
      writer.run({ commands: [], claims: [] }, resolve),
    );
    assert.equal(result.kind, 'failed');
    assert.ok(result.kind === 'failed' && result.error instanceof TransportError, String(result));
    assert.ok(writer.failure instanceof TransportError, 'writer.failure instanceof TransportError');
    // Later batches fail at once, and close() still returns.
    const later = await new Promise<WriterResult>((resolve) =>
      writer.run({ commands: [], claims: [] }, resolve),
    );
    assert.equal(later.kind, 'failed');
    await writer.close();
  }));

test('when the writer thread dies, writes go on on the event loop and nothing stored is lost', () =>
  withDir(async (dir) => {
    const transport = sqlite({ path: join(dir, 'courier.db'), writerThread: 'always' });
    try {
      await transport.declare({ queues: [{ name: 'q' }], bindings: [] });
      await transport.publish([testItem(1, { binary: true }), testItem(2, { binary: true })]);
      // White box: the thread itself, terminated as a crash would end it.
      const thread = (transport as unknown as { thread: { worker: { terminate(): Promise<number> } } })
        .thread;
      await thread.worker.terminate();
      await transport.publish([testItem(3, { binary: true })]);
      const stats = await transport.stats('q');
      assert.equal(stats.depth, 3, JSON.stringify(stats));
      // A consumer on the same transport gets all three.
      const seen = await consumeIds(transport, 'q', 3);
      assert.equal(seen.length, 3, `delivered ${seen.length} of 3`);
    } finally {
      await transport.close();
    }
  }));

test(
  "'auto' starts the thread for a large batch only, 'never' not at all",
  { skip: AUTO_STARTS_NO_THREAD },
  () =>
    withDir(async (dir) => {
      const threadOf = (t: object) => (t as { thread?: unknown }).thread;
      const auto = sqlite({ path: join(dir, 'auto.db') });
      const never = sqlite({ path: join(dir, 'never.db'), writerThread: 'never' });
      try {
        for (const transport of [auto, never]) {
          await transport.declare({ queues: [{ name: 'q' }], bindings: [] });
          // Small batches on an idle writer: the event loop runs them.
          for (let n = 0; n < 5; n++) await transport.publish([testItem(n, { binary: true })]);
        }
        assert.equal(threadOf(auto), undefined);
        // One turn with more than 32 writes: the thread takes it.
        const many = Array.from({ length: 100 }, (_, n) =>
          auto.publish([testItem(100 + n, { binary: true })]),
        );
        const none = Array.from({ length: 100 }, (_, n) =>
          never.publish([testItem(100 + n, { binary: true })]),
        );
        await Promise.all([...many, ...none]);
        assert.notEqual(threadOf(auto), undefined);
        assert.equal(threadOf(never), undefined);
        assert.equal((await auto.stats('q')).depth, 105);
        assert.equal((await never.stats('q')).depth, 105);
      } finally {
        await auto.close();
        await never.close();
      }
    }),
);

test(
  "auto: a batch never waits for the writer thread's start, and later ones go to it once it is ready",
  { skip: AUTO_STARTS_NO_THREAD },
  () =>
    withDir(async (dir) => {
      const transport = sqlite({ path: join(dir, 'courier.db'), writerThread: 'auto' });
      // White box: whether the thread exists and has opened its connection.
      const thread = () => (transport as unknown as { thread?: { ready: boolean } }).thread;
      try {
        await transport.declare({ queues: [{ name: 'q' }], bindings: [] });
        // Forty writes in one turn: more than runs on the event loop when the thread is idle.
        const burst = (from: number) =>
          Promise.all(Array.from({ length: 40 }, (_, i) => transport.publish([testItem(from + i)])));
        await burst(0);
        assert.ok(thread() !== undefined, 'the burst started the thread');
        // Starting takes tens of milliseconds; the burst did not wait for it.
        assert.equal(thread()!.ready, false, 'the burst ran on the event loop while the thread started');
        const until = Date.now() + 10_000;
        while (!thread()!.ready) {
          assert.ok(Date.now() < until, 'the thread became ready');
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        await burst(40);
        assert.equal((await transport.stats('q')).depth, 80);
      } finally {
        await transport.close();
      }
    }),
);

test(
  "auto: a consumer's thread is started and ready when consume resolves; a publisher's is not started",
  { skip: AUTO_STARTS_NO_THREAD },
  () =>
    withDir(async (dir) => {
      const threadOf = (t: object) => (t as { thread?: { ready: boolean } }).thread;
      const consumer = sqlite({ path: join(dir, 'courier.db') });
      const publisher = sqlite({ path: join(dir, 'courier.db') });
      try {
        await consumer.declare({ queues: [{ name: 'q' }], bindings: [] });
        await publisher.start();
        assert.equal(threadOf(consumer), undefined, 'declaring alone starts no thread');
        const handle = await consumer.consume('q', { prefetch: 8, leaseMs: 30_000 }, (delivery) => {
          void delivery.ack();
        });
        assert.equal(threadOf(consumer)?.ready, true, 'ready before the first claim');
        await publisher.publish([testItem(1)]);
        assert.equal(threadOf(publisher), undefined, 'a small publish runs on the event loop');
        const until = Date.now() + 10_000;
        while ((await consumer.stats('q')).depth > 0) {
          assert.ok(Date.now() < until, 'the consumer took the message');
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        await handle.stop();
      } finally {
        await consumer.close();
        await publisher.close();
      }
    }),
);

test(
  "a consumer in a process pinned to one CPU starts no writer thread and handles everything ('auto')",
  { skip: process.platform !== 'linux' && 'taskset pins a process to a CPU on Linux only' },
  () =>
    withDir(async (dir) => {
      const run = (pin: boolean) =>
        runOneCpuConsumer(pin ? ['taskset', '-c', '0'] : [], join(dir, `${pin}.db`));
      assert.deepEqual(run(true), { cpus: 1, thread: false, handled: 10 });
      // The same program with the machine's CPUs (two or more here) does start one.
      const free = run(false);
      if (free.cpus >= 2) assert.deepEqual(free, { cpus: free.cpus, thread: true, handled: 10 });
    }),
);

test('results that arrived before the thread failed settle their batches; the failure fails the rest', () =>
  withDir(async (dir) => {
    const writer = new ThreadWriter(
      threadData(dir),
      new URL('./fixtures/answers-then-dies.mjs', import.meta.url),
    );
    try {
      const outcome = (batch: Batch) => new Promise<WriterResult>((resolve) => writer.run(batch, resolve));
      const empty: Batch = { commands: [], claims: [] };
      // Both sent before anything comes back: the first is answered, then the thread reports its failure.
      const [first, second] = await Promise.all([outcome(empty), outcome(empty)]);
      assert.equal(first.kind, 'done', 'the batch that committed is not reported as failed');
      assert.equal(second.kind, 'failed');
      assert.ok(
        second.kind === 'failed' && second.error instanceof TransportError,
        "second.kind === 'failed' && second.error instanceof TransportError",
      );
      assert.match(String((second as { error: Error }).error.message), /disk I\/O error/);
    } finally {
      await writer.close();
    }
  }));
