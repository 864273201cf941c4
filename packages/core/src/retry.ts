import { ConfigurationError } from './errors.js';

/** How a failing message is retried before it is dead-lettered (DESIGN.md §2.6). */
export interface RetryPolicy {
  /** Attempts in all, the first included (default 5). 1 means never retry. */
  readonly maxAttempts: number;
  /** How many of the retries are redelivered at once, before backoff starts (default 1). */
  readonly immediate: number;
  /** Delay before the first delayed retry, in ms (default 1,000). */
  readonly initialDelayMs: number;
  /** Each delayed retry waits `factor` times the previous one (default 2). */
  readonly factor: number;
  /** Upper bound of a delay, in ms (default 60,000). */
  readonly maxDelayMs: number;
  /** Fraction of the delay randomised either way, 0 to 1 (default 0.2), so failures don't retry in lockstep. */
  readonly jitter: number;
}

/** Five attempts: one at once, then backoff from 1 s doubling up to 60 s, ±20 % jitter. */
export const defaultRetryPolicy: RetryPolicy = Object.freeze({
  maxAttempts: 5,
  immediate: 1,
  initialDelayMs: 1_000,
  factor: 2,
  maxDelayMs: 60_000,
  jitter: 0.2,
});

/** Fills a partial policy with defaults and checks every field. */
export function resolveRetryPolicy(
  partial: Partial<RetryPolicy> | undefined,
  base: RetryPolicy = defaultRetryPolicy,
): RetryPolicy {
  const policy = { ...base, ...partial };
  const check = (ok: boolean, field: string, rule: string) => {
    if (!ok)
      throw new ConfigurationError(
        `retry.${field} must be ${rule}, got ${String(policy[field as keyof RetryPolicy])}`,
      );
  };
  check(Number.isInteger(policy.maxAttempts) && policy.maxAttempts >= 1, 'maxAttempts', 'an integer >= 1');
  check(Number.isInteger(policy.immediate) && policy.immediate >= 0, 'immediate', 'an integer >= 0');
  check(
    Number.isFinite(policy.initialDelayMs) && policy.initialDelayMs >= 0,
    'initialDelayMs',
    'a number >= 0',
  );
  check(Number.isFinite(policy.factor) && policy.factor >= 1, 'factor', 'a number >= 1');
  check(
    Number.isFinite(policy.maxDelayMs) && policy.maxDelayMs >= policy.initialDelayMs,
    'maxDelayMs',
    '>= initialDelayMs',
  );
  check(policy.jitter >= 0 && policy.jitter <= 1, 'jitter', 'between 0 and 1');
  return Object.freeze(policy);
}

/**
 * What to do after attempt `attempt` failed: `null` when the attempts are used up, else the delay in ms
 * before the next one (0 for the immediate retries).
 */
export function nextRetryDelay(
  policy: RetryPolicy,
  attempt: number,
  random: () => number = Math.random,
): number | null {
  if (attempt >= policy.maxAttempts) return null;
  if (attempt <= policy.immediate) return 0;
  const exponent = attempt - policy.immediate - 1;
  const delay = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** exponent);
  const spread = delay * policy.jitter;
  return Math.min(policy.maxDelayMs, Math.max(0, Math.round(delay - spread + random() * 2 * spread)));
}
