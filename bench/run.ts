/**
 * `npm run bench [-- --quick] [-- --json] [-- --only name1,name2] [-- --rounds n] [-- --source]`
 *
 * Runs every benchmark of bench/cases in a child process of its own (so RSS and GC are per
 * benchmark), one after the other in one run, prints a table and the ratios issue 3 asks for, and
 * writes the results with the machine's description to bench/results/<date>-<quick|full>.md/.jsonl
 * (`<date>-<mode>-only.*` for a run narrowed with --only).
 * The throughput benchmarks, whose ratios are the targets, run in rounds (5, 3 with --quick): each
 * round runs every one of them once, in turn, so a noisy moment of the machine falls on all of them
 * alike; each reports the median of its rounds, and every round's figure and ratio is printed.
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
  /** A throughput benchmark: runs once per round, and reports its median round. */
  inRounds?: boolean;
}

const MINUTE = 60_000;

const CASES: readonly BenchmarkCase[] = [
  {
    file: 'raw-sqlite-queue.ts',
    inRounds: true,
    names: ['raw-sqlite-queue'],
    timeoutMs: { quick: MINUTE, full: 5 * MINUTE },
    quickNote: '100,000 rows (as full)',
  },
  {
    file: 'bullmq-e2e.ts',
    inRounds: true,
    names: ['bullmq-e2e'],
    timeoutMs: { quick: MINUTE, full: 10 * MINUTE },
    quickNote: '20,000 jobs instead of 100,000',
  },
  {
    file: 'courier-sqlite-e2e.ts',
    inRounds: true,
    names: ['courier-sqlite-e2e'],
    timeoutMs: { quick: MINUTE, full: 10 * MINUTE },
    quickNote: '20,000 messages instead of 100,000',
  },
  {
    file: 'courier-sqlite-cross-process.ts',
    inRounds: true,
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

/**
 * The ratios of issue 3's "Done when", with their targets. `quickCaveat`: why a ratio is not held to
 * its target in a --quick run (its two sides ran different counts), printed instead of met or MISSED.
 */
const RATIOS: readonly { numerator: string; denominator: string; target: number; quickCaveat?: string }[] = [
  { numerator: 'courier-sqlite-e2e', denominator: 'bullmq-e2e', target: 3 },
  {
    numerator: 'courier-sqlite-e2e',
    denominator: 'raw-sqlite-queue',
    target: 0.5,
    quickCaveat:
      "not comparable in --quick: the e2e run's 20,000 messages against the raw queue's 100,000 weigh its warm-up five times as much",
  },
  { numerator: 'courier-sqlite-backlog-last', denominator: 'courier-sqlite-backlog-first', target: 0.8 },
];

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
  /** Rounds of the throughput benchmarks; undefined: 5, or 3 with --quick. */
  rounds: number | undefined;
}

/** The most rounds `--rounds` takes. */
const MAX_ROUNDS = 15;

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { quick: false, json: false, only: undefined, source: false, rounds: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') args.quick = true;
    else if (arg === '--json') args.json = true;
    else if (arg === '--source') args.source = true;
    else if (arg === '--rounds' || arg.startsWith('--rounds=')) {
      const value = arg === '--rounds' ? argv[++i] : arg.slice('--rounds='.length);
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || n > MAX_ROUNDS)
        throw new Error(`--rounds needs a whole number from 1 to ${MAX_ROUNDS}, got '${value ?? ''}'`);
      args.rounds = n;
    } else if (arg === '--only' || arg.startsWith('--only=')) {
      const value = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      if (!value) throw new Error('--only needs a comma-separated list of benchmark names');
      args.only = value
        .split(',')
        .map((name) => name.trim())
        .filter(Boolean);
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write(
        'usage: npm run bench -- [--quick] [--json] [--only name1,name2] [--rounds n] [--source]\nbenchmarks:\n' +
          CASES.flatMap((c) => c.names.map((name) => `  ${name}\n`)).join(''),
      );
      process.exit(0);
    } else
      throw new Error(
        `unknown argument '${arg}': use --quick, --json, --source, --rounds n or --only name1,name2`,
      );
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

/**
 * The result a benchmark reports: its only run, or, run in rounds, its median round by msgs/s
 * (the lower of the two middle ones for an even count), with every round's figure in its note. A
 * round that failed fails the benchmark.
 */
function medianRun(all: readonly BenchResult[]): BenchResult {
  if (all.length === 1) return all[0]!;
  const failed = all.findIndex((r) => r.status !== 'ok' || r.msgs_per_s === null);
  if (failed >= 0) {
    const r = all[failed]!;
    return { ...r, note: `round ${failed + 1} of ${all.length} ${r.status}${r.note ? `: ${r.note}` : ''}` };
  }
  const sorted = [...all].sort((a, b) => a.msgs_per_s! - b.msgs_per_s!);
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
  const figures = all.map((r) => format(r.msgs_per_s)).join(', ');
  return {
    ...median,
    note: `median of ${all.length} rounds (${figures} msgs/s, in the order run); that round: ${median.note ?? ''}`,
  };
}

function ratioLines(
  results: readonly BenchResult[],
  runs: ReadonlyMap<string, readonly BenchResult[]>,
  quick: boolean,
): string[] {
  const byName = new Map(results.map((r) => [r.name, r]));
  const lines = RATIOS.map(({ numerator, denominator, target, quickCaveat }) => {
    const top = byName.get(numerator)?.msgs_per_s;
    const bottom = byName.get(denominator)?.msgs_per_s;
    const label = `${numerator} / ${denominator}`;
    if (top == null || bottom == null || bottom === 0) return `- ${label} = n/a (target ≥ ${target})`;
    const ratio = top / bottom;
    // Run in rounds: the ratio within each round too, so the spread behind the medians shows.
    const tops = runs.get(numerator) ?? [];
    const bottoms = runs.get(denominator) ?? [];
    const perRound =
      tops.length > 1 && tops.length === bottoms.length
        ? `; in each round: ${tops.map((t, i) => ((t.msgs_per_s ?? 0) / (bottoms[i]!.msgs_per_s || 1)).toFixed(2)).join(', ')}`
        : '';
    const verdict =
      quick && quickCaveat !== undefined
        ? `target ≥ ${target} for a full run; ${quickCaveat}`
        : `target ≥ ${target}: ${ratio >= target ? 'met' : 'MISSED'}`;
    return `- ${label} = ${ratio.toFixed(2)} (${verdict}${perRound})`;
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

  const rounds = args.rounds ?? (args.quick ? 3 : 5);
  const inRounds = cases.filter((c) => c.inRounds);
  // Every result of every round, by name, in the order they ran.
  const runs = new Map<string, BenchResult[]>();
  const seconds = new Map<BenchmarkCase, number>();
  const run = async (benchmark: BenchmarkCase, label: string) => {
    say(`\n▶ ${benchmark.names.join(' / ')}${label}`);
    const ran = await runCase(benchmark, args.quick);
    seconds.set(benchmark, (seconds.get(benchmark) ?? 0) + ran.seconds);
    for (const result of ran.results) {
      runs.set(result.name, [...(runs.get(result.name) ?? []), result]);
      say(
        `  ${result.name}: ${result.status}` +
          (result.msgs_per_s === null ? '' : `, ${format(result.msgs_per_s)} msgs/s`) +
          (result.note ? ` — ${result.note}` : ''),
      );
    }
  };
  for (let round = 1; round <= rounds && inRounds.length > 0; round++) {
    for (const benchmark of inRounds) await run(benchmark, ` (round ${round} of ${rounds})`);
  }
  for (const benchmark of cases) if (!benchmark.inRounds) await run(benchmark, '');
  const results = cases.flatMap((c) => c.names.map((name) => medianRun(runs.get(name) ?? [])));
  const timings = cases.map((c) => `${c.file.replace(/\.ts$/, '')}: ${(seconds.get(c) ?? 0).toFixed(1)} s`);
  const totalSeconds = (Date.now() - startedAt.getTime()) / 1000;
  const loadAfter = os.loadavg();

  const notes = results.filter((r) => r.note).map((r) => `- ${r.name} (${r.status}): ${r.note}`);
  const ratios = ratioLines(results, runs, args.quick);
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
    ...(inRounds.length > 0
      ? [
          `${inRounds.flatMap((c) => c.names).join(', ')} ran in ${rounds} round${rounds === 1 ? '' : 's'} (each round runs each of them once, in turn); each reports its median round, and the notes list every round.`,
          '',
        ]
      : []),
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
