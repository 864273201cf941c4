/**
 * `concurrency` bounds handlers, not settles: a handler's slot is free once its ack is handed to
 * the transport, while `bus.stop()` still waits until every ack is done.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { it } from 'node:test';
import { memory } from '@courier/memory';
import { z } from 'zod';
import { defineEvent } from '../src/contracts.js';
import { createBus } from '../src/index.js';
import type { Transport } from '../src/transport.js';
import { withAck } from './ack-proxy.js';

/** `inner` with every ack held until `open()`: a transport whose commits are slow. */
function slowAcks(inner: Transport): { transport: Transport; open(): void; held(): number } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let held = 0;
  const transport = withAck(inner, (delivery, outgoing) => {
    held++;
    return gate.then(() => delivery.ack(outgoing));
  });
  return { transport, open: release, held: () => held };
}

const Tick = defineEvent('slots.tick', z.object({ n: z.number() }));

it('with concurrency 1, the next handler runs while the last ack is still being committed', async () => {
  const slow = slowAcks(memory());
  const bus = createBus({
    endpoint: `slots-${randomUUID()}`,
    transport: slow.transport,
    concurrency: 1,
    prefetch: 10,
  });
  const started: number[] = [];
  let allStarted!: () => void;
  const three = new Promise<void>((resolve) => {
    allStarted = resolve;
  });
  bus.on(Tick, ({ n }) => {
    started.push(n);
    if (started.length === 3) allStarted();
  });
  await bus.start();
  for (let n = 0; n < 3; n++) await bus.publish(Tick, { n });
  await three;
  // The third handler's ack is sent just after it returns.
  await new Promise((resolve) => setTimeout(resolve, 20));
  // Three handlers ran one after the other, and none of their acks has resolved yet.
  assert.deepEqual(started, [0, 1, 2]);
  assert.equal(slow.held(), 3);
  let stopped = false;
  const stopping = bus.stop().then(() => {
    stopped = true;
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(stopped, false, 'stop() returned before the acks were done');
  slow.open();
  await stopping;
  assert.equal(stopped, true);
});
