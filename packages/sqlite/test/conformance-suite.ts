import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTransportSuite } from '@courier/conformance';
import { systemClock } from '@courier/core';
import type { Synchronous, WriterThreadMode } from '@courier/sqlite';
import { sqlite } from '@courier/sqlite';

/**
 * The conformance suite on SQLite. Each case gets its own file; every connect() is another
 * "process" on it. `writerThread: 'always'` runs every batch on the writer thread, which 'auto'
 * uses only under load, so both paths see every case. Real time: SQLite leases and schedules run on the machine's clock (DESIGN.md §2.9).
 */
export function runSqliteSuite(synchronous: Synchronous, writerThread: WriterThreadMode): void {
  runTransportSuite({
    name: `sqlite (synchronous=${synchronous}, writerThread=${writerThread})`,
    create: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'courier-sqlite-'));
      const path = join(dir, 'courier.db');
      return {
        clock: systemClock,
        connect: () => sqlite({ path, synchronous, writerThread }),
        advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        dispose: async () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  });
}
