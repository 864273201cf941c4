// Writes the diagrams in docs/ that are generated from code, so they cannot drift from it.
// Run: npm run docs:diagrams. A test fails when a diagram in the docs is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { describeSaga, sagaToMermaid } from '@courier/core';
import { OrderSaga } from '../examples/concepts/src/order-saga.js';

export const sagaDoc = new URL('../docs/sagas.md', import.meta.url);
export const start = '<!-- generated: order-saga diagram (npm run docs:diagrams) -->';
export const end = '<!-- end of generated diagram -->';

export function orderSagaDiagram(): string {
  return ['```mermaid', sagaToMermaid(describeSaga(OrderSaga as never)), '```'].join('\n');
}

export function withDiagram(markdown: string): string {
  const from = markdown.indexOf(start);
  const to = markdown.indexOf(end);
  if (from < 0 || to < from) throw new Error(`docs/sagas.md lacks the markers ${start} ... ${end}`);
  return `${markdown.slice(0, from + start.length)}\n${orderSagaDiagram()}\n${markdown.slice(to)}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(sagaDoc, withDiagram(readFileSync(sagaDoc, 'utf8')));
  console.log('docs/sagas.md: order-saga diagram written');
}
