/**
 * `npm start`: the order-processing system in one process on the embedded broker (one SQLite file,
 * `./data/courier.db`), with a live status line. Ctrl-C (or SIGTERM) stops it gracefully.
 *
 * Environment: PORT (3000), HOST (127.0.0.1), DATA_DIR (./data), COURIER_DB (<DATA_DIR>/courier.db),
 * DECLINE_RATE (0.1), FAILURE_RATE (0.1), ORDER_TIMEOUT_MS (10000).
 */
import { sqlite } from '@courier/sqlite';
import { resolvePaths } from './runtime.js';
import { formatStatus, formatStatusToFit, readStatus } from './status.js';
import { startSystem } from './system.js';

function numberFromEnv(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value)) {
    console.error(`${name} must be a number, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return value;
}

const out = process.stdout;
const tty = out.isTTY === true;
let statusLine = '';

/** Prints a line above the status line (which is redrawn after it). */
function log(line: string): void {
  if (tty && statusLine) out.write(`\r\x1b[2K${line}\n${statusLine}`);
  else console.log(line);
}

const paths = resolvePaths({ dataDir: process.env.DATA_DIR, dbPath: process.env.COURIER_DB });
const system = await startSystem({
  ...paths,
  port: numberFromEnv('PORT', 3000),
  host: process.env.HOST || '127.0.0.1',
  deadlineMs: numberFromEnv('ORDER_TIMEOUT_MS', 10_000),
  gateway: {
    declineRate: numberFromEnv('DECLINE_RATE', 0.1),
    failureRate: numberFromEnv('FAILURE_RATE', 0.1),
  },
  log,
}).catch((error: unknown) => {
  console.error(`could not start: ${(error as Error)?.message ?? String(error)}`);
  process.exit(1);
});

const example = JSON.stringify({
  customerId: 'c-42',
  items: [
    { sku: 'coffee-beans', qty: 2 },
    { sku: 'mug-blue', qty: 1 },
  ],
});
console.log(`Courier order processing: API on ${system.url} (broker and data in ${paths.dbPath})`);
console.log('Try this:');
console.log(`  curl -s -X POST ${system.url}/orders -H 'content-type: application/json' -d '${example}'`);
console.log(`  curl -s ${system.url}/orders/<id>    (also: /orders?status=confirmed, /inventory, /health)`);
console.log(tty ? 'Ctrl-C stops.\n' : '');

// The status line reads the file through a connection of its own.
const monitor = sqlite({ path: paths.dbPath });
let refreshing = false;
const refresh = async () => {
  if (refreshing) return;
  refreshing = true;
  try {
    const status = await readStatus(monitor);
    if (tty) {
      statusLine = formatStatusToFit(status, (out.columns || 200) - 1);
      out.write(`\r\x1b[2K${statusLine}`);
    } else console.log(formatStatus(status));
  } catch (error) {
    log(`status: ${(error as Error).message}`);
  } finally {
    refreshing = false;
  }
};
await refresh();
const ticker = setInterval(refresh, tty ? 1_000 : 5_000);

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) {
    console.error(`\n${signal} again: exiting now`);
    process.exit(130);
  }
  stopping = true;
  clearInterval(ticker);
  if (tty) out.write('\n');
  console.log(`${signal}: stopping...`);
  // Whatever happens, the process is gone within 5 s.
  setTimeout(() => {
    console.error('could not stop in time: exiting');
    process.exit(1);
  }, 4_500).unref();
  try {
    await system.stop(2_500);
    await monitor.close();
    console.log('stopped');
    process.exit(0);
  } catch (error) {
    console.error(`stop failed: ${(error as Error)?.message ?? String(error)}`);
    process.exit(1);
  }
};
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
