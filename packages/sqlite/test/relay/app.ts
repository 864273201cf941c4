/**
 * The child of the relay kill test: an application that writes its orders and their `OrderPlaced`
 * messages in one transaction of its own SQLite file (`APP_DB`), and an outbox relay in the same
 * process that publishes them to the broker's file (`BROKER_DB`).
 *
 * Env: APP_DB, BROKER_DB, LOG (see shared.ts), UNTIL (write orders up to this n, resuming after the
 * last one in the table), KILL_AT_REMOVE (SIGKILL itself at that remove call: after the publish
 * resolved, before the remove), FINAL (once everything is written and relayed, log D and exit).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { OutboxSource, PublishItem, Transport } from '@courier/core';
import { outgoingMessage, startOutboxRelay } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import { createAppTables, customerOf, hasDedupId, OrderPlaced } from './shared.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const log = openSync(env('LOG'), 'a');
const line = (text: string) => writeSync(log, `${text}\n`);
const until = Number(env('UNTIL'));
const killAtRemove = Number(process.env.KILL_AT_REMOVE ?? 0);

const app = sqlite({ path: env('APP_DB') });
const db = app.db;
createAppTables(db);
const outbox = app.outbox();
const broker = sqlite({ path: env('BROKER_DB') });
await broker.start();

// The seams the test watches: which ids each resolved publish carried, and a kill before a remove.
const idsBySeq = new Map<number, string>();
let removes = 0;
const source: OutboxSource = {
  next(limit) {
    const entries = outbox.next(limit);
    for (const e of entries) idsBySeq.set(e.seq, e.item.envelope.id);
    return entries;
  },
  remove(seqs) {
    if (++removes === killAtRemove) {
      line(`K ${seqs.map((s) => idsBySeq.get(s)).join(',')}`);
      process.kill(process.pid, 'SIGKILL');
    }
    outbox.remove(seqs);
    for (const s of seqs) idsBySeq.delete(s);
  },
};
const transport: Transport = Object.assign(Object.create(broker) as Transport, {
  async publish(items: readonly PublishItem[]) {
    await broker.publish(items);
    line(`P ${items.map((i) => i.envelope.id).join(',')}`);
  },
});

const relay = startOutboxRelay({
  source,
  transport,
  batchSize: 8,
  idleDelayMs: 5,
  retryDelayMs: 10,
  onError: (error) => process.stderr.write(`relay error: ${String(error)}\n`),
});
process.stdout.write('R\n');

// The application: a few orders every few ms, each with its message in the same transaction.
const last = (db.prepare('SELECT max(n) FROM orders').pluck().get() as number | null) ?? 0;
const insert = db.prepare('INSERT INTO orders (n, message_id) VALUES (?, ?)');
for (let n = last + 1; n <= until; n++) {
  const item = await outgoingMessage(
    OrderPlaced,
    { orderId: `order-${n}`, n },
    { source: 'orders', key: customerOf(n), dedupId: hasDedupId(n) ? undefined : false },
  );
  db.transaction(() => {
    insert.run(n, item.envelope.id);
    outbox.add([item]);
  })();
  if (n % 3 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
}

if (process.env.FINAL) {
  // Everything is written: one flush that reads the outbox empty has relayed it all.
  for (;;) {
    try {
      await relay.flush();
      break;
    } catch {
      // A transient failure (a busy lock); the relay retries, so ask again.
    }
  }
  await relay.stop();
  line('D');
  closeSync(log);
  await broker.close();
  await app.close();
  process.exit(0);
}
// Otherwise relay on until killed.
