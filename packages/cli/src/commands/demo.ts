/**
 * `courier demo --orders N --rate R`: places N orders through the HTTP API at R a second (random valid
 * carts from `GET /inventory`), waits until every one settles, then checks the system's invariants in
 * the broker file itself (`checks.ts`) and prints a summary. Exit 0 only if every check passed.
 */
import { seededRandom } from '@courier/core';
import type { SqliteTransport } from '@courier/sqlite';
import type { Command, Io } from '../args.js';
import {
  CommandError,
  dataPaths,
  dbOptionHelp,
  intOption,
  parse,
  positiveOption,
  UsageError,
  write,
} from '../args.js';
import { listQueues, openBroker } from '../broker.js';
import type { SystemReport } from '../checks.js';
import { checkUntilSettled, formatChecks, reasonKind } from '../checks.js';
import { formatTable } from '../table.js';

const usage =
  'usage: courier demo --orders N --rate R [--url http://127.0.0.1:3000] [--db path] [--timeout s] [--seed n]';

const help = `${usage}

Places N orders through the order API at R orders a second, each a random valid cart from
GET /inventory (skus weighted by √stock), with a progress bar (plain lines when the output is
not a terminal). Waits until every order is confirmed or cancelled, then reads the broker file
and the email outbox directly and checks that:
  - every order is terminal;
  - stock is consistent: per sku, start stock = stock now + units sold (confirmed orders), and no
    cancelled order still holds stock;
  - every terminal order has exactly one email, matching its status;
  - the payments ledger charged no order twice, every confirmed order once (its total), and
    refunded any charge of a cancelled order.
Prints a summary; exits 0 only if every order was accepted and every check passed, 1 otherwise.

Options:
  --orders <n>        how many orders (default 100)
  --rate <r>          orders a second (default 50)
  --url <url>         the order API (default http://$HOST:$PORT, i.e. http://127.0.0.1:3000)
${dbOptionHelp}
                      (the file the services use; the outbox is the outbox/ folder next to it)
  --timeout <s>       longest wait for the orders to settle after the last is placed (default 120)
  --seed <n>          seed the random carts (default: random)
  -h, --help          this help`;

interface Placed {
  readonly id: string;
  readonly at: number;
}

interface Refusal {
  readonly status: number | 'network';
  readonly detail: string;
}

/** `courier demo`: places orders over HTTP, waits for them to settle, checks the books. */
export const demoCommand: Command = {
  name: 'demo',
  summary: 'place orders at a rate, wait until they settle, check the invariants',
  help,
  async run(argv: string[], io: Io): Promise<number> {
    const { values, positionals } = parse(
      argv,
      {
        orders: { type: 'string' },
        rate: { type: 'string' },
        url: { type: 'string' },
        db: { type: 'string' },
        timeout: { type: 'string' },
        seed: { type: 'string' },
      },
      usage,
    );
    if (values.help) {
      write(io.out, help);
      return 0;
    }
    if (positionals.length > 0)
      throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`, usage);
    const total = intOption(values.orders, 'orders', 100, 1, 1_000_000, usage);
    const rate = positiveOption(values.rate, 'rate', 50, usage);
    const timeoutMs = positiveOption(values.timeout, 'timeout', 120, usage) * 1_000;
    const seed =
      values.seed === undefined ? undefined : intOption(values.seed, 'seed', 0, 0, 2 ** 32 - 1, usage);
    const base = apiUrl(values.url, io.env);
    const { dbPath, outboxDir } = dataPaths(values.db, io.env);

    // The API up, and the file the checks read.
    try {
      await getJson(`${base}/health`);
    } catch (error) {
      throw new CommandError(
        `cannot reach the order API at ${base} (${(error as Error).message}): start the system (npm start, or courier run all), or pass --url`,
      );
    }
    const transport = openBroker(dbPath);
    try {
      return await demo({ io, base, total, rate, timeoutMs, seed, dbPath, outboxDir, transport });
    } finally {
      await transport.close();
    }
  },
};

async function demo(options: {
  io: Io;
  base: string;
  total: number;
  rate: number;
  timeoutMs: number;
  seed: number | undefined;
  dbPath: string;
  outboxDir: string;
  transport: SqliteTransport;
}): Promise<number> {
  const { io, base, total, rate } = options;
  const inventory = (await getJson(`${base}/inventory`)) as { items: { sku: string; stock: number }[] };
  // Each line picks a sku with a weight of √stock: plentiful ones most often, scarce ones now and then
  // (so some orders are still refused for stock, without the scarce skus cancelling most of them).
  const stocked = inventory.items.filter((i) => i.stock > 0);
  const skus = (stocked.length > 0 ? stocked : inventory.items).map((i) => ({
    sku: i.sku,
    weight: Math.sqrt(Math.max(i.stock, 1)),
  }));
  if (skus.length === 0) throw new CommandError(`GET ${base}/inventory lists no sku`);
  const random = options.seed === undefined ? Math.random : seededRandom(options.seed);
  const pick = (pool: { sku: string; weight: number }[]) => {
    let r = random() * pool.reduce((sum, s) => sum + s.weight, 0);
    let index = 0;
    while (index < pool.length - 1 && r >= pool[index]!.weight) r -= pool[index++]!.weight;
    return pool.splice(index, 1)[0]!.sku;
  };
  const cart = () => {
    const pool = [...skus];
    const lines = 1 + Math.floor(random() * Math.min(3, pool.length));
    const items = [];
    for (let i = 0; i < lines; i++) items.push({ sku: pick(pool), qty: 1 + Math.floor(random() * 3) });
    return { customerId: `demo-${1 + Math.floor(random() * 500)}`, items };
  };

  write(io.out, `courier demo: ${total} orders at ${rate}/s → ${base} (broker file ${options.dbPath})`);
  const progress = new Progress(io, total);
  const placed: Placed[] = [];
  const refused: Refusal[] = [];
  const outstanding = new Map<string, number>(); // id → placed at
  const settledAt = new Map<string, number>();

  // Place at a steady rate (a late request does not delay the next ones), at most 256 in flight.
  const started = Date.now();
  const inFlight = new Set<Promise<void>>();
  let placing = true;
  let placedAt = 0;
  const placeAll = (async () => {
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1_000) / rate;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      while (inFlight.size >= 256) await Promise.race(inFlight);
      const request = placeOrder(base, cart()).then((result) => {
        if ('id' in result) {
          placed.push({ id: result.id, at: Date.now() });
          outstanding.set(result.id, Date.now());
        } else refused.push(result);
        progress.update(placed.length + refused.length, settledAt.size, refused.length);
      });
      const tracked = request.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    }
    await Promise.all(inFlight);
    placedAt = Date.now();
    placing = false;
  })();

  // Meanwhile, poll which orders are still pending.
  let placedDoneAt = 0;
  let timedOut = false;
  for (;;) {
    await sleep(250);
    if (!placing && placedDoneAt === 0) placedDoneAt = Date.now();
    try {
      await pollSettled(base, outstanding, settledAt);
    } catch (error) {
      progress.note(`polling ${base}: ${(error as Error).message}`);
    }
    progress.update(placed.length + refused.length, settledAt.size, refused.length);
    if (!placing && outstanding.size === 0) break;
    if (placedDoneAt > 0 && Date.now() - placedDoneAt > options.timeoutMs) {
      timedOut = true;
      break;
    }
  }
  await placeAll;
  const placingMs = (placedAt || Date.now()) - started;
  const settledMs = Date.now() - started;
  progress.finish(placed.length + refused.length, settledAt.size, refused.length);

  // The invariants, from the file: a settled order's last messages (its email, a late release) may
  // still be on their way, so check until they hold or a few seconds pass.
  const report = await checkUntilSettled(options.transport.db, {
    outboxDir: options.outboxDir,
    orderIds: placed.map((p) => p.id),
    timeoutMs: timedOut ? 0 : Math.min(30_000, options.timeoutMs),
  });
  const deadLettered = await countDeadLetters(options.transport);
  const ours = readOurOrders(
    options.transport,
    placed.map((p) => p.id),
  );

  const out = (line = '') => write(io.out, line);
  out();
  out('Summary');
  out(
    `  placed     ${placed.length + refused.length} orders in ${seconds(placingMs)} (${((placed.length + refused.length) / Math.max(placingMs / 1_000, 0.001)).toFixed(1)}/s): ${placed.length} accepted, ${refused.length} refused`,
  );
  if (refused.length > 0) out(`             refused: ${summarizeRefusals(refused)}`);
  const reasons = Object.entries(ours.cancelReasons)
    .sort((a, b) => b[1] - a[1])
    .map(([kind, n]) => `${n} ${kind}`)
    .join(', ');
  out(
    `  settled    ${timedOut ? `NOT all: ${outstanding.size} still pending after ${seconds(options.timeoutMs)}; ` : ''}${ours.confirmed + ours.cancelled} of ${placed.length} in ${seconds(settledMs)}: ${ours.confirmed} confirmed, ${ours.cancelled} cancelled${reasons ? ` (${reasons})` : ''}${ours.pending ? `, ${ours.pending} pending` : ''}`,
  );
  if (ours.latencies.length > 0)
    out(
      `  latency    placed → settled: p50 ${ms(percentile(ours.latencies, 0.5))} · p95 ${ms(percentile(ours.latencies, 0.95))} · p99 ${ms(percentile(ours.latencies, 0.99))} · max ${ms(ours.latencies.at(-1)!)}`,
    );
  const whole = report.orders;
  out(
    `  the file   ${whole.total} orders in all: ${whole.confirmed} confirmed, ${whole.cancelled} cancelled, ${whole.pending} pending; ${report.unitsSold} units sold`,
  );
  out(
    `  ledger     ${report.ledger.rows} rows: ${report.ledger.charged} charged, ${report.ledger.declined} declined, ${report.ledger.failed} transient failures, ${report.ledger.replayed} replays, ${report.ledger.refunded} refunds`,
  );
  out(`  emails     ${report.emails} in ${options.outboxDir}`);
  out(`  DLQ        ${deadLettered} dead letters`);
  out('  stock');
  out(indent(stockTable(report), 4));
  out();
  out('Checks');
  if (refused.length > 0) out(`  ✗ every order accepted (202): ${refused.length} refused`);
  else out(`  ✓ every order accepted (202): ${placed.length}`);
  for (const line of formatChecks(report)) out(`  ${line}`);
  const ok = report.ok && refused.length === 0 && !timedOut;
  out();
  out(ok ? 'PASS: every invariant holds' : `FAIL: ${failures(report, refused.length, timedOut)}`);
  return ok ? 0 : 1;
}

function failures(report: SystemReport, refused: number, timedOut: boolean): string {
  return [
    ...(refused > 0 ? [`${refused} orders refused`] : []),
    ...(timedOut ? ['orders did not settle in time'] : []),
    ...report.checks.filter((c) => !c.ok).map((c) => c.name),
  ].join('; ');
}

function stockTable(report: SystemReport): string {
  return formatTable(
    ['sku', 'start', 'now', 'sold', 'now + sold', 'leaked'],
    report.stock.map((s) => [s.sku, s.initial, s.current, s.sold, s.current + s.sold, s.leaked]),
  );
}

function readOurOrders(transport: SqliteTransport, ids: readonly string[]) {
  const wanted = new Set(ids);
  const rows = transport.db
    .prepare(`SELECT id, status, reason, created_at AS createdAt, updated_at AS updatedAt FROM orders`)
    .all() as { id: string; status: string; reason: string | null; createdAt: number; updatedAt: number }[];
  const result = {
    confirmed: 0,
    cancelled: 0,
    pending: 0,
    cancelReasons: {} as Record<string, number>,
    latencies: [] as number[],
  };
  for (const row of rows) {
    if (!wanted.has(row.id)) continue;
    if (row.status === 'confirmed') result.confirmed++;
    else if (row.status === 'cancelled') {
      result.cancelled++;
      const kind = reasonKind(row.reason);
      result.cancelReasons[kind] = (result.cancelReasons[kind] ?? 0) + 1;
    } else result.pending++;
    if (row.status !== 'pending') result.latencies.push(Math.max(0, row.updatedAt - row.createdAt));
  }
  result.latencies.sort((a, b) => a - b);
  return result;
}

async function countDeadLetters(transport: SqliteTransport): Promise<number> {
  let count = 0;
  for (const queue of listQueues(transport)) count += (await transport.stats(queue)).deadLettered;
  return count;
}

/**
 * Marks settled the outstanding orders that left `pending`. One `GET /orders?status=pending` answers
 * for all when it is not cut by its limit; otherwise the orders missing from it are asked one by one.
 */
async function pollSettled(base: string, outstanding: Map<string, number>, settledAt: Map<string, number>) {
  if (outstanding.size === 0) return;
  const asked = [...outstanding.keys()]; // all accepted (so stored) before the request below
  const { orders } = (await getJson(`${base}/orders?status=pending&limit=1000`)) as {
    orders: { id: string }[];
  };
  const pending = new Set(orders.map((o) => o.id));
  let unsure = asked.filter((id) => !pending.has(id));
  if (orders.length < 1_000) {
    for (const id of unsure) settle(id);
    return;
  }
  unsure = unsure.slice(0, 200);
  for (let i = 0; i < unsure.length; i += 16)
    await Promise.all(
      unsure.slice(i, i + 16).map(async (id) => {
        const order = (await getJson(`${base}/orders/${encodeURIComponent(id)}`)) as { status: string };
        if (order.status !== 'pending') settle(id);
      }),
    );

  function settle(id: string) {
    outstanding.delete(id);
    settledAt.set(id, Date.now());
  }
}

async function placeOrder(base: string, body: unknown): Promise<{ id: string } | Refusal> {
  try {
    const response = await fetch(`${base}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await response.text();
    if (response.status === 202) {
      const id = (JSON.parse(text) as { id?: unknown }).id;
      if (typeof id === 'string') return { id };
      return { status: 202, detail: 'no id in the answer' };
    }
    let detail = text.slice(0, 200);
    try {
      const error = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
      if (error?.code) detail = `${error.code}: ${error.message ?? ''}`;
    } catch {
      // not JSON: the text itself
    }
    return { status: response.status, detail };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return { status: 'network', detail: cause ?? (error as Error).message };
  }
}

function summarizeRefusals(refused: readonly Refusal[]): string {
  const groups = new Map<string, number>();
  for (const r of refused) {
    const key = `${r.status} ${r.detail}`;
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  return [...groups]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([key, n]) => `${n}× ${key}`)
    .join('; ');
}

async function getJson(url: string): Promise<unknown> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET ${url}: ${response.status} ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

function apiUrl(url: string | undefined, env: NodeJS.ProcessEnv): string {
  const text = url ?? `http://${env.HOST || '127.0.0.1'}:${env.PORT || 3000}`;
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    throw new UsageError(
      `--url must be a URL such as http://127.0.0.1:3000, got ${JSON.stringify(text)}`,
      usage,
    );
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new UsageError(`--url must be http(s), got ${JSON.stringify(text)}`, usage);
  return parsed.href.replace(/\/+$/, '');
}

/** A progress bar redrawn in place on a terminal; a plain line a second otherwise. */
class Progress {
  private readonly tty: boolean;
  private readonly started = Date.now();
  private lastDraw = 0;
  private lastLine = '';

  constructor(
    private readonly io: Io,
    private readonly total: number,
  ) {
    this.tty = 'isTTY' in io.out && io.out.isTTY === true;
  }

  update(placed: number, settled: number, refused: number, force = false): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < (this.tty ? 100 : 1_000)) return;
    this.lastDraw = now;
    const text = `placed ${placed}/${this.total} · settled ${settled}/${placed - refused}${refused ? ` · refused ${refused}` : ''} · ${seconds(now - this.started)}`;
    if (this.tty) {
      const width = 30;
      const full = Math.round((settled / this.total) * width);
      const half = Math.max(0, Math.round((placed / this.total) * width) - full);
      const bar = `${'█'.repeat(full)}${'▒'.repeat(half)}${'░'.repeat(Math.max(0, width - full - half))}`;
      this.io.out.write(`\r\x1b[2K[${bar}] ${text}`);
    } else if (text.replace(/ · [\d.]+ s$/, '') !== this.lastLine) {
      this.lastLine = text.replace(/ · [\d.]+ s$/, '');
      write(this.io.out, text);
    }
  }

  note(line: string): void {
    if (this.tty) this.io.out.write('\r\x1b[2K');
    write(this.io.err, line);
  }

  finish(placed: number, settled: number, refused: number): void {
    this.update(placed, settled, refused, true);
    if (this.tty) this.io.out.write('\n');
  }
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

function seconds(ms: number): string {
  return `${(ms / 1_000).toFixed(1)} s`;
}

function ms(value: number): string {
  return value >= 10_000 ? seconds(value) : `${Math.round(value)} ms`;
}

function indent(text: string, n: number): string {
  return text
    .split('\n')
    .map((line) => `${' '.repeat(n)}${line}`)
    .join('\n');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
