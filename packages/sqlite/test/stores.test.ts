import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { SagaStore } from '@courier/core';
import { encodeMessage, memorySagaStore } from '@courier/core';
import type { SqliteTransport } from '@courier/sqlite';
import { schemaVersion, sqlite } from '@courier/sqlite';
import Database from 'better-sqlite3';
import { toSchema6 } from './layouts.js';

async function withTransport(
  run: (transport: SqliteTransport, path: string) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'courier-stores-'));
  const path = join(dir, 'courier.db');
  const transport = sqlite({ path });
  await transport.start();
  try {
    await run(transport, path);
  } finally {
    await transport.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The saga store contract, run on memory and SQLite alike. */
function sagaStoreCases(
  name: string,
  withStore: (run: (store: SagaStore) => Promise<void>) => Promise<void>,
): void {
  describe(`saga store: ${name}`, () => {
    it('creates at version 1, updates by version, refuses a stale version', () =>
      withStore(async (store) => {
        assert.equal(await store.load('order', 'o-1'), undefined);
        assert.equal(await store.save('order', 'o-1', { step: 'placed' }, 0), true);
        assert.equal(
          await store.save('order', 'o-1', { step: 'again' }, 0),
          false,
          'a second create conflicts',
        );
        assert.deepEqual(await store.load('order', 'o-1'), { state: { step: 'placed' }, version: 1 });
        assert.equal(await store.save('order', 'o-1', { step: 'reserved' }, 1), true);
        assert.equal(
          await store.save('order', 'o-1', { step: 'stale' }, 1),
          false,
          'a stale version conflicts',
        );
        assert.deepEqual(await store.load('order', 'o-1'), { state: { step: 'reserved' }, version: 2 });
        assert.equal(await store.remove('order', 'o-1', 1), false);
        assert.equal(await store.remove('order', 'o-1', 2), true);
        assert.equal(await store.load('order', 'o-1'), undefined);
      }));

    it('of many concurrent saves from one version, exactly one wins', () =>
      withStore(async (store) => {
        await store.save('counter', 'c', { n: 0 }, 0);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.save('counter', 'c', { n: i }, 1)),
        );
        assert.equal(results.filter(Boolean).length, 1);
        assert.equal((await store.load('counter', 'c'))?.version, 2);
      }));

    it('keeps sagas and keys apart', () =>
      withStore(async (store) => {
        await store.save('a', 'k', 1, 0);
        await store.save('b', 'k', 2, 0);
        await store.save('a', 'j', 3, 0);
        assert.deepEqual(
          [
            (await store.load('a', 'k'))?.state,
            (await store.load('b', 'k'))?.state,
            (await store.load('a', 'j'))?.state,
          ],
          [1, 2, 3],
        );
      }));
  });
}

sagaStoreCases('memory', async (run) => run(memorySagaStore()));
sagaStoreCases('sqlite', (run) => withTransport((transport) => run(transport.sagaStore())));

describe('sqlite stores', () => {
  it('saga state survives a reopen of the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'courier-stores-'));
    const path = join(dir, 'courier.db');
    try {
      const first = sqlite({ path });
      await first.start();
      await first.sagaStore().save('order', 'o-9', { step: 'charged' }, 0);
      await first.close();
      const second = sqlite({ path });
      await second.start();
      assert.deepEqual(await second.sagaStore().load('order', 'o-9'), {
        state: { step: 'charged' },
        version: 1,
      });
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the outbox commits and rolls back with the application transaction, and reads in order', () =>
    withTransport(async (transport) => {
      const { db } = transport;
      db.exec('CREATE TABLE orders (id TEXT PRIMARY KEY)');
      const outbox = transport.outbox();
      const item = (n: number) => ({
        envelope: encodeMessage(
          {
            id: `m-${n}`,
            type: 'orders.placed',
            version: 1,
            data: { n },
            headers: {},
            time: new Date(0).toISOString(),
            source: 'orders',
            correlationId: `m-${n}`,
            priority: 0,
          },
          'binary',
        ),
        to: { kind: 'topic' as const },
      });
      db.transaction(() => {
        db.prepare('INSERT INTO orders (id) VALUES (?)').run('o-1');
        outbox.add([item(1), item(2)]);
      })();
      assert.throws(() =>
        db.transaction(() => {
          db.prepare('INSERT INTO orders (id) VALUES (?)').run('o-2');
          outbox.add([item(3)]);
          throw new Error('the application changed its mind');
        })(),
      );
      const entries = outbox.next(10);
      assert.deepEqual(
        entries.map((e) => e.item.envelope.id),
        ['m-1', 'm-2'],
      );
      assert.deepEqual(entries[0]!.item.to, { kind: 'topic' });
      outbox.remove([entries[0]!.seq]);
      assert.deepEqual(
        outbox.next(10).map((e) => e.item.envelope.id),
        ['m-2'],
      );
      assert.equal(outbox.count(), 1);
    }));

  it('the inbox store remembers a key until its retention runs out', () =>
    withTransport(async (transport) => {
      const inbox = transport.inboxStore();
      assert.equal(await inbox.putIfAbsent('q#inbox', 'm-1', 'a', 60_000), undefined);
      assert.equal(await inbox.putIfAbsent('q#inbox', 'm-1', 'b', 60_000), 'a');
      assert.equal(await inbox.get('q#inbox', 'm-1'), 'a');
      assert.equal(await inbox.get('other#inbox', 'm-1'), undefined);
      assert.equal(await inbox.putIfAbsent('q#inbox', 'short', 'x', 30), undefined);
      await new Promise((resolve) => setTimeout(resolve, 60));
      assert.equal(await inbox.get('q#inbox', 'short'), undefined, 'expired');
      assert.equal(
        await inbox.putIfAbsent('q#inbox', 'short', 'y', 60_000),
        undefined,
        'an expired key can be stored again',
      );
    }));

  it('migrates a file of an older schema version forward', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'courier-stores-'));
    const path = join(dir, 'courier.db');
    try {
      const transport = sqlite({ path });
      await transport.start();
      await transport.close();
      // Make it look like a version-1 file: without the tables migrations 2, 4 and 5 add.
      const raw = new Database(path);
      toSchema6(raw);
      raw.exec(
        `DROP TABLE courier_saga_state; DROP TABLE courier_outbox; DROP TABLE courier_counts; DROP TABLE courier_leases; UPDATE courier_meta SET value = '1' WHERE name = 'schema_version'`,
      );
      raw.close();
      const reopened = sqlite({ path });
      await reopened.start();
      const version = reopened.db
        .prepare(`SELECT value FROM courier_meta WHERE name = 'schema_version'`)
        .pluck()
        .get();
      assert.equal(Number(version), schemaVersion);
      assert.equal(await reopened.sagaStore().save('s', 'k', {}, 0), true);
      await reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
