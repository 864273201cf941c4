/**
 * The rows of a run of publishes, inserted many per statement. One INSERT per row pays a statement's
 * step and reset and a call into the driver each time; 32 rows in one INSERT measured 2.2-2.4 µs a
 * row against 3.3-4.8 µs one by one (raw better-sqlite3, 8 KiB pages, 256 rows a transaction). Rows
 * wait here only while the batch runs nothing but publishes, so no other statement sees the table
 * without them. Each row brings its seq (ranges.ts), so the order they go in does not matter.
 */
import type Database from 'better-sqlite3';
import type { SqliteDatabase } from './schema.js';

/** Rows per full statement. */
const RUN_ROWS = 32;
/** Values per row, in the order of `COLUMNS` (the order of `statements.ts`'s `insertAt`). */
const ROW_VALUES = 13;
const COLUMNS =
  '(seq, queue_id, state, priority, available_at, id, type, key, expires_at, dedup_id, headers, body, enqueued_at)';

interface Sized {
  readonly statement: Database.Statement;
  readonly params: unknown[];
}

/** See the module comment. The owner opens a run (`begin`), adds rows, and ends it before anything else. */
export class InsertRuns {
  /** The waiting rows' values, end to end: at RUN_ROWS rows, the full statement's parameters as they are. */
  private readonly values: unknown[] = new Array(RUN_ROWS * ROW_VALUES);
  private rows = 0;
  private open = false;
  /** A statement (and its parameters array) per number of rows, made when first needed. */
  private readonly sized = new Map<number, Sized>();

  constructor(private readonly db: SqliteDatabase) {}

  /** Whether a run is open: rows may wait. */
  get accepting(): boolean {
    return this.open;
  }

  begin(): void {
    this.open = true;
    this.rows = 0;
  }

  /** Inserts what waits and closes the run. */
  end(): void {
    this.flush();
    this.open = false;
  }

  /** The transaction is gone (rolled back, or a new one starts): what waits is dropped. */
  discard(): void {
    this.rows = 0;
    this.open = false;
  }

  /** A row: its `ROW_VALUES` values, as the single-row `insertAt` statement binds them. */
  add(row: readonly unknown[]): void {
    const at = this.rows * ROW_VALUES;
    for (let i = 0; i < ROW_VALUES; i++) this.values[at + i] = row[i];
    if (++this.rows === RUN_ROWS) this.flush();
  }

  /** Inserts what waits now, keeping the run open. */
  private flush(): void {
    const rows = this.rows;
    if (rows === 0) return;
    const { statement, params } = this.statementFor(rows);
    if (params !== this.values) for (let i = 0; i < rows * ROW_VALUES; i++) params[i] = this.values[i];
    statement.run(params);
    // Let go of the strings: the next run overwrites only what it fills.
    this.values.fill(undefined, 0, rows * ROW_VALUES);
    if (params !== this.values) params.fill(undefined);
    this.rows = 0;
  }

  private statementFor(rows: number): Sized {
    let sized = this.sized.get(rows);
    if (sized === undefined) {
      const row = `(${new Array(ROW_VALUES).fill('?').join(', ')})`;
      sized = {
        statement: this.db.prepare(
          `INSERT INTO courier_messages ${COLUMNS} VALUES ${new Array(rows).fill(row).join(', ')}`,
        ),
        params: rows === RUN_ROWS ? this.values : new Array(rows * ROW_VALUES),
      };
      this.sized.set(rows, sized);
    }
    return sized;
  }
}
