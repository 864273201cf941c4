/**
 * raw-sqlite-queue: the reference a SQLite queue cannot beat. better-sqlite3 on a file in a temp dir,
 * WAL, synchronous=NORMAL (Courier's default), one table of (id, body). Inserts COUNT rows of the
 * 200-byte payload 1,000 per transaction, then claims (reads) and deletes 1,000 per transaction until
 * empty. msgs/s is COUNT over insert + drain. No Courier code. The count is the same with --quick
 * (it takes about a second).
 */
import Database from 'better-sqlite3';
import {
  benchOptions,
  envInt,
  log,
  okResult,
  round,
  runBenchmark,
  startRssSampler,
  tempDir,
  yieldToLoop,
} from '../lib/harness.js';
import { makePayload } from '../payload.js';

const NAME = 'raw-sqlite-queue';
const BATCH = 1_000;

await runBenchmark([NAME], async () => {
  benchOptions();
  const count = envInt('BENCH_COUNT', 100_000);
  const rss = startRssSampler();
  const tmp = tempDir(NAME);
  const db = new Database(`${tmp.dir}/queue.db`);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE queue (id INTEGER PRIMARY KEY, body BLOB NOT NULL)');
    const insert = db.prepare('INSERT INTO queue (body) VALUES (?)');
    const claim = db.prepare('SELECT id, body FROM queue ORDER BY id LIMIT ?');
    const remove = db.prepare('DELETE FROM queue WHERE id <= ?');
    const insertBatch = db.transaction((from: number, to: number) => {
      for (let seq = from; seq < to; seq++) insert.run(Buffer.from(JSON.stringify(makePayload(seq))));
    });
    const drainBatch = db.transaction((): number => {
      const rows = claim.all(BATCH) as { id: number; body: Buffer }[];
      const last = rows[rows.length - 1];
      if (last === undefined) return 0;
      remove.run(last.id);
      return rows.length;
    });

    const start = performance.now();
    for (let seq = 0; seq < count; seq += BATCH) {
      insertBatch(seq, Math.min(count, seq + BATCH));
      await yieldToLoop();
    }
    const inserted = performance.now();
    let drained = 0;
    for (;;) {
      const n = drainBatch();
      if (n === 0) break;
      drained += n;
      await yieldToLoop();
    }
    const end = performance.now();
    if (drained !== count) throw new Error(`drained ${drained} rows, inserted ${count}`);
    const seconds = (end - start) / 1000;
    log(
      `${NAME}: insert ${round(count / ((inserted - start) / 1000), 0)}/s, drain ${round(count / ((end - inserted) / 1000), 0)}/s`,
    );
    return [
      okResult(NAME, {
        count,
        seconds,
        rss,
        note: `insert ${round(count / ((inserted - start) / 1000), 0)}/s, drain ${round(count / ((end - inserted) / 1000), 0)}/s`,
      }),
    ];
  } finally {
    rss.stop();
    db.close();
    tmp.remove();
  }
});
