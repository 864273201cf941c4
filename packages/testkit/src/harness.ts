import type { Bus, BusEvent, DeadLetterView, QueueStats } from '@courier/core';
import { ConfigurationError, matchesPattern } from '@courier/core';
import type { FakeClock } from './fake-clock.js';
import { settle } from './fake-clock.js';

/** The kinds of `BusEvent` a harness records: `published`, `consumed`, `retried`, `dead-lettered`, `error`. */
export type BusEventKind = BusEvent['kind'];

/** The `BusEvent` of kind `K`. */
export type BusEventOf<K extends BusEventKind> = Extract<BusEvent, { kind: K }>;

/** Options of `harness.waitFor`. */
export interface WaitForOptions<K extends BusEventKind = BusEventKind> {
  /**
   * Real time to wait before rejecting, in ms (default 2,000). Ignored when `clock` is given: then
   * `maxAdvanceMs` bounds the wait in fake time instead.
   */
  timeoutMs?: number;
  /**
   * A fake clock to drive while waiting: it is advanced `stepMs` at a time, letting the work each step
   * starts settle, until the event shows up. Retry and delay tests then take no real time.
   */
  clock?: FakeClock;
  /** Fake time advanced per step when `clock` is given, in ms (default 100). */
  stepMs?: number;
  /** Most fake time to advance before rejecting, in ms (default 60,000). */
  maxAdvanceMs?: number;
  /** Further condition on the event, for example `(e) => e.attempt === 3`. */
  where?: (event: BusEventOf<K>) => boolean;
}

/**
 * Records what a bus does, through its `observer` option, and lets a test wait for it.
 * Pass `harness.observer` to `createBus` (several buses may share one harness).
 */
export interface Harness {
  /** The function to pass as `createBus({ observer })`. */
  readonly observer: (event: BusEvent) => void;
  /** Every event seen since creation or the last `reset()`, oldest first. */
  readonly events: readonly BusEvent[];
  /**
   * Resolves with the first event of `kind` (and message `type`, exact or a pattern with `*`/`#`)
   * seen since the last `reset()`, whether it already happened or happens later. Rejects after
   * `timeoutMs` of real time, or with `clock` after `maxAdvanceMs` of fake time, with an error that
   * lists the events seen. `error` events have no type: give no `type` to wait for them.
   * @example await harness.waitFor('consumed', 'orders.placed', { clock })
   */
  waitFor<K extends BusEventKind>(
    kind: K,
    type?: string,
    options?: WaitForOptions<K>,
  ): Promise<BusEventOf<K>>;
  /** The `published` events seen, optionally only of message `type` (exact or pattern). */
  published(type?: string): BusEventOf<'published'>[];
  /** The `consumed` events seen (one per successful handling), optionally only of `type`. */
  consumed(type?: string): BusEventOf<'consumed'>[];
  /** The `dead-lettered` events seen, optionally only of `type`. */
  deadLettered(type?: string): BusEventOf<'dead-lettered'>[];
  /** Forgets the events seen so far; waits already pending keep waiting for new events. */
  reset(): void;
}

interface Waiter {
  readonly matches: (event: BusEvent) => boolean;
  readonly resolve: (event: BusEvent) => void;
}

/**
 * Creates a harness for application tests: wire its `observer` into the bus, act, then wait for or
 * inspect what happened.
 * @example
 * const clock = new FakeClock();
 * const harness = createHarness();
 * const bus = createBus({ endpoint: 'billing', transport: memory({ clock }), clock, observer: harness.observer });
 * await bus.publish(OrderPlaced, { orderId: 'o-1' });
 * await harness.waitFor('consumed', 'orders.placed', { clock });
 */
export function createHarness(): Harness {
  let events: BusEvent[] = [];
  const waiters = new Set<Waiter>();

  const find = (matches: (event: BusEvent) => boolean) => events.find(matches);
  const ofKind = <K extends BusEventKind>(kind: K, type: string | undefined) =>
    events.filter((event) => matchesEvent(event, kind, type)) as BusEventOf<K>[];

  const observer = (event: BusEvent): void => {
    events.push(event);
    for (const waiter of waiters) {
      if (waiter.matches(event)) {
        waiters.delete(waiter);
        waiter.resolve(event);
      }
    }
  };

  async function waitFor<K extends BusEventKind>(
    kind: K,
    type?: string,
    options: WaitForOptions<K> = {},
  ): Promise<BusEventOf<K>> {
    const { where } = options;
    const matches = (event: BusEvent) =>
      matchesEvent(event, kind, type) && (where === undefined || where(event as BusEventOf<K>));
    const seen = find(matches);
    if (seen) return seen as BusEventOf<K>;
    const what = `waitFor('${kind}'${type === undefined ? '' : `, '${type}'`})`;

    let waiter: Waiter | undefined;
    const arrived = new Promise<BusEvent>((resolve) => {
      waiter = { matches, resolve };
      waiters.add(waiter);
    });
    const giveUp = (after: string) => {
      waiters.delete(waiter!);
      return new Error(`${what} saw no matching event ${after}; seen: ${describeEvents(events)}`);
    };

    if (options.clock === undefined) {
      const timeoutMs = checkMs(options.timeoutMs ?? 2_000, 'timeoutMs');
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(giveUp(`within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        return (await Promise.race([arrived, timedOut])) as BusEventOf<K>;
      } finally {
        clearTimeout(timer);
      }
    }

    const { clock } = options;
    const stepMs = checkMs(options.stepMs ?? 100, 'stepMs');
    const maxAdvanceMs = checkMs(options.maxAdvanceMs ?? 60_000, 'maxAdvanceMs');
    if (stepMs === 0) throw new ConfigurationError('waitFor: stepMs must be > 0, got 0');
    let found: BusEvent | undefined;
    void arrived.then((event) => {
      found = event;
    });
    // Work that needs no time (a first delivery) should not cost fake time, so settle before each step.
    for (let advancedMs = 0; ; advancedMs += stepMs) {
      await settle();
      if (found) return found as BusEventOf<K>;
      if (advancedMs >= maxAdvanceMs) throw giveUp(`after advancing the fake clock ${advancedMs} ms`);
      await clock.advance(Math.min(stepMs, maxAdvanceMs - advancedMs));
    }
  }

  return {
    observer,
    get events() {
      return events;
    },
    waitFor,
    published: (type) => ofKind('published', type),
    consumed: (type) => ofKind('consumed', type),
    deadLettered: (type) => ofKind('dead-lettered', type),
    reset() {
      events = [];
    },
  };
}

/** What `inspectQueue` reports: the queue's statistics and its dead letters. */
export interface QueueInspection extends QueueStats {
  /** Every dead letter of the queue, oldest first, with the reason and failure details as headers. */
  readonly deadLetters: readonly DeadLetterView[];
}

/**
 * The statistics of `queue` (default: the bus's endpoint queue) from `bus.stats()`, plus all its dead
 * letters, for assertions at the end of a test.
 * @example assert.equal((await inspectQueue(bus)).deadLetters[0]?.info.reason, 'rejected');
 */
export async function inspectQueue(bus: Bus, queue: string = bus.endpoint): Promise<QueueInspection> {
  const stats = await bus.stats(queue);
  const deadLetters: DeadLetterView[] = [];
  let cursor: string | undefined;
  do {
    const page = await bus.deadLetters.list(queue, cursor === undefined ? {} : { cursor });
    deadLetters.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return { ...stats, deadLetters };
}

/** The message type an event is about; `error` events have none. */
function typeOf(event: BusEvent): string | undefined {
  switch (event.kind) {
    case 'published':
    case 'consumed':
    case 'retried':
      return event.message.type;
    case 'dead-lettered':
      return event.type;
    case 'error':
      return undefined;
  }
}

function matchesEvent(event: BusEvent, kind: BusEventKind, type: string | undefined): boolean {
  if (event.kind !== kind) return false;
  if (type === undefined) return true;
  const eventType = typeOf(event);
  return eventType !== undefined && matchesPattern(type, eventType);
}

function describeEvent(event: BusEvent): string {
  switch (event.kind) {
    case 'published':
      return `published ${event.message.type} (${event.message.id})`;
    case 'consumed':
      return `consumed ${event.message.type} on '${event.queue}' attempt ${event.attempt}`;
    case 'retried':
      return `retried ${event.message.type} on '${event.queue}' after attempt ${event.attempt} in ${event.delayMs} ms`;
    case 'dead-lettered':
      return `dead-lettered ${event.type} on '${event.queue}' (${event.reason})`;
    case 'error':
      return `error${event.queue === undefined ? '' : ` on '${event.queue}'`}: ${String(event.error)}`;
  }
}

function describeEvents(events: readonly BusEvent[]): string {
  if (events.length === 0) return 'no events';
  const shown = events.slice(-20).map(describeEvent);
  const more = events.length > shown.length ? `... ${events.length - shown.length} earlier, then ` : '';
  return `${more}${shown.join('; ')}`;
}

function checkMs(value: number, name: string): number {
  if (!Number.isFinite(value) || value < 0)
    throw new ConfigurationError(`waitFor: ${name} must be a number of ms >= 0, got ${String(value)}`);
  return value;
}
