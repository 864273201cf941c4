import { InvalidNameError } from './errors.js';

const queueNameRule = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;
const typeRule = /^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$/;
const patternSegmentRule = /^([a-z0-9][a-z0-9_-]*|\*|#)$/;

/** Throws `InvalidNameError` unless `name` is a valid queue or endpoint name. */
export function assertQueueName(name: unknown, what = 'queue name'): asserts name is string {
  if (typeof name !== 'string' || !queueNameRule.test(name)) {
    throw new InvalidNameError(
      `${what} ${JSON.stringify(name)} is invalid: use 1 to 200 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
}

/** Throws `InvalidNameError` unless `type` is dot-separated lowercase segments (`orders.placed`). */
export function assertMessageType(type: unknown): asserts type is string {
  if (typeof type !== 'string' || type.length > 255 || !typeRule.test(type)) {
    throw new InvalidNameError(
      `message type ${JSON.stringify(type)} is invalid: use dot-separated lowercase segments of a-z, 0-9, '_' or '-' (like 'orders.placed')`,
    );
  }
}

/** Throws `InvalidNameError` unless `pattern` is a type pattern: segments, `*` (one) or `#` (zero or more). */
export function assertPattern(pattern: unknown): asserts pattern is string {
  if (
    typeof pattern !== 'string' ||
    pattern.length === 0 ||
    !pattern.split('.').every((s) => patternSegmentRule.test(s))
  ) {
    throw new InvalidNameError(
      `binding pattern ${JSON.stringify(pattern)} is invalid: use dot-separated lowercase segments, '*' for one segment or '#' for zero or more`,
    );
  }
}

/** AMQP topic matching: `*` matches exactly one segment, `#` zero or more. */
export function matchesPattern(pattern: string, type: string): boolean {
  if (pattern === type || pattern === '#') return true;
  return matchSegments(pattern.split('.'), 0, type.split('.'), 0);
}

function matchSegments(pattern: string[], p: number, type: string[], t: number): boolean {
  while (p < pattern.length) {
    const segment = pattern[p];
    if (segment === '#') {
      if (p === pattern.length - 1) return true;
      for (let skip = t; skip <= type.length; skip++) {
        if (matchSegments(pattern, p + 1, type, skip)) return true;
      }
      return false;
    }
    if (t >= type.length) return false;
    if (segment !== '*' && segment !== type[t]) return false;
    p++;
    t++;
  }
  return t === type.length;
}

/** True when every header in `filter` is present in `headers` with the same value. */
export function matchesHeaders(
  filter: Readonly<Record<string, string>> | undefined,
  headers: Readonly<Record<string, string>>,
): boolean {
  if (!filter) return true;
  for (const [name, value] of Object.entries(filter)) {
    if (headers[name] !== value) return false;
  }
  return true;
}
