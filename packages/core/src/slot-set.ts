/**
 * A set of objects that each record their own place in it (`slot`), for sets that fill and empty
 * with every message: a delivery's window, a consumer's running handlers. A `Set` or `Map` there
 * grows and shrinks its table over and over; a table that outlived a young-generation GC went on
 * holding the entries it once had, and kept them (and everything they pointed to later) alive into
 * the old generation, so draining promoted megabytes a second. Here a slot is cleared when its
 * object leaves, and the array only ever grows to the largest size the set had.
 */
export interface Slotted {
  /** The object's index in the `SlotSet` holding it; -1 when in none. One `SlotSet` at a time. */
  slot: number;
}

/** See `Slotted`. Add, delete and size are constant time; iteration goes over a snapshot. */
export class SlotSet<T extends Slotted> {
  private readonly items: (T | undefined)[] = [];
  private readonly free: number[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds `item`; it must not be in any `SlotSet` already. */
  add(item: T): void {
    const slot = this.free.pop() ?? this.items.length;
    this.items[slot] = item;
    item.slot = slot;
    this.count++;
  }

  /** Removes `item`: false when it was not here. */
  delete(item: T): boolean {
    const slot = item.slot;
    if (slot < 0 || this.items[slot] !== item) return false;
    this.items[slot] = undefined;
    item.slot = -1;
    this.free.push(slot);
    this.count--;
    return true;
  }

  /** The items now here, as an array of their own (deleting while going over it is safe). */
  values(): T[] {
    const out: T[] = [];
    for (const item of this.items) if (item !== undefined) out.push(item);
    return out;
  }

  clear(): void {
    for (const item of this.items) if (item !== undefined) item.slot = -1;
    this.items.length = 0;
    this.free.length = 0;
    this.count = 0;
  }
}
