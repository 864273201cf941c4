/**
 * The one payload every benchmark sends: a small order event whose JSON encoding is exactly
 * PAYLOAD_BYTES (200) bytes, whatever `seq` and `sentAt` are. The filler absorbs the varying width of
 * the two numbers, so sizes never drift between benchmarks or over a run.
 */
import { z } from 'zod';

export const PAYLOAD_BYTES = 200;

export interface Payload {
  /** Position in the run, 0-based. */
  seq: number;
  /** Wall-clock publish time in epoch ms with sub-millisecond resolution (`wallClockMs()`), 0 when unused. */
  sentAt: number;
  orderId: string;
  customer: string;
  currency: string;
  totalCents: number;
  filler: string;
}

/** The schema Courier's contract validates against (zod, as the docs recommend). */
export const payloadSchema = z.object({
  seq: z.number(),
  sentAt: z.number(),
  orderId: z.string(),
  customer: z.string(),
  currency: z.string(),
  totalCents: z.number(),
  filler: z.string(),
});

const FIXED = {
  orderId: 'ord_01J9Z3Q4X8K2M7N5P6R8T0V2W4',
  customer: 'cus_4f1c9a7e2b6d8035',
  currency: 'EUR',
  totalCents: 129_990,
};

// JSON.stringify writes a finite number exactly as String() does, so the size is computable cheaply.
const baseBytes = Buffer.byteLength(JSON.stringify({ seq: 0, sentAt: 0, ...FIXED, filler: '' })) - 2;
const FILLER = 'x'.repeat(PAYLOAD_BYTES);

/** A payload of exactly PAYLOAD_BYTES bytes of JSON. */
export function makePayload(seq: number, sentAt = 0): Payload {
  const fillerLength = PAYLOAD_BYTES - baseBytes - String(seq).length - String(sentAt).length;
  if (fillerLength < 0)
    throw new RangeError(`payload for seq ${seq}, sentAt ${sentAt} exceeds ${PAYLOAD_BYTES} bytes`);
  return { seq, sentAt, ...FIXED, filler: FILLER.slice(0, fillerLength) };
}

/** Wall clock in epoch ms with sub-millisecond resolution, comparable across processes on one machine. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Throws unless `payload` encodes to exactly PAYLOAD_BYTES bytes. */
export function assertPayloadSize(payload: Payload): void {
  const bytes = Buffer.byteLength(JSON.stringify(payload));
  if (bytes !== PAYLOAD_BYTES) throw new Error(`payload is ${bytes} bytes, expected ${PAYLOAD_BYTES}`);
}

for (const [seq, sentAt] of [
  [0, 0],
  [99_999, 0],
  [1_999_999, wallClockMs()],
  [7, 1_732_665_600_123.457],
] as const) {
  assertPayloadSize(makePayload(seq, sentAt));
}
