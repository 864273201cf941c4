import { createHash, randomFillSync } from 'node:crypto';

let lastMs = 0;
let sequence = 0;
// An id is written into this buffer and read out as one string: formatting it from slices of hex
// strings made six intermediate strings per publish (a tenth of the publish path's garbage).
const ID_TEMPLATE = '00000000-0000-7000-8000-000000000000';
const idBytes = Buffer.from(ID_TEMPLATE, 'latin1');
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
const VARIANT = Buffer.from('89ab', 'latin1');
// Random bytes for many ids from one call to the OS (per-id randomBytes was a visible cost).
const RANDOM_PER_ID = 8;
const pool = Buffer.allocUnsafe(256 * RANDOM_PER_ID);
let poolAt = pool.length;

/** Writes `digits` hex digits of `value` (below 2^32) ending before `end`. */
function writeHex(value: number, end: number, digits: number): void {
  for (let at = end - 1; at >= end - digits; at--) {
    idBytes[at] = HEX_DIGITS[value & 0xf]!;
    value >>>= 4;
  }
}

/** The 12 hex digits of a 48-bit millisecond time, at 0-7 and 9-12 (around the first dash). */
function writeMs(ms: number): void {
  const high = Math.floor(ms / 0x1000000);
  writeHex(high, 6, 6);
  const low = ms % 0x1000000;
  writeHex(low >>> 16, 8, 2);
  writeHex(low & 0xffff, 13, 4);
}

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
      writeMs(lastMs);
    }
  } else {
    lastMs = nowMs;
    sequence = 0;
    writeMs(lastMs);
  }
  writeHex(sequence, 18, 3);
  if (poolAt === pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const r = poolAt;
  poolAt += RANDOM_PER_ID;
  idBytes[19] = VARIANT[pool[r]! & 3]!;
  writeHex(pool[r + 1]! | ((pool[r]! >>> 4) << 8), 23, 3);
  writeHex(pool.readUInt32LE(r + 2), 32, 8);
  writeHex(pool.readUInt16LE(r + 6), 36, 4);
  return idBytes.toString('latin1', 0, 36);
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
