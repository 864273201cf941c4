import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));

function typescriptFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) return [];
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return typescriptFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** A one-line `assert.ok(x)` or `assert(x)` statement with no second argument. */
const SINGLE_ARGUMENT = /\bassert(\.ok)?\(([^,;]*)\);/;
const STRING = /'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`(?:[^`\\]|\\.)*`/g;

// Without a message, a failing assert.ok makes Node parse the test's source from every token until
// it finds the call; TypeScript under tsx never parses, and near the end of a 490-line file that took
// over four minutes of CPU: a regression would hang CI instead of failing it.
it('every one-argument assert.ok and assert in the tests carries a message', () => {
  const bare: string[] = [];
  for (const top of ['packages', 'examples', 'bench']) {
    for (const file of typescriptFiles(join(root, top))) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          // Strings emptied first: a comma inside one is not a second argument.
          const match = SINGLE_ARGUMENT.exec(line.replace(STRING, "''"));
          // Balanced parentheses: the whole argument list is on this line.
          if (match && [...match[2]!].reduce((d, c) => d + (c === '(' ? 1 : c === ')' ? -1 : 0), 0) === 0)
            bare.push(`${file.slice(root.length)}:${i + 1} ${line.trim()}`);
        });
    }
  }
  assert.deepEqual(bare, [], `asserts without a message:\n${bare.join('\n')}`);
});
