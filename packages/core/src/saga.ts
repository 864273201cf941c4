import type { HandlerContext, PublishOptions } from './bus-types.js';
import type { CommandContract, DataOf, EventContract } from './contracts.js';
import { ConfigurationError } from './errors.js';
import { assertQueueName } from './names.js';

/** The handler context of a saga step: the usual one plus the instance's key, timeouts and completion. */
export interface SagaContext extends HandlerContext<unknown> {
  /** The correlation key of this saga instance. */
  readonly sagaKey: string;
  /**
   * Deliver the timeout `name` to this instance after `delayMs` (held with the step's other output).
   * Once the instance completes, its pending timeouts are dropped when they arrive.
   */
  schedule(name: string, delayMs: number, options?: Pick<PublishOptions, 'headers'>): Promise<void>;
  /** End the instance after this step: its state is archived and later messages for it are ignored. */
  complete(): void;
}

/** A step: the current state and the message's data in, the next state out. Output goes through `ctx`. */
export type SagaStep<TState, TData> = (
  state: TState,
  data: TData,
  ctx: SagaContext,
) => TState | Promise<TState>;

/** For `describeSaga`: which states a step moves the instance between. */
export interface Transition {
  readonly from?: string | readonly string[];
  readonly to: string | readonly string[];
}

/** How a saga treats a message for an instance that does not exist and that does not start one. */
export type OnMissingInstance = 'ignore' | 'dead-letter';

/** A step with its types erased, as the runtime stores it. */
export type AnyStep = (state: never, data: never, ctx: SagaContext) => unknown;

/** A registered step, as the runtime keeps it. */
export interface SagaStepDefinition {
  readonly contract: EventContract | CommandContract;
  readonly correlate: (data: never) => string;
  readonly step: AnyStep;
  readonly starts: boolean;
  readonly transition?: Transition | undefined;
}

/** A registered timeout step. */
export interface SagaTimeoutDefinition {
  readonly name: string;
  readonly step: AnyStep;
  readonly transition?: Transition | undefined;
}

/** Options of `defineSaga`. */
export interface SagaOptions<TState> {
  /** The saga's name: stored state is keyed by it. Its messages come through the endpoint's queue unless `bus.saga` is given another. */
  name: string;
  /** State of a new instance, made from the message that starts it. */
  initial: (data: never) => TState;
  /** A message for no instance that does not start one: `ignore` (ack, default) or `dead-letter` (reason `saga-missing`). */
  onMissing?: OnMissingInstance;
  /** Name of the first state, for `describeSaga` (default `initial`). */
  initialStateName?: string;
  /** States the instance ends in, for `describeSaga` (a `from: '*'` transition does not leave them). */
  finalStates?: readonly string[];
}

/**
 * A saga (process manager): durable state per correlation key, reacting to messages with commands
 * and events, with timeouts and completion. Build one with `defineSaga`, register it with `bus.saga`.
 */
export class Saga<TState> {
  readonly name: string;
  readonly onMissing: OnMissingInstance;
  readonly initialStateName: string;
  readonly finalStates: readonly string[];
  readonly initial: (data: never) => TState;
  readonly steps = new Map<string, SagaStepDefinition>();
  readonly timeouts = new Map<string, SagaTimeoutDefinition>();

  constructor(options: SagaOptions<TState>) {
    assertQueueName(options.name, 'saga name');
    if (typeof options.initial !== 'function')
      throw new ConfigurationError(`saga '${options.name}': initial must be a function`);
    if (
      options.onMissing !== undefined &&
      options.onMissing !== 'ignore' &&
      options.onMissing !== 'dead-letter'
    ) {
      throw new ConfigurationError(`saga '${options.name}': onMissing must be 'ignore' or 'dead-letter'`);
    }
    this.name = options.name;
    this.initial = options.initial;
    this.onMissing = options.onMissing ?? 'ignore';
    this.initialStateName = options.initialStateName ?? 'initial';
    this.finalStates = options.finalStates ?? [];
  }

  /** A message that creates the instance when there is none (and is handled like `on` when there is). */
  startedBy<C extends EventContract | CommandContract>(
    contract: C,
    correlate: (data: DataOf<C>) => string,
    step: SagaStep<TState, DataOf<C>>,
    transition?: Transition,
  ): this {
    return this.add(
      contract,
      correlate as (data: never) => string,
      step as unknown as AnyStep,
      true,
      transition,
    );
  }

  /** A message for an existing instance. */
  on<C extends EventContract | CommandContract>(
    contract: C,
    correlate: (data: DataOf<C>) => string,
    step: SagaStep<TState, DataOf<C>>,
    transition?: Transition,
  ): this {
    return this.add(
      contract,
      correlate as (data: never) => string,
      step as unknown as AnyStep,
      false,
      transition,
    );
  }

  /** What happens when the timeout `name` (scheduled with `ctx.schedule`) arrives. */
  onTimeout(name: string, step: SagaStep<TState, unknown>, transition?: Transition): this {
    if (this.timeouts.has(name))
      throw new ConfigurationError(`saga '${this.name}': timeout '${name}' is defined twice`);
    this.timeouts.set(name, { name, step: step as unknown as AnyStep, transition });
    return this;
  }

  private add(
    contract: EventContract | CommandContract,
    correlate: (data: never) => string,
    step: AnyStep,
    starts: boolean,
    transition: Transition | undefined,
  ): this {
    if (contract?.kind !== 'event' && contract?.kind !== 'command') {
      throw new ConfigurationError(`saga '${this.name}': steps take event or command contracts`);
    }
    if (this.steps.has(contract.type))
      throw new ConfigurationError(`saga '${this.name}': '${contract.type}' has two steps`);
    if (typeof correlate !== 'function' || typeof step !== 'function') {
      throw new ConfigurationError(
        `saga '${this.name}': '${contract.type}' needs a correlate function and a step function`,
      );
    }
    this.steps.set(contract.type, { contract, correlate, step, starts, transition });
    return this;
  }
}

/**
 * Starts a saga definition; add its steps with `startedBy`, `on` and `onTimeout`.
 * @example
 * const OrderSaga = defineSaga<OrderState>({ name: 'order-saga', initial: () => ({ status: 'placed' }) })
 *   .startedBy(OrderPlaced, (o) => o.orderId, async (state, o, ctx) => {
 *     await ctx.send(ReserveStock, { orderId: o.orderId, items: o.items });
 *     await ctx.schedule('give-up', 30_000);
 *     return { ...state, status: 'reserving' };
 *   }, { from: 'placed', to: 'reserving' });
 */
export function defineSaga<TState>(options: SagaOptions<TState>): Saga<TState> {
  return new Saga(options);
}

/** States and transitions of a saga, from the `transition` annotations of its steps. */
export interface SagaDescription {
  readonly name: string;
  readonly states: readonly string[];
  readonly finalStates: readonly string[];
  readonly transitions: readonly { readonly from: string; readonly to: string; readonly on: string }[];
}

/** Describes a saga's states and transitions, for docs and diagrams that cannot drift from the code. */
export function describeSaga(saga: Saga<unknown>): SagaDescription {
  const transitions: { from: string; to: string; on: string }[] = [];
  const states = new Set<string>([saga.initialStateName]);
  const list = (value: string | readonly string[] | undefined, fallback: string[]) =>
    value === undefined ? fallback : typeof value === 'string' ? [value] : [...value];
  const add = (on: string, transition: Transition | undefined, starts: boolean) => {
    if (!transition) return;
    for (const from of list(transition.from, starts ? [saga.initialStateName] : ['*'])) {
      for (const to of list(transition.to, [])) {
        if (from !== '*') states.add(from);
        states.add(to);
        transitions.push({ from, to, on });
      }
    }
  };
  for (const [type, step] of saga.steps) add(type, step.transition, step.starts);
  for (const [name, timeout] of saga.timeouts) add(`timeout: ${name}`, timeout.transition, false);
  for (const state of saga.finalStates) states.add(state);
  return { name: saga.name, states: [...states], finalStates: saga.finalStates, transitions };
}

/** A Mermaid state diagram of `describeSaga`'s result. `*` as a source means "from any state". */
export function sagaToMermaid(description: SagaDescription): string {
  const id = (state: string) => state.replace(/[^A-Za-z0-9_]/g, '_');
  const lines = ['stateDiagram-v2', `  [*] --> ${id(description.states[0]!)}`];
  for (const { from, to, on } of description.transitions) {
    const sources =
      from === '*' ? description.states.filter((s) => s !== to && !isFinal(description, s)) : [from];
    for (const source of sources) lines.push(`  ${id(source)} --> ${id(to)}: ${on}`);
  }
  for (const state of description.states)
    if (isFinal(description, state)) lines.push(`  ${id(state)} --> [*]`);
  return lines.join('\n');
}

function isFinal(description: SagaDescription, state: string): boolean {
  return description.finalStates.includes(state);
}
