import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const packages = fileURLToPath(new URL('../../', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

it('every exported declaration in packages/*/src has a doc comment', () => {
  const missing: string[] = [];
  for (const pkg of readdirSync(packages)) {
    let files: string[];
    try {
      files = sourceFiles(join(packages, pkg, 'src'));
    } catch {
      continue;
    }
    for (const file of files) {
      const lines = readFileSync(file, 'utf8').split('\n');
      lines.forEach((line, i) => {
        if (!/^export (async )?(function|class|interface|type|const|abstract class)\b/.test(line)) return;
        if (/^export type (\{|\*)/.test(line)) return; // re-exports carry the original's comment
        let j = i - 1;
        while (j >= 0 && lines[j]!.trim() === '') j--;
        if (j < 0 || !lines[j]!.trim().endsWith('*/'))
          missing.push(`${file.slice(packages.length)}:${i + 1} ${line.slice(0, 80)}`);
      });
    }
  }
  assert.deepEqual(missing, [], `exports without a doc comment:\n${missing.join('\n')}`);
});
