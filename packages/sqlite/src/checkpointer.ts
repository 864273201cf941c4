import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * WAL checkpoints, off the event loop and off the writer thread: a checkpoint copies pages into the
 * database file and fsyncs it, which took 10+ ms on the event loop (the latency tail) and 22-52 ms
 * on the writer thread (every batch waited behind it). They run on a small thread of their own
 * (`startCheckpointer`), with a connection of their own.
 *
 * Every `intervalMs` a PASSIVE checkpoint, which never blocks writers or readers and fsyncs only
 * when it copied something (so at most a few times a second). Then a RESTART, waiting at most
 * `restartWaitMs` for a gap between the writers' commits, when the WAL grew by more than `busyBytes`
 * since the last tick (a writer that never pauses: the passive checkpoint copied nearly all of it,
 * so the RESTART holds writers up for a few milliseconds and the WAL stays small), or holds more
 * than `restartBytes` in all. A slow writer is restarted seldom: a RESTART makes it wait for a
 * copy and two fsyncs (at 8 MiB instead of 64, the in-process p99 at 2,000 msg/s went from 0.5-0.8
 * to 0.7-1.2 ms). Self-contained (no outside names), because its source text is also what the
 * checkpoint thread runs: the same code from TypeScript source (tsx) and from a build. Returns a
 * stop function.
 */
function runCheckpoints(
  // biome-ignore lint/suspicious/noExplicitAny: the better-sqlite3 constructor, passed in so the source stands alone
  Database: any,
  statSync: (path: string) => { size: number },
  path: string,
  timing: CheckpointTiming,
): () => void {
  const { intervalMs, restartBytes, busyBytes, restartWaitMs } = timing;
  const db = new Database(path);
  db.pragma('busy_timeout = 0');
  // A checkpoint copies WAL frames to the file without the page cache: keep this connection's small.
  db.pragma('cache_size = -256');
  const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
  const restart = db.prepare('PRAGMA wal_checkpoint(RESTART)');
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const walSize = () => {
    try {
      return statSync(`${path}-wal`).size;
    } catch {
      return 0;
    }
  };
  let framesBefore = 0;
  const timer = setInterval(() => {
    if (walSize() === 0) return;
    // Copy what can be copied without waiting for anyone. 'log' is the number of frames in the WAL
    // since it last started over (the file's size says nothing: it keeps its largest size).
    let frames = 0;
    try {
      frames = (checkpoint.get() as { log: number }).log;
    } catch {
      return;
    }
    // Fewer frames than last time: the WAL started over in between.
    const grown = frames >= framesBefore ? frames - framesBefore : frames;
    framesBefore = frames;
    if (grown * pageSize <= busyBytes && frames * pageSize < restartBytes) return;
    // A writer that never pauses: passive checkpoints never catch up with it, so the WAL is never
    // started over and grows without end (seen: 1.2 GB while draining a million messages, each lookup
    // in it slower). RESTART waits briefly for the writer, copies the little the passive one left,
    // and lets the next commit start the WAL from its beginning. SQLite's own busy handler sleeps
    // whole milliseconds and keeps missing the short gaps between a busy writer's commits; retrying
    // every 0.2 ms catches one.
    const until = Date.now() + restartWaitMs;
    for (;;) {
      let busy = 1;
      try {
        busy = (restart.get() as { busy: number }).busy;
      } catch {
        // Locked: retry.
      }
      if (busy === 0 || Date.now() >= until) break;
      Atomics.wait(pause, 0, 0, 0.2);
    }
  }, intervalMs);
  return () => {
    clearInterval(timer);
    db.close();
  };
}

/** The checkpoint thread's whole program: `runCheckpoints` and a way to stop it. */
const workerSource = `
// tsx (keepNames) wraps inner functions in __name(); the source runs without its helper.
const __name = (fn) => fn;
const { statSync } = require('node:fs');
const { parentPort, workerData: w } = require('node:worker_threads');
const stop = (${runCheckpoints.toString()})(require(w.driver), statSync, w.path, w.timing);
parentPort.on('message', (message) => {
  if (message === 'stop') { stop(); process.exit(0); }
});
`;

/** How often checkpoints run, and when a RESTART follows (see `runCheckpoints`). */
export interface CheckpointTiming {
  readonly intervalMs: number;
  /** A RESTART once the WAL holds this much since it last started over. */
  readonly restartBytes: number;
  /** A RESTART when the WAL grew by more than this since the last tick: a busy writer. */
  readonly busyBytes: number;
  /** How long a RESTART keeps trying to find a gap between commits. */
  readonly restartWaitMs: number;
}

/**
 * The defaults. The e2e benchmark's writer thread adds 20-25 MB a tick, so it is restarted every
 * tick; a process publishing 2,000 msg/s adds well under a megabyte and reaches 64 MiB every half
 * minute or so.
 */
export const CHECKPOINTS: CheckpointTiming = {
  intervalMs: 250,
  restartBytes: 64 * 1024 * 1024,
  busyBytes: 4 * 1024 * 1024,
  restartWaitMs: 20,
};

interface Running {
  readonly worker: Worker;
  users: number;
}

/** One checkpointer per database file per process, however many connections it has. */
const running = new Map<string, Running>();

/** Starts (or shares) the background checkpointer of the database at `path`; `stop()` releases it. */
export function startCheckpointer(
  path: string,
  timing: CheckpointTiming = CHECKPOINTS,
): { stop(): Promise<void> } {
  let entry = running.get(path);
  if (!entry) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(workerSource, {
      eval: true,
      workerData: { path, driver, timing },
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
