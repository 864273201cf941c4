/**
 * The outbox relay under SIGKILL (issue 4, items 2 and 4): a child process runs an application that
 * writes each order and its `OrderPlaced` message in one transaction of its own SQLite file
 * (`app.db`), and a relay that publishes the outbox to the broker's file (`broker.db`, a different
 * file: the outbox case of an application whose database is not the broker). The parent SIGKILLs the
 * child 12 times, half of them by the child itself right after a publish resolved and before its
 * remove, and restarts it. A consumer in the parent, with the SQLite `inbox()` behind a counter of
 * deliveries, applies each order's effect. Every order must take effect exactly once, in order per
 * customer, with republished copies caught by the broker's dedup (even orders carry a dedupId) and by
 * the inbox (odd orders do not).
 *
 * Replay a run with RELAY_KILL_SEED=<seed> (printed as a diagnostic).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ConsumeMiddleware, OutboxSource } from '@courier/core';
import { createBus, inbox, seededRandom } from '@courier/core';
import { type SqliteOutbox, sqlite } from '@courier/sqlite';
import Database from 'better-sqlite3';
import { customerOf, hasDedupId, OrderPlaced } from './relay/shared.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..', '..', '..');
const appFile = join(here, 'relay', 'app.ts');
const seed = Number(process.env.RELAY_KILL_SEED ?? Math.floor(Math.random() * 2 ** 31));

// The SQLite outbox is an OutboxSource as it is (a compile-time check).
const _structural: (outbox: SqliteOutbox) => OutboxSource = (outbox) => outbox;
void _structural;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function eventually(test: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** `promise`'s value, or undefined after `ms` (the timer is cleared either way). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** One run of the child: resolves `ready` on its `R` line, `exit` when it ended. */
function startChild(env: Record<string, string>, live: Set<ChildProcess>) {
  const child = spawn(process.execPath, ['--import', 'tsx', appFile], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  let exited = false;
  const exit = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = true;
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line === 'R') resolve();
    });
    void exit.then(() => reject(new Error(`the child exited before it was ready:\n${stderr}`)));
  });
  ready.catch(() => {});
  return {
    child,
    ready,
    exit,
    get exited() {
      return exited;
    },
    get stderr() {
      return stderr;
    },
  };
}

it('the relay SIGKILLed 12 times, 6 of them between publish and remove: every order takes effect once, in order per key', {
  timeout: 60_000,
}, async (t) => {
  t.diagnostic(`RELAY_KILL_SEED=${seed}`);
  const random = seededRandom(seed);
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'courier-relay-kill-'));
  const appDb = join(dir, 'app.db');
  const brokerDb = join(dir, 'broker.db');
  const logPath = join(dir, 'relay.log');
  const perLife = 40;
  const lives = 12;
  const total = perLife * (lives + 1);

  // The consumer: a delivery counter outside the inbox, the effect inside it.
  const broker = sqlite({ path: brokerDb });
  const deliveries = new Map<string, number>();
  const effects = new Map<string, number>();
  const lastByCustomer = new Map<string, number>();
  const outOfOrder: string[] = [];
  const countDeliveries: ConsumeMiddleware = async (ctx, next) => {
    deliveries.set(ctx.id, (deliveries.get(ctx.id) ?? 0) + 1);
    await next();
  };
  const bus = createBus({
    endpoint: 'shipping',
    transport: broker,
    concurrency: 8,
    middleware: [countDeliveries, inbox({ store: broker.inboxStore() })],
  }).on(OrderPlaced, (data, ctx) => {
    effects.set(ctx.id, (effects.get(ctx.id) ?? 0) + 1);
    const customer = ctx.key ?? '';
    if (customer !== customerOf(data.n)) outOfOrder.push(`order ${data.n} has key ${customer}`);
    const last = lastByCustomer.get(customer) ?? 0;
    if (data.n <= last) outOfOrder.push(`${customer}: order ${data.n} after ${last}`);
    lastByCustomer.set(customer, Math.max(last, data.n));
  });
  // Declares the queue and its binding before any publish, so no event goes unrouted.
  await bus.start();

  const live = new Set<ChildProcess>();
  const kills = { external: 0, self: 0, selfMissed: 0 };
  try {
    // Kill modes in a seeded order: 6 by the child between publish and remove, 6 from outside.
    const modes: string[] = Array.from({ length: lives }, (_, i) => (i % 2 === 0 ? 'self' : 'external'));
    for (let i = modes.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [modes[i], modes[j]] = [modes[j]!, modes[i]!];
    }
    const base = { APP_DB: appDb, BROKER_DB: brokerDb, LOG: logPath };
    for (let life = 0; life < lives; life++) {
      const until = String(perLife * (life + 1));
      if (modes[life] === 'self') {
        const run = startChild(
          { ...base, UNTIL: until, KILL_AT_REMOVE: String(1 + Math.floor(random() * 4)) },
          live,
        );
        await run.ready;
        const status = await within(run.exit, 5_000);
        if (status === undefined) {
          // Too few removes in this life to reach KILL_AT_REMOVE: kill it from outside instead.
          run.child.kill('SIGKILL');
          await run.exit;
          kills.selfMissed++;
        } else {
          assert.equal(status.signal, 'SIGKILL', `the child exited with ${status.code}:\n${run.stderr}`);
          kills.self++;
        }
      } else {
        const run = startChild({ ...base, UNTIL: until }, live);
        await run.ready;
        await sleep(20 + Math.floor(random() * 250));
        assert.equal(run.exited, false, `the child ended by itself:\n${run.stderr}`);
        run.child.kill('SIGKILL');
        await run.exit;
        kills.external++;
      }
    }

    // The last life writes the rest, relays everything and exits.
    const final = startChild({ ...base, UNTIL: String(total), FINAL: '1' }, live);
    const status = await within(final.exit, 20_000);
    assert.deepEqual(status, { code: 0, signal: null }, `the final run did not finish:\n${final.stderr}`);

    await eventually(() => effects.size >= total, 20_000, `${total} orders handled`);
    // Room for a stray late copy to show up before counting.
    await sleep(300);

    // The application's file: every order, with its message, and an empty outbox.
    const app = new Database(appDb, { readonly: true });
    const orders = app.prepare('SELECT n, message_id AS id FROM orders ORDER BY n').all() as {
      n: number;
      id: string;
    }[];
    const outboxLeft = app.prepare('SELECT count(*) FROM courier_outbox').pluck().get() as number;
    app.close();
    assert.equal(orders.length, total);
    assert.deepEqual(
      orders.map((o) => o.n),
      Array.from({ length: total }, (_, i) => i + 1),
    );
    assert.equal(outboxLeft, 0);

    // The relay's log: which ids each resolved publish carried, and the kills between publish and remove.
    const lines = readFileSync(logPath, 'utf8').split('\n');
    const publishes = new Map<string, number>();
    const killedBeforeRemove: string[][] = [];
    for (const line of lines) {
      const [kind, list] = line.split(' ');
      if (kind === 'P') for (const id of list!.split(',')) publishes.set(id, (publishes.get(id) ?? 0) + 1);
      if (kind === 'K') killedBeforeRemove.push(list!.split(','));
    }
    assert.ok(lines.includes('D'), 'the final run relayed everything');

    // Exactly once in effect, in order per customer.
    const nOf = new Map(orders.map((o) => [o.id, o.n]));
    assert.deepEqual(new Set(effects.keys()), new Set(nOf.keys()), 'the handled ids are the orders');
    const repeated = [...effects].filter(([, count]) => count !== 1);
    assert.deepEqual(repeated, [], 'no effect applied twice');
    assert.deepEqual(outOfOrder, []);

    // The kills happened, and hit between publish and remove.
    assert.ok(
      kills.self + kills.selfMissed + kills.external >= 10,
      'kills.self + kills.selfMissed + kills.external >= 10',
    );
    assert.equal(killedBeforeRemove.length, kills.self, 'each self-kill logged its batch');
    assert.ok(kills.self >= 1, 'at least one kill between publish and remove');
    for (const batch of killedBeforeRemove) {
      for (const id of batch)
        assert.ok((publishes.get(id) ?? 0) >= 2, `${id} was killed before remove, then republished`);
    }

    // The republished copies were caught: by the broker's dedup (dedupId) and by the inbox (none).
    const republished = [...publishes].filter(([, count]) => count >= 2).map(([id]) => id);
    const caughtByDedup = republished.filter((id) => hasDedupId(nOf.get(id)!) && deliveries.get(id) === 1);
    const caughtByInbox = [...deliveries].filter(([, count]) => count >= 2).map(([id]) => id);
    for (const id of caughtByInbox)
      assert.ok(!hasDedupId(nOf.get(id)!), `${id} has a dedupId yet came twice`);
    assert.ok(caughtByDedup.length > 0, 'some republished copies were dropped by the broker dedup');
    assert.ok(caughtByInbox.length > 0, 'some republished copies were delivered and skipped by the inbox');

    t.diagnostic(
      `${total} orders; kills: ${kills.self} between publish and remove, ${kills.external} at random, ` +
        `${kills.selfMissed} missed; ${republished.length} ids republished, ${caughtByDedup.length} caught by dedup, ` +
        `${caughtByInbox.length} by the inbox; ${Date.now() - started} ms`,
    );
  } finally {
    const left = [...live];
    for (const child of left) child.kill('SIGKILL');
    await Promise.all(left.map((child) => new Promise((resolve) => child.once('exit', resolve))));
    await bus.stop({ timeoutMs: 2_000 });
    rmSync(dir, { recursive: true, force: true });
  }
});
