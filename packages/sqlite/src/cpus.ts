/**
 * How many CPUs this process may use: its CPU affinity (`os.availableParallelism()`) and, below
 * that, its cgroup's CPU quota (`docker run --cpus=1`, a Kubernetes CPU limit), which the affinity
 * does not show. The writer thread is worth starting only with more than one (transport.ts,
 * `writerThreadFor`).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** Reads a file as text; throws when it cannot (a stand-in in tests). */
export type ReadText = (path: string) => string;

const readText: ReadText = (path) => readFileSync(path, 'utf8');

/** The CPUs this process may use: the smaller of its affinity and its cgroup quota. */
export function availableCpus(read: ReadText = readText): number {
  return Math.min(availableParallelism(), cgroupCpuQuota(read));
}

/**
 * The CPU quota of this process's cgroups in CPUs (quota over period), the smallest one found;
 * Infinity when there is none or it cannot be read. Looks where cgroup v2 (`cpu.max`) and v1
 * (`cpu.cfs_quota_us`, `cpu.cfs_period_us`) keep it, at the path /proc/self/cgroup names and, for
 * a container that sees its own cgroup as the root, at the hierarchy's root.
 */
export function cgroupCpuQuota(read: ReadText = readText): number {
  let lines: string[];
  try {
    lines = read('/proc/self/cgroup').split('\n');
  } catch {
    return Number.POSITIVE_INFINITY;
  }
  let quota = Number.POSITIVE_INFINITY;
  for (const line of lines) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!match) continue;
    const [, controllers, path] = match as unknown as [string, string, string];
    const dirs = (root: string) => (path === '/' ? [root] : [`${root}${path}`, root]);
    let found: number | undefined;
    if (controllers === '') {
      found = firstQuota(dirs('/sys/fs/cgroup'), (dir) => cpuMaxQuota(read(`${dir}/cpu.max`)));
    } else if (controllers.split(',').includes('cpu')) {
      const roots = new Set([
        `/sys/fs/cgroup/${controllers}`,
        '/sys/fs/cgroup/cpu',
        '/sys/fs/cgroup/cpu,cpuacct',
      ]);
      found = firstQuota([...roots].flatMap(dirs), (dir) =>
        cfsQuota(read(`${dir}/cpu.cfs_quota_us`), read(`${dir}/cpu.cfs_period_us`)),
      );
    }
    if (found !== undefined) quota = Math.min(quota, found);
  }
  return quota;
}

/** cgroup v2's `cpu.max`: "max 100000" (no quota) or "<quota> <period>", in microseconds. */
export function cpuMaxQuota(text: string): number {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === 'max') return Number.POSITIVE_INFINITY;
  return ratio(Number(quota), Number(period ?? 100_000));
}

/** cgroup v1's `cpu.cfs_quota_us` (-1: no quota) over `cpu.cfs_period_us`. */
export function cfsQuota(quotaText: string, periodText: string): number {
  const quota = Number(quotaText.trim());
  if (quota < 0) return Number.POSITIVE_INFINITY;
  return ratio(quota, Number(periodText.trim()));
}

function ratio(quota: number, period: number): number {
  if (!Number.isFinite(quota) || !Number.isFinite(period) || quota <= 0 || period <= 0)
    throw new Error(`not a CPU quota: ${quota} / ${period}`);
  return quota / period;
}

/** The quota of the first of `dirs` where `quotaIn` finds one (it throws where there is none). */
function firstQuota(dirs: readonly string[], quotaIn: (dir: string) => number): number | undefined {
  for (const dir of dirs) {
    try {
      return quotaIn(dir);
    } catch {
      // Not here: the next one.
    }
  }
  return undefined;
}
