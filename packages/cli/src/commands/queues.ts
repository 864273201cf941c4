/** `courier queues`: every queue of the broker file with its depth, in flight, scheduled and dead letters. */
import type { Command, Io } from '../args.js';
import { dataPaths, dbOptionHelp, parse, UsageError, write } from '../args.js';
import { listQueues, openBroker } from '../broker.js';
import { formatTable } from '../table.js';

const usage = 'usage: courier queues [--db path] [--json]';

const help = `${usage}

Lists the queues of the broker file: messages ready (depth), in flight (leased to a consumer),
scheduled (delayed or waiting for a retry backoff), dead-lettered, and the age of the oldest ready one.

Options:
${dbOptionHelp}
  --json              one JSON array instead of the table
  -h, --help          this help`;

/** `courier queues`: depth, in flight, scheduled and dead-lettered per queue. */
export const queuesCommand: Command = {
  name: 'queues',
  summary: 'list queues with depth, in flight, scheduled and dead-lettered counts',
  help,
  async run(argv: string[], io: Io): Promise<number> {
    const { values, positionals } = parse(argv, { db: { type: 'string' }, json: { type: 'boolean' } }, usage);
    if (values.help) {
      write(io.out, help);
      return 0;
    }
    if (positionals.length > 0)
      throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`, usage);
    const { dbPath } = dataPaths(values.db, io.env);
    const transport = openBroker(dbPath);
    try {
      const stats = [];
      for (const queue of listQueues(transport)) stats.push(await transport.stats(queue));
      if (values.json) {
        write(io.out, JSON.stringify(stats, null, 2));
        return 0;
      }
      if (stats.length === 0) {
        write(io.out, `no queues in ${dbPath} yet`);
        return 0;
      }
      write(
        io.out,
        formatTable(
          ['queue', 'depth', 'in flight', 'scheduled', 'dead-lettered', 'oldest ready'],
          stats.map((s) => [
            s.queue,
            s.depth,
            s.inFlight,
            s.scheduled,
            s.deadLettered,
            s.oldestAgeMs === 0 ? '-' : `${(s.oldestAgeMs / 1_000).toFixed(1)} s`,
          ]),
        ),
      );
      return 0;
    } finally {
      await transport.close();
    }
  },
};
