import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sabotageKinds } from '@courier/testkit';

const suite = fileURLToPath(new URL('./fixtures/sabotaged-suite.ts', import.meta.url));

/** Runs the suite against one sabotaged transport; resolves the names of the failing cases. */
function failingCases(kind: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    // Without NODE_TEST_CONTEXT the child runs as a test run of its own, not as part of this one.
    const { NODE_TEST_CONTEXT: _parent, ...env } = process.env;
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', suite], {
      env: { ...env, COURIER_SABOTAGE: kind },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    child.on('error', reject);
    child.on('exit', () => {
      const failed = [...output.matchAll(/^\s*not ok \d+ - (.+)$/gm)].map((m) => m[1]!.trim());
      if (!/^# (tests|pass) \d+/m.test(output))
        reject(new Error(`the suite did not run for ${kind}:\n${output.slice(-2_000)}`));
      else resolve(failed);
    });
  });
}

describe('the conformance suite catches broken transports', () => {
  for (const kind of sabotageKinds) {
    it(`catches a transport that does '${kind}'`, { timeout: 180_000 }, async (t) => {
      const failed = await failingCases(kind);
      // The describe block and the file fail along with the cases; count only the cases.
      const cases = failed.filter((name) => !name.startsWith('memory sabotaged') && !name.endsWith('.ts'));
      t.diagnostic(`${kind}: ${cases.length} failing case(s): ${cases.slice(0, 5).join('; ')}`);
      assert.ok(cases.length > 0, `no conformance case failed on a transport that does '${kind}'`);
    });
  }
});
