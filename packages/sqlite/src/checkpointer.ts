import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * Runs WAL checkpoints on a thread of their own, with its own connection: a checkpoint copies pages
 * into the database file and fsyncs it, which took 10+ ms on the event loop and showed up as the
 * latency tail. Every `intervalMs` it runs a PASSIVE checkpoint, which never blocks writers or
 * readers and fsyncs only when it copied something (so at most a few times a second). When the WAL
 * holds more than `restartBytes` since it last started over, it runs a RESTART, waiting at most
 * `restartWaitMs` for the writer. Plain JS evaluated in the worker, so it runs the same from source
 * (tsx) and from a build.
 */
const workerSource = `
const { statSync } = require('node:fs');
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 0');
// A checkpoint copies WAL frames to the file without the page cache: keep this connection's small.
db.pragma('cache_size = -256');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const restart = db.prepare('PRAGMA wal_checkpoint(RESTART)');
const pause = new Int32Array(new SharedArrayBuffer(4));
const pageSize = db.pragma('page_size', { simple: true });
const walSize = () => { try { return statSync(workerData.path + '-wal').size; } catch { return 0; } };
const timer = setInterval(() => {
  if (walSize() === 0) return;
  // Copy what can be copied without waiting for anyone. 'log' is the number of frames in the WAL
  // since it last started over (the file's size says nothing: it keeps its largest size).
  let frames = 0;
  try { frames = checkpoint.get().log; } catch { return; }
  if (frames * pageSize < workerData.restartBytes) return;
  // A writer that never pauses: passive checkpoints never catch up with it, so the WAL is never
  // started over and grows without end (seen: 1.2 GB while draining a million messages, each lookup
  // in it slower). RESTART waits briefly for the writer, copies the little the passive ones left,
  // and lets the next commit start the WAL from its beginning. SQLite's own busy handler sleeps
  // whole milliseconds and keeps missing the short gaps between a busy writer's commits; retrying
  // every 0.2 ms catches one.
  const until = Date.now() + workerData.restartWaitMs;
  for (;;) {
    let busy = 1;
    try { busy = restart.get().busy; } catch { /* locked: retry */ }
    if (busy === 0 || Date.now() >= until) break;
    Atomics.wait(pause, 0, 0, 0.2);
  }
}, workerData.intervalMs);
parentPort.on('message', (message) => {
  if (message === 'stop') { clearInterval(timer); db.close(); process.exit(0); }
});
`;

interface Running {
  readonly worker: Worker;
  users: number;
}

/** One checkpointer per database file per process, however many connections it has. */
const running = new Map<string, Running>();

/** Starts (or shares) the background checkpointer of the database at `path`; `stop()` releases it. */
export function startCheckpointer(
  path: string,
  intervalMs = 250,
  restartBytes = 64 * 1024 * 1024,
  restartWaitMs = 100,
): { stop(): Promise<void> } {
  let entry = running.get(path);
  if (!entry) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(workerSource, {
      eval: true,
      workerData: { path, driver, intervalMs, restartBytes, restartWaitMs },
    });
    // A checkpointer must not keep a process alive on its own.
    worker.unref();
    worker.on('error', () => {
      // Losing the checkpointer only lets the WAL grow until close; the broker keeps working.
    });
    entry = { worker, users: 0 };
    running.set(path, entry);
  }
  entry.users++;
  const shared = entry;
  let stopped = false;
  return {
    stop: () => {
      if (stopped) return Promise.resolve();
      stopped = true;
      if (--shared.users > 0) return Promise.resolve();
      running.delete(path);
      return new Promise<void>((resolve) => {
        shared.worker.once('exit', () => resolve());
        // Held while it stops, or a process with nothing else to do would exit before it closed.
        shared.worker.ref();
        shared.worker.postMessage('stop');
        setTimeout(() => void shared.worker.terminate().then(() => resolve()), 1_000).unref();
      });
    },
  };
}
