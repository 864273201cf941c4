/**
 * `npm run bench:compare -- <base> [--case courier-sqlite-e2e] [--runs 6] [--count 200000]`
 *
 * Compares the working tree with another commit on one benchmark, the way this project measures a
 * change on a shared, noisy machine: both are bundled side by side (the base in a temporary git
 * worktree with its own benchmarks and build script), then run in turn, base then new, `--runs`
 * times, each in a fresh process with `bench/lib/cpu-report.mjs` preloaded. It prints every pair's
 * msgs/s and CPU (all threads, and the main thread) and the medians. Process CPU moves far less
 * with the machine's load than throughput does, so it is the steadier of the two figures.
 * Linux only (the worktree's node_modules is a hard-linked copy, so its workspace links point into
 * the worktree; the main thread's CPU comes from /proc).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BUILD_ENV } from './lib/build.js';
import { RESULT_PREFIX } from './lib/harness.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = join(BENCH_DIR, '..');
const CPU_PREFIX = '@@bench-cpu ';

interface Args {
  base: string;
  benchmark: string;
  runs: number;
  count: number;
}

interface Sample {
  msgsPerS: number;
  cpuMs: number;
  mainCpuMs: number | null;
}

function parseArgs(argv: readonly string[]): Args {
  const usage = 'usage: npm run bench:compare -- <base commit> [--case name] [--runs n] [--count n]';
  const args: Partial<Args> = { benchmark: 'courier-sqlite-e2e', runs: 6, count: 200_000 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value\n${usage}`);
      return next;
    };
    const positive = (text: string) => {
      const n = Number(text);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${arg} must be a positive integer, got '${text}'`);
      return n;
    };
    if (arg === '--case') args.benchmark = value();
    else if (arg === '--runs') args.runs = positive(value());
    else if (arg === '--count') args.count = positive(value());
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    } else if (arg.startsWith('--')) throw new Error(`unknown option '${arg}'\n${usage}`);
    else if (args.base === undefined) args.base = arg;
    else throw new Error(`one base commit only, got '${args.base}' and '${arg}'\n${usage}`);
  }
  if (args.base === undefined) throw new Error(`which commit to compare with?\n${usage}`);
  return args as Args;
}

/** The worktree's bundles, built with its own build script. */
async function build(benchDir: string): Promise<string> {
  const buildScript = pathToFileURL(join(benchDir, 'lib', 'build.ts')).href;
  const { buildBenchmarks } = (await import(buildScript)) as {
    buildBenchmarks(dir: string): Promise<string>;
  };
  return buildBenchmarks(benchDir);
}

function runOnce(buildDir: string, benchmark: string, count: number): Promise<Sample> {
  const file = join(buildDir, 'cases', `${benchmark}.js`);
  if (!existsSync(file)) return Promise.reject(new Error(`no benchmark '${benchmark}' in ${buildDir}`));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', join(BENCH_DIR, 'lib', 'cpu-report.mjs'), file], {
      cwd: join(buildDir, '..', '..'),
      env: { ...process.env, [BUILD_ENV]: buildDir, BENCH_COUNT: String(count) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = (prefix: string) =>
        out
          .split('\n')
          .find((l) => l.startsWith(prefix))
          ?.slice(prefix.length);
      const result = line(RESULT_PREFIX);
      const cpu = line(CPU_PREFIX);
      if (code !== 0 || result === undefined || cpu === undefined) {
        reject(new Error(`${benchmark} in ${buildDir} exited with ${code} without a result`));
        return;
      }
      const { msgs_per_s } = JSON.parse(result) as { msgs_per_s: number | null };
      const { cpu_ms, main_cpu_ms } = JSON.parse(cpu) as { cpu_ms: number; main_cpu_ms: number | null };
      if (msgs_per_s === null) reject(new Error(`${benchmark} reported no throughput`));
      else resolve({ msgsPerS: msgs_per_s, cpuMs: cpu_ms, mainCpuMs: main_cpu_ms });
    });
  });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function line(label: string, s: Sample): string {
  const main = s.mainCpuMs === null ? '' : `, main thread ${Math.round(s.mainCpuMs)} ms`;
  return `${label} ${Math.round(s.msgsPerS).toLocaleString('en-US')} msgs/s, CPU ${Math.round(s.cpuMs)} ms${main}`;
}

const args = parseArgs(process.argv.slice(2));
const revision = execFileSync('git', ['rev-parse', '--short', args.base], {
  cwd: ROOT,
  encoding: 'utf8',
}).trim();
const worktree = mkdtempSync(join(tmpdir(), `courier-compare-${revision}-`));
try {
  execFileSync('git', ['worktree', 'add', '--detach', '--quiet', worktree, revision], { cwd: ROOT });
  execFileSync('cp', ['-al', join(ROOT, 'node_modules'), join(worktree, 'node_modules')]);
  process.stderr.write(`building ${revision} and the working tree...\n`);
  const baseBuild = await build(join(worktree, 'bench'));
  const newBuild = await build(BENCH_DIR);
  const base: Sample[] = [];
  const next: Sample[] = [];
  for (let i = 1; i <= args.runs; i++) {
    base.push(await runOnce(baseBuild, args.benchmark, args.count));
    next.push(await runOnce(newBuild, args.benchmark, args.count));
    process.stdout.write(`${i}: ${line(revision, base.at(-1)!)} | ${line('new', next.at(-1)!)}\n`);
  }
  const summary = (samples: Sample[]) => ({
    msgsPerS: median(samples.map((s) => s.msgsPerS)),
    cpuMs: median(samples.map((s) => s.cpuMs)),
    mainCpuMs: samples.some((s) => s.mainCpuMs === null) ? null : median(samples.map((s) => s.mainCpuMs!)),
  });
  const b = summary(base);
  const n = summary(next);
  const change = (from: number, to: number) =>
    `${to >= from ? '+' : ''}${(((to - from) / from) * 100).toFixed(1)} %`;
  process.stdout.write(
    `${args.benchmark}, ${args.count} messages, medians of ${args.runs} interleaved pairs:\n` +
      `  ${line(revision, b)}\n  ${line('new', n)}\n` +
      `  msgs/s ${change(b.msgsPerS, n.msgsPerS)}, CPU ${change(b.cpuMs, n.cpuMs)}\n`,
  );
} finally {
  try {
    execFileSync('git', ['worktree', 'remove', '--force', worktree], { cwd: ROOT, stdio: 'ignore' });
  } catch {
    // Not added (a bad revision): only the folder to remove.
  }
  rmSync(worktree, { recursive: true, force: true });
}
