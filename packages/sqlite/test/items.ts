/** Numbered test messages for the SQLite transport's own tests (batch, leases, writer thread). */
import type { Envelope, PublishItem, Transport } from '@courier/core';

/**
 * Consumes `queue` on `transport`, acking each delivery, until `count` have arrived or `timeoutMs`
 * passed; the ids in the order delivered.
 */
export async function consumeIds(
  transport: Transport,
  queue: string,
  count: number,
  { prefetch = 10, timeoutMs = 5_000 } = {},
): Promise<string[]> {
  const ids: string[] = [];
  const handle = await transport.consume(queue, { prefetch, leaseMs: 30_000 }, (delivery) => {
    ids.push(delivery.envelope.id);
    void delivery.ack();
  });
  const deadline = Date.now() + timeoutMs;
  while (ids.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await handle.stop();
  return ids;
}

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

/**
 * What a consumer can read of an envelope, as plain data: compare what was published with what
 * was delivered. The body as hex of its text or bytes; priority 0 and none alike.
 */
export function envelopeFields(e: Envelope) {
  return {
    id: e.id,
    type: e.type,
    headers: { ...e.headers },
    body: Buffer.from(e.bodyText ?? e.body).toString('hex'),
    bodyText: e.bodyText,
    key: e.key,
    priority: e.priority || undefined,
    expiresAt: e.expiresAt,
    dedupId: e.dedupId,
  };
}
