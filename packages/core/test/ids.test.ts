import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deriveMessageId, newMessageId } from '../src/ids.js';

const uuidV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('message ids', () => {
  it('are UUIDv7 carrying the millisecond they were made in', () => {
    const before = Date.now();
    const id = newMessageId();
    const after = Date.now();
    assert.match(id, uuidV7);
    const ms = Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
    assert.ok(ms >= before && ms <= after + 1, `timestamp ${ms} outside ${before}..${after}`);
  });

  it('increase strictly and never repeat, even thousands within one millisecond', () => {
    const ids = Array.from({ length: 20_000 }, () => newMessageId(1_900_000_000_000));
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `${ids[i]} after ${ids[i - 1]}`);
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.match(id, uuidV7);
  });

  it('spread their random bits (no pool reused twice)', () => {
    const tails = new Set(Array.from({ length: 5_000 }, () => newMessageId().slice(19)));
    assert.equal(tails.size, 5_000);
  });

  it('derived ids are stable UUIDv8 per parent, index and scope', () => {
    const a = deriveMessageId('parent', 0);
    assert.equal(a, deriveMessageId('parent', 0));
    assert.notEqual(a, deriveMessageId('parent', 1));
    assert.notEqual(a, deriveMessageId('parent', 0, 'saga'));
    assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
