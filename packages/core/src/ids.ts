import { createHash, randomFillSync } from 'node:crypto';

let lastMs = 0;
let sequence = 0;
let msHex = '';
// Random hex for many ids from one call to the OS: per-id randomBytes and hex formatting of a
// Buffer were a visible share of the publish path.
const POOL_IDS = 256;
const RANDOM_HEX_PER_ID = 16;
const pool = Buffer.allocUnsafe((POOL_IDS * RANDOM_HEX_PER_ID) / 2);
let poolHex = '';
let poolOffset = 0;

function randomHex(): string {
  if (poolOffset >= poolHex.length) {
    randomFillSync(pool);
    poolHex = pool.toString('hex');
    poolOffset = 0;
  }
  const hex = poolHex.slice(poolOffset, poolOffset + RANDOM_HEX_PER_ID);
  poolOffset += RANDOM_HEX_PER_ID;
  return hex;
}

const VARIANT = '89ab';

/**
 * A UUIDv7: time-ordered, so brokers that index by id append instead of scattering. Within one
 * millisecond a 12-bit counter keeps ids from one process strictly increasing.
 * Layout: 48-bit ms, version 7, 12-bit counter, variant 10, 62 random bits.
 */
export function newMessageId(nowMs: number = Date.now()): string {
  if (nowMs <= lastMs) {
    sequence++;
    if (sequence > 0xfff) {
      lastMs++;
      sequence = 0;
      msHex = '';
    }
  } else {
    lastMs = nowMs;
    sequence = 0;
    msHex = '';
  }
  if (msHex === '') msHex = lastMs.toString(16).padStart(12, '0');
  const random = randomHex();
  const variant = VARIANT[Number.parseInt(random[0]!, 16) & 3]!;
  const seq = sequence.toString(16).padStart(3, '0');
  return `${msHex.slice(0, 8)}-${msHex.slice(8)}-7${seq}-${variant}${random.slice(1, 4)}-${random.slice(4)}`;
}

/**
 * The id of the `index`-th message a handler produced while handling `parentId` (DESIGN.md §2.4):
 * the same inputs give the same id, so a redelivered handler's output is caught by dedup.
 * A UUIDv8 built from a SHA-256 of the inputs.
 */
export function deriveMessageId(parentId: string, index: number, scope = ''): string {
  const bytes = createHash('sha256')
    .update(`${parentId}\u0000${scope}\u0000${index}`)
    .digest()
    .subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return formatUuid(bytes);
}

function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
