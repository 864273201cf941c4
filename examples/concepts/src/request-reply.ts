/**
 * Request/reply, on a fake clock.
 * - a request resolves with the handler's return value, validated against the reply schema;
 * - a handler that fails for good makes the request reject with RemoteError at once;
 * - a request that times out rejects with TimeoutError, but its handler may still run: here it does.
 */
import { createBus, defineRequest, NonRetryableError, RemoteError, TimeoutError } from '@courier/core';
import { MemoryBroker, memory } from '@courier/memory';
import { FakeClock } from '@courier/testkit';
import { z } from 'zod';
import type { Log } from './util.js';
import { advance, drained, runIfMain, until } from './util.js';

const GetBalance = defineRequest(
  'payments.balance',
  z.object({ customer: z.string() }),
  z.object({ cents: z.number() }),
);

export async function main(log: Log): Promise<void> {
  const clock = new FakeClock();
  const broker = new MemoryBroker({ clock });
  const billing = createBus({ endpoint: 'billing', transport: memory({ broker }), clock });
  const shop = createBus({
    endpoint: 'shop',
    transport: memory({ broker }),
    clock,
    routes: { 'payments.balance': 'billing' },
  });
  // The slow request waits for this, standing in for a slow database.
  let finishSlowQuery = () => {};
  const slowQuery = new Promise<void>((resolve) => {
    finishSlowQuery = resolve;
  });
  let slowStarted = false;
  let slowFinished = false;

  billing.handle(GetBalance, async (query) => {
    if (query.customer === 'mallory') throw new NonRetryableError(`account ${query.customer} is blocked`);
    if (query.customer === 'slow') {
      slowStarted = true;
      await slowQuery;
      log('billing: the slow request ran to the end after its requester gave up');
      slowFinished = true;
    }
    return { cents: query.customer.length * 1_000 };
  });

  await billing.start();
  await shop.start();
  try {
    const balance = await shop.request(GetBalance, { customer: 'ada' });
    log(`shop:    ada has ${balance.cents} cents`);

    try {
      await shop.request(GetBalance, { customer: 'mallory' });
    } catch (error) {
      if (!(error instanceof RemoteError)) throw error;
      log(`shop:    ${error.code} from ${error.remoteName} (${error.remoteCode}): ${error.message}`);
    }

    const slow = shop.request(GetBalance, { customer: 'slow' }, { timeoutMs: 5_000 });
    slow.catch(() => {}); // handled below, after the clock has moved
    await until(() => slowStarted);
    await advance(clock, 5_000);
    try {
      await slow;
    } catch (error) {
      if (!(error instanceof TimeoutError)) throw error;
      log(`shop:    ${error.code}: ${error.message.replace(/\(.*?\) /, '')}`);
    }
    finishSlowQuery();
    await until(() => slowFinished); // its late reply finds no waiting request and is dropped
    await until(() => drained(billing));
  } finally {
    await shop.stop();
    await billing.stop();
  }
}

await runIfMain(import.meta.url, main);
