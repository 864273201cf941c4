/**
 * Spawning benchmark children the way the runner does: the bundle of `file` on plain Node when the
 * runner built one (bench/lib/build.ts), else `process.execPath --import tsx <file>`; stdout is read
 * line by line (the result/report channel) and stderr passed through.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ProducerJob } from '../workers/courier-producer.js';
import { runnable } from './build.js';

export const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface TsChild {
  readonly child: ChildProcess;
  /** Resolves with the exit code (or the signal's name). */
  readonly exited: Promise<number | string>;
}

/** Runs `file` (relative to bench/) in a new Node process, calling `onLine` for each stdout line. */
export function spawnTs(
  file: string,
  options: { args?: readonly string[]; env?: NodeJS.ProcessEnv; onLine: (line: string) => void },
): TsChild {
  const { path, viaTsx } = runnable(BENCH_DIR, file);
  const loader = viaTsx ? ['--import', 'tsx'] : [];
  const child = spawn(process.execPath, [...loader, path, ...(options.args ?? [])], {
    cwd: join(BENCH_DIR, '..'),
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  createInterface({ input: child.stdout! }).on('line', options.onLine);
  const exited = new Promise<number | string>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  return { child, exited };
}

export interface ProducerDone {
  published: number;
  firstAt: number;
  lastAt: number;
  peakRssMb: number;
}

/** Starts bench/workers/courier-producer.ts on `job`; `started` resolves with its first publish's wall time. */
export function spawnProducer(job: ProducerJob): {
  started: Promise<number>;
  done: Promise<ProducerDone>;
  child: ChildProcess;
} {
  let onStarted!: (at: number) => void;
  let onDone!: (done: ProducerDone) => void;
  let onFailed!: (error: Error) => void;
  const started = new Promise<number>((resolve) => {
    onStarted = resolve;
  });
  const done = new Promise<ProducerDone>((resolve, reject) => {
    onDone = resolve;
    onFailed = reject;
  });
  const proc = spawnTs('workers/courier-producer.ts', {
    env: { BENCH_WORKER: JSON.stringify(job) },
    onLine: (line) => {
      if (!line.startsWith('{')) return;
      const event = JSON.parse(line) as { event: string; at?: number; error?: string } & ProducerDone;
      if (event.event === 'started') onStarted(event.at ?? 0);
      else if (event.event === 'done') onDone(event);
      else if (event.event === 'failed') onFailed(new Error(`producer failed: ${event.error}`));
    },
  });
  proc.exited.then(
    (code) => onFailed(new Error(`producer exited (${code}) before reporting done`)),
    (error: unknown) => onFailed(error instanceof Error ? error : new Error(String(error))),
  );
  // A producer that dies before starting must not leave `started` waiting forever.
  done.catch(() => onStarted(Number.NaN));
  return { started, done, child: proc.child };
}
