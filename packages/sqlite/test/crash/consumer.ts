/**
 * Crash-test consumer (a child process): handles `Job`s from the worker queue of the SQLite file DB.
 * For each delivery the handler
 *   1. reports `S seq attempt`;
 *   2. waits WORK_MS_MIN..WORK_MS_MAX ms (so kills from outside find work in flight);
 *   3. with OUTPUT=1, holds a `JobDone { seq }` (`ctx.publish`, stored with the transaction);
 *   4. appends `seq` to the at-least-once log LOG (a plain file, written before the handler returns);
 *   5. in `ctx.transact`, inserts the effect row into `app_effects` (the exactly-once record).
 * The bus's `consumed` event (after the commit) is reported as `D seq`.
 *
 * On the KILL_AT-th delivery this life handles (1-based), it SIGKILLs itself at KILL_STAGE (see
 * `KillStage`), after reporting `K seq stage`. A `poison` job kills the process every time it runs.
 * With WAIT_GO=1 it starts its bus only when a line arrives on stdin. SIGTERM stops the bus
 * gracefully and exits 0.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { createBus } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import type { Statement } from 'better-sqlite3';
import type { KillStage } from './shared.js';
import { envInt, Job, JobDone, killStages, say, topology, workerQueue } from './shared.js';

const path = process.env.DB!;
const logPath = process.env.LOG!;
const killAt = envInt('KILL_AT', 0);
const killStage = process.env.KILL_STAGE as KillStage | undefined;
if (killAt > 0 && !killStages.includes(killStage!)) throw new Error(`unknown KILL_STAGE ${killStage}`);
const output = process.env.OUTPUT === '1';
const workMin = envInt('WORK_MS_MIN', 0);
const workMax = envInt('WORK_MS_MAX', 0);
const concurrency = envInt('CONCURRENCY', 4);

/** SIGKILL now; nothing after this line runs, not even a pending microtask. */
function die(seq: number, stage: string): never {
  say(`K ${seq} ${stage}`);
  process.kill(process.pid, 'SIGKILL');
  for (;;) {
    // SIGKILL is not catchable; spin rather than let this code go on if delivery is late.
  }
}

const log = openSync(logPath, 'a');
const transport = sqlite({ path });
const bus = createBus({
  endpoint: workerQueue,
  transport,
  topology,
  concurrency,
  prefetch: envInt('PREFETCH', concurrency * 2),
  leaseMs: envInt('LEASE_MS', 500),
  retry: {
    maxAttempts: envInt('MAX_ATTEMPTS', 100),
    immediate: 1,
    initialDelayMs: 10,
    maxDelayMs: 100,
    factor: 2,
  },
  observer: (event) => {
    if (event.kind === 'consumed') say(`D ${(event.message.data as { seq: number }).seq}`);
    else if (event.kind === 'retried' || event.kind === 'error') {
      const error = event.error as Error | undefined;
      say(`E ${event.kind} ${error?.message ?? String(error)}`.replaceAll('\n', ' '));
    }
  },
});

let deliveries = 0;
bus.handle(Job, async ({ seq, poison }, ctx) => {
  say(`S ${seq} ${ctx.attempt}`);
  if (poison) die(seq, 'poison');
  const stage = ++deliveries === killAt ? killStage : undefined;
  const workMs = workMin + Math.floor(Math.random() * (workMax - workMin + 1));
  if (workMs > 0) await new Promise((resolve) => setTimeout(resolve, workMs));
  if (output) await ctx.publish(JobDone, { seq });
  if (stage === 'handler') die(seq, stage);
  writeSync(log, `${seq}\n`);
  ctx.transact((db: typeof transport.db) => {
    if (stage === 'before-write') die(seq, stage);
    insertEffect ??= db.prepare('INSERT INTO app_effects (seq, attempt, pid) VALUES (?, ?, ?)');
    insertEffect.run(seq, ctx.attempt, process.pid);
    if (stage === 'after-write') die(seq, stage);
  });
  if (stage === 'after-commit') die(seq, stage);
});
let insertEffect: Statement<[number, number, number]> | undefined;

// The SQLite transport's poll timer is unref'd: with nothing else holding the event loop, an idle
// consumer process exits on its own (a bug; crash.test.ts has a todo test for it). Hold it until
// SIGTERM, unless KEEP_ALIVE=0 (that test).
const keepAlive = process.env.KEEP_ALIVE === '0' ? undefined : setInterval(() => {}, 60_000);
// Orphaned (the parent died and its end of stdin closed): exit instead of living on.
if (keepAlive) process.stdin.on('end', () => process.exit(1)).resume();

process.on('SIGTERM', () => {
  clearInterval(keepAlive);
  void bus.stop({ timeoutMs: 5_000 }).then(() => {
    closeSync(log);
    process.exit(0);
  });
});

if (process.env.WAIT_GO === '1') {
  // A standby: loaded, it waits for the parent's "go" before it takes any work.
  await new Promise((resolve) => process.stdin.once('data', resolve));
}
await bus.start();
say('R');
