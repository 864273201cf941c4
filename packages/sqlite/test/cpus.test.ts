/**
 * How many CPUs the process may use (cpus.ts), which decides whether 'auto' starts the writer
 * thread: the cgroup quota read from where cgroup v1 and v2 keep it, on stand-in files, and, where
 * this test may make a cgroup (root, cgroup v1's cpu controller), a real process under a quota.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cfsQuota, cgroupCpuQuota, cpuMaxQuota, type ReadText } from '../src/cpus.js';
import { writerThreadFor } from '../src/transport.js';
import { runOneCpuConsumer } from './one-cpu.js';

/** A stand-in file system: the files given, every other read throws. */
const files =
  (contents: Record<string, string>): ReadText =>
  (path) => {
    const text = contents[path];
    if (text === undefined) throw new Error(`ENOENT: ${path}`);
    return text;
  };

test('cpu.max and cfs_quota_us read as CPUs; no quota is Infinity; anything else throws', () => {
  assert.equal(cpuMaxQuota('max 100000\n'), Number.POSITIVE_INFINITY);
  assert.equal(cpuMaxQuota('150000 100000\n'), 1.5);
  assert.equal(cfsQuota('-1\n', '100000\n'), Number.POSITIVE_INFINITY);
  assert.equal(cfsQuota('50000\n', '100000\n'), 0.5);
  assert.throws(() => cpuMaxQuota('garbage'));
  assert.throws(() => cfsQuota('100000', '0'));
});

test('the quota is found where each cgroup layout keeps it, the smallest one wins', () => {
  // cgroup v1 beside v2 (this machine's kind), the process in its own cpu cgroup.
  const hybrid = '1:cpu:/jobs/a\n2:cpuacct:/\n0::/\n';
  assert.equal(
    cgroupCpuQuota(
      files({
        '/proc/self/cgroup': hybrid,
        '/sys/fs/cgroup/cpu/jobs/a/cpu.cfs_quota_us': '100000',
        '/sys/fs/cgroup/cpu/jobs/a/cpu.cfs_period_us': '100000',
      }),
    ),
    1,
  );
  // v1 with cpu and cpuacct mounted together.
  assert.equal(
    cgroupCpuQuota(
      files({
        '/proc/self/cgroup': '3:cpu,cpuacct:/docker/x\n',
        '/sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_quota_us': '200000',
        '/sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_period_us': '100000',
      }),
    ),
    2,
  );
  // A v1 container that sees the host's path but has its own cgroup mounted at the root.
  assert.equal(
    cgroupCpuQuota(
      files({
        '/proc/self/cgroup': '3:cpu,cpuacct:/docker/x\n',
        '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '50000',
        '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000',
      }),
    ),
    0.5,
  );
  // cgroup v2 in a container (docker run --cpus=1): its cgroup is the root.
  assert.equal(
    cgroupCpuQuota(files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': '100000 100000\n' })),
    1,
  );
  // cgroup v2 on a host, the process in a nested cgroup.
  assert.equal(
    cgroupCpuQuota(
      files({ '/proc/self/cgroup': '0::/app.slice/x\n', '/sys/fs/cgroup/app.slice/x/cpu.max': 'max 100000' }),
    ),
    Number.POSITIVE_INFINITY,
  );
  // Nothing readable: no quota.
  assert.equal(cgroupCpuQuota(files({})), Number.POSITIVE_INFINITY);
  assert.equal(cgroupCpuQuota(files({ '/proc/self/cgroup': hybrid })), Number.POSITIVE_INFINITY);
});

test("'auto' goes without the thread at one CPU or less; other modes are as given", () => {
  const count = (cpus: number) => () => cpus;
  assert.equal(writerThreadFor('auto', 'a.db', count(1)), 'never');
  assert.equal(writerThreadFor('auto', 'a.db', count(0.5)), 'never');
  assert.equal(
    writerThreadFor('auto', 'a.db', count(1.5)),
    'auto',
    'measured: the thread wins with 1.5 CPUs',
  );
  assert.equal(writerThreadFor('auto', 'a.db', count(2)), 'auto');
  assert.equal(writerThreadFor('always', 'a.db', count(1)), 'always', 'an explicit choice stands');
  assert.equal(writerThreadFor('never', 'a.db', count(8)), 'never');
  assert.equal(writerThreadFor('always', ':memory:', count(8)), 'never', ':memory: has one connection');
  // The cgroup files are read only when 'auto' on a file needs them.
  const unasked = () => assert.fail('the CPUs were counted for a mode that does not depend on them');
  assert.equal(writerThreadFor('always', 'a.db', unasked), 'always');
  assert.equal(writerThreadFor('auto', ':memory:', unasked), 'never');
});

const V1_CPU = '/sys/fs/cgroup/cpu';
const canMakeCgroup =
  process.platform === 'linux' && process.getuid?.() === 0 && existsSync(`${V1_CPU}/cpu.cfs_quota_us`);

test('a consumer in a cgroup with a quota of one CPU starts no writer thread and handles everything', {
  skip: !canMakeCgroup && 'needs root and cgroup v1 cpu controller to make a cgroup with a quota',
}, () => {
  const group = join(V1_CPU, `courier-test-${process.pid}-${Date.now()}`);
  const dir = mkdtempSync(join(tmpdir(), 'courier-cpus-'));
  mkdirSync(group);
  try {
    writeFileSync(join(group, 'cpu.cfs_period_us'), '100000');
    writeFileSync(join(group, 'cpu.cfs_quota_us'), '100000');
    // The shell moves itself into the cgroup, then becomes the node process.
    const joinGroup = ['sh', '-c', `echo $$ > ${group}/cgroup.procs && exec "$0" "$@"`];
    const seen = runOneCpuConsumer(joinGroup, join(dir, 'q.db'));
    assert.deepEqual(seen, { cpus: 1, thread: false, handled: 10 });
  } finally {
    rmdirSync(group);
    rmSync(dir, { recursive: true, force: true });
  }
});
