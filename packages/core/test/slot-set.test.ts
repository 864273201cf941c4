/** `SlotSet`, the set behind a consumer's running handlers and the SQLite transport's deliveries. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SlotSet, type Slotted } from '../src/slot-set.js';

interface Item extends Slotted {
  readonly n: number;
}

const item = (n: number): Item => ({ n, slot: -1 });

test('behaves as a Set under any sequence of adds and deletes, and reuses freed slots', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(19)), { maxLength: 200 }), (steps) => {
      const items = Array.from({ length: 20 }, (_, n) => item(n));
      const slots = new SlotSet<Item>();
      const model = new Set<Item>();
      let largest = 0;
      for (const [add, n] of steps) {
        const it = items[n]!;
        if (add) {
          if (model.has(it)) continue; // an item is added only when it is not in the set
          slots.add(it);
          model.add(it);
        } else {
          assert.equal(slots.delete(it), model.delete(it));
          assert.equal(it.slot, -1);
        }
        largest = Math.max(largest, model.size);
        assert.equal(slots.size, model.size);
        assert.deepEqual(new Set(slots.values()), model);
        // Never more slots than the most items it held at once.
        assert.ok(Math.max(-1, ...slots.values().map((i) => i.slot)) < largest, 'slots below the largest');
      }
    }),
    { numRuns: 300 },
  );
});

test('deleting while going over values() is safe; clear() empties it and frees the items', () => {
  const slots = new SlotSet<Item>();
  const items = [item(1), item(2), item(3)];
  for (const it of items) slots.add(it);
  for (const it of slots.values()) slots.delete(it);
  assert.equal(slots.size, 0);
  for (const it of items) slots.add(it);
  slots.clear();
  assert.equal(slots.size, 0);
  assert.deepEqual(slots.values(), []);
  assert.ok(
    items.every((it) => it.slot === -1),
    'items.every((it) => it.slot === -1)',
  );
  // A stale item (in no set) is not deleted from one that reuses its old slot.
  const fresh = item(4);
  slots.add(fresh);
  const stale = { n: 5, slot: fresh.slot };
  assert.equal(slots.delete(stale), false);
  assert.equal(slots.size, 1);
});
