/** The embedded durable broker: Courier's default transport, one SQLite file. */
export type { SqliteDatabase, Synchronous } from './schema.js';
export { schemaVersion } from './schema.js';
export type { OutboxEntry, SagaWrites } from './stores.js';
export { SqliteOutbox, SqliteSagaStore } from './stores.js';
export type { SqliteOptions, WriterThreadMode } from './transport.js';
export { SqliteTransport, sqlite } from './transport.js';
