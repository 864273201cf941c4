/**
 * The writer thread (see writer.ts): its own connection to the file, running the transport's batches
 * in the order they arrive. When another process holds the write lock it waits here, off the event
 * loop, and keeps the batches behind in order. It runs no checkpoints: the checkpoint thread
 * (checkpointer.ts) does, beside it, so no batch waits for a checkpoint's copy and fsyncs.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type Batch, BatchRunner } from './batch.js';
import { type PackedBatch, unpackPublishes } from './packed-publishes.js';
import { SqliteQueues } from './queues.js';
import { openDatabase } from './schema.js';
import { SqliteSagaStore } from './stores.js';
import { errorData, resultData, type WriterMessage, type WriterThreadData } from './writer.js';

const port = parentPort!;
const data = workerData as WriterThreadData;
const post = (message: WriterMessage) => port.postMessage(message);

const BUSY_RETRY_MAX_MS = 50;

try {
  const db = openDatabase({
    path: data.path,
    synchronous: data.synchronous,
    busyTimeoutMs: data.busyTimeoutMs,
    // The transport opened (and if need be migrated) the file before starting this thread.
    adoptExisting: true,
    cacheSizeMb: data.cacheSizeMb,
  });
  const queues = new SqliteQueues(db, data.dedupWindowMs, Date.now);
  const runner = new BatchRunner(db, queues, new SqliteSagaStore(db));
  // The transport runs its batches on the event loop until this arrives (see ThreadWriter.ready).
  post({ kind: 'ready' });
  const queue: Batch[] = [];
  let busyRetryMs = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;

  const runQueued = () => {
    retryTimer = undefined;
    if (queue.length === 0) return;
    // Everything that queued up while the last commit ran goes into one transaction.
    const results = runner.runAll(queue);
    if (results[0]!.kind === 'busy') {
      // Another process writes: try again soon; the batches behind wait their turn.
      busyRetryMs = Math.min(Math.max(1, busyRetryMs * 2), BUSY_RETRY_MAX_MS);
      retryTimer = setTimeout(runQueued, busyRetryMs);
      return;
    }
    busyRetryMs = 0;
    queue.length = 0;
    for (const result of results) post({ kind: 'result', result: resultData(result) });
  };

  port.on('message', (message: PackedBatch | { stop: true }) => {
    if ('commands' in message) {
      queue.push(unpackPublishes(message));
      // Run after the messages already in the port are read, so batches sent together commit together.
      if (queue.length === 1 && retryTimer === undefined) setImmediate(runQueued);
    } else {
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      db.close();
      port.close();
    }
  });
} catch (error) {
  post({ kind: 'fatal', error: errorData(error) });
  port.close();
}
