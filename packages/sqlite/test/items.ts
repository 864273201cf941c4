/** Numbered test messages for the SQLite transport's own tests (batch, leases, writer thread). */
import type { PublishItem } from '@courier/core';

/**
 * Message `n` to `queue` (default 'q') with the JSON body `{ n }`: as text beside empty bytes, as
 * Courier's own envelopes arrive, or only as bytes with `binary`.
 */
export function testItem(
  n: number,
  options: { queue?: string; priority?: number; binary?: boolean } = {},
): PublishItem {
  const id = `00000000-0000-7000-8000-${String(n).padStart(12, '0')}`;
  const json = JSON.stringify({ n });
  return {
    to: { kind: 'queue', queue: options.queue ?? 'q' },
    envelope: {
      id,
      type: 'test.item',
      headers: { 'ce-id': id, 'ce-type': 'test.item' },
      ...(options.binary
        ? { body: new TextEncoder().encode(json) }
        : { body: new Uint8Array(0), bodyText: json }),
      ...(options.priority ? { priority: options.priority } : {}),
    },
  };
}
