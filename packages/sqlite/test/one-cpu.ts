/** Runs fixtures/one-cpu-consumer.ts in a child process, for the tests of 'auto' on one CPU. */
import { execFileSync } from 'node:child_process';

/** What the fixture reports: the CPUs it may use, whether it started a writer thread, messages handled. */
export interface OneCpuReport {
  readonly cpus: number;
  readonly thread: boolean;
  readonly handled: number;
}

const fixture = new URL('./fixtures/one-cpu-consumer.ts', import.meta.url).pathname;

/**
 * Runs the fixture on a file at `dbPath`, behind `wrapper` (a command and its arguments that run the
 * node command given after them: `taskset -c 0`, a shell that joins a cgroup first), or directly.
 */
export function runOneCpuConsumer(wrapper: readonly string[], dbPath: string): OneCpuReport {
  const node = [process.execPath, '--import', 'tsx', fixture, dbPath];
  const [command, ...args] = [...wrapper, ...node];
  const out = execFileSync(command!, args, { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!) as OneCpuReport;
}
