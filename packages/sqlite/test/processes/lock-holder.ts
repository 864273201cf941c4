/**
 * Another process in a long write transaction: takes the file's write lock (`BEGIN IMMEDIATE`),
 * says `ready`, holds it for `holdMs`, commits and exits.
 */
import Database from 'better-sqlite3';
import { childConfig, sleep, toParent } from './shared.js';

const config = childConfig<{ path: string; holdMs: number }>();
const db = new Database(config.path);
db.pragma('busy_timeout = 5000');
db.exec('BEGIN IMMEDIATE');
await toParent({ kind: 'ready', pid: process.pid });
await sleep(config.holdMs);
db.exec('COMMIT');
db.close();
process.exit(0);
