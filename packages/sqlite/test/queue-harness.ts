/**
 * A harness for the tests of the queues' SQL (leases, ranges): one queue on a file of its own, its
 * batches run on the event loop as the writer thread would run them, on a clock the test moves.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Batch, BatchRunner, type ClaimRequest, Do } from '../src/batch.js';
import { SqliteQueues } from '../src/queues.js';
import { type ClaimedRow, Row, toStoredItem } from '../src/rows.js';
import { openDatabase, type SqliteDatabase } from '../src/schema.js';
import { SqliteSagaStore } from '../src/stores.js';
import { testItem as item } from './items.js';

/** A queue 'q' on a file of its own, driven through the batch runner on a clock the test moves. */
export interface Harness {
  queueId: number;
  db: SqliteDatabase;
  queues: SqliteQueues;
  /** Moves the runner's clock. */
  advance(ms: number): void;
  run(batch: Partial<Batch>): { values: unknown[]; rows: ClaimedRow[][]; acked: number[] };
  /** Plain acks of `rows` under `token`, as the transport sends them (acks.ts): each outcome. */
  plainAcks(rows: ClaimedRow[], token: number): number[];
  publish(...ns: number[]): void;
  claim(room: number, token: number, leaseMs?: number, due?: boolean): ClaimedRow[];
  ack(row: ClaimedRow, token: number): boolean;
  stats(): { depth: number; inFlight: number; scheduled: number };
  leaseRows(): number;
}

/** Runs `check` against a fresh file with queue 'q' declared; the file is removed afterwards. */
export function withQueue(check: (h: Harness) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'courier-leases-'));
  const db = openDatabase({ path: join(dir, 'courier.db'), synchronous: 'NORMAL', busyTimeoutMs: 20 });
  let clock = Date.now();
  try {
    const queues = new SqliteQueues(db, 60_000, () => clock);
    const runner = new BatchRunner(db, queues, new SqliteSagaStore(db), () => clock);
    runner.run({ commands: [[Do.DECLARE, { queues: [{ name: 'q' }], bindings: [] }]], claims: [] });
    const queueId = queues.queueId('q')!;
    const run = (batch: Partial<Batch>) => {
      const result = runner.run({
        acks: batch.acks,
        commands: batch.commands ?? [],
        claims: batch.claims ?? [],
      });
      assert.equal(result.kind, 'done');
      if (result.kind !== 'done') throw new Error('unreachable');
      if (result.errors) for (const error of result.errors) if (error) throw error;
      return {
        values: result.values,
        rows: result.claims.map((c) => c[0]),
        acked: result.acked ? [...result.acked] : [],
      };
    };
    const h: Harness = {
      queueId,
      db,
      queues,
      advance: (ms) => {
        clock += ms;
      },
      run,
      publish: (...ns) => {
        run({ commands: [[Do.PUBLISH, ns.map((n) => toStoredItem(item(n)))]] });
      },
      claim: (room, token, leaseMs = 30_000, due = false) => {
        const request: ClaimRequest = [queueId, room, token, leaseMs, due, true];
        return run({ claims: [request] }).rows[0]!;
      },
      ack: (row, token) =>
        run({ commands: [[Do.ACK, row[Row.SEQ], token, queueId, row[Row.KEY], null]] }).values[0] as boolean,
      plainAcks: (rows, token) =>
        run({
          acks: new Float64Array(rows.flatMap((row) => [row[Row.SEQ], token, queueId])),
        }).acked,
      stats: () => {
        const { depth, inFlight, scheduled } = queues.stats('q', clock);
        return { depth, inFlight, scheduled };
      },
      leaseRows: () => db.prepare('SELECT count(*) FROM courier_claims').pluck().get() as number,
    };
    check(h);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The `n` of each claimed test row. */
export const numbers = (rows: ClaimedRow[]) =>
  rows.map((row) => (JSON.parse(row[Row.BODY] as string) as { n: number }).n);
