import type {
  Capability,
  Clock,
  ConsumeOptions,
  DeadLetter,
  DeadLetterInfo,
  DeadLetterStore,
  Envelope,
  PublishItem,
  QueueStats,
  TimerHandle,
} from '@courier/core';
import { matchesHeaders, matchesPattern, NoRouteError, pageDeadLetters, systemClock } from '@courier/core';

/** Capabilities a memory broker can switch off, so the core's emulation of them is tested. */
export type SwitchableCapability = Extract<
  Capability,
  'delay' | 'priority' | 'keyOrdering' | 'dedup' | 'deadLetter' | 'ttl'
>;

/** Options of `memory()` and `new MemoryBroker()`. */
export interface MemoryBrokerOptions {
  /** Clock for leases, delays and TTLs (default: the machine's). Tests pass a fake one. */
  clock?: Clock;
  /** Capabilities to leave to the core's emulation. */
  disable?: readonly SwitchableCapability[];
  /** How long a dedupId is remembered per queue, in ms (default 10 minutes). */
  dedupWindowMs?: number;
}

interface Entry {
  readonly envelope: Envelope;
  seq: number;
  attempt: number;
  availableAt: number;
  /** Lease fencing: a settle with an older token is refused. */
  token: number;
  leaseTimer?: TimerHandle | undefined;
  holder?: ConsumerState | undefined;
  enqueuedAt: number;
}

/** One consumer attached to a queue of the broker. */
export interface ConsumerState {
  readonly queue: string;
  readonly options: ConsumeOptions;
  readonly deliver: (entry: Entry, token: number) => void;
  unsettled: number;
  active: boolean;
}

interface KeyState {
  /** Entries with this key, in publish order; only the head may be delivered. */
  readonly entries: Entry[];
  /** Dead letter id that parks the key, if any. */
  parkedBy?: string | undefined;
}

interface QueueState {
  readonly name: string;
  readonly temporary: boolean;
  /** Ready entries ordered by priority (high first), then seq. */
  ready: Entry[];
  scheduled: Set<Entry>;
  inFlight: Set<Entry>;
  keys: Map<string, KeyState>;
  /** Keyed entries waiting behind their key's head. */
  waitingBehindKey: number;
  dedup: Map<string, number>;
  deadLetters: DeadLetter[];
  consumers: ConsumerState[];
  nextConsumer: number;
}

/**
 * The in-memory broker behind `memory()`: queues, bindings, leases and a DLQ in process memory.
 * Several transports (`connect()`) may share one broker, standing in for several processes.
 */
export class MemoryBroker {
  readonly clock: Clock;
  readonly disabled: ReadonlySet<SwitchableCapability>;
  private readonly dedupWindowMs: number;
  private readonly queues = new Map<string, QueueState>();
  private bindings: {
    queue: string;
    pattern: string;
    headers?: Readonly<Record<string, string>> | undefined;
  }[] = [];
  private seq = 0;
  private deadLetterSeq = 0;
  private timer: TimerHandle | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(options: MemoryBrokerOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.disabled = new Set(options.disable ?? []);
    this.dedupWindowMs = options.dedupWindowMs ?? 600_000;
  }

  has(capability: SwitchableCapability): boolean {
    return !this.disabled.has(capability);
  }

  declareQueue(name: string, temporary: boolean): void {
    if (this.queues.has(name)) return;
    this.queues.set(name, {
      name,
      temporary,
      ready: [],
      scheduled: new Set(),
      inFlight: new Set(),
      keys: new Map(),
      waitingBehindKey: 0,
      dedup: new Map(),
      deadLetters: [],
      consumers: [],
      nextConsumer: 0,
    });
  }

  deleteQueue(name: string): void {
    const queue = this.queues.get(name);
    if (!queue) return;
    for (const entry of queue.inFlight) this.clock.clearTimeout(entry.leaseTimer!);
    this.queues.delete(name);
    this.bindings = this.bindings.filter((b) => b.queue !== name);
  }

  declareBinding(queue: string, pattern: string, headers?: Readonly<Record<string, string>>): void {
    if (!this.queues.has(queue))
      throw new NoRouteError(`cannot bind '${pattern}' to queue '${queue}': the queue does not exist`);
    const same = (b: (typeof this.bindings)[number]) =>
      b.queue === queue &&
      b.pattern === pattern &&
      JSON.stringify(b.headers ?? {}) === JSON.stringify(headers ?? {});
    if (!this.bindings.some(same)) this.bindings.push({ queue, pattern, headers });
  }

  publish(items: readonly PublishItem[]): void {
    // Resolve every destination first so a batch with a missing queue stores nothing.
    const targets = items.map((item) => {
      if (item.to.kind === 'queue') {
        const queue = this.queues.get(item.to.queue);
        if (!queue && item.dropIfNoQueue) return [];
        if (!queue)
          throw new NoRouteError(`queue '${item.to.queue}' does not exist (message '${item.envelope.type}')`);
        return [queue];
      }
      const matched = new Set<QueueState>();
      for (const b of this.bindings) {
        if (
          matchesPattern(b.pattern, item.envelope.type) &&
          matchesHeaders(b.headers, item.envelope.headers)
        ) {
          matched.add(this.queues.get(b.queue)!);
        }
      }
      return [...matched];
    });
    const now = this.clock.now();
    items.forEach((item, i) => {
      for (const queue of targets[i]!) this.enqueue(queue, item, now);
    });
    for (const queues of new Set(targets.flat())) this.pump(queues);
  }

  private enqueue(queue: QueueState, item: PublishItem, now: number): void {
    const { envelope } = item;
    if (envelope.dedupId !== undefined && this.has('dedup') && !item.bypassDedup) {
      const seenUntil = queue.dedup.get(envelope.dedupId);
      if (seenUntil !== undefined && seenUntil > now) return;
      queue.dedup.set(envelope.dedupId, now + this.dedupWindowMs);
    }
    const delayed = this.has('delay') && envelope.deliverAt !== undefined && envelope.deliverAt > now;
    const entry: Entry = {
      envelope,
      seq: ++this.seq,
      attempt: 0,
      availableAt: delayed ? envelope.deliverAt! : now,
      token: 0,
      enqueuedAt: now,
    };
    const key = this.keyOf(envelope);
    if (key !== undefined) {
      let state = queue.keys.get(key);
      if (!state) {
        state = { entries: [] };
        queue.keys.set(key, state);
      }
      // A replayed dead letter that parks its key goes back to the head of its key, where it was.
      const parked =
        state.parkedBy === undefined
          ? undefined
          : queue.deadLetters.find((l) => l.deadLetterId === state!.parkedBy);
      if (parked?.envelope.id === envelope.id) state.entries.unshift(entry);
      else state.entries.push(entry);
      if (state.entries.length > 1 || state.parkedBy !== undefined) {
        queue.waitingBehindKey++;
        return;
      }
    }
    this.makeAvailable(queue, entry);
  }

  private keyOf(envelope: Envelope): string | undefined {
    return this.has('keyOrdering') ? envelope.key : undefined;
  }

  private makeAvailable(queue: QueueState, entry: Entry): void {
    if (entry.availableAt > this.clock.now()) {
      queue.scheduled.add(entry);
      this.schedule(entry.availableAt);
    } else {
      this.insertReady(queue, entry);
    }
  }

  private insertReady(queue: QueueState, entry: Entry): void {
    const priority = this.priorityOf(entry);
    const ready = queue.ready;
    let lo = 0;
    let hi = ready.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const other = ready[mid]!;
      const otherPriority = this.priorityOf(other);
      if (otherPriority > priority || (otherPriority === priority && other.seq < entry.seq)) lo = mid + 1;
      else hi = mid;
    }
    ready.splice(lo, 0, entry);
  }

  private priorityOf(entry: Entry): number {
    return this.has('priority') ? (entry.envelope.priority ?? 0) : 0;
  }

  private schedule(at: number): void {
    if (at >= this.timerAt) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = this.clock.setTimeout(() => this.onTimer(), Math.max(0, at - this.clock.now()));
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = this.clock.now();
    let next = Number.POSITIVE_INFINITY;
    for (const queue of this.queues.values()) {
      let moved = false;
      for (const entry of queue.scheduled) {
        if (entry.availableAt <= now) {
          queue.scheduled.delete(entry);
          this.insertReady(queue, entry);
          moved = true;
        } else {
          next = Math.min(next, entry.availableAt);
        }
      }
      if (moved) this.pump(queue);
    }
    if (next !== Number.POSITIVE_INFINITY) this.schedule(next);
  }

  addConsumer(consumer: ConsumerState): void {
    const queue = this.requireQueue(consumer.queue);
    queue.consumers.push(consumer);
    this.pump(queue);
  }

  removeConsumer(consumer: ConsumerState): void {
    consumer.active = false;
    const queue = this.queues.get(consumer.queue);
    if (queue) queue.consumers = queue.consumers.filter((c) => c !== consumer);
  }

  requireQueue(name: string): QueueState {
    const queue = this.queues.get(name);
    if (!queue) throw new NoRouteError(`queue '${name}' does not exist: declare it first`);
    return queue;
  }

  /** Hands ready entries to consumers with free prefetch, round-robin. */
  private pump(queue: QueueState): void {
    while (queue.ready.length > 0) {
      const consumer = this.nextFreeConsumer(queue);
      if (!consumer) return;
      const entry = queue.ready.shift()!;
      const now = this.clock.now();
      if (
        this.has('ttl') &&
        this.has('deadLetter') &&
        entry.envelope.expiresAt !== undefined &&
        entry.envelope.expiresAt <= now
      ) {
        this.toDeadLetters(queue, entry, {
          reason: 'expired',
          attempts: entry.attempt,
          queue: queue.name,
          failedAt: now,
        });
        continue;
      }
      entry.attempt++;
      entry.token++;
      entry.holder = consumer;
      consumer.unsettled++;
      queue.inFlight.add(entry);
      this.startLease(queue, entry, consumer.options.leaseMs);
      const token = entry.token;
      queueMicrotask(() => consumer.deliver(entry, token));
    }
  }

  private nextFreeConsumer(queue: QueueState): ConsumerState | undefined {
    const count = queue.consumers.length;
    for (let i = 0; i < count; i++) {
      const consumer = queue.consumers[(queue.nextConsumer + i) % count]!;
      if (consumer.active && consumer.unsettled < consumer.options.prefetch) {
        queue.nextConsumer = (queue.nextConsumer + i + 1) % count;
        return consumer;
      }
    }
    return undefined;
  }

  private startLease(queue: QueueState, entry: Entry, leaseMs: number): void {
    if (entry.leaseTimer !== undefined) this.clock.clearTimeout(entry.leaseTimer);
    const token = entry.token;
    entry.leaseTimer = this.clock.setTimeout(() => {
      // Lease expired: the consumer is presumed dead or stuck; the next delivery counts an attempt.
      if (entry.token !== token || !queue.inFlight.has(entry)) return;
      this.unhold(queue, entry);
      entry.token++;
      this.insertReady(queue, entry);
      this.pump(queue);
    }, leaseMs);
  }

  private unhold(queue: QueueState, entry: Entry): void {
    queue.inFlight.delete(entry);
    if (entry.leaseTimer !== undefined) this.clock.clearTimeout(entry.leaseTimer);
    entry.leaseTimer = undefined;
    if (entry.holder) {
      entry.holder.unsettled--;
      entry.holder = undefined;
    }
  }

  /** True if `token` still owns `entry`'s lease; settles with a stale token are refused. */
  private owns(queue: QueueState, entry: Entry, token: number): boolean {
    return entry.token === token && queue.inFlight.has(entry) && this.queues.get(queue.name) === queue;
  }

  ack(queueName: string, entry: Entry, token: number, outgoing: readonly PublishItem[]): boolean {
    const queue = this.queues.get(queueName);
    if (!queue || !this.owns(queue, entry, token)) return false;
    // Output first, in the same synchronous step as the ack: the memory broker's "transaction".
    if (outgoing.length > 0) this.publish(outgoing);
    this.unhold(queue, entry);
    this.removeEntry(queue, entry);
    this.pump(queue);
    return true;
  }

  retry(queueName: string, entry: Entry, token: number, availableAt: number, counted: boolean): boolean {
    const queue = this.queues.get(queueName);
    if (!queue || !this.owns(queue, entry, token)) return false;
    this.unhold(queue, entry);
    entry.token++;
    if (!counted) entry.attempt--;
    // A retried message loses its place (DESIGN.md §2.8); a deferred or released one keeps it.
    if (counted) entry.seq = ++this.seq;
    entry.availableAt = availableAt;
    this.makeAvailable(queue, entry);
    this.pump(queue);
    return true;
  }

  extendLease(queueName: string, entry: Entry, token: number, ms: number): boolean {
    const queue = this.queues.get(queueName);
    if (!queue || !this.owns(queue, entry, token)) return false;
    this.startLease(queue, entry, ms);
    return true;
  }

  deadLetter(queueName: string, entry: Entry, token: number, info: DeadLetterInfo): boolean {
    const queue = this.queues.get(queueName);
    if (!queue || !this.owns(queue, entry, token)) return false;
    this.unhold(queue, entry);
    this.toDeadLetters(queue, entry, info);
    this.pump(queue);
    return true;
  }

  private toDeadLetters(queue: QueueState, entry: Entry, info: DeadLetterInfo): void {
    const deadLetterId = String(++this.deadLetterSeq);
    queue.deadLetters.push({ deadLetterId, envelope: entry.envelope, info });
    const key = this.keyOf(entry.envelope);
    if (key !== undefined && info.parkKey) {
      // The key stays held by the dead letter; entries behind it keep waiting until replay or purge.
      queue.keys.get(key)!.entries.shift();
      queue.keys.get(key)!.parkedBy = deadLetterId;
      return;
    }
    this.removeEntry(queue, entry);
  }

  /** Drops a settled entry and, for a keyed one, lets the next entry of its key go. */
  private removeEntry(queue: QueueState, entry: Entry): void {
    const key = this.keyOf(entry.envelope);
    if (key === undefined) return;
    const state = queue.keys.get(key);
    if (!state || state.entries[0] !== entry) return;
    state.entries.shift();
    this.advanceKey(queue, key, state);
  }

  private advanceKey(queue: QueueState, key: string, state: KeyState): void {
    if (state.parkedBy !== undefined) return;
    const next = state.entries[0];
    if (!next) {
      queue.keys.delete(key);
      return;
    }
    queue.waitingBehindKey--;
    this.makeAvailable(queue, next);
  }

  /** The native DLQ of this broker's queues. */
  readonly deadLetters: DeadLetterStore = {
    add: async () => {
      throw new Error('the memory broker dead-letters through Delivery.deadLetter');
    },
    list: async (queue, filter, page) => pageDeadLetters(this.requireQueue(queue).deadLetters, filter, page),
    remove: async (queueName, ids) => {
      const queue = this.requireQueue(queueName);
      const remove = new Set(ids);
      const removed = queue.deadLetters.filter((l) => remove.has(l.deadLetterId));
      queue.deadLetters = queue.deadLetters.filter((l) => !remove.has(l.deadLetterId));
      for (const letter of removed) {
        const key = this.keyOf(letter.envelope);
        const state = key === undefined ? undefined : queue.keys.get(key);
        if (state && state.parkedBy === letter.deadLetterId) {
          state.parkedBy = undefined;
          this.advanceKey(queue, key!, state);
        }
      }
      this.pump(queue);
      return removed.length;
    },
    count: async (queue) => this.requireQueue(queue).deadLetters.length,
  };

  stats(name: string): QueueStats {
    const queue = this.requireQueue(name);
    const now = this.clock.now();
    let oldest = Number.POSITIVE_INFINITY;
    for (const entry of queue.ready) oldest = Math.min(oldest, entry.enqueuedAt);
    return {
      queue: name,
      depth: queue.ready.length + queue.waitingBehindKey,
      inFlight: queue.inFlight.size,
      scheduled: queue.scheduled.size,
      deadLettered: queue.deadLetters.length,
      oldestAgeMs: oldest === Number.POSITIVE_INFINITY ? 0 : now - oldest,
    };
  }
}

export type { Entry as MemoryEntry };
