import assert from 'node:assert/strict';
import { it } from 'node:test';
import { runQuickstart } from '../src/main.js';

it('the README example prints the fan-out, the retries, the dead letter and the reply', async () => {
  const lines: string[] = [];
  await runQuickstart((line) => lines.push(line));
  const text = lines.join('\n');
  assert.match(text, /billing: {2}orders\.placed order-1 attempt 1 fails/);
  assert.match(text, /billing: {2}orders\.placed order-1 attempt 2 fails/);
  assert.match(text, /billing: {2}orders\.placed order-1 attempt 3 succeeds/);
  assert.match(text, /shipping: orders\.placed order-1 packed/);
  assert.match(text, /charged 42 for order-1/);
  assert.match(text, /dlq: {6}payments\.charge reason=rejected: amount 5000 is over the card limit/);
  assert.match(text, /got 3000 cents/);
});
