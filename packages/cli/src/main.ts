/**
 * The `courier` command (bin/courier.mjs runs this file through tsx):
 *
 *   courier run <service...|all>     the services as separate processes sharing the broker file
 *   courier demo --orders N --rate R orders through the API, then the invariants checked in the file
 *   courier queues                   queues with depth, in flight, scheduled and dead-lettered counts
 *   courier dlq list|replay|purge <queue>
 *
 * Exit codes: 0 success, 1 failure (a failed check, a missing file, an unreachable API), 2 bad usage.
 */
import { main } from './cli.js';

const code = await main(process.argv.slice(2), {
  out: process.stdout,
  err: process.stderr,
  env: process.env,
});
process.exit(code);
