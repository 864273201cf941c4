/**
 * The parent's side of the crash tests: child processes speaking the line protocol of shared.ts,
 * SIGKILLed by pid, and read-only views of the shared SQLite file.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { decodeEnvelope } from '@courier/core';
import type { SqliteDatabase } from '@courier/sqlite';
import { parseHeaders } from '../../src/rows.js';

const here = fileURLToPath(new URL('.', import.meta.url));
/** The repository root: `--import tsx` resolves from there. */
const root = join(here, '..', '..', '..', '..');

export const producerFile = join(here, 'producer.ts');
export const consumerFile = join(here, 'consumer.ts');

/** One child process; `done` resolves once it exited and all its output was read. */
export class Child {
  readonly process: ChildProcess;
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited = false;
  killedByParent = false;
  ready = false;
  private stderr = '';
  private readonly waiters = new Set<{ test: () => boolean; resolve: () => void }>();

  constructor(
    readonly name: string,
    file: string,
    env: Record<string, string>,
    private readonly onLine: (line: string, child: Child) => void,
  ) {
    this.process = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const lines = createInterface({ input: this.process.stdout! });
    lines.on('line', (line) => {
      if (line === 'R') this.ready = true;
      this.onLine(line, this);
      this.check();
    });
    // A killed child's stdin closes under a pending write: that is expected, not an error.
    this.process.stdin!.on('error', () => {});
    this.process.stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4_000);
    });
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      this.process.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const closed = new Promise<void>((resolve) => lines.once('close', resolve));
    this.done = Promise.all([exit, closed]).then(([status]) => {
      this.exited = true;
      this.check();
      return status;
    });
  }

  /** The end of what it wrote on stderr, for failure messages. */
  get errors(): string {
    return this.stderr;
  }

  /** Writes one line to its stdin. */
  send(line: string): void {
    if (!this.exited) this.process.stdin!.write(`${line}\n`);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.exited) return;
    if (signal === 'SIGKILL') this.killedByParent = true;
    this.process.kill(signal);
  }

  /** Resolves true once it exited (and its output was read), false if it still runs after `ms`. */
  async exitWithin(ms: number): Promise<boolean> {
    try {
      await this.until(() => this.exited, ms, 'its exit');
      return true;
    } catch {
      return false;
    }
  }

  /** Resolves when `test` holds (checked after each line and at exit), or rejects after `ms`. */
  until(test: () => boolean, ms: number, what: string): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        test,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`${this.name}: timed out after ${ms} ms waiting for ${what}\n${this.stderr}`));
      }, ms);
      this.waiters.add(waiter);
    });
  }

  private check(): void {
    for (const waiter of this.waiters) {
      if (waiter.test()) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }
}

/** The children of one test: spawned through it, and all ended when the test ends, even on failure. */
export class Children {
  private readonly live = new Set<Child>();
  private closed = false;

  spawn(
    name: string,
    file: string,
    env: Record<string, string>,
    onLine: (line: string, child: Child) => void = () => {},
  ): Child {
    // After a failure, the test's other loops may still try to start processes: none may outlive it.
    if (this.closed) throw new Error(`${name} not started: the test is ending`);
    const child = new Child(name, file, env, onLine);
    this.live.add(child);
    void child.done.then(() => this.live.delete(child));
    return child;
  }

  /** Spawns no more, SIGKILLs every child still running and waits for them to exit. */
  async killAll(): Promise<void> {
    this.closed = true;
    const running = [...this.live];
    for (const child of running) child.kill();
    await Promise.all(running.map((c) => c.done));
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `test` every `step` ms until it holds; fails with `what` after `ms`. */
export async function eventually(
  test: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
  step = 100,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await test()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(step);
  }
}

/** Sequence numbers in the at-least-once logs (`*.log` in `dir`), with how often each was logged. */
export function readLogs(dir: string): Map<number, number> {
  const counts = new Map<number, number>();
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.log')) continue;
    const text = readFileSync(join(dir, name), 'utf8');
    // A line cut by a kill has no newline: only whole lines count.
    const whole = text.slice(0, text.lastIndexOf('\n') + 1);
    for (const line of whole.split('\n')) {
      if (line === '') continue;
      const seq = Number(line);
      if (!Number.isInteger(seq)) throw new Error(`bad line '${line}' in ${name}`);
      counts.set(seq, (counts.get(seq) ?? 0) + 1);
    }
  }
  return counts;
}

/** One consistent read of the file: effects per seq, `JobDone` outputs per seq, and the queues' rows. */
export function snapshot(db: SqliteDatabase): {
  effects: Map<number, number>;
  outputs: Map<number, number>;
  outputIds: Set<string>;
  pending: number;
} {
  return db.transaction(() => {
    const effects = new Map<number, number>();
    for (const row of db.prepare('SELECT seq, count(*) AS n FROM app_effects GROUP BY seq').all() as {
      seq: number;
      n: number;
    }[])
      effects.set(row.seq, row.n);
    const outputs = new Map<number, number>();
    const outputIds = new Set<string>();
    const rows = db
      .prepare(
        `SELECT m.id, m.type, m.headers, m.body FROM courier_messages m
         JOIN courier_queues q ON q.id = m.queue_id WHERE q.name = 'audit'`,
      )
      .all() as { id: string; type: string; headers: string; body: string | Buffer }[];
    for (const row of rows) {
      const message = decodeEnvelope({
        id: row.id,
        type: row.type,
        headers: parseHeaders(row.headers, row.id, row.type),
        body: typeof row.body === 'string' ? Buffer.from(row.body) : row.body,
      });
      const seq = (message.data as { seq: number }).seq;
      outputs.set(seq, (outputs.get(seq) ?? 0) + 1);
      outputIds.add(row.id);
    }
    const pending = db
      .prepare(
        `SELECT count(*) FROM courier_messages m JOIN courier_queues q ON q.id = m.queue_id WHERE q.name = 'worker'`,
      )
      .pluck()
      .get() as number;
    return { effects, outputs, outputIds, pending };
  })();
}
