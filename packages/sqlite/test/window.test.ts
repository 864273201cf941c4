/**
 * The consumer's window (ConsumeOptions.maxPrefetch): it grows while deliveries settle within
 * milliseconds, stays at `prefetch` without a maximum, and shrinks back for a handler that does not
 * settle. Counted here as deliveries handed over and not yet settled.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ConsumeOptions } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import { testItem } from './items.js';

const COUNT = 2_000;

/**
 * Publishes COUNT messages and consumes them with `options`; returns the most held at once, overall
 * and from the `lateFrom`th delivery on. `settle` acks through `ack`: a delivery's slot is free once
 * its ack is sent, before it commits, as the transport counts it.
 */
async function mostHeld(
  options: ConsumeOptions,
  settle: (ack: () => Promise<boolean>, n: number) => Promise<unknown>,
  lateFrom = COUNT,
): Promise<{ most: number; lateMost: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'courier-window-'));
  const transport = sqlite({ path: join(dir, 'courier.db') });
  try {
    await transport.declare({ queues: [{ name: 'q' }], bindings: [] });
    for (let n = 0; n < COUNT; n += 500)
      await transport.publish(Array.from({ length: 500 }, (_, i) => testItem(n + i)));
    let held = 0;
    let most = 0;
    let lateMost = 0;
    let settled = 0;
    let received = 0;
    let done!: () => void;
    const all = new Promise<void>((resolve) => {
      done = resolve;
    });
    const handle = await transport.consume('q', options, (delivery) => {
      held++;
      most = Math.max(most, held);
      if (received >= lateFrom) lateMost = Math.max(lateMost, held);
      const ack = () => {
        held--;
        return delivery.ack();
      };
      void settle(ack, received++).then(() => {
        if (++settled === COUNT) done();
      });
    });
    await all;
    await handle.stop();
    return { most, lateMost };
  } finally {
    await transport.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Acks on the next turn: every delivery of a claim is held before the first is settled. */
const ackNow = (ack: () => Promise<boolean>) => new Promise(setImmediate).then(ack);

test('the window grows past prefetch, up to maxPrefetch, while deliveries settle at once', async () => {
  const { most } = await mostHeld({ prefetch: 4, maxPrefetch: 64, leaseMs: 30_000 }, ackNow);
  assert.ok(most > 4, `at most ${most} held at once: the window never grew`);
  assert.ok(most <= 64, `${most} held at once, maxPrefetch is 64`);
});

test('without maxPrefetch the window stays at prefetch', async () => {
  const { most } = await mostHeld({ prefetch: 4, leaseMs: 30_000 }, ackNow);
  assert.ok(most <= 4, `${most} held at once, prefetch is 4`);
});

test('the window comes back to prefetch once deliveries wait longer than the budget', async () => {
  // Settled at once until the last SLOW, which take 25 ms each, one after the other.
  const SLOW = 120;
  let chain = Promise.resolve();
  const { most, lateMost } = await mostHeld(
    { prefetch: 4, maxPrefetch: 64, leaseMs: 30_000 },
    (ack, n) => {
      if (n < COUNT - SLOW) return ackNow(ack);
      chain = chain.then(async () => {
        await new Promise((resolve) => setTimeout(resolve, 25));
        await ack();
      });
      return chain;
    },
    COUNT - 30,
  );
  assert.ok(most > 4, `at most ${most} held at once: the window never grew`);
  assert.ok(lateMost <= 4, `${lateMost} held at once at the end of the slow ones, prefetch is 4`);
});
