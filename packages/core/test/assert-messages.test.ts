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

const CALL = /\bassert(\.ok)?\(/g;
const STRING = /'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`(?:[^`\\]|\\.)*`/g;

/**
 * Whether `line` holds an `assert.ok(x)` or `assert(x)` call whose arguments close on the same line
 * with no comma at their top level: no message. Strings are emptied first (a comma in one is not a
 * second argument); a call spread over several lines is not seen.
 */
function hasBareAssert(line: string): boolean {
  const code = line.replace(STRING, "''");
  for (const match of code.matchAll(CALL)) {
    let depth = 1;
    let comma = false;
    for (let i = match.index + match[0].length; i < code.length && depth > 0; i++) {
      const c = code[i];
      if (c === '(' || c === '[' || c === '{') depth++;
      else if (c === ')' || c === ']' || c === '}') depth--;
      else if (c === ',' && depth === 1) comma = true;
    }
    if (depth === 0 && !comma) return true;
  }
  return false;
}

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
          if (hasBareAssert(line)) bare.push(`${file.slice(root.length)}:${i + 1} ${line.trim()}`);
        });
    }
  }
  assert.deepEqual(bare, [], `asserts without a message:\n${bare.join('\n')}`);
});
