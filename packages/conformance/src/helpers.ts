/**
 * Shared plumbing of the conformance cases: a per-case harness (unique names, buses on their own
 * connections, cleanup), `eventually` on the fixture's clock, gates, raw envelopes and a transport
 * wrapper that "crashes" between storing a handler's output and acking.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestContext } from 'node:test';
import type {
  Bus,
  BusEvent,
  BusOptions,
  Capability,
  Clock,
  DeadLetterFilter,
  DeadLetterStore,
  DeadLetterView,
  Delivery,
  Envelope,
  InboxStore,
  Transport,
} from '@courier/core';
import { createBus, memoryDeadLetterStore, memoryInboxStore } from '@courier/core';
import { z } from 'zod';
import type { CreateFixture, TransportFixture } from './types.js';

/** Options of every case: a hung bus fails the case instead of stalling the run. */
export const caseOptions = { timeout: 30_000 } as const;

/** Small retry policy: attempt 1, an immediate retry, then 100 ms, then the DLQ. */
export const fastRetry = { maxAttempts: 3, immediate: 1, initialDelayMs: 100, jitter: 0 } as const;

/** The usual test payload. */
export const numbered = z.object({ n: z.number().int(), mode: z.string().optional() });

/** Eight lowercase hex characters, unique enough for names on shared brokers. */
export function uid(): string {
  return randomUUID().replaceAll('-', '').slice(0, 8);
}

/** A latch a test opens to let a waiting handler go on. */
export interface Gate {
  wait(): Promise<void>;
  open(): void;
  readonly isOpen: boolean;
}

/** A promise the test opens when it wants a handler to go on. */
export function gate(): Gate {
  let open!: () => void;
  let isOpen = false;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return {
    wait: () => promise,
    open: () => {
      isOpen = true;
      open();
    },
    get isOpen() {
      return isOpen;
    },
  };
}

/** Resolves after `ms` on `clock` (fake or real), so handlers take time without real sleeps. */
export function sleepOn(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => {
    clock.setTimeout(resolve, ms);
  });
}

/** A CloudEvents 1.0 binary-mode envelope, as any other client of the broker could write it. */
export function cloudEvent(options: {
  type: string;
  data?: unknown;
  id?: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
}): Envelope {
  const id = options.id ?? randomUUID();
  return {
    id,
    type: options.type,
    headers: {
      'ce-specversion': '1.0',
      'ce-id': id,
      'ce-type': options.type,
      'ce-source': 'conformance-suite',
      'content-type': 'application/json',
      ...options.headers,
    },
    body: options.body ?? new TextEncoder().encode(JSON.stringify(options.data ?? null)),
  };
}

/** Tracks how many handlers run at once, overall and per key. */
export class Concurrency {
  running = 0;
  max = 0;
  private readonly perKey = new Map<string, number>();
  maxPerKey = 0;

  enter(key?: string): void {
    this.running++;
    this.max = Math.max(this.max, this.running);
    if (key !== undefined) {
      const n = (this.perKey.get(key) ?? 0) + 1;
      this.perKey.set(key, n);
      this.maxPerKey = Math.max(this.maxPerKey, n);
    }
  }

  leave(key?: string): void {
    this.running--;
    if (key !== undefined) this.perKey.set(key, (this.perKey.get(key) ?? 1) - 1);
  }
}

type BusSetup = (bus: Bus) => unknown;
type ExtraOptions = Partial<Omit<BusOptions, 'endpoint'>>;

/**
 * One case's world: a fresh fixture, the buses and connections it opened, shared stores (standing
 * in for the durable stores a deployment would share when the core emulates the DLQ or dedup).
 */
export class Harness {
  readonly fixture: TransportFixture;
  readonly prefix = `t${uid()}`;
  readonly deadLetterStore: DeadLetterStore;
  readonly dedupStore: InboxStore;
  /** Everything the buses reported through `observer`, for diagnostics. */
  readonly events: (BusEvent & { endpoint: string })[] = [];
  private readonly buses: Bus[] = [];
  private readonly transports: Transport[] = [];
  private probeTransport: Transport | undefined;

  constructor(fixture: TransportFixture) {
    this.fixture = fixture;
    this.deadLetterStore = memoryDeadLetterStore();
    this.dedupStore = memoryInboxStore(fixture.clock);
  }

  get clock(): Clock {
    return this.fixture.clock;
  }

  /** A unique queue/endpoint name. */
  queue(label = 'q'): string {
    return `q-${uid()}-${label}`;
  }

  /** A unique message type: `t<random>.<name>`. */
  type(name: string): string {
    return `${this.prefix}.${name}`;
  }

  /** A new connection, closed at cleanup. */
  async connect(): Promise<Transport> {
    const transport = await this.fixture.connect();
    this.transports.push(transport);
    return transport;
  }

  /** A started connection for raw declare/publish/stats. */
  async raw(): Promise<Transport> {
    if (!this.probeTransport) {
      this.probeTransport = await this.connect();
      await this.probeTransport.start();
    }
    return this.probeTransport;
  }

  /** Creates (does not start) a bus on a new connection, or on `options.transport`. */
  async createBus(endpoint: string, options: ExtraOptions = {}): Promise<Bus> {
    const transport = options.transport ?? (await this.connect());
    const bus = createBus({
      clock: this.fixture.clock,
      retry: fastRetry,
      deadLetterStore: this.deadLetterStore,
      dedupStore: this.dedupStore,
      random: () => 0.5,
      observer: (event) => this.events.push({ ...event, endpoint }),
      ...options,
      endpoint,
      transport,
    });
    this.buses.push(bus);
    return bus;
  }

  /** Creates a bus, lets `setup` register handlers, and starts it. */
  async bus(endpoint: string, setup?: BusSetup, options: ExtraOptions = {}): Promise<Bus> {
    const bus = await this.createBus(endpoint, options);
    setup?.(bus);
    await bus.start();
    return bus;
  }

  /** Creates `queue` with bindings for `patterns` through a raw connection (another process's topology). */
  async declare(queue: string, patterns: readonly string[] = []): Promise<void> {
    const transport = await this.raw();
    await transport.declare({
      queues: [{ name: queue }],
      bindings: patterns.map((pattern) => ({ queue, pattern })),
    });
  }

  /** Skips the case (printing the transport's reason) when `capability` is declared absent. */
  async skipWithout(t: TestContext, capability: Capability): Promise<boolean> {
    const transport = await this.raw();
    const support = transport.capabilities[capability];
    if (typeof support === 'object' && support !== null && 'absent' in support) {
      t.skip(`${transport.name}: capability '${capability}' is absent: ${support.absent}`);
      return true;
    }
    return false;
  }

  /** Skips the case when the transport keeps nothing across a restart. */
  async skipWithoutDurability(t: TestContext): Promise<boolean> {
    const transport = await this.raw();
    if (transport.durability === 'none') {
      t.skip(`${transport.name}: durability 'none', nothing survives a restart`);
      return true;
    }
    return false;
  }

  advance(ms: number): Promise<void> {
    return this.fixture.advance(ms);
  }

  /** Lets `ms` pass in steps, so timers along the way fire in order. */
  async quiet(ms: number, step = 50): Promise<void> {
    for (let passed = 0; passed < ms; passed += step) await this.fixture.advance(Math.min(step, ms - passed));
  }

  /** Alternates `advance(step)` and `check` until it holds, failing after `within` ms of clock time. */
  async eventually(
    check: () => boolean | Promise<boolean>,
    what: string,
    options: { within?: number; step?: number } = {},
  ): Promise<void> {
    const within = options.within ?? 10_000;
    const step = options.step ?? 10;
    for (let waited = 0; ; waited += step) {
      if (await check()) return;
      if (waited >= within) assert.fail(`timed out after ${within} ms (clock time) waiting for ${what}`);
      await this.fixture.advance(step);
    }
  }

  /** Waits for `promise` while the clock moves (stop timeouts, request timeouts run on it). */
  async whileAdvancing<T>(promise: Promise<T>, options: { within?: number; step?: number } = {}): Promise<T> {
    let settled = false;
    const watched = promise.finally(() => {
      settled = true;
    });
    watched.catch(() => {});
    await this.eventually(() => settled, 'an operation to finish', options);
    return watched;
  }

  /** Every dead letter of `queue` (all pages) through `bus`. */
  async deadLetters(bus: Bus, queue: string, filter: DeadLetterFilter = {}): Promise<DeadLetterView[]> {
    const all: DeadLetterView[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 100; page++) {
      const result = await bus.deadLetters.list(queue, {
        ...filter,
        limit: 50,
        ...(cursor ? { cursor } : {}),
      });
      all.push(...result.items);
      if (!result.nextCursor) return all;
      cursor = result.nextCursor;
    }
    assert.fail('dead-letter listing did not end after 100 pages');
  }

  /** Waits until message `id` is a dead letter of `queue`; returns it. */
  async deadLettered(bus: Bus, queue: string, id: string, within?: number): Promise<DeadLetterView> {
    let found: DeadLetterView | undefined;
    await this.eventually(
      async () => {
        found = (await this.deadLetters(bus, queue)).find((l) => l.envelope.id === id);
        return found !== undefined;
      },
      `message ${id} in the dead letters of ${queue}`,
      within === undefined ? {} : { within },
    );
    return found!;
  }

  /** Stops every bus (timeout 0, clock moving), closes every connection, disposes the fixture. */
  async cleanup(): Promise<void> {
    for (const bus of this.buses.reverse()) {
      let done = false;
      const stopping = bus
        .stop({ timeoutMs: 0 })
        .catch(() => {})
        .finally(() => {
          done = true;
        });
      for (let i = 0; i < 50 && !done; i++) await this.fixture.advance(10);
      if (!done) await bus.kill().catch(() => {});
      void stopping;
    }
    for (const transport of this.transports) await transport.close().catch(() => {});
    await this.fixture.dispose();
  }

  /** Background errors the buses reported, for a failing case's diagnostics. */
  describeEvents(): string {
    const errors = this.events.filter((e) => e.kind === 'error' || e.kind === 'dead-lettered');
    return errors
      .slice(0, 10)
      .map((e) => {
        if (e.kind === 'error')
          return `[${e.endpoint}] error: ${String((e.error as Error)?.stack ?? e.error)}`;
        if (e.kind === 'dead-lettered')
          return `[${e.endpoint}] dead-lettered ${e.type} (${e.reason}): ${String(e.error)}`;
        return '';
      })
      .join('\n');
  }
}

/** Wraps a case: fresh fixture and harness, cleanup in `finally`, bus errors printed on failure. */
export function run(create: CreateFixture, body: (h: Harness, t: TestContext) => Promise<void>) {
  return async (t: TestContext): Promise<void> => {
    const h = new Harness(await create());
    try {
      await body(h, t);
    } catch (error) {
      const events = h.describeEvents();
      if (events) t.diagnostic(`bus events:\n${events}`);
      throw error;
    } finally {
      await h.cleanup();
    }
  };
}

/**
 * A connection that "crashes" between storing a handler's output and acking: every ack stores its
 * outgoing messages, then never settles (until close), like a process killed right after the
 * publish. Used to prove that redelivered output keeps its ids (DESIGN.md §2.4).
 */
export function crashBeforeAck(inner: Transport): Transport {
  const pending = new Set<(value: boolean) => void>();
  const wrap = (delivery: Delivery): Delivery => ({
    envelope: delivery.envelope,
    queue: delivery.queue,
    attempt: delivery.attempt,
    ack: async (outgoing = []) => {
      if (outgoing.length > 0) await inner.publish(outgoing);
      return new Promise<boolean>((resolve) => pending.add(resolve));
    },
    retry: (ms) => delivery.retry(ms),
    defer: (until) => delivery.defer(until),
    deadLetter: (info) => delivery.deadLetter(info),
    release: () => delivery.release(),
    extendLease: (ms) => delivery.extendLease(ms),
  });
  return {
    name: inner.name,
    durability: inner.durability,
    capabilities: inner.capabilities,
    maxMessageBytes: inner.maxMessageBytes,
    get deadLetters() {
      return inner.deadLetters;
    },
    now: () => inner.now(),
    start: () => inner.start(),
    declare: (topology) => inner.declare(topology),
    publish: (items) => inner.publish(items),
    consume: (queue, options, onDelivery) => inner.consume(queue, options, (d) => onDelivery(wrap(d))),
    stats: (queue) => inner.stats(queue),
    close: async (options) => {
      for (const resolve of pending) resolve(false);
      pending.clear();
      await inner.close(options);
    },
  };
}
