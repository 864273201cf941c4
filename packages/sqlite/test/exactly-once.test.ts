/**
 * Exactly-once effects (issue 3, item 6; DESIGN.md §2.4): a consumer process is SIGKILLed inside the
 * `ctx.transact` path again and again: in the handler before `transact`, inside the work function
 * before the application write, after it (before the commit), and right after the commit before the
 * handler returns. After every kill the file must show each effect at most once, and the handler's
 * output (a `ctx.publish` held before `transact`) stored exactly when its effect is; at the end,
 * every message took effect exactly once with exactly one output.
 *
 * Replay a run with CRASH_SEED=<seed> (printed as a diagnostic).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { createBus, seededRandom, toTransportTopology } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import { Children, consumerFile, eventually, snapshot } from './crash/harness.js';
import type { KillStage } from './crash/shared.js';
import { createAppTables, Job, killStages, topology, workerQueue } from './crash/shared.js';

const seed = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));

it('SIGKILLed inside ctx.transact 28 times: each effect and its output stored exactly once, together', {
  timeout: 180_000,
}, async (t) => {
  const random = seededRandom(seed);
  const started = Date.now();
  const children = new Children();
  const dir = mkdtempSync(join(tmpdir(), 'courier-crash-'));
  const path = join(dir, 'courier.db');
  const transport = sqlite({ path });
  try {
    createAppTables(transport.db);
    await transport.declare(toTransportTopology(topology));
    const producer = createBus({ endpoint: 'producer', transport, routes: { [Job.type]: workerQueue } });
    const messages = 1_500;
    for (let from = 1; from <= messages; from += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, messages - from + 1) }, (_, i) =>
          producer.send(Job, { seq: from + i }),
        ),
      );
    }

    // 7 kills at each stage, in a seeded random order.
    const deck: KillStage[] = killStages.flatMap((stage) => Array.from({ length: 7 }, () => stage));
    for (let i = deck.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [deck[i], deck[j]] = [deck[j]!, deck[i]!];
    }
    const kills: { stage: KillStage; seq: number; inFlight: number }[] = [];
    let handlerRuns = 0;
    let redeliveries = 0;
    let handlerErrors = 0;
    let checks = 0;

    let life = 0;
    const spawn = () => {
      const stage = deck.pop();
      const open = new Map<number, number>();
      const done: number[] = [];
      let killedAt: { seq: number; stage: KillStage } | undefined;
      const child = children.spawn(
        `consumer ${life}`,
        consumerFile,
        {
          DB: path,
          LOG: join(dir, `consumer-${life++}.log`),
          OUTPUT: '1',
          WAIT_GO: '1',
          LEASE_MS: '500',
          CONCURRENCY: '4',
          WORK_MS_MIN: '0',
          WORK_MS_MAX: '3',
          ...(stage ? { KILL_AT: String(1 + Math.floor(random() * 25)), KILL_STAGE: stage } : {}),
        },
        (line) => {
          const [kind, a, b] = line.split(' ');
          if (kind === 'S') {
            open.set(Number(a), (open.get(Number(a)) ?? 0) + 1);
            handlerRuns++;
            if (Number(b) > 1) redeliveries++;
          } else if (kind === 'D') {
            const n = (open.get(Number(a)) ?? 0) - 1;
            if (n > 0) open.set(Number(a), n);
            else open.delete(Number(a));
            done.push(Number(a));
          } else if (kind === 'K') {
            killedAt = { seq: Number(a), stage: b as KillStage };
          } else if (kind === 'E') {
            handlerErrors++;
          }
        },
      );
      return { stage, child, open, done, killedAt: () => killedAt };
    };

    /** What must hold in the file whenever no consumer runs. */
    const check = (context: string) => {
      const { effects, outputs } = snapshot(transport.db);
      checks++;
      const twice = [...effects].filter(([, n]) => n !== 1);
      assert.deepEqual(twice, [], `${context}: effects stored more than once`);
      const twiceOut = [...outputs].filter(([, n]) => n !== 1);
      assert.deepEqual(twiceOut, [], `${context}: outputs stored more than once`);
      const effectOnly = [...effects.keys()].filter((seq) => !outputs.has(seq));
      assert.deepEqual(effectOnly, [], `${context}: effects stored without their output`);
      const outputOnly = [...outputs.keys()].filter((seq) => !effects.has(seq));
      assert.deepEqual(outputOnly, [], `${context}: outputs stored without their effect`);
      return effects;
    };

    let current = spawn();
    for (;;) {
      const { stage, child, open, done, killedAt } = current;
      child.send('go');
      await child.until(() => child.ready || child.exited, 30_000, `${child.name} to start`);
      if (stage === undefined) break;
      const next = spawn();
      if (!(await child.exitWithin(20_000))) {
        child.kill();
        await child.done;
        assert.fail(`${child.name} did not kill itself at ${stage}:\n${child.errors}`);
      }
      const status = await child.done;
      assert.equal(status.signal, 'SIGKILL', `${child.name} was not killed:\n${child.errors}`);
      const at = killedAt();
      assert.equal(at?.stage, stage, `${child.name} died, but not at its planned kill:\n${child.errors}`);
      const effects = check(`after the kill of ${child.name} at ${stage}`);
      // The killed handling: committed only when the kill came after the commit.
      assert.equal(
        effects.get(at.seq) ?? 0,
        stage === 'after-commit' ? 1 : 0,
        `message ${at.seq}: its effect after a kill at ${stage}`,
      );
      for (const seq of done) assert.equal(effects.get(seq), 1, `message ${seq} reported done has no effect`);
      kills.push({ stage, seq: at.seq, inFlight: open.size });
      current = next;
    }

    const last = current.child;
    await eventually(
      () => {
        if (last.exited) throw new Error(`${last.name} exited:\n${last.errors}`);
        const { effects, pending } = snapshot(transport.db);
        return pending === 0 && effects.size === messages;
      },
      90_000,
      'every message to take effect and the queue to empty',
      200,
    );
    last.kill('SIGTERM');
    assert.equal((await last.done).code, 0, `${last.name} did not stop:\n${last.errors}`);

    const effects = check('at the end');
    const { outputIds, outputs } = snapshot(transport.db);
    for (let seq = 1; seq <= messages; seq++) {
      assert.equal(effects.get(seq), 1, `message ${seq}: effects`);
      assert.equal(outputs.get(seq), 1, `message ${seq}: outputs`);
    }
    assert.equal(effects.size, messages, 'no effect of an unknown message');
    assert.equal(outputIds.size, messages, 'one output id per message');
    const stats = await transport.stats(workerQueue);
    assert.deepEqual(
      { depth: stats.depth, inFlight: stats.inFlight, scheduled: stats.scheduled, dlq: stats.deadLettered },
      { depth: 0, inFlight: 0, scheduled: 0, dlq: 0 },
    );

    const count = (stage: KillStage) => kills.filter((k) => k.stage === stage).length;
    t.diagnostic(`seed ${seed}`);
    t.diagnostic(`messages: ${messages}, each with one effect and one output`);
    t.diagnostic(`kills: ${kills.length} (${killStages.map((s) => `${count(s)} ${s}`).join(', ')})`);
    t.diagnostic(
      `kills that hit in-flight work: ${kills.filter((k) => k.inFlight > 0).length} of ${kills.length} ` +
        `(in flight at a kill: ${kills.reduce((a, k) => a + k.inFlight, 0)} handlings in all)`,
    );
    t.diagnostic(
      `handler runs: ${handlerRuns}, redeliveries (attempt > 1): ${redeliveries}, handler errors retried: ${handlerErrors}, file checks: ${checks}`,
    );
    t.diagnostic(`duration: ${Date.now() - started} ms`);
    assert.ok(kills.length >= 28, `${kills.length} kills`);
    for (const stage of killStages) assert.ok(count(stage) >= 7, `${count(stage)} kills at ${stage}`);
  } finally {
    await children.killAll();
    await transport.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
