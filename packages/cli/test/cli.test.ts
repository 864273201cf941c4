/**
 * The `courier` command in process (`main(argv, io)`): usage errors, `demo` against the system on a
 * temporary file, `queues`, `dlq list|replay|purge`, and the checks catching a broken invariant. The
 * launcher (bin/courier.mjs) is run once as a real process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createBus, defineCommand } from '@courier/core';
import type { SqliteTransport } from '@courier/sqlite';
import { sqlite } from '@courier/sqlite';
import { z } from 'zod';
import type { RunningSystem } from '../../../examples/order-processing/src/index.js';
import { emailPath, startSystem } from '../../../examples/order-processing/src/index.js';
import { checkSystem } from '../src/checks.js';
import { main } from '../src/cli.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

async function courier(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const out = new Capture();
  const err = new Capture();
  const code = await main(argv, { out, err, env });
  return { code, out: out.text, err: err.text };
}

describe('courier: usage', () => {
  const bad: string[][] = [
    [],
    ['frobnicate'],
    ['run'],
    ['run', 'billing'],
    ['run', 'order', '--transport', 'rabbitmq'],
    ['run', 'all', '--port', 'x'],
    ['demo', '--orders', '0'],
    ['demo', '--rate', '-1'],
    ['demo', '--url', 'not a url'],
    ['demo', '--bogus'],
    ['queues', 'extra'],
    ['dlq'],
    ['dlq', 'show', 'payment'],
    ['dlq', 'list'],
    ['dlq', 'list', 'payment', '--limit', '0'],
    ['serve'],
    ['serve', 'order', 'payment'],
  ];
  for (const argv of bad) {
    it(`exits 2 on: courier ${argv.join(' ')}`, async () => {
      const { code, err } = await courier(argv);
      assert.equal(code, 2, err);
      assert.match(err, /usage: courier/);
    });
  }

  for (const command of ['run', 'demo', 'queues', 'dlq', 'serve']) {
    it(`courier ${command} --help`, async () => {
      const { code, out } = await courier([command, '--help']);
      assert.equal(code, 0);
      assert.match(out, new RegExp(`usage: courier ${command}`));
    });
  }

  it('courier --help lists the commands; serve stays hidden', async () => {
    const { code, out } = await courier(['--help']);
    assert.equal(code, 0);
    for (const command of ['run', 'demo', 'queues', 'dlq']) assert.match(out, new RegExp(`\\n  ${command} `));
    assert.doesNotMatch(out, /\n {2}serve /);
  });

  it('a missing broker file is an error (1), not created', async () => {
    const path = join(tmpdir(), `courier-missing-${process.pid}.db`);
    const { code, err } = await courier(['queues', '--db', path]);
    assert.equal(code, 1);
    assert.match(err, /no broker file/);
  });

  it('the launcher runs the command through tsx', async () => {
    const launcher = fileURLToPath(new URL('../bin/courier.mjs', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, [launcher, '--version']);
    assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
    const failed = await promisify(execFile)(process.execPath, [launcher, 'queues', '--nope']).catch(
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal((failed as { code: number }).code, 2);
  });
});

describe('courier: against a running system', () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-cli-'));
  const dbPath = join(dir, 'courier.db');
  const outboxDir = join(dir, 'outbox');
  let system: RunningSystem;
  let monitor: SqliteTransport;

  before(async () => {
    system = await startSystem({
      dbPath,
      port: 0,
      log: () => {},
      pollMaxMs: 10,
      gateway: { declineRate: 0.2, failureRate: 0.2, latencyMs: 0 },
    });
    monitor = sqlite({ path: dbPath });
  });
  after(async () => {
    await system.stop();
    await monitor.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('demo places the orders, waits for them and passes its checks', async () => {
    const { code, out, err } = await courier([
      'demo',
      '--orders',
      '40',
      '--rate',
      '100',
      '--url',
      system.url,
      '--db',
      dbPath,
      '--seed',
      '7',
    ]);
    assert.equal(code, 0, `${out}\n${err}`);
    assert.match(out, /40 accepted, 0 refused/);
    assert.match(out, /PASS: every invariant holds/);
    assert.doesNotMatch(out, /✗/);
  });

  it('queues shows every queue of the file', async () => {
    const { code, out } = await courier(['queues', '--db', dbPath]);
    assert.equal(code, 0);
    assert.match(out, /^queue\s+depth\s+in flight\s+scheduled\s+dead-lettered/);
    for (const queue of ['order', 'order-saga', 'inventory', 'payment', 'notification'])
      assert.match(out, new RegExp(`\\n${queue}\\s+\\d+`));
    const json = JSON.parse((await courier(['queues', '--db', dbPath, '--json'])).out) as { queue: string }[];
    assert.ok(
      json.some((q) => q.queue === 'payment'),
      "json.some((q) => q.queue === 'payment')",
    );
  });

  it('the checks catch a broken invariant', async () => {
    const good = checkSystem(monitor.db, { outboxDir });
    assert.ok(good.ok, 'good.ok');
    const confirmed = monitor.db
      .prepare(`SELECT id, total_cents FROM orders WHERE status = 'confirmed' LIMIT 1`)
      .get() as { id: string; total_cents: number };
    const failing = (report: ReturnType<typeof checkSystem>) =>
      report.checks.filter((c) => !c.ok).map((c) => c.name);

    // A unit of stock gone missing.
    monitor.db.prepare(`UPDATE inventory_stock SET stock = stock - 1 WHERE sku = 'coffee-beans'`).run();
    assert.deepEqual(failing(checkSystem(monitor.db, { outboxDir })), [
      'stock consistent (start = now + sold)',
    ]);
    monitor.db.prepare(`UPDATE inventory_stock SET stock = stock + 1 WHERE sku = 'coffee-beans'`).run();

    // An email missing.
    unlinkSync(emailPath(outboxDir, confirmed.id));
    assert.deepEqual(failing(checkSystem(monitor.db, { outboxDir })), [
      'exactly one email per terminal order',
    ]);

    // A second charge of a confirmed order (the ledger is append-only: it stays wrong).
    monitor.db
      .prepare(
        `INSERT INTO payments_ledger (order_id, kind, outcome, amount_cents, reference, reason, at) VALUES (?, 'charge', 'charged', ?, 'ch_test', NULL, 0)`,
      )
      .run(confirmed.id, confirmed.total_cents);
    const report = checkSystem(monitor.db, { outboxDir });
    assert.ok(!report.ok, '!report.ok');
    assert.deepEqual(failing(report), [
      'exactly one email per terminal order',
      'no order charged twice',
      'every confirmed order charged once',
    ]);

    // `demo` reports the failure and exits 1.
    const { code, out } = await courier([
      'demo',
      '--orders',
      '1',
      '--rate',
      '10',
      '--url',
      system.url,
      '--db',
      dbPath,
      '--timeout',
      '1',
    ]);
    assert.equal(code, 1, out);
    assert.match(out, /FAIL: .*no order charged twice/);
  });
});

describe('courier dlq', () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-dlq-'));
  const dbPath = join(dir, 'courier.db');
  const Job = defineCommand('scratch.job', z.object({ n: z.number() }));

  before(async () => {
    // Three dead letters in queue `scratch`: a handler that refuses every job.
    const transport = sqlite({ path: dbPath });
    const bus = createBus({ endpoint: 'scratch', transport });
    let refused = 0;
    const done = new Promise<void>((resolve) => {
      bus.handle(Job, (_data, ctx) => {
        if (++refused === 3) setImmediate(resolve);
        ctx.deadLetter('rejected', 'not today');
      });
    });
    await bus.start();
    for (const n of [1, 2, 3]) await bus.send(Job, { n });
    await done;
    await new Promise((r) => setTimeout(r, 100));
    await bus.stop();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lists, replays and purges', async () => {
    let result = await courier(['dlq', 'list', 'scratch', '--db', dbPath]);
    assert.equal(result.code, 0, result.err);
    assert.equal(result.out.match(/scratch\.job\s+rejected/g)?.length, 3, result.out);
    assert.match(result.out, /3 shown of 3 dead letters in scratch/);

    result = await courier(['dlq', 'list', 'scratch', '--db', dbPath, '--reason', 'expired']);
    assert.match(result.out, /no dead letters in scratch \(reason expired\)/);

    result = await courier(['dlq', 'replay', 'scratch', '--limit', '1', '--db', dbPath]);
    assert.equal(result.out.trim(), 'replayed 1 dead letter of scratch');
    const queues = await courier(['queues', '--db', dbPath, '--json']);
    const scratch = (JSON.parse(queues.out) as { queue: string; depth: number; deadLettered: number }[]).find(
      (q) => q.queue === 'scratch',
    );
    assert.deepEqual([scratch?.depth, scratch?.deadLettered], [1, 2]);

    result = await courier(['dlq', 'purge', 'scratch', '--type', 'scratch.job', '--db', dbPath]);
    assert.equal(result.out.trim(), 'purged 2 dead letters of scratch (type scratch.job)');
    result = await courier(['dlq', 'list', 'scratch', '--db', dbPath]);
    assert.match(result.out, /no dead letters in scratch \(0 in all\)/);

    result = await courier(['dlq', 'list', 'nowhere', '--db', dbPath]);
    assert.equal(result.code, 1);
    assert.match(result.err, /no queue "nowhere".*queues: scratch/);
  });
});
