/**
 * Single publishes of one event-loop turn share a group commit: each must still succeed or fail
 * alone, in the order asked, on the event loop and on the writer thread.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { NoRouteError, type PublishItem } from '@courier/core';
import { sqlite, type WriterThreadMode } from '@courier/sqlite';
import { consumeIds, testItem } from './items.js';

function withDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'courier-publish-'));
  return run(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

const toQueue = (n: number, queue: string): PublishItem => testItem(n, { queue });

for (const writerThread of ['never', 'always'] as WriterThreadMode[]) {
  test(`writerThread ${writerThread}: in a run of single publishes, one to no queue fails alone`, () =>
    withDir(async (dir) => {
      const transport = sqlite({ path: join(dir, 'courier.db'), writerThread });
      try {
        await transport.declare({ queues: [{ name: 'q' }], bindings: [] });
        // One turn: five publish calls, the second and fourth to a queue that does not exist.
        const outcomes = await Promise.allSettled([
          transport.publish([toQueue(1, 'q')]),
          transport.publish([toQueue(2, 'missing')]),
          transport.publish([toQueue(3, 'q')]),
          transport.publish([toQueue(4, 'missing')]),
          transport.publish([toQueue(5, 'q')]),
        ]);
        assert.deepEqual(
          outcomes.map((o) => o.status),
          ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled'],
        );
        for (const i of [1, 3]) {
          const reason = (outcomes[i] as PromiseRejectedResult).reason;
          assert.ok(reason instanceof NoRouteError, String(reason));
          assert.match(reason.message, /'missing'/);
        }
        assert.equal((await transport.stats('q')).depth, 3);
      } finally {
        await transport.close();
      }
    }));

  test(`writerThread ${writerThread}: a command between single publishes runs between them`, () =>
    withDir(async (dir) => {
      const transport = sqlite({ path: join(dir, 'courier.db'), writerThread });
      try {
        // Not awaited: the declare runs in the same batch, after the first publish and before the second.
        const first = transport.publish([toQueue(1, 'late')]);
        const declared = transport.declare({ queues: [{ name: 'late' }], bindings: [] });
        const second = transport.publish([toQueue(2, 'late')]);
        const [a, b, c] = await Promise.allSettled([first, declared, second]);
        assert.equal(a.status, 'rejected');
        assert.ok(
          (a as PromiseRejectedResult).reason instanceof NoRouteError,
          '(a as PromiseRejectedResult).reason instanceof NoRouteError',
        );
        assert.equal(b.status, 'fulfilled');
        assert.equal(c.status, 'fulfilled');
        assert.equal((await transport.stats('late')).depth, 1);
        // And the stored message is the second one.
        assert.deepEqual(await consumeIds(transport, 'late', 1), [testItem(2).envelope.id]);
      } finally {
        await transport.close();
      }
    }));
}

test('a run of 1,000 single publishes through the writer thread stores each one once, in order', () =>
  withDir(async (dir) => {
    const transport = sqlite({ path: join(dir, 'courier.db'), writerThread: 'always' });
    try {
      await transport.declare({ queues: [{ name: 'q' }], bindings: [] });
      await Promise.all(Array.from({ length: 1_000 }, (_, n) => transport.publish([toQueue(n, 'q')])));
      const ids = await consumeIds(transport, 'q', 1_000, { prefetch: 100, timeoutMs: 10_000 });
      assert.deepEqual(
        ids,
        Array.from({ length: 1_000 }, (_, n) => testItem(n).envelope.id),
      );
    } finally {
      await transport.close();
    }
  }));
