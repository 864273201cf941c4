/**
 * What the crash tests' parent and child processes share: the contracts, the queue names, the
 * application table and the line protocol children speak on stdout.
 *
 * Line protocol (one event per line, written synchronously: stdout is a pipe, and pipe writes are
 * synchronous on Linux, so a line written before a SIGKILL reaches the parent):
 *   R                  the child is ready (its bus started)
 *   P s1,s2,...        producer: these publishes RESOLVED
 *   S seq attempt      consumer: the handler started on `seq`
 *   D seq              consumer: `seq` is done (its transaction, with the ack, committed)
 *   K seq stage        consumer: about to SIGKILL itself at `stage` while handling `seq`
 *   E text             consumer: a handler failed (it is retried by the policy)
 */
import { defineCommand, defineEvent, defineTopology } from '@courier/core';
import type { SqliteDatabase } from '@courier/sqlite';
import type { StandardSchemaV1 } from '@standard-schema/spec';

/**
 * A hand-written Standard Schema: children start dozens of times per run, and a schema library's
 * import would add a quarter of a second of CPU to each start.
 */
function schema<T>(is: (value: unknown) => value is T, expected: string): StandardSchemaV1<T> {
  return {
    '~standard': {
      version: 1,
      vendor: 'courier-crash-test',
      validate: (value) => (is(value) ? { value } : { issues: [{ message: `expected ${expected}` }] }),
    },
  };
}
const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null;

export const workerQueue = 'worker';
export const auditQueue = 'audit';

export const Job = defineCommand(
  'crash.job',
  schema(
    (v): v is { seq: number; poison?: boolean } =>
      isRecord(v) && Number.isInteger(v.seq) && (v.poison === undefined || typeof v.poison === 'boolean'),
    '{ seq: integer, poison?: boolean }',
  ),
);
export const JobDone = defineEvent(
  'crash.job-done',
  schema((v): v is { seq: number } => isRecord(v) && Number.isInteger(v.seq), '{ seq: integer }'),
);

/** The worker owns `Job`; the audit queue (never consumed) collects the `JobDone` outputs. */
export const topology = defineTopology({
  endpoints: { [workerQueue]: { commands: [Job] }, [auditQueue]: { events: [JobDone] } },
});

/** Where a consumer kills itself. */
export type KillStage =
  /** In the handler, before `ctx.transact`. */
  | 'handler'
  /** Inside the `ctx.transact` work function, before the application write. */
  | 'before-write'
  /** Inside the work function, after the application write: the transaction must roll back. */
  | 'after-write'
  /** Right after `ctx.transact` committed, before the handler returns. */
  | 'after-commit';

export const killStages: readonly KillStage[] = ['handler', 'before-write', 'after-write', 'after-commit'];

/** The application's table: one row per effect. No UNIQUE constraint, so a double effect is counted, not refused. */
export function createAppTables(db: SqliteDatabase): void {
  db.exec(`CREATE TABLE IF NOT EXISTS app_effects (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    pid INTEGER NOT NULL
  )`);
  db.exec(`CREATE INDEX IF NOT EXISTS app_effects_seq ON app_effects (seq)`);
}

/** Reads an integer environment variable, or `fallback`. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value)) throw new Error(`${name} must be an integer, got ${raw}`);
  return value;
}

/** Writes one protocol line to stdout, synchronously. */
export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}
