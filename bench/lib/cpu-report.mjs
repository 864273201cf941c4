// Preloaded by `npm run bench:compare` (node --import) into a benchmark process: when it exits,
// prints its CPU time on stdout, all threads together and the main thread alone, as one line the
// compare tool reads. Plain JavaScript, so it also runs beside the bundles on plain Node.
import { readFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

if (isMainThread) {
  process.on('exit', () => {
    const { user, system } = process.cpuUsage();
    let mainMs = null;
    try {
      // Fields 14 and 15 of /proc/<pid>/task/<pid>/stat: user and system time in clock ticks (10 ms).
      const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      mainMs = (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
      // Not Linux: the process total only.
    }
    const report = { cpu_ms: Math.round((user + system) / 1000), main_cpu_ms: mainMs };
    process.stdout.write(`@@bench-cpu ${JSON.stringify(report)}\n`);
  });
}
