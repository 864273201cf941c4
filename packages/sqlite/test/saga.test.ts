import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Bus } from '@courier/core';
import { createBus, defineEvent, defineSaga } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import { z } from 'zod';

const Add = defineEvent('tally.add', z.object({ id: z.string(), n: z.number() }));
const Total = defineEvent('tally.total', z.object({ id: z.string(), sum: z.number(), count: z.number() }));

/** Sums what it is told; announces each new total. Step output and state commit together. */
function tally() {
  return defineSaga<{ sum: number; count: number }>({
    name: 'tally',
    initial: () => ({ sum: 0, count: 0 }),
  }).startedBy(
    Add,
    (m) => m.id,
    async (state, m, ctx) => {
      const next = { sum: state.sum + m.n, count: state.count + 1 };
      await ctx.publish(Total, { id: m.id, ...next });
      return next;
    },
  );
}

async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('sagas on sqlite', () => {
  it('state, output and ack commit in one transaction; competing consumers end in the serial result', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'courier-saga-'));
    const path = join(dir, 'courier.db');
    const buses: Bus[] = [];
    try {
      const totals: { sum: number; count: number }[] = [];
      const watcher = createBus({ endpoint: 'watcher', transport: sqlite({ path }) });
      watcher.on(Total, (t) => void totals.push(t));
      buses.push(watcher);
      await watcher.start();
      const stores = [];
      for (let i = 0; i < 3; i++) {
        const transport = sqlite({ path });
        const bus = createBus({ endpoint: 'tally', transport, concurrency: 4 });
        await transport.start();
        const store = transport.sagaStore();
        stores.push(store);
        bus.saga(tally(), { store });
        buses.push(bus);
        await bus.start();
      }
      const producer = createBus({ endpoint: 'producer', transport: sqlite({ path }) });
      buses.push(producer);
      await producer.start();
      let expected = 0;
      for (let n = 1; n <= 100; n++) {
        expected += n;
        await producer.publish(Add, { id: 't', n });
      }
      await until(() => totals.length === 100, 'a total per message');
      const record = await stores[0]!.load('tally', 't');
      assert.deepEqual((record?.state as { state: unknown } | undefined)?.state, {
        sum: expected,
        count: 100,
      });
      // Each step's output was stored with its state: the totals are exactly the running sums.
      assert.deepEqual(
        totals.map((t) => t.count).sort((a, b) => a - b),
        Array.from({ length: 100 }, (_, i) => i + 1),
      );
      assert.equal(Math.max(...totals.map((t) => t.sum)), expected);
    } finally {
      for (const bus of buses) await bus.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('consumers killed mid-stream and restarted: every step applied once, its output stored once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'courier-saga-'));
    const path = join(dir, 'courier.db');
    const buses: Bus[] = [];
    try {
      const totals: { count: number }[] = [];
      const watcher = createBus({ endpoint: 'watcher', transport: sqlite({ path }) });
      watcher.on(Total, (t) => void totals.push(t));
      buses.push(watcher);
      await watcher.start();
      const startConsumer = async () => {
        const transport = sqlite({ path });
        await transport.start();
        const bus = createBus({ endpoint: 'tally', transport, concurrency: 4, leaseMs: 300 });
        bus.saga(tally(), { store: transport.sagaStore() });
        await bus.start();
        return { bus, store: transport.sagaStore() };
      };
      const producer = createBus({ endpoint: 'producer', transport: sqlite({ path }) });
      buses.push(producer);
      await producer.start();
      let consumer = await startConsumer();
      let expected = 0;
      for (let n = 1; n <= 60; n++) {
        expected += n;
        await producer.publish(Add, { id: 'k', n });
        if (n % 15 === 0) {
          await consumer.bus.kill();
          consumer = await startConsumer();
        }
      }
      buses.push(consumer.bus);
      await until(
        async () =>
          ((await consumer.store.load('tally', 'k'))?.state as { state: { count: number } } | undefined)
            ?.state.count === 60,
        'all 60 steps',
      );
      const record = await consumer.store.load('tally', 'k');
      assert.deepEqual((record?.state as { state: unknown } | undefined)?.state, {
        sum: expected,
        count: 60,
      });
      await until(() => totals.length >= 60, 'the totals');
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(
        totals.map((t) => t.count).sort((a, b) => a - b),
        Array.from({ length: 60 }, (_, i) => i + 1),
        'one total per step: no step applied twice, no output lost',
      );
    } finally {
      for (const bus of buses) await bus.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
