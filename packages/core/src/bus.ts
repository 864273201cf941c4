import type {
  BatchOptions,
  Bus,
  BusEvent,
  BusOptions,
  DeadLetterApi,
  HandlerContext,
  PublishOptions,
  RequestOptions,
  SagaRegistration,
  StopOptions,
  SubscriptionOptions,
} from './bus-types.js';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { Subscription } from './consumer.js';
import { QueueConsumer } from './consumer.js';
import type { Context } from './context.js';
import type { CommandContract, Contract, EventContract, RequestContract } from './contracts.js';
import { createDeadLetterApi } from './dead-letter-api.js';
import { ClosedError, ConfigurationError, NoRouteError, UnsupportedError } from './errors.js';
import type { Message } from './message.js';
import { compose } from './middleware.js';
import { assertPattern, assertQueueName } from './names.js';
import { type Prepared, Producer } from './producer.js';
import { Requester } from './request-reply.js';
import type { RetryPolicy } from './retry.js';
import { resolveRetryPolicy } from './retry.js';
import { Saga } from './saga.js';
import { runSagaStep, sagaTimeoutType } from './saga-runtime.js';
import type { SagaStore } from './stores.js';
import { memoryDeadLetterStore, memoryInboxStore } from './stores.js';
import { commandOwners, toTransportTopology } from './topology.js';
import type {
  BindingSpec,
  DeadLetterStore,
  Destination,
  QueueSpec,
  QueueStats,
  Transport,
} from './transport.js';

const MiB = 1_048_576;

type State = 'new' | 'starting' | 'started' | 'stopped';

/**
 * Creates a bus: this endpoint's handle on the message system (DESIGN.md §1).
 * @example
 * const bus = createBus({ endpoint: 'billing', transport: memory() });
 * bus.on(OrderPlaced, async (order, ctx) => { await ctx.send(ChargeCard, { orderId: order.id }) });
 * await bus.start();
 */
export function createBus(options: BusOptions): Bus {
  return new MessageBus(options);
}

class MessageBus implements Bus {
  readonly endpoint: string;
  readonly transport: Transport;
  readonly deadLetters: DeadLetterApi;
  private readonly clock: Clock;
  private readonly retry: RetryPolicy;
  private readonly limits: QueueLimits;
  private readonly maxMessageBytes: number;
  private readonly producer: Producer;
  private readonly requester: Requester;
  private readonly deadLetterStore: DeadLetterStore;
  private readonly routes = new Map<string, string>();
  private readonly contracts = new Map<string, Contract>();
  private readonly queues = new Map<string, { subscriptions: Subscription[]; limits: QueueLimits }>();
  private readonly bindings: BindingSpec[] = [];
  private readonly consumers: QueueConsumer[] = [];
  private readonly sagasByQueue = new Map<string, Map<string, { saga: Saga<unknown>; store: SagaStore }>>();
  private state: State = 'new';
  private startPromise: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;

  constructor(private readonly options: BusOptions) {
    assertQueueName(options.endpoint, 'endpoint name');
    if (!options.transport)
      throw new ConfigurationError(`bus '${options.endpoint}': a transport is required`);
    this.endpoint = options.endpoint;
    this.transport = options.transport;
    this.clock = options.clock ?? systemClock;
    this.retry = resolveRetryPolicy(options.retry);
    const concurrency = positiveInt(options.concurrency ?? 16, 'concurrency');
    const prefetch = positiveInt(options.prefetch ?? concurrency * 2, 'prefetch');
    this.limits = {
      concurrency,
      prefetch,
      // A prefetch the application chose stays fixed, unless it also gives a maximum.
      maxPrefetch: maxPrefetchOf(
        options.maxPrefetch,
        prefetch,
        options.prefetch === undefined ? DEFAULT_MAX_PREFETCH : prefetch,
      ),
      leaseMs: positiveInt(options.leaseMs ?? 30_000, 'leaseMs'),
    };
    this.maxMessageBytes = Math.min(
      positiveInt(options.maxMessageBytes ?? MiB, 'maxMessageBytes'),
      this.transport.maxMessageBytes ?? Number.POSITIVE_INFINITY,
    );
    this.producer = new Producer(
      this.endpoint,
      this.clock,
      this.maxMessageBytes,
      options.publishMiddleware ?? [],
    );
    this.requester = new Requester(this.endpoint, this.transport, this.clock, (e) => this.emit(e));
    this.deadLetterStore = this.transport.deadLetters ?? options.deadLetterStore ?? memoryDeadLetterStore();
    this.deadLetters = createDeadLetterApi(this.transport, this.deadLetterStore);
    for (const contract of options.contracts ?? []) this.contracts.set(contract.type, contract);
    for (const [type, endpoint] of commandOwners(options.topology)) this.routes.set(type, endpoint);
    for (const [type, endpoint] of Object.entries(options.routes ?? {})) {
      assertQueueName(endpoint, `route of '${type}'`);
      this.routes.set(type, endpoint);
    }
  }

  on(
    target: EventContract | string,
    handler: (data: never, ctx: HandlerContext<never>) => unknown,
    options: SubscriptionOptions = {},
  ): Bus {
    if (typeof target === 'string') assertPattern(target);
    else if (target?.kind !== 'event')
      throw new ConfigurationError(
        `bus.on takes an event contract or a pattern; use bus.handle for commands and requests`,
      );
    const queue = this.subscribe(target, handler, options);
    this.bindings.push({
      queue,
      pattern: typeof target === 'string' ? target : target.type,
      ...(options.headers ? { headers: options.headers } : {}),
    });
    return this;
  }

  handle(
    contract: CommandContract | RequestContract,
    handler: (data: never, ctx: HandlerContext<never>) => unknown,
    options: SubscriptionOptions = {},
  ): Bus {
    if (contract?.kind !== 'command' && contract?.kind !== 'request') {
      throw new ConfigurationError('bus.handle takes a command or request contract; use bus.on for events');
    }
    const queue = this.subscribe(contract, handler, options);
    const owner = this.routes.get(contract.type);
    if (owner !== undefined && owner !== queue && this.options.routes?.[contract.type] !== undefined) {
      throw new ConfigurationError(
        `command '${contract.type}' is routed to '${owner}' but handled on '${queue}'`,
      );
    }
    this.routes.set(contract.type, queue);
    return this;
  }

  saga(saga: Saga<never>, options: SagaRegistration): Bus {
    const definition = saga as unknown as Saga<unknown>;
    if (!(definition instanceof Saga))
      throw new ConfigurationError('bus.saga takes a saga made with defineSaga');
    if (!options?.store) {
      throw new ConfigurationError(
        `saga '${definition.name}' needs a store: memorySagaStore() for tests, transport.sagaStore() on SQLite`,
      );
    }
    const { store } = options;
    const queue = options.queue ?? this.endpoint;
    const subscription = {
      ...(options.queue ? { queue: options.queue } : {}),
      ...(options.retry ? { retry: options.retry } : {}),
    };
    for (const step of definition.steps.values()) {
      const handler = (data: never, ctx: HandlerContext<never>) =>
        runSagaStep(
          definition,
          store,
          queue,
          { key: step.correlate(data), step: step.step, starts: step.starts, data },
          ctx,
        );
      if (step.contract.kind === 'event') this.on(step.contract, handler, subscription);
      else this.handle(step.contract, handler, subscription);
    }
    let sagas = this.sagasByQueue.get(queue);
    if (!sagas) {
      const registered = new Map<string, { saga: Saga<unknown>; store: SagaStore }>();
      sagas = registered;
      this.sagasByQueue.set(queue, registered);
      // One timeout subscription per queue; timeouts are sent straight to the queue, so no binding.
      this.subscribe(
        sagaTimeoutType,
        (data: never, ctx: HandlerContext<never>) => {
          const { saga: name, key, name: timeoutName } = data as { saga: string; key: string; name: string };
          const entry = registered.get(name);
          const timeout = entry?.saga.timeouts.get(timeoutName);
          if (!entry || !timeout)
            return ctx.deadLetter(
              'rejected',
              `no saga '${name}' with timeout '${timeoutName}' on '${queue}'`,
            );
          return runSagaStep(
            entry.saga,
            entry.store,
            queue,
            { key, step: timeout.step, starts: false, data, isTimeout: true },
            ctx,
          );
        },
        subscription,
      );
    }
    if (sagas.has(definition.name))
      throw new ConfigurationError(`saga '${definition.name}' is registered twice on '${queue}'`);
    sagas.set(definition.name, { saga: definition, store });
    return this;
  }

  onBatch(
    contract: EventContract | CommandContract,
    handler: (items: never[]) => unknown,
    options: BatchOptions = {},
  ): Bus {
    const size = positiveInt(options.size ?? 100, 'batch size');
    const maxWaitMs = positiveInt(options.maxWaitMs ?? 50, 'batch maxWaitMs');
    const queue = this.subscribe(contract, handler as never, options, { size, maxWaitMs });
    // A batch can only fill if the broker may hand over that many at once.
    const limits = this.queues.get(queue)!.limits;
    limits.prefetch = Math.max(limits.prefetch, size);
    limits.maxPrefetch = Math.max(limits.maxPrefetch, limits.prefetch);
    if (contract.kind === 'event') this.bindings.push({ queue, pattern: contract.type });
    else this.routes.set(contract.type, queue);
    return this;
  }

  private subscribe(
    target: Contract | string,
    handler: (data: never, ctx: HandlerContext<never>) => unknown,
    options: SubscriptionOptions,
    batch?: Subscription['batch'],
  ): string {
    if (this.state !== 'new')
      throw new ConfigurationError(`bus '${this.endpoint}': register handlers before start()`);
    if (typeof handler !== 'function') throw new ConfigurationError('a handler must be a function');
    const queue = options.queue ?? this.endpoint;
    assertQueueName(queue);
    if (typeof target !== 'string') this.contracts.set(target.type, target);
    if (
      options.onDeadLetter !== undefined &&
      options.onDeadLetter !== 'release' &&
      options.onDeadLetter !== 'park'
    ) {
      throw new ConfigurationError(
        `onDeadLetter must be 'release' or 'park', got ${JSON.stringify(options.onDeadLetter)}`,
      );
    }
    let entry = this.queues.get(queue);
    if (!entry) {
      entry = { subscriptions: [], limits: { ...this.limits } };
      this.queues.set(queue, entry);
    }
    if (
      options.concurrency !== undefined ||
      options.prefetch !== undefined ||
      options.maxPrefetch !== undefined ||
      options.leaseMs !== undefined
    ) {
      if (queue === this.endpoint) {
        throw new ConfigurationError(
          `concurrency, prefetch, maxPrefetch and leaseMs of one handler need a queue of its own: pass { queue: '${this.endpoint}.<name>' } or set them on createBus`,
        );
      }
      const concurrency = positiveInt(options.concurrency ?? entry.limits.concurrency, 'concurrency');
      const prefetch = positiveInt(
        options.prefetch ?? Math.max(entry.limits.prefetch, concurrency),
        'prefetch',
      );
      entry.limits = {
        concurrency,
        prefetch,
        maxPrefetch: maxPrefetchOf(
          options.maxPrefetch,
          prefetch,
          options.prefetch === undefined ? Math.max(prefetch, entry.limits.maxPrefetch) : prefetch,
        ),
        leaseMs: positiveInt(options.leaseMs ?? entry.limits.leaseMs, 'leaseMs'),
      };
    }
    entry.subscriptions.push({
      pattern: typeof target === 'string' ? target : target.type,
      contract: typeof target === 'string' ? undefined : target,
      headers: options.headers,
      handler: handler as Subscription['handler'],
      retry: resolveRetryPolicy(options.retry, this.retry),
      timeoutMs: options.timeoutMs === undefined ? undefined : positiveInt(options.timeoutMs, 'timeoutMs'),
      onDeadLetter: options.onDeadLetter ?? 'release',
      batch,
    });
    return queue;
  }

  publish(contract: EventContract, data: unknown, options: PublishOptions = {}): Promise<Message<never>> {
    try {
      if (contract?.kind !== 'event')
        throw new ConfigurationError('bus.publish takes an event contract; use bus.send for commands');
      return this.produce(contract, data, options, { kind: 'topic' }) as Promise<Message<never>>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  send(contract: CommandContract, data: unknown, options: PublishOptions = {}): Promise<Message<never>> {
    try {
      if (contract?.kind !== 'command')
        throw new ConfigurationError('bus.send takes a command contract; use bus.request for requests');
      return this.produce(contract, data, options, this.routeCommand(contract.type)) as Promise<
        Message<never>
      >;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async request(contract: RequestContract, data: unknown, options: RequestOptions = {}): Promise<never> {
    if (contract?.kind !== 'request') throw new ConfigurationError('bus.request takes a request contract');
    this.assertOpen();
    const timeoutMs = positiveInt(options.timeoutMs ?? this.options.requestTimeoutMs ?? 30_000, 'timeoutMs');
    await this.requester.ensureStarted();
    const to = this.routeCommand(contract.type);
    const { message, item } = await this.producer.prepare(contract, data, {
      options: { ...options, expiresAt: options.expiresAt ?? this.clock.now() + timeoutMs },
      to,
      replyTo: this.requester.replyQueue,
    });
    const reply = this.requester.expect(message.id, contract, timeoutMs);
    try {
      await this.transport.publish([item]);
      if (this.options.observer) this.emit({ kind: 'published', message, to });
    } catch (error) {
      this.requester.cancel(message.id, error);
    }
    return reply as Promise<never>;
  }

  /** Not async: one publish is one promise from the transport, no extra turns (the hot path). Throws for bad input. */
  private produce(
    contract: Contract,
    data: unknown,
    options: PublishOptions,
    to: Destination,
  ): Promise<Message> {
    this.assertOpen();
    const prepared = this.producer.prepareNow(contract, data, { options, to });
    if (prepared instanceof Promise) return prepared.then((ready) => this.store(ready, to));
    return this.store(prepared, to);
  }

  private store({ message, item }: Prepared, to: Destination): Promise<Message> {
    const stored = this.transport.publish([item]);
    if (!this.options.observer) return stored.then(() => message);
    return stored.then(() => {
      this.emit({ kind: 'published', message, to });
      return message;
    });
  }

  private routeCommand = (type: string): Destination => {
    const queue = this.routes.get(type);
    if (queue === undefined) {
      throw new NoRouteError(
        `no endpoint owns command '${type}': handle it with bus.handle() on its owner, or add it to the routes or topology option`,
      );
    }
    return { kind: 'queue', queue };
  };

  start(): Promise<void> {
    this.assertOpen();
    this.startPromise ??= this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<void> {
    this.state = 'starting';
    for (const queue of this.queues.values()) {
      const needsPark = queue.subscriptions.some((s) => s.onDeadLetter === 'park');
      const caps = this.transport.capabilities;
      const missing = (['deadLetter', 'keyOrdering'] as const).filter((c) => caps[c] !== 'native');
      if (needsPark && missing.length > 0) {
        throw new UnsupportedError(
          `onDeadLetter: 'park' needs a native dead-letter queue and key order; transport '${this.transport.name}' lacks: ${missing.join(', ')}`,
        );
      }
    }
    await this.transport.start();
    const declared = toTransportTopology(this.options.topology);
    const queues: QueueSpec[] = [
      ...declared.queues,
      { name: this.endpoint },
      ...[...this.queues.keys()].map((name) => ({ name })),
    ];
    const headerFilter = this.transport.capabilities.headerFilter === 'native';
    // Without native header filters the binding takes every message of the pattern; the consumer filters.
    const bindings = [...declared.bindings, ...this.bindings].map((b) =>
      headerFilter || !b.headers ? b : { queue: b.queue, pattern: b.pattern },
    );
    await this.transport.declare({ queues: uniqueBy(queues, (q) => q.name), bindings });
    // Composed once; each delivery brings its own last step (its handlers). Without middleware the
    // handlers' return comes straight back (a synchronous handler needs no promise); middleware
    // always gets a promise from next().
    const middleware = this.options.middleware ?? [];
    const chain =
      middleware.length === 0
        ? (c: Context) => c.final(c)
        : compose<HandlerContext>(middleware, async (c) => {
            await (c as Context).final(c as Context);
          });
    const runWith = (ctx: Context, last: (ctx: Context) => unknown) => {
      ctx.final = last;
      return chain(ctx);
    };
    for (const [queue, { subscriptions, limits }] of this.queues) {
      const consumer = new QueueConsumer(queue, subscriptions, limits, {
        endpoint: this.endpoint,
        transport: this.transport,
        clock: this.clock,
        producer: this.producer,
        run: runWith,
        contracts: this.contracts,
        routeCommand: this.routeCommand,
        maxMessageBytes: this.maxMessageBytes,
        deadLetterStore: this.deadLetterStore,
        dedupStore: this.options.dedupStore ?? memoryInboxStore(this.clock),
        dedupWindowMs: this.options.dedupWindowMs ?? 600_000,
        random: this.options.random ?? Math.random,
        emit: (e) => this.emit(e),
        observed: this.options.observer !== undefined,
      });
      this.consumers.push(consumer);
      await consumer.start();
    }
    this.state = 'started';
  }

  stop(options: StopOptions = {}): Promise<void> {
    this.stopPromise ??= (async () => {
      const timeoutMs = options.timeoutMs ?? 10_000;
      await this.startPromise?.catch(() => {});
      this.state = 'stopped';
      await Promise.all(this.consumers.map((c) => c.stop(timeoutMs)));
      await this.requester.close();
      await this.transport.close();
    })();
    return this.stopPromise;
  }

  kill(): Promise<void> {
    this.stopPromise ??= (async () => {
      this.state = 'stopped';
      for (const consumer of this.consumers) consumer.kill();
      await this.transport.close({ abandon: true });
    })();
    return this.stopPromise;
  }

  async stats(queue: string = this.endpoint): Promise<QueueStats> {
    const stats = await this.transport.stats(queue);
    if (this.transport.deadLetters) return stats;
    return { ...stats, deadLettered: await this.deadLetterStore.count(queue) };
  }

  private assertOpen(): void {
    if (this.state === 'stopped') throw new ClosedError(`the bus of '${this.endpoint}' is stopped`);
  }

  private emit(event: BusEvent): void {
    try {
      this.options.observer?.(event);
    } catch {
      // An observer's failure must not fail message handling.
    }
  }
}

/**
 * `maxPrefetch` when the application gives neither it nor `prefetch`: the window may grow this far
 * while deliveries settle within milliseconds (docs/performance.md, "a window that grows").
 */
const DEFAULT_MAX_PREFETCH = 512;

/** The queue-level limits a consumer runs with. */
interface QueueLimits {
  concurrency: number;
  prefetch: number;
  maxPrefetch: number;
  leaseMs: number;
}

/** `maxPrefetch` as given (an integer, at least `prefetch`), else `fallback`. */
function maxPrefetchOf(given: number | undefined, prefetch: number, fallback: number): number {
  if (given === undefined) return Math.max(prefetch, fallback);
  const value = positiveInt(given, 'maxPrefetch');
  if (value < prefetch)
    throw new ConfigurationError(`maxPrefetch (${value}) must be at least prefetch (${prefetch})`);
  return value;
}

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new ConfigurationError(`${name} must be an integer >= 1, got ${String(value)}`);
  return value;
}

function uniqueBy<T>(items: readonly T[], key: (item: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const item of items) if (!seen.has(key(item))) seen.set(key(item), item);
  return [...seen.values()];
}
