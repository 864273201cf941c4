import type { HandlerContext, PublishOptions } from './bus-types.js';
import type { Context } from './context.js';
import { ConfigurationError, TransportError } from './errors.js';
import type { AnyStep, Saga, SagaContext } from './saga.js';
import type { SagaStore } from './stores.js';
import type { PublishItem } from './transport.js';
import { copyEnvelope } from './wire.js';

/** Type of the message that carries a saga timeout to its instance. */
export const sagaTimeoutType = 'courier.saga-timeout';

/** What a saga instance's record holds besides the user's state. */
interface StoredInstance {
  readonly state: unknown;
  readonly completed: boolean;
  /**
   * The last messages applied, with the output each produced. A message applied whose ack was lost
   * (crash between save and ack) is not applied again on redelivery: its output is sent again
   * instead, with the same ids, for dedup to catch.
   */
  readonly applied: readonly (readonly [messageId: string, output: SerializedItem[]])[];
}

interface SerializedItem {
  readonly envelope: Omit<PublishItem['envelope'], 'body'> & { readonly body: string };
  readonly to: PublishItem['to'];
  readonly dropIfNoQueue?: boolean;
}

/** How many applied message ids an instance remembers. */
const appliedWindow = 32;
/** How often a step is redone after losing a save race, before the message goes back to the retry policy. */
const maxConflictRetries = 25;

/** A store that can save inside the application's transaction (the SQLite one). */
interface TransactionalSagaStore extends SagaStore {
  saveIn(saga: string, key: string, state: unknown, expectedVersion: number): boolean;
}

const conflict = Symbol('saga save conflict');

/** The instance and step one message runs. */
export interface SagaTarget {
  readonly key: string;
  readonly step: AnyStep;
  readonly starts: boolean;
  readonly data: unknown;
  /** Timeouts of instances that are gone are dropped whatever `onMissing` says. */
  readonly isTimeout?: boolean;
}

/**
 * Runs one saga step for one message: load the instance, run the step, save the new state with the
 * version it read, and hold the step's output for the ack. Of two messages racing for one instance,
 * the loser runs again on the winner's state. On a transport that is also the store's database
 * (SQLite), state, output and ack commit in one transaction; elsewhere the instance remembers what it
 * applied, so a redelivery after a crash between save and ack resends the output instead of
 * applying the message twice.
 */
export async function runSagaStep(
  saga: Saga<unknown>,
  store: SagaStore,
  queue: string,
  target: SagaTarget,
  handlerContext: HandlerContext,
): Promise<void> {
  const ctx = handlerContext as Context;
  const atomic = ctx.canTransact() && typeof (store as Partial<TransactionalSagaStore>).saveIn === 'function';
  for (let tries = 0; ; tries++) {
    const mark = ctx.checkpoint();
    const record = await store.load(saga.name, target.key);
    const stored = record?.state as StoredInstance | undefined;
    const earlier = stored?.applied.find(([id]) => id === ctx.id);
    if (earlier) {
      for (const item of earlier[1]) ctx.outgoing.push(deserialize(item));
      return;
    }
    if (stored?.completed) return;
    if (!stored && !target.starts) {
      if (saga.onMissing === 'dead-letter' && !target.isTimeout) {
        ctx.deadLetter(
          'saga-missing',
          `no '${saga.name}' instance for key '${target.key}', and '${ctx.type}' does not start one`,
        );
      }
      return;
    }
    let completed = false;
    const state = stored ? stored.state : saga.initial(target.data as never);
    const next = await target.step(
      state as never,
      target.data as never,
      sagaContext(ctx, saga, queue, target.key, () => {
        completed = true;
      }),
    );
    const output = ctx.outgoing.slice(mark.length);
    const instance: StoredInstance = {
      state: next,
      completed,
      applied: [
        ...(stored?.applied ?? []).slice(1 - appliedWindow),
        [ctx.id, atomic ? [] : output.map(serialize)],
      ],
    };
    const expected = record?.version ?? 0;
    let saved: boolean;
    if (atomic) {
      try {
        ctx.transact(() => {
          if (!(store as TransactionalSagaStore).saveIn(saga.name, target.key, instance, expected))
            throw conflict;
        });
        saved = true;
      } catch (error) {
        if (error !== conflict) throw error;
        saved = false;
      }
    } else {
      saved = await store.save(saga.name, target.key, instance, expected);
    }
    if (saved) return;
    ctx.rollback(mark);
    if (tries >= maxConflictRetries) {
      throw new TransportError(
        `saga '${saga.name}' instance '${target.key}': lost ${tries + 1} save races in a row`,
      );
    }
  }
}

function sagaContext(
  ctx: Context,
  saga: Saga<unknown>,
  queue: string,
  key: string,
  complete: () => void,
): SagaContext {
  const extra = {
    sagaKey: key,
    schedule(name: string, delayMs: number, options: Pick<PublishOptions, 'headers'> = {}): Promise<void> {
      if (!saga.timeouts.has(name)) {
        throw new ConfigurationError(
          `saga '${saga.name}' has no timeout '${name}': define it with .onTimeout('${name}', ...)`,
        );
      }
      return ctx.holdForQueue(
        queue,
        sagaTimeoutType,
        { saga: saga.name, key, name },
        { ...options, delayMs },
      );
    },
    complete,
  };
  // The step sees the handler context with the saga's additions on top. Everything else is read from
  // (and methods run on) the real context, so output indexes and flags stay in one place.
  return new Proxy(ctx, {
    get(target, property) {
      if (Object.hasOwn(extra, property)) return extra[property as keyof typeof extra];
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as unknown as SagaContext;
}

function serialize(item: PublishItem): SerializedItem {
  // bodyText is left out: it repeats the body, which is stored once.
  // Field by field first: a body may be a getter, which a rest pattern leaves out.
  const { body, bodyText: _repeatsBody, ...envelope } = copyEnvelope(item.envelope);
  return {
    envelope: { ...envelope, body: Buffer.from(body).toString('base64') },
    to: item.to,
    ...(item.dropIfNoQueue ? { dropIfNoQueue: true } : {}),
  };
}

function deserialize(item: SerializedItem): PublishItem {
  return {
    envelope: { ...item.envelope, body: new Uint8Array(Buffer.from(item.envelope.body, 'base64')) },
    to: item.to,
    ...(item.dropIfNoQueue ? { dropIfNoQueue: true } : {}),
  };
}
