/**
 * Where the transport's batches run. `InlineWriter` runs them on the event loop, on the transport's
 * own connection (`writerThread: 'never'`, `:memory:`, and small batches while the thread is idle).
 * `ThreadWriter` hands them to a worker thread with a connection of its own (writer-thread.ts), so
 * SQLite works on the second core while the event loop encodes, decodes and runs handlers; the
 * transport keeps up to four batches in flight there, run in the order sent.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CourierError, NoRouteError, TransportError } from '@courier/core';
import type { Batch, BatchResult, BatchRunner } from './batch.js';
import { packPublishes } from './packed-publishes.js';
import { type ClaimedRows, packRows } from './rows.js';
import type { Synchronous } from './schema.js';

/** Runs the transport's batches, one transaction each (or several queued ones in one). */
export interface Writer {
  /** Runs `batch`; `done` receives its result (at once for the inline writer). */
  run(batch: Batch, done: (result: WriterResult) => void): void;
}

/** A batch's result as the transport gets it: claimed rows packed when they come from the thread. */
export type WriterResult = BatchResult<ClaimedRows>;

/** Runs a batch on the transport's own connection, before `run` returns. */
export class InlineWriter implements Writer {
  constructor(private readonly runner: BatchRunner) {}

  run(batch: Batch, done: (result: WriterResult) => void): void {
    done(this.runner.run(batch));
  }
}

/** What the writer thread needs to open its connection (workerData). */
export interface WriterThreadData {
  readonly path: string;
  readonly synchronous: Synchronous;
  readonly busyTimeoutMs: number;
  readonly cacheSizeMb: number;
  readonly dedupWindowMs: number;
}

/** Messages from the writer thread. */
export type WriterMessage =
  | { readonly kind: 'ready' }
  | { readonly kind: 'result'; readonly result: WriterResult }
  | { readonly kind: 'fatal'; readonly error: ErrorData };

/** An error as it crosses the thread boundary. */
export interface ErrorData {
  readonly name: string;
  readonly message: string;
  readonly code?: string | undefined;
}

/** Runs batches on the writer thread, in the order sent; `done` is called from a later event-loop turn. */
export class ThreadWriter implements Writer {
  private readonly worker: Worker;
  private readonly waiting: ((result: WriterResult) => void)[] = [];
  private broken: Error | undefined;
  private isReady = false;
  private exited: Promise<void>;
  private markStarted!: () => void;
  /**
   * Results and failures as they came, taken on the next turn (`takeArrived`), not as each arrives.
   * Node reads a port's queued messages in one go, and the thread answers a busy producer's batches
   * about as fast as they come, so one read could go on for over 100 ms (courier-sqlite-e2e) while
   * timers, I/O, V8's GC tasks and the consumer's handlers (dispatched with `setImmediate`) waited:
   * the consumer handled 2-7 % of the messages while the producer ran. Taken a turn at a time:
   * about 40 % handled meanwhile, +2 % msgs/s (eight pairs), event-loop delay p99 9.5-13 ms against 34-38.
   */
  private readonly arrived: WriterMessage[] = [];
  /** Settles once the thread is ready, or has failed or exited; never rejects. */
  readonly started = new Promise<void>((resolve) => {
    this.markStarted = resolve;
  });

  /** `entry` replaces writer-thread's own file (tests). Throws when the thread cannot be started. */
  constructor(data: WriterThreadData, entry?: URL) {
    this.worker = startWorker(data, entry);
    // Held only while batches are out: an idle writer must not keep the process alive.
    this.worker.unref();
    this.worker.on('message', (message: WriterMessage) => {
      if (message.kind === 'ready') {
        this.isReady = true;
        this.markStarted();
        return;
      }
      this.arrived.push(message);
      if (this.arrived.length === 1) setImmediate(this.takeArrived);
    });
    this.worker.on('error', (error) => this.fail(error));
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', () => {
        this.fail(new TransportError('the sqlite writer thread exited'));
        resolve();
      }),
    );
  }

  /** Set once the thread failed (it could not open the file, or died); every later batch fails too. */
  get failure(): Error | undefined {
    return this.broken;
  }

  /**
   * True once the thread has opened its connection. Starting takes tens of milliseconds (a new
   * isolate, the driver, the file): batches sent before wait that long, so `auto` keeps running
   * them on the event loop until then.
   */
  get ready(): boolean {
    return this.isReady && this.broken === undefined;
  }

  run(batch: Batch, done: (result: WriterResult) => void): void {
    if (this.broken) {
      done({ kind: 'failed', error: this.broken });
      return;
    }
    if (this.waiting.length === 0) this.worker.ref();
    this.waiting.push(done);
    // The acks' buffer is copied, not transferred: a transfer detaches it, and the first detached
    // ArrayBuffer in a process makes V8 throw away the optimized code of every function that reads
    // a typed array or Buffer (ids, packed claims, acks), and compile it again with detach checks.
    this.worker.postMessage(packPublishes(batch));
  }

  async close(): Promise<void> {
    // Held until it has exited, even when broken: an unref'd thread's exit may never be reported.
    this.worker.ref();
    if (!this.broken) this.worker.postMessage({ stop: true });
    await this.exited;
  }

  /** Handles what arrived, in order (an arrow: it is the `setImmediate` callback). */
  private readonly takeArrived = (): void => {
    for (const message of this.arrived.splice(0)) {
      if (message.kind === 'fatal') this.fail(reviveError(message.error));
      else if (message.kind === 'result') this.settle(message.result);
    }
  };

  private settle(result: WriterResult): void {
    const done = this.waiting.shift();
    if (this.waiting.length === 0) this.worker.unref();
    done?.(reviveResult(result));
  }

  private fail(error: Error): void {
    if (this.broken) return;
    // Batches whose results arrived before the failure committed: settle them first.
    if (this.arrived.length > 0) this.takeArrived();
    if (this.broken) return;
    this.broken = new TransportError(`the sqlite writer thread failed: ${error.message}`, { cause: error });
    this.markStarted();
    for (const done of this.waiting.splice(0)) done({ kind: 'failed', error: this.broken });
    this.worker.unref();
  }
}

/**
 * Compiled, the thread runs writer-thread.js beside this file. From TypeScript source (tests, `npm
 * start`) it runs one JavaScript bundle of writer-thread.ts, made by esbuild (tsx's own compiler)
 * in each process into a file shared by content (`sourceBundle`): a thread that registered tsx's
 * loader took 250-340 ms of CPU to start against about 40 ms for the bundle, paid by every
 * consuming process. Without esbuild, a small bootstrap registers tsx in the thread first.
 */
function startWorker(data: WriterThreadData, given?: URL): Worker {
  const fromSource = (given?.href ?? import.meta.url).endsWith('.ts');
  const entry = given ?? new URL(fromSource ? './writer-thread.ts' : './writer-thread.js', import.meta.url);
  if (!fromSource) return new Worker(entry, { workerData: data });
  const bundle = given === undefined ? sourceBundle() : undefined;
  // No execArgv: the process's `--import tsx` would load tsx in the thread all the same.
  if (bundle !== undefined) return new Worker(bundle, { workerData: data, execArgv: [] });
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: data });
}

/** `sourceBundle`'s file once made; null when it could not be (no esbuild). */
let bundled: string | null | undefined;

/**
 * writer-thread.ts and what it imports as one ES module, better-sqlite3 left outside it (CommonJS
 * with a native addon). Written to node_modules/.cache beside the driver, so the driver resolves
 * from it as from here, and named by its content: processes of one checkout share it, and one
 * killed mid-write leaves nothing another would run. Undefined without esbuild.
 */
function sourceBundle(): string | undefined {
  if (bundled !== undefined) return bundled ?? undefined;
  bundled = null;
  const require = createRequire(import.meta.url);
  let esbuild: typeof import('esbuild');
  let cache: string;
  try {
    esbuild = require('esbuild');
    cache = join(dirname(dirname(require.resolve('better-sqlite3/package.json'))), '.cache', 'courier');
  } catch {
    return undefined;
  }
  const [output] = esbuild.buildSync({
    entryPoints: [fileURLToPath(new URL('./writer-thread.ts', import.meta.url))],
    write: false,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'silent',
    external: ['better-sqlite3'],
    // ESM has no `require`; better-sqlite3's loader calls it.
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
  }).outputFiles;
  const file = join(
    cache,
    `writer-thread-${createHash('sha256').update(output!.contents).digest('hex').slice(0, 16)}.mjs`,
  );
  if (!existsSync(file)) {
    mkdirSync(cache, { recursive: true });
    const partial = `${file}.${process.pid}.tmp`;
    writeFileSync(partial, output!.contents);
    renameSync(partial, file);
  }
  bundled = file;
  return file;
}

/** Errors as data, for the trip from the writer thread. */
export function errorData(error: unknown): ErrorData {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, message: error.message, code: typeof code === 'string' ? code : undefined };
  }
  return { name: 'Error', message: String(error) };
}

/** The writer thread's result with its errors as data and its claimed rows packed (`PackedRows`). */
export function resultData(result: BatchResult): WriterResult {
  if (result.kind === 'failed') return { kind: 'failed', error: errorData(result.error) };
  if (result.kind !== 'done') return result;
  return {
    ...result,
    claims: result.claims.map(([rows, ...rest]) => [
      (rows.length === 0 ? undefined : packRows(rows)) ?? rows,
      ...rest,
    ]),
    errors: result.errors?.map((e) => (e === undefined ? undefined : errorData(e))),
  };
}

function reviveResult(result: WriterResult): WriterResult {
  if (result.kind === 'failed') return { kind: 'failed', error: reviveError(result.error as ErrorData) };
  if (result.kind === 'done' && result.errors !== undefined)
    return {
      ...result,
      errors: result.errors.map((e) => (e === undefined ? undefined : reviveError(e as ErrorData))),
    };
  return result;
}

/** Courier's own errors come back as their class (callers test `instanceof NoRouteError`). */
function reviveError(data: ErrorData): Error {
  if (data.code === NoRouteError.code) return new NoRouteError(data.message);
  if (data.code?.startsWith('COURIER_')) return new CourierError(data.code, data.message);
  return Object.assign(new Error(data.message), { name: data.name, code: data.code });
}
