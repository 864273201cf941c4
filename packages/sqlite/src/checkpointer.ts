import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * Runs WAL checkpoints on a thread of their own, with its own connection: a checkpoint copies pages
 * into the database file and fsyncs it, which took 10+ ms on the event loop and showed up as the
 * latency tail. PASSIVE never blocks writers or readers; the main thread never checkpoints while
 * running. Plain JS evaluated in the worker, so it runs the same from source (tsx) and from a build.
 */
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 0');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const timer = setInterval(() => {
  try { checkpoint.all(); } catch { /* busy: try at the next tick */ }
}, workerData.intervalMs);
parentPort.on('message', (message) => {
  if (message === 'stop') { clearInterval(timer); db.close(); process.exit(0); }
});
`;

/** A background checkpointer for the database at `path`; `stop()` ends it. */
export function startCheckpointer(path: string, intervalMs = 250): { stop(): Promise<void> } {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(workerSource, { eval: true, workerData: { path, driver, intervalMs } });
  // A checkpointer must not keep a process alive on its own.
  worker.unref();
  worker.on('error', () => {
    // Losing the checkpointer only lets the WAL grow until close; the broker keeps working.
  });
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        worker.once('exit', () => resolve());
        // Held while it stops, or a process with nothing else to do would exit before it closed.
        worker.ref();
        worker.postMessage('stop');
        setTimeout(() => void worker.terminate().then(() => resolve()), 1_000).unref();
      }),
  };
}
