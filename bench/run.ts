/**
 * `npm run bench [-- --quick] [-- --json] [-- --only name1,name2] [-- --source]`
 *
 * Runs every benchmark of bench/cases in a child process of its own (so RSS and GC are per
 * benchmark), one after the other in one run, prints a table and the ratios issue 3 asks for, and
 * writes the results with the machine's description to bench/results/<date>-<quick|full>.md/.jsonl
 * (`<date>-<mode>-only.*` for a run narrowed with --only).
 * Courier runs from a bundle of compiled JavaScript on plain Node, as a service does in production
 * (bench/lib/build.ts); `--source` runs the TypeScript under tsx instead.
 * The machine is shared and noisy: read the ratios of one run, not absolute figures across runs.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { BUILD_ENV, buildBenchmarks } from './lib/build.js';
import { BENCH_DIR, spawnTs } from './lib/child.js';
import { type BenchResult, failedResult, RESULT_PREFIX } from './lib/harness.js';

interface BenchmarkCase {
  /** File under bench/cases. */
  file: string;
  /** Results it reports, in order. */
  names: readonly string[];
  /** Longest run before it is killed and reported failed, in ms. */
  timeoutMs: { quick: number; full: number };
  /** What --quick changes, for the output. */
  quickNote: string;
}

const MINUTE = 60_000;

const CASES: readonly BenchmarkCase[] = [
  {
    file: 'raw-sqlite-queue.ts',
    names: ['raw-sqlite-queue'],
    timeoutMs: { quick: MINUTE, full: 5 * MINUTE },
    quickNote: '100,000 rows (as full)',
  },
  {
    file: 'bullmq-e2e.ts',
    names: ['bullmq-e2e'],
    timeoutMs: { quick: MINUTE, full: 10 * MINUTE },
    quickNote: '20,000 jobs instead of 100,000',
  },
  {
    file: 'courier-sqlite-e2e.ts',
    names: ['courier-sqlite-e2e'],
    timeoutMs: { quick: MINUTE, full: 10 * MINUTE },
    quickNote: '20,000 messages instead of 100,000',
  },
  {
    file: 'courier-sqlite-cross-process.ts',
    names: ['courier-sqlite-cross-process'],
    timeoutMs: { quick: MINUTE, full: 10 * MINUTE },
    quickNote: '20,000 messages instead of 100,000',
  },
  {
    file: 'latency-floor.ts',
    names: ['latency-floor'],
    timeoutMs: { quick: MINUTE, full: 5 * MINUTE },
    quickNote: '3 s at 2,000 msg/s instead of 10 s',
  },
  {
    file: 'courier-sqlite-latency.ts',
    names: ['courier-sqlite-latency'],
    timeoutMs: { quick: MINUTE, full: 5 * MINUTE },
    quickNote: '3 s at 2,000 msg/s instead of 10 s',
  },
  {
    file: 'courier-sqlite-cross-process-latency.ts',
    names: ['courier-sqlite-cross-process-latency'],
    timeoutMs: { quick: MINUTE, full: 5 * MINUTE },
    quickNote: '3 s at 2,000 msg/s instead of 10 s',
  },
  {
    file: 'courier-sqlite-backlog.ts',
    names: ['courier-sqlite-backlog-first', 'courier-sqlite-backlog-last'],
    timeoutMs: { quick: 2 * MINUTE, full: 60 * MINUTE },
    quickNote: '200,000 ready + 50,000 delayed + 5,000 dead instead of 1,000,000 + 1,000,000 + 100,000',
  },
];

/** The ratios of issue 3's "Done when", with their targets. */
const RATIOS = [
  { numerator: 'courier-sqlite-e2e', denominator: 'bullmq-e2e', target: 3 },
  { numerator: 'courier-sqlite-e2e', denominator: 'raw-sqlite-queue', target: 0.5 },
  { numerator: 'courier-sqlite-backlog-last', denominator: 'courier-sqlite-backlog-first', target: 0.8 },
] as const;

/** The absolute targets of "Done when" (latency and memory). */
const LIMITS = [
  { name: 'courier-sqlite-latency', field: 'p99_ms', below: 1, unit: 'ms' },
  { name: 'courier-sqlite-cross-process-latency', field: 'p99_ms', below: 5, unit: 'ms' },
  { name: 'courier-sqlite-backlog-last', field: 'peak_rss_mb', below: 150, unit: 'MB' },
] as const;

interface Args {
  quick: boolean;
  json: boolean;
  only: string[] | undefined;
  /** Run the TypeScript under tsx instead of the bundle. */
  source: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { quick: false, json: false, only: undefined, source: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') args.quick = true;
    else if (arg === '--json') args.json = true;
    else if (arg === '--source') args.source = true;
    else if (arg === '--only' || arg.startsWith('--only=')) {
      const value = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      if (!value) throw new Error('--only needs a comma-separated list of benchmark names');
      args.only = value
        .split(',')
        .map((name) => name.trim())
        .filter(Boolean);
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write(
        'usage: npm run bench -- [--quick] [--json] [--only name1,name2] [--source]\nbenchmarks:\n' +
          CASES.flatMap((c) => c.names.map((name) => `  ${name}\n`)).join(''),
      );
      process.exit(0);
    } else throw new Error(`unknown argument '${arg}': use --quick, --json, --source or --only name1,name2`);
  }
  return args;
}

function selectCases(only: string[] | undefined): BenchmarkCase[] {
  if (only === undefined) return [...CASES];
  const known = new Set(CASES.flatMap((c) => [...c.names, c.file.replace(/\.ts$/, '')]));
  const unknown = only.filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw new Error(
      `unknown benchmark '${unknown.join("', '")}': choose from ${[...known].sort().join(', ')}`,
    );
  }
  return CASES.filter(
    (c) => only.includes(c.file.replace(/\.ts$/, '')) || c.names.some((name) => only.includes(name)),
  );
}

async function runCase(
  benchmark: BenchmarkCase,
  quick: boolean,
): Promise<{ results: BenchResult[]; seconds: number }> {
  const started = performance.now();
  const results: BenchResult[] = [];
  const proc = spawnTs(join('cases', benchmark.file), {
    args: quick ? ['--quick'] : [],
    env: { BENCH_QUICK: quick ? '1' : '0' },
    onLine: (line) => {
      if (line.startsWith(RESULT_PREFIX))
        results.push(JSON.parse(line.slice(RESULT_PREFIX.length)) as BenchResult);
      else process.stderr.write(`${line}\n`);
    },
  });
  const timeoutMs = quick ? benchmark.timeoutMs.quick : benchmark.timeoutMs.full;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.child.kill('SIGKILL');
  }, timeoutMs);
  const exit = await proc.exited;
  clearTimeout(timer);
  const seconds = (performance.now() - started) / 1000;
  // One line per name whatever happened, so the table and the JSON are always complete.
  return {
    seconds,
    results: benchmark.names.map((name) => {
      const found = results.find((result) => result.name === name);
      if (found) return found;
      const why = timedOut ? `timed out after ${timeoutMs / 1000} s` : `exited (${exit}) without a result`;
      return failedResult(name, why);
    }),
  };
}

function format(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined) return '—';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function table(results: readonly BenchResult[]): string {
  const header = [
    'benchmark',
    'msgs/s',
    'p50 ms',
    'p99 ms',
    'peak RSS MB',
    'maxRSS MB',
    'start RSS MB',
    'status',
  ];
  const rows = results.map((r) => [
    r.name,
    format(r.msgs_per_s),
    format(r.p50_ms, 3),
    format(r.p99_ms, 3),
    format(r.peak_rss_mb, 1),
    format(r.max_rss_mb, 1),
    format(r.start_rss_mb, 1),
    r.status,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, i) => (i === 0 || i === 7 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 || i === 7 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

function ratioLines(results: readonly BenchResult[]): string[] {
  const byName = new Map(results.map((r) => [r.name, r]));
  const lines = RATIOS.map(({ numerator, denominator, target }) => {
    const top = byName.get(numerator)?.msgs_per_s;
    const bottom = byName.get(denominator)?.msgs_per_s;
    const label = `${numerator} / ${denominator}`;
    if (top == null || bottom == null || bottom === 0) return `- ${label} = n/a (target ≥ ${target})`;
    const ratio = top / bottom;
    return `- ${label} = ${ratio.toFixed(2)} (target ≥ ${target}: ${ratio >= target ? 'met' : 'MISSED'})`;
  });
  const floor = byName.get('latency-floor')?.p99_ms;
  for (const { name, field, below, unit } of LIMITS) {
    const value = byName.get(name)?.[field];
    const label = `${name} ${field.replace('_mb', '').replace('_ms', '')}`;
    // The floor is what the machine adds at that moment: a target missed by less than it is noise.
    const context = field === 'p99_ms' && floor != null ? `; latency-floor p99 ${floor} ms in this run` : '';
    lines.push(
      value == null
        ? `- ${label} = n/a (target < ${below} ${unit})`
        : `- ${label} = ${value} ${unit} (target < ${below} ${unit}: ${value < below ? 'met' : 'MISSED'}${context})`,
    );
  }
  return lines;
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: join(BENCH_DIR, '..'), encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

function machine(): string[] {
  const cpus = os.cpus();
  const dirty = git(['status', '--porcelain']) !== '' ? ' (with uncommitted changes)' : '';
  return [
    `- CPU: ${cpus[0]?.model ?? 'unknown'} × ${cpus.length}`,
    `- memory: ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `- OS: ${os.type()} ${os.release()} ${os.arch()}`,
    `- node: ${process.version}`,
    `- commit: ${git(['rev-parse', '--short', 'HEAD'])}${dirty}`,
  ];
}

function writeAtomically(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** The public `--json` shape: exactly these five fields. */
function publicJson(result: BenchResult): string {
  const { name, msgs_per_s, p50_ms, p99_ms, peak_rss_mb } = result;
  return JSON.stringify({ name, msgs_per_s, p50_ms, p99_ms, peak_rss_mb });
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const cases = selectCases(args.only);
  const mode = args.quick ? 'quick' : 'full';
  // With --json, stdout carries only the JSON lines; everything for humans goes to stderr.
  const say = (text: string) => (args.json ? process.stderr : process.stdout).write(`${text}\n`);
  const startedAt = new Date();
  const loadBefore = os.loadavg();

  say(`courier bench (${mode}): ${cases.flatMap((c) => c.names).join(', ')}`);
  if (args.source) {
    delete process.env[BUILD_ENV];
    say('from source: TypeScript under tsx (--source)');
  } else {
    process.env[BUILD_ENV] = await buildBenchmarks(BENCH_DIR);
    say(`from a build: bundles in ${process.env[BUILD_ENV]}, plain node`);
  }
  if (args.quick) {
    say('quick mode: smaller counts, figures are indicative only:');
    for (const c of cases) say(`  ${c.names.join(' / ')}: ${c.quickNote}`);
  }

  const results: BenchResult[] = [];
  const timings: string[] = [];
  for (const benchmark of cases) {
    say(`\n▶ ${benchmark.names.join(' / ')}`);
    const { results: caseResults, seconds } = await runCase(benchmark, args.quick);
    timings.push(`${benchmark.file.replace(/\.ts$/, '')}: ${seconds.toFixed(1)} s`);
    for (const result of caseResults) {
      results.push(result);
      say(
        `  ${result.name}: ${result.status}` +
          (result.msgs_per_s === null ? '' : `, ${format(result.msgs_per_s)} msgs/s`) +
          (result.note ? ` — ${result.note}` : ''),
      );
    }
  }
  const totalSeconds = (Date.now() - startedAt.getTime()) / 1000;
  const loadAfter = os.loadavg();

  const notes = results.filter((r) => r.note).map((r) => `- ${r.name} (${r.status}): ${r.note}`);
  const ratios = ratioLines(results);
  say(`\n${table(results)}\n\nratios and targets (issue 3, "Done when"):\n${ratios.join('\n')}`);
  say(`\ntotal ${totalSeconds.toFixed(1)} s (${timings.join(', ')})`);
  if (args.json) for (const result of results) process.stdout.write(`${publicJson(result)}\n`);

  const date = startedAt.toISOString().slice(0, 10);
  const dir = join(BENCH_DIR, 'results');
  mkdirSync(dir, { recursive: true });
  // A partial run (--only) never overwrites the complete run of the day.
  const base = join(dir, `${date}-${mode}${args.only ? '-only' : ''}`);
  const jsonLines = results.map(publicJson).join('\n');
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const markdown = [
    `# Courier benchmarks, ${mode} run, ${startedAt.toISOString()}`,
    '',
    `Command: \`${command}\` (total ${totalSeconds.toFixed(1)} s: ${timings.join(', ')})`,
    '',
    args.source
      ? 'Ran from source: each benchmark is TypeScript under tsx (`--source`).'
      : 'Ran from a build: each benchmark is an esbuild bundle (Courier inside, npm dependencies from node_modules) on plain node, as a service runs in production.',
    '',
    '## Machine',
    '',
    ...machine(),
    `- load average (1/5/15 min) before: ${loadBefore.map((l) => l.toFixed(2)).join(' / ')}, after: ${loadAfter.map((l) => l.toFixed(2)).join(' / ')}`,
    '',
    ...(args.quick
      ? [
          'Quick mode, smaller counts, figures indicative only:',
          '',
          ...cases.map((c) => `- ${c.names.join(' / ')}: ${c.quickNote}`),
          '',
        ]
      : []),
    '## Results',
    '',
    table(results),
    '',
    "peak RSS: `process.memoryUsage.rss()` sampled every 20 ms in the measured process; maxRSS: `process.resourceUsage().maxRSS` of that process at the end (the cross-check); start RSS: the RSS when measuring began (Node and the imports, plus tsx's loader thread with `--source`), the floor under the peak.",
    '',
    '## Ratios and targets',
    '',
    ...ratios,
    '',
    '## Notes',
    '',
    ...notes,
    '',
    '## JSON lines',
    '',
    '```jsonl',
    jsonLines,
    '```',
    '',
  ].join('\n');
  writeAtomically(`${base}.md`, markdown);
  writeAtomically(`${base}.jsonl`, `${jsonLines}\n`);
  say(`\nwritten: ${base}.md and ${base}.jsonl`);
  if (results.some((r) => r.status === 'failed')) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 2;
});
