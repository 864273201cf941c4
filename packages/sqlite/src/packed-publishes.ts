/**
 * A batch's single publishes as they cross to the writer thread. Sent as they are, each publish is
 * an array of a dozen values, and structured clone writes and reads every one of them on each side:
 * about a tenth of the event loop's time in courier-sqlite-e2e. Packed, a batch's publishes are
 * one string (every item's strings end to end) and one Float64Array (their numbers and lengths),
 * and the commands keep, in each publish's place, its position among them, so the order of a
 * batch's commands is unchanged. The thread takes them apart again (`unpackPublishes`) before the
 * batch runs, so `BatchRunner` sees the same commands either way.
 */
import type { Batch, Command } from './batch.js';
import { Item, STORE_ONE, type StoredItem } from './rows.js';

/** A batch's publishes packed (see the module comment). */
export interface PackedPublishes {
  /** `FIELDS` numbers per publish, at `k * FIELDS`: see `Field`. */
  readonly numbers: Float64Array;
  /** Per publish: queue, id, type, key, dedupId, headers and body, those that are not null. */
  readonly text: string;
}

/** A batch as it crosses to the writer thread: a packed publish is its index in `publishes`. */
export interface PackedBatch extends Omit<Batch, 'commands'> {
  readonly commands: (Command | number)[];
  readonly publishes?: PackedPublishes | undefined;
}

/** Offsets in a packed publish's numbers. Lengths count UTF-16 code units; -1 is null. */
const Field = {
  FLAGS: 0,
  PRIORITY: 1,
  /** NaN for null. */
  DELIVER_AT: 2,
  /** NaN for null. */
  EXPIRES_AT: 3,
  QUEUE: 4,
  ID: 5,
  TYPE: 6,
  KEY: 7,
  DEDUP_ID: 8,
  HEADERS: 9,
  BODY: 10,
} as const;
const FIELDS = 11;

/** Reused between batches; each batch sends a copy of what it filled. */
let scratch = new Float64Array(FIELDS * 1024);

/**
 * `batch` with its single publishes packed, or `batch` itself when it has none. A publish whose body
 * is bytes (not JSON text) crosses as it is.
 */
export function packPublishes(batch: Batch): Batch | PackedBatch {
  const { commands } = batch;
  let packed: (Command | number)[] | undefined;
  let text = '';
  let count = 0;
  for (let i = 0; i < commands.length; i++) {
    const command = commands[i]!;
    if (command[0] !== STORE_ONE) continue;
    const item = command as StoredItem;
    const body = item[Item.BODY];
    if (typeof body !== 'string') continue;
    if (packed === undefined) packed = commands.slice();
    if ((count + 1) * FIELDS > scratch.length) {
      const grown = new Float64Array(scratch.length * 2);
      grown.set(scratch);
      scratch = grown;
    }
    const o = count * FIELDS;
    scratch[o + Field.FLAGS] = item[Item.FLAGS];
    scratch[o + Field.PRIORITY] = item[Item.PRIORITY];
    scratch[o + Field.DELIVER_AT] = item[Item.DELIVER_AT] ?? Number.NaN;
    scratch[o + Field.EXPIRES_AT] = item[Item.EXPIRES_AT] ?? Number.NaN;
    const queue = item[Item.QUEUE];
    const key = item[Item.KEY];
    const dedupId = item[Item.DEDUP_ID];
    scratch[o + Field.QUEUE] = queue === null ? -1 : queue.length;
    scratch[o + Field.ID] = item[Item.ID].length;
    scratch[o + Field.TYPE] = item[Item.TYPE].length;
    scratch[o + Field.KEY] = key === null ? -1 : key.length;
    scratch[o + Field.DEDUP_ID] = dedupId === null ? -1 : dedupId.length;
    scratch[o + Field.HEADERS] = item[Item.HEADERS].length;
    scratch[o + Field.BODY] = body.length;
    if (queue !== null) text += queue;
    text += item[Item.ID] + item[Item.TYPE];
    if (key !== null) text += key;
    if (dedupId !== null) text += dedupId;
    text += item[Item.HEADERS] + body;
    packed[i] = count++;
  }
  if (packed === undefined) return batch;
  return {
    acks: batch.acks,
    commands: packed,
    claims: batch.claims,
    publishes: { numbers: scratch.slice(0, count * FIELDS), text },
  };
}

/** The batch `packPublishes` made, with its publishes as `StoredItem`s again (in place). */
export function unpackPublishes(batch: Batch | PackedBatch): Batch {
  const { publishes } = batch as PackedBatch;
  if (publishes === undefined) return batch as Batch;
  const { numbers, text } = publishes;
  const commands = batch.commands;
  let at = 0;
  const next = (stored: number): string | null => {
    if (stored < 0) return null;
    // An int, so `at` stays a small integer (a double there made V8 drop this code once).
    const length = stored | 0;
    const value = text.slice(at, at + length);
    at += length;
    return value;
  };
  for (let i = 0; i < commands.length; i++) {
    const index = commands[i];
    if (typeof index !== 'number') continue;
    const o = index * FIELDS;
    const deliverAt = numbers[o + Field.DELIVER_AT]!;
    const expiresAt = numbers[o + Field.EXPIRES_AT]!;
    const queue = next(numbers[o + Field.QUEUE]!);
    const id = next(numbers[o + Field.ID]!)!;
    const type = next(numbers[o + Field.TYPE]!)!;
    const key = next(numbers[o + Field.KEY]!);
    const dedupId = next(numbers[o + Field.DEDUP_ID]!);
    const headers = next(numbers[o + Field.HEADERS]!)!;
    const body = next(numbers[o + Field.BODY]!)!;
    commands[i] = [
      STORE_ONE,
      queue,
      numbers[o + Field.FLAGS]!,
      id,
      type,
      key,
      numbers[o + Field.PRIORITY]!,
      Number.isNaN(deliverAt) ? null : deliverAt,
      Number.isNaN(expiresAt) ? null : expiresAt,
      dedupId,
      headers,
      body,
    ] satisfies StoredItem;
  }
  return batch as Batch;
}
