/**
 * The system's invariants, read straight from the shared SQLite file and the email outbox (never from
 * the services' counters): what `courier demo` and the end-to-end tests assert once the load is done.
 *
 * - every order is terminal (confirmed or cancelled);
 * - stock is consistent: per sku, the stock the table was seeded with = stock now + units sold
 *   (the quantities of the confirmed orders), and no cancelled order still holds a reservation;
 * - every terminal order has exactly one email (`<id>.eml`, its status matching the order's), no
 *   pending order has one, and no partial file is left;
 * - the payments ledger: no order charged twice, every confirmed order charged once (its total), and
 *   a cancelled order that was charged was refunded once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { SqliteDatabase } from '@courier/sqlite';
import type { LedgerRow } from '../../../examples/order-processing/src/index.js';
import { emailPath, readLedger, readStock } from '../../../examples/order-processing/src/index.js';

/** An order's status as the order service stores it. */
export type OrderStatus = 'pending' | 'confirmed' | 'cancelled';

/** One invariant of the system, held or not, with what was found. */
export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  /** What was found: a count or the first few offenders. */
  readonly detail: string;
}

/** One sku's stock: at the start, now, and units sold. */
export interface StockLine {
  readonly sku: string;
  readonly initial: number;
  readonly current: number;
  readonly sold: number;
  /** Units held by reservations of cancelled orders (should be 0). */
  readonly leaked: number;
}

/** Everything the checks read from the tables and email files, and their verdicts. */
export interface SystemReport {
  /** True when every check passed. */
  readonly ok: boolean;
  readonly checks: readonly CheckResult[];
  readonly orders: { total: number; pending: number; confirmed: number; cancelled: number };
  /** Cancelled orders per reason kind: out of stock, payment declined, timed out, other. */
  readonly cancelReasons: Readonly<Record<string, number>>;
  readonly stock: readonly StockLine[];
  readonly unitsSold: number;
  readonly ledger: {
    readonly rows: number;
    readonly charged: number;
    readonly declined: number;
    readonly failed: number;
    readonly replayed: number;
    readonly refunded: number;
  };
  readonly emails: number;
}

/** Where the checks read the system from. */
export interface CheckOptions {
  /** The email outbox (`<dataDir>/outbox`). */
  readonly outboxDir: string;
  /** Orders that must exist (and be terminal), e.g. those a load generator placed. */
  readonly orderIds?: readonly string[];
  /** How many offenders each failing check names (default 5). */
  readonly examples?: number;
}

interface OrderRow {
  id: string;
  status: OrderStatus;
  reason: string | null;
  total_cents: number;
  items: string;
}

/** The kind of a cancel reason, for summaries: `out of stock`, `payment declined`, `timed out`, `other`. */
export function reasonKind(reason: string | null): string {
  if (!reason) return 'other';
  if (reason.startsWith('out of stock')) return 'out of stock';
  if (reason.startsWith('payment declined')) return 'payment declined';
  if (reason.startsWith('timed out')) return 'timed out';
  return 'other';
}

function tableExists(db: SqliteDatabase, name: string): boolean {
  return db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).pluck().get(name) === 1;
}

/** Reads the tables in one snapshot and the outbox after it, and checks the invariants. */
export function checkSystem(db: SqliteDatabase, options: CheckOptions): SystemReport {
  const examples = options.examples ?? 5;
  const list = (ids: readonly string[]) =>
    ids.length === 0
      ? ''
      : `${ids.slice(0, examples).join(', ')}${ids.length > examples ? `, ... (${ids.length} in all)` : ''}`;

  // One read transaction: orders, stock, reservations and ledger as of the same commit.
  const snapshot = db.transaction(() => {
    const orders = tableExists(db, 'orders')
      ? (db.prepare(`SELECT id, status, reason, total_cents, items FROM orders`).all() as OrderRow[])
      : [];
    const stock = tableExists(db, 'inventory_stock') ? readStock(db) : [];
    const reservations = tableExists(db, 'inventory_reservations')
      ? (db.prepare(`SELECT order_id AS orderId, status, items FROM inventory_reservations`).all() as {
          orderId: string;
          status: string;
          items: string;
        }[])
      : [];
    const ledger = tableExists(db, 'payments_ledger') ? readLedger(db) : [];
    return { orders, stock, reservations, ledger };
  })();

  const checks: CheckResult[] = [];
  const check = (name: string, offenders: readonly string[], okDetail: string, badDetail = list(offenders)) =>
    checks.push({ name, ok: offenders.length === 0, detail: offenders.length === 0 ? okDetail : badDetail });

  const byId = new Map(snapshot.orders.map((o) => [o.id, o]));
  const counts = { total: snapshot.orders.length, pending: 0, confirmed: 0, cancelled: 0 };
  const cancelReasons: Record<string, number> = {};
  for (const order of snapshot.orders) {
    counts[order.status]++;
    if (order.status === 'cancelled') {
      const kind = reasonKind(order.reason);
      cancelReasons[kind] = (cancelReasons[kind] ?? 0) + 1;
    }
  }

  // 1. Every order terminal (and every order we placed known).
  const missing = (options.orderIds ?? []).filter((id) => !byId.has(id));
  check('every placed order is stored', missing, `${options.orderIds?.length ?? counts.total} stored`);
  const pending = snapshot.orders.filter((o) => o.status === 'pending').map((o) => o.id);
  check(
    'every order is terminal',
    pending,
    `${counts.confirmed} confirmed + ${counts.cancelled} cancelled = ${counts.total}`,
    `${pending.length} pending: ${list(pending)}`,
  );

  // 2. Stock: initial = current + sold, per sku; no reservation held by an order that is not confirmed.
  const sold = new Map<string, number>();
  for (const order of snapshot.orders) {
    if (order.status !== 'confirmed') continue;
    for (const { sku, qty } of JSON.parse(order.items) as { sku: string; qty: number }[])
      sold.set(sku, (sold.get(sku) ?? 0) + qty);
  }
  const leakedBySku = new Map<string, number>();
  const leakedOrders: string[] = [];
  const unreserved: string[] = [];
  const reservationOf = new Map(snapshot.reservations.map((r) => [r.orderId, r]));
  for (const reservation of snapshot.reservations) {
    if (reservation.status !== 'reserved') continue;
    const order = byId.get(reservation.orderId);
    if (order?.status === 'confirmed') continue;
    if (order?.status === 'pending') continue; // in progress: the terminal check reports it
    leakedOrders.push(reservation.orderId);
    for (const { sku, qty } of JSON.parse(reservation.items) as { sku: string; qty: number }[])
      leakedBySku.set(sku, (leakedBySku.get(sku) ?? 0) + qty);
  }
  for (const order of snapshot.orders)
    if (order.status === 'confirmed' && reservationOf.get(order.id)?.status !== 'reserved')
      unreserved.push(order.id);
  const stock: StockLine[] = snapshot.stock.map((s) => ({
    sku: s.sku,
    initial: s.initialStock,
    current: s.stock,
    sold: sold.get(s.sku) ?? 0,
    leaked: leakedBySku.get(s.sku) ?? 0,
  }));
  const unitsSold = [...sold.values()].reduce((a, b) => a + b, 0);
  const unknownSkus = [...sold.keys()].filter((sku) => !stock.some((s) => s.sku === sku));
  const off = stock.filter((s) => s.initial !== s.current + s.sold);
  check(
    'stock consistent (start = now + sold)',
    [...off.map((s) => s.sku), ...unknownSkus],
    `${stock.reduce((a, s) => a + s.initial, 0)} = ${stock.reduce((a, s) => a + s.current, 0)} + ${unitsSold} units sold`,
    [
      ...off.map(
        (s) =>
          `${s.sku}: ${s.initial} ≠ ${s.current} + ${s.sold} (${s.initial - s.current - s.sold > 0 ? `${s.initial - s.current - s.sold} missing` : `${s.current + s.sold - s.initial} extra`})`,
      ),
      ...unknownSkus.map((sku) => `${sku}: sold but not in the stock table`),
    ].join('; '),
  );
  check('no stock held by cancelled orders', leakedOrders, '0 reservations leaked');
  check('every confirmed order holds its reservation', unreserved, `${counts.confirmed} reserved`);

  // 3. Emails: exactly one per terminal order, matching its status; none for pending ones.
  let files: string[] = [];
  try {
    files = readdirSync(options.outboxDir);
  } catch {
    // No outbox yet: no email was written.
  }
  const emails = new Map<string, number>();
  const partial: string[] = [];
  for (const file of files) {
    if (file.endsWith('.eml')) {
      const id = file.slice(0, -'.eml'.length);
      emails.set(id, (emails.get(id) ?? 0) + 1);
    } else if (file.endsWith('.tmp')) partial.push(file);
  }
  const withoutEmail: string[] = [];
  const wrongEmail: string[] = [];
  const earlyEmail: string[] = [];
  for (const order of snapshot.orders) {
    const count = emails.get(order.id) ?? 0;
    if (order.status === 'pending') {
      if (count > 0) earlyEmail.push(order.id);
      continue;
    }
    if (count !== 1) {
      withoutEmail.push(order.id);
      continue;
    }
    let text = '';
    try {
      text = readFileSync(emailPath(options.outboxDir, order.id), 'utf8');
    } catch {
      // Vanished meanwhile: counted as wrong below.
    }
    if (!text.includes(`Status: ${order.status}`)) wrongEmail.push(`${order.id} (not "${order.status}")`);
  }
  const orphans = [...emails.keys()].filter((id) => !byId.has(id));
  check(
    'exactly one email per terminal order',
    [...withoutEmail, ...earlyEmail, ...partial],
    `${counts.confirmed + counts.cancelled} emails`,
    [
      withoutEmail.length ? `${withoutEmail.length} without an email: ${list(withoutEmail)}` : '',
      earlyEmail.length ? `${earlyEmail.length} pending with an email: ${list(earlyEmail)}` : '',
      partial.length ? `${partial.length} partial files: ${list(partial)}` : '',
    ]
      .filter(Boolean)
      .join('; '),
  );
  check('every email matches its order', wrongEmail, 'statuses match');
  // Not a failure: a data folder whose broker file was deleted keeps its old emails.
  checks.push({
    name: 'emails of orders not in this file',
    ok: true,
    detail: orphans.length === 0 ? 'none' : `${orphans.length} (ignored)`,
  });

  // 4. The ledger.
  const ledgerOf = new Map<string, LedgerRow[]>();
  const totals = {
    rows: snapshot.ledger.length,
    charged: 0,
    declined: 0,
    failed: 0,
    replayed: 0,
    refunded: 0,
  };
  for (const row of snapshot.ledger) {
    const rows = ledgerOf.get(row.orderId) ?? [];
    if (rows.length === 0) ledgerOf.set(row.orderId, rows);
    rows.push(row);
    if (row.outcome in totals) totals[row.outcome as keyof typeof totals]++;
  }
  const twice: string[] = [];
  const confirmedNotCharged: string[] = [];
  const wrongAmount: string[] = [];
  const notRefunded: string[] = [];
  const refundedTwice: string[] = [];
  const unknownOrder: string[] = [];
  for (const [orderId, rows] of ledgerOf) {
    const charges = rows.filter((r) => r.kind === 'charge' && r.outcome === 'charged');
    const refunds = rows.filter((r) => r.kind === 'refund' && r.outcome === 'refunded');
    const order = byId.get(orderId);
    if (!order) unknownOrder.push(orderId);
    if (charges.length > 1) twice.push(`${orderId} (${charges.length}×)`);
    if (refunds.length > 1) refundedTwice.push(`${orderId} (${refunds.length}×)`);
    if (order && charges.some((c) => c.amount !== order.total_cents))
      wrongAmount.push(`${orderId} (${charges.map((c) => c.amount).join(', ')} ≠ ${order.total_cents})`);
    if (order?.status === 'cancelled' && charges.length === 1 && refunds.length !== 1)
      notRefunded.push(orderId);
    if (order?.status === 'confirmed' && refunds.length > 0)
      notRefunded.push(`${orderId} (confirmed, refunded)`);
  }
  for (const order of snapshot.orders) {
    if (order.status !== 'confirmed') continue;
    const charges = (ledgerOf.get(order.id) ?? []).filter(
      (r) => r.kind === 'charge' && r.outcome === 'charged',
    );
    if (charges.length !== 1) confirmedNotCharged.push(`${order.id} (${charges.length}×)`);
  }
  check('no order charged twice', twice, `${totals.charged} charges for ${ledgerOf.size} orders`);
  check('every confirmed order charged once', confirmedNotCharged, `${counts.confirmed} charged once`);
  check('every charge is the order total', wrongAmount, 'amounts match');
  check(
    'charges of cancelled orders refunded once',
    [...notRefunded, ...refundedTwice],
    `${totals.refunded} refunds`,
  );
  check('no ledger entry for an unknown order', unknownOrder, '0 unknown');

  return {
    ok: checks.every((c) => c.ok),
    checks,
    orders: counts,
    cancelReasons,
    stock,
    unitsSold,
    ledger: totals,
    emails: [...emails.values()].reduce((a, b) => a + b, 0),
  };
}

/** The failing checks as lines (`✗ name: detail`), or all of them with `all`. */
export function formatChecks(report: SystemReport, all = true): string[] {
  return report.checks.filter((c) => all || !c.ok).map((c) => `${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}`);
}

/**
 * Checks until everything passes or `timeoutMs` runs out (the last messages of a settled order, such
 * as a release of a reservation that came after its cancel or its email, may still be on their way).
 * Resolves the last report.
 */
export async function checkUntilSettled(
  db: SqliteDatabase,
  options: CheckOptions & { timeoutMs: number; intervalMs?: number },
): Promise<SystemReport> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const report = checkSystem(db, options);
    if (report.ok || Date.now() >= deadline) return report;
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 200));
  }
}
