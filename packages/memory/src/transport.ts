import type {
  Capabilities,
  ConsumeOptions,
  ConsumerHandle,
  DeadLetterInfo,
  Delivery,
  PublishItem,
  QueueStats,
  Topology,
  Transport,
} from '@courier/core';
import { ClosedError, UnsupportedError } from '@courier/core';
import type { ConsumerState, MemoryBrokerOptions, MemoryEntry, SwitchableCapability } from './broker.js';
import { MemoryBroker } from './broker.js';

const switchable: readonly SwitchableCapability[] = [
  'delay',
  'priority',
  'keyOrdering',
  'dedup',
  'deadLetter',
  'ttl',
];

/**
 * One connection to a `MemoryBroker`, standing in for one process. Durability `none`: everything is
 * lost with the broker object.
 */
export class MemoryTransport implements Transport {
  readonly name = 'memory';
  readonly durability = 'none' as const;
  readonly capabilities: Capabilities;
  readonly broker: MemoryBroker;
  private readonly consumers = new Set<ConsumerState>();
  private readonly held = new Set<{ entry: MemoryEntry; token: number; queue: string }>();
  private readonly temporaryQueues = new Set<string>();
  private closed = false;

  constructor(broker: MemoryBroker) {
    this.broker = broker;
    const caps: Record<string, 'native' | 'emulated'> = {
      leaseExtension: 'native',
      fencedLeases: 'native',
      durableAttempts: 'native',
      headerFilter: 'native',
    };
    for (const capability of switchable) caps[capability] = broker.has(capability) ? 'native' : 'emulated';
    this.capabilities = caps as unknown as Capabilities;
  }

  get deadLetters() {
    return this.broker.has('deadLetter') ? this.broker.deadLetters : undefined;
  }

  now(): number {
    return this.broker.clock.now();
  }

  async start(): Promise<void> {
    this.assertOpen();
  }

  async declare(topology: Topology): Promise<void> {
    this.assertOpen();
    for (const queue of topology.queues) {
      this.broker.declareQueue(queue.name, queue.temporary ?? false);
      if (queue.temporary) this.temporaryQueues.add(queue.name);
    }
    for (const binding of topology.bindings)
      this.broker.declareBinding(binding.queue, binding.pattern, binding.headers);
  }

  async publish(items: readonly PublishItem[]): Promise<void> {
    this.assertOpen();
    this.broker.publish(items);
  }

  async consume(
    queue: string,
    options: ConsumeOptions,
    onDelivery: (delivery: Delivery) => void,
  ): Promise<ConsumerHandle> {
    this.assertOpen();
    const consumer: ConsumerState = {
      queue,
      options,
      active: true,
      unsettled: 0,
      deliver: (entry, token) => {
        if (!consumer.active || this.closed) return;
        onDelivery(this.delivery(queue, entry, token));
      },
    };
    this.consumers.add(consumer);
    this.broker.addConsumer(consumer);
    return {
      stop: async () => {
        this.broker.removeConsumer(consumer);
        this.consumers.delete(consumer);
      },
    };
  }

  private delivery(queue: string, entry: MemoryEntry, token: number): Delivery {
    const broker = this.broker;
    const handle = { entry, token, queue };
    this.held.add(handle);
    const settle = (result: boolean) => {
      this.held.delete(handle);
      return result;
    };
    return {
      envelope: entry.envelope,
      queue,
      attempt: entry.attempt,
      ack: async (outgoing = []) => settle(broker.ack(queue, entry, token, outgoing)),
      retry: async (delayMs) => settle(broker.retry(queue, entry, token, broker.clock.now() + delayMs, true)),
      defer: async (untilMs) => settle(broker.retry(queue, entry, token, untilMs, false)),
      release: async () => settle(broker.retry(queue, entry, token, broker.clock.now(), false)),
      deadLetter: async (info: DeadLetterInfo) => {
        if (!broker.has('deadLetter'))
          throw new UnsupportedError('this memory broker has its dead-letter queue switched off');
        return settle(broker.deadLetter(queue, entry, token, info));
      },
      extendLease: async (ms) => broker.extendLease(queue, entry, token, ms),
    };
  }

  async stats(queue: string): Promise<QueueStats> {
    this.assertOpen();
    return this.broker.stats(queue);
  }

  async close(options: { abandon?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const consumer of this.consumers) this.broker.removeConsumer(consumer);
    this.consumers.clear();
    // A clean close hands back what it still holds; an abandoned one leaves leases to expire, like a crash.
    if (!options.abandon) {
      for (const { entry, token, queue } of this.held)
        this.broker.retry(queue, entry, token, this.broker.clock.now(), false);
    }
    this.held.clear();
    for (const queue of this.temporaryQueues) this.broker.deleteQueue(queue);
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('the memory transport is closed');
  }
}

/**
 * An in-process transport: same semantics as the durable ones, no durability. For unit tests of
 * applications and for trying Courier out. Pass a shared `broker` to connect several buses.
 * @example const bus = createBus({ endpoint: 'orders', transport: memory() });
 */
export function memory(options: MemoryBrokerOptions & { broker?: MemoryBroker } = {}): MemoryTransport {
  return new MemoryTransport(options.broker ?? new MemoryBroker(options));
}
