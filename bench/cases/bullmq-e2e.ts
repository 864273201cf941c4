/**
 * bullmq-e2e: the comparison. BullMQ on the local Redis (127.0.0.1:6379), a queue under a random key
 * prefix (obliterated at the end), `addBulk` of 1,000 jobs at a time, one Worker with concurrency 50,
 * `removeOnComplete`, the same 200-byte payload. Producer and worker run concurrently in this process;
 * timed from the first add to the last completion. 100,000 jobs; 20,000 with --quick.
 */
import { randomUUID } from 'node:crypto';
import { type Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import {
  benchOptions,
  envInt,
  log,
  okResult,
  round,
  runBenchmark,
  skippedResult,
  startRssSampler,
} from '../lib/harness.js';
import { makePayload, type Payload } from '../payload.js';

const NAME = 'bullmq-e2e';
const BULK = 1_000;
const CONCURRENCY = 50;
const connection = { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null };

await runBenchmark([NAME], async () => {
  const { quick } = benchOptions();
  const count = envInt('BENCH_COUNT', quick ? 20_000 : 100_000);
  const prefix = `courier-bench-${randomUUID().slice(0, 8)}`;
  const queueName = 'bullmq-e2e';

  const probe = new Redis({ ...connection, lazyConnect: true, retryStrategy: () => null });
  try {
    await probe.connect();
    await probe.ping();
  } catch (error) {
    probe.disconnect();
    return [skippedResult(NAME, `skipped: Redis not reachable on 127.0.0.1:6379 (${String(error)})`)];
  }

  const rss = startRssSampler();
  const queue = new Queue<Payload>(queueName, {
    connection,
    prefix,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
  });
  let completed = 0;
  let failed = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  const worker = new Worker<Payload>(
    queueName,
    async (job: Job<Payload>) => {
      if (job.data.filler.length < 0) throw new Error('unreachable');
    },
    { connection, prefix, concurrency: CONCURRENCY, removeOnComplete: { count: 0 }, autorun: false },
  );
  worker.on('completed', () => {
    completed++;
    if (completed + failed === count) resolveDone();
  });
  worker.on('failed', (_job, error) => {
    failed++;
    log(`${NAME}: job failed: ${String(error)}`);
    if (completed + failed === count) resolveDone();
  });
  try {
    await queue.waitUntilReady();
    void worker.run();
    await worker.waitUntilReady();

    const start = performance.now();
    const producer = (async () => {
      for (let seq = 0; seq < count; seq += BULK) {
        const jobs = [];
        for (let i = seq; i < Math.min(count, seq + BULK); i++)
          jobs.push({ name: 'order', data: makePayload(i) });
        await queue.addBulk(jobs);
      }
    })();
    await producer;
    const produced = performance.now();
    await done;
    const end = performance.now();
    if (failed > 0) throw new Error(`${failed} jobs failed`);
    const seconds = (end - start) / 1000;
    const left = await queue.getJobCounts('wait', 'active', 'completed', 'failed', 'delayed');
    log(
      `${NAME}: produced in ${round((produced - start) / 1000, 2)} s; left after run ${JSON.stringify(left)}`,
    );
    return [
      okResult(NAME, {
        count,
        seconds,
        rss,
        note: `addBulk ${BULK}, concurrency ${CONCURRENCY}; RSS is the Node process only (Redis not counted)`,
      }),
    ];
  } finally {
    rss.stop();
    await worker.close(true);
    await queue.obliterate({ force: true });
    await queue.close();
    // Anything left under the prefix (events stream, meta) goes too.
    let cursor = '0';
    do {
      const [next, keys] = await probe.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await probe.del(...keys);
    } while (cursor !== '0');
    probe.disconnect();
  }
});
