import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ConfigurationError } from '../src/errors.js';
import { seededRandom } from '../src/random.js';
import type { RetryPolicy } from '../src/retry.js';
import { defaultRetryPolicy, nextRetryDelay, resolveRetryPolicy } from '../src/retry.js';

const noJitter = (partial: Partial<RetryPolicy>) => resolveRetryPolicy({ jitter: 0, ...partial });
const delays = (policy: RetryPolicy, random?: () => number) =>
  Array.from({ length: policy.maxAttempts }, (_, i) => nextRetryDelay(policy, i + 1, random));

describe('nextRetryDelay', () => {
  it('gives 0 for the immediate retries, then backs off', () => {
    const policy = noJitter({ maxAttempts: 6, immediate: 2, initialDelayMs: 1_000, factor: 2 });
    assert.deepEqual(delays(policy), [0, 0, 1_000, 2_000, 4_000, null]);
  });

  it('grows exponentially by factor from initialDelayMs', () => {
    const policy = noJitter({
      maxAttempts: 6,
      immediate: 0,
      initialDelayMs: 100,
      factor: 3,
      maxDelayMs: 1e9,
    });
    assert.deepEqual(delays(policy), [100, 300, 900, 2_700, 8_100, null]);
    const flat = noJitter({ maxAttempts: 4, immediate: 0, initialDelayMs: 250, factor: 1 });
    assert.deepEqual(delays(flat), [250, 250, 250, null]);
  });

  it('caps the delay at maxDelayMs', () => {
    const policy = noJitter({
      maxAttempts: 8,
      immediate: 1,
      initialDelayMs: 1_000,
      factor: 2,
      maxDelayMs: 5_000,
    });
    assert.deepEqual(delays(policy), [0, 1_000, 2_000, 4_000, 5_000, 5_000, 5_000, null]);
    // A huge exponent stays finite and capped.
    const many = noJitter({ maxAttempts: 10_000, immediate: 0, initialDelayMs: 1, maxDelayMs: 60_000 });
    assert.equal(nextRetryDelay(many, 5_000), 60_000);
  });

  it('returns null once the attempts are used up', () => {
    const policy = resolveRetryPolicy({ maxAttempts: 3 });
    assert.equal(nextRetryDelay(policy, 3), null);
    assert.equal(nextRetryDelay(policy, 4), null);
    assert.equal(nextRetryDelay(resolveRetryPolicy({ maxAttempts: 1 }), 1), null);
    assert.equal(nextRetryDelay(resolveRetryPolicy({ maxAttempts: 1, immediate: 3 }), 1), null);
  });

  it('with the default policy: one immediate retry, then 1 s, 2 s, 4 s, then the dead-letter queue', () => {
    assert.deepEqual(delays({ ...defaultRetryPolicy, jitter: 0 }), [0, 1_000, 2_000, 4_000, null]);
  });

  it('keeps a jittered delay within jitter either side of the base delay (seeded random)', () => {
    const policy = resolveRetryPolicy({
      maxAttempts: 10,
      immediate: 1,
      initialDelayMs: 1_000,
      factor: 2,
      maxDelayMs: 1e9,
      jitter: 0.2,
    });
    const random = seededRandom(42);
    const seen = new Set<number>();
    for (let round = 0; round < 200; round++) {
      for (let attempt = 2; attempt < policy.maxAttempts; attempt++) {
        const base = 1_000 * 2 ** (attempt - 2);
        const delay = nextRetryDelay(policy, attempt, random)!;
        assert.ok(delay >= base * 0.8 && delay <= base * 1.2, `attempt ${attempt}: ${delay} vs base ${base}`);
        assert.ok(Number.isInteger(delay), 'Number.isInteger(delay)');
        if (attempt === 2) seen.add(delay);
      }
      assert.equal(nextRetryDelay(policy, 1, random), 0, 'immediate retries are not jittered');
    }
    assert.ok(seen.size > 50, 'the jitter spreads the delays');
    // The extremes of random() reach the bounds.
    assert.equal(
      nextRetryDelay(policy, 2, () => 0),
      800,
    );
    assert.equal(
      nextRetryDelay(policy, 2, () => 0.999_999_9),
      1_200,
    );
    assert.equal(
      nextRetryDelay(policy, 2, () => 0.5),
      1_000,
    );
  });

  it('keeps every delay within its bounds for any policy (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          maxAttempts: fc.integer({ min: 1, max: 30 }),
          immediate: fc.integer({ min: 0, max: 5 }),
          initialDelayMs: fc.integer({ min: 0, max: 10_000 }),
          factor: fc.double({ min: 1, max: 5, noNaN: true }),
          extraMaxDelayMs: fc.integer({ min: 0, max: 100_000 }),
          jitter: fc.double({ min: 0, max: 1, noNaN: true }),
        }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer(),
        ({ extraMaxDelayMs, ...fields }, attempt, seed) => {
          const policy = resolveRetryPolicy({
            ...fields,
            maxDelayMs: fields.initialDelayMs + extraMaxDelayMs,
          });
          const delay = nextRetryDelay(policy, attempt, seededRandom(seed));
          if (attempt >= policy.maxAttempts) return delay === null;
          if (attempt <= policy.immediate) return delay === 0;
          const base = Math.min(
            policy.maxDelayMs,
            policy.initialDelayMs * policy.factor ** (attempt - policy.immediate - 1),
          );
          const spread = base * policy.jitter;
          return delay !== null && delay >= Math.floor(base - spread) && delay <= Math.ceil(base + spread);
        },
      ),
      { seed: 20_260_101 },
    );
  });

  it('never returns more than maxDelayMs, jitter included', () => {
    const policy = resolveRetryPolicy({ maxAttempts: 20, immediate: 0, maxDelayMs: 60_000, jitter: 0.2 });
    assert.ok(nextRetryDelay(policy, 15, () => 0.999)! <= policy.maxDelayMs, 'capped at maxDelayMs');
  });
});

describe('resolveRetryPolicy', () => {
  it('fills the defaults, keeps what is given, and freezes the result', () => {
    assert.deepEqual(resolveRetryPolicy(undefined), defaultRetryPolicy);
    const policy = resolveRetryPolicy({ maxAttempts: 3, jitter: 0 });
    assert.deepEqual(policy, { ...defaultRetryPolicy, maxAttempts: 3, jitter: 0 });
    assert.ok(Object.isFrozen(policy), 'Object.isFrozen(policy)');
    // A subscription's overrides apply on top of the bus's policy.
    const bus = resolveRetryPolicy({ maxAttempts: 10, initialDelayMs: 50 });
    assert.deepEqual(resolveRetryPolicy({ immediate: 0 }, bus), { ...bus, immediate: 0 });
  });

  const bad: [Partial<RetryPolicy>, RegExp][] = [
    [{ maxAttempts: 0 }, /retry\.maxAttempts must be an integer >= 1, got 0/],
    [{ maxAttempts: 2.5 }, /retry\.maxAttempts must be an integer >= 1, got 2\.5/],
    [{ maxAttempts: Number.POSITIVE_INFINITY }, /retry\.maxAttempts/],
    [{ immediate: -1 }, /retry\.immediate must be an integer >= 0, got -1/],
    [{ immediate: 0.5 }, /retry\.immediate/],
    [{ initialDelayMs: -1 }, /retry\.initialDelayMs must be a number >= 0, got -1/],
    [{ initialDelayMs: Number.NaN }, /retry\.initialDelayMs/],
    [{ factor: 0.5 }, /retry\.factor must be a number >= 1, got 0\.5/],
    [{ factor: Number.NaN }, /retry\.factor/],
    [{ initialDelayMs: 5_000, maxDelayMs: 1_000 }, /retry\.maxDelayMs must be >= initialDelayMs, got 1000/],
    [{ maxDelayMs: Number.POSITIVE_INFINITY }, /retry\.maxDelayMs/],
    [{ jitter: -0.1 }, /retry\.jitter must be between 0 and 1, got -0\.1/],
    [{ jitter: 1.5 }, /retry\.jitter/],
    [{ jitter: Number.NaN }, /retry\.jitter/],
    [{ maxAttempts: '3' as unknown as number }, /retry\.maxAttempts/],
  ];
  for (const [partial, message] of bad) {
    it(`rejects ${JSON.stringify(partial, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v))} with ConfigurationError`, () => {
      assert.throws(
        () => resolveRetryPolicy(partial),
        (error: unknown) => error instanceof ConfigurationError && message.test(error.message),
      );
    });
  }
});
