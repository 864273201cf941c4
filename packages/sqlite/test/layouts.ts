/**
 * The file's layout as other programs meet it (docs/sqlite.md, "Data model"): the seq a foreign
 * writer gives a ready row, and a file taken back to the layout of schema 6 (before seq ranges), to
 * test the migrations from older versions.
 */
import type Database from 'better-sqlite3';

const RANGE = 2 ** 40;

/**
 * The seq for a new ready row of `queueId` at `priority`, as a program other than Courier must
 * choose it: after every row of the queue's newest range and after its cursor (the last seq of its
 * live claims), opening a range when the queue has none.
 */
export function foreignReadySeq(db: Database.Database, queueId: number, priority = 0): number {
  let slot = db
    .prepare(
      'SELECT slot FROM courier_ranges WHERE queue_id = ? AND priority = ? ORDER BY generation DESC LIMIT 1',
    )
    .pluck()
    .get(queueId, priority) as number | undefined;
  if (slot === undefined) {
    slot = db.prepare('SELECT coalesce(max(slot), 0) + 1 FROM courier_ranges').pluck().get() as number;
    db.prepare('INSERT INTO courier_ranges (slot, queue_id, priority, generation) VALUES (?, ?, ?, 1)').run(
      slot,
      queueId,
      priority,
    );
  }
  const start = slot * RANGE;
  const last = db
    .prepare('SELECT max(seq) FROM courier_messages WHERE seq BETWEEN ? AND ?')
    .pluck()
    .get(start, start + RANGE - 1) as number | null;
  const cursor = db.prepare('SELECT max(last_seq) FROM courier_claims WHERE slot = ?').pluck().get(slot) as
    | number
    | null;
  return Math.max(start, last ?? 0, cursor ?? 0) + 1;
}

/**
 * Takes a closed Courier file back to schema 6: every row renumbered into one sequence (ready rows
 * in claim order first), the ready index and `courier_leases` as they were, no ranges or claims.
 * Only for files without live claims.
 */
export function toSchema6(db: Database.Database): void {
  db.exec(`
    CREATE TEMP TABLE moves (old INTEGER PRIMARY KEY, new INTEGER NOT NULL);
    INSERT INTO moves (old, new) SELECT seq, row_number() OVER (ORDER BY state <> 0, seq) FROM courier_messages;
    UPDATE courier_messages SET seq = (SELECT new FROM moves WHERE old = courier_messages.seq);
    DROP TABLE moves;
    DROP TABLE courier_ranges;
    DROP TABLE courier_claims;
    -- The index and table as migrations 1 and 5 made them (schema.ts), written out: a test of the
    -- migration must not take the old layout from the code that replaced it.
    CREATE INDEX courier_messages_ready ON courier_messages (queue_id, priority DESC, seq) WHERE state = 0;
    CREATE TABLE courier_leases (
      queue_id INTEGER NOT NULL,
      priority INTEGER NOT NULL,
      token INTEGER NOT NULL,
      first_seq INTEGER NOT NULL,
      last_seq INTEGER NOT NULL,
      lease_until INTEGER NOT NULL,
      remaining INTEGER NOT NULL,
      PRIMARY KEY (queue_id, priority, token)
    ) WITHOUT ROWID;
    UPDATE courier_meta SET value = '6' WHERE name = 'schema_version';
  `);
}
