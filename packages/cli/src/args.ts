/**
 * Argument parsing shared by the commands: node:util `parseArgs` with errors a person can act on,
 * and the options every command that reads the broker file takes.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { parseArgs } from 'node:util';
import { resolvePaths } from '../../../examples/order-processing/src/index.js';

/** Bad usage: the command prints the message and its usage line, and exits with code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    /** The usage text to print after the message (the command's short usage). */
    readonly usage?: string,
  ) {
    super(message);
  }
}

/** A failure that is not bad usage (a missing file, a refused connection): exit code 1, no stack. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
}

/** What a command writes to; tests give their own. */
export interface Io {
  readonly out: NodeJS.WriteStream | NodeJS.WritableStream;
  readonly err: NodeJS.WriteStream | NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
}

/** One `courier` subcommand: its name, one-line summary and what it runs. */
export interface Command {
  readonly name: string;
  /** One line for `courier --help`; undefined hides the command. */
  readonly summary: string | undefined;
  readonly help: string;
  /** Resolves the exit code. */
  run(argv: string[], io: Io): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** `parseArgs` in strict mode, with its errors turned into `UsageError`s carrying `usage`. */
export function parse<O extends Options>(argv: string[], options: O, usage: string) {
  try {
    return parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    let message = (error as Error).message;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') message = message.replace(/\. To specify.*$/s, '');
    throw new UsageError(message, usage);
  }
}

/** A whole number in [min, max] from option `name`, or `fallback` when absent. */
export function intOption(
  value: string | undefined,
  name: string,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
  usage?: string,
): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (value.trim() === '' || !Number.isInteger(number) || number < min || number > max)
    throw new UsageError(
      `--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`,
      usage,
    );
  return number;
}

/** A number > 0 (fractions allowed) from option `name`, or `fallback` when absent. */
export function positiveOption(
  value: string | undefined,
  name: string,
  fallback: number,
  usage?: string,
): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number) || number <= 0)
    throw new UsageError(`--${name} must be a number greater than 0, got ${JSON.stringify(value)}`, usage);
  return number;
}

/** Where the broker file and the email outbox are: `--db`, else `COURIER_DB` / `DATA_DIR` (as `npm start`). */
export function dataPaths(
  db: string | undefined,
  env: NodeJS.ProcessEnv,
): { dbPath: string; dataDir: string; outboxDir: string } {
  const paths =
    db !== undefined
      ? resolvePaths({ dbPath: db })
      : resolvePaths({ dataDir: env.DATA_DIR || undefined, dbPath: env.COURIER_DB || undefined });
  return { ...paths, outboxDir: join(paths.dataDir, 'outbox') };
}

/** Refuses to go on (rather than create an empty broker file) when the file does not exist. */
export function requireDatabase(dbPath: string): void {
  if (!existsSync(dbPath))
    throw new CommandError(
      `no broker file at ${dbPath}: start the system first (npm start, or courier run all), or pass --db`,
    );
}

/** The help text of the shared `--db` option. */
export const dbOptionHelp =
  '  --db <path>         the SQLite broker file (default: $COURIER_DB, else $DATA_DIR/courier.db, else ./data/courier.db)';

/** Writes one line of output. */
export function write(stream: Io['out'], text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}
