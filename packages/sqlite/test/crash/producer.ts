/**
 * Crash-test producer (a child process): sends `Job { seq }` for seq in [FROM, FROM + COUNT) to the
 * worker queue of the SQLite file DB, at most WINDOW publishes outstanding, and reports on stdout
 * (`P s1,s2,...`) each publish whose promise resolved. Exits 0 when all resolved.
 */
import { createBus } from '@courier/core';
import { sqlite } from '@courier/sqlite';
import { envInt, Job, say, workerQueue } from './shared.js';

const path = process.env.DB!;
const from = envInt('FROM', 0);
const count = envInt('COUNT', 0);
const window = envInt('WINDOW', 64);

const transport = sqlite({ path });
const bus = createBus({
  endpoint: 'producer',
  transport,
  routes: { [Job.type]: workerQueue },
});

let resolved: number[] = [];
let flushScheduled = false;
const report = (seq: number) => {
  resolved.push(seq);
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(() => {
    flushScheduled = false;
    say(`P ${resolved.join(',')}`);
    resolved = [];
  });
};

// Without start() the SQLite transport never opens its file and a publish never settles (see the report).
await bus.start();
say('R');
let next = from;
const end = from + count;
async function lane(): Promise<void> {
  while (next < end) {
    const seq = next++;
    await bus.send(Job, { seq });
    report(seq);
  }
}
await Promise.all(Array.from({ length: window }, lane));
await new Promise((resolve) => setImmediate(resolve));
await transport.close();
say('END');
