import type { BusEvent } from './bus-types.js';
import type { Clock, TimerHandle } from './clock.js';
import { faultType, replyType } from './context.js';
import type { RequestContract } from './contracts.js';
import { validate } from './contracts.js';
import { ClosedError, RemoteError, TimeoutError } from './errors.js';
import { newMessageId } from './ids.js';
import type { ConsumerHandle, Transport } from './transport.js';
import { decodeEnvelope } from './wire.js';

interface Pending {
  readonly contract: RequestContract;
  readonly resolve: (reply: unknown) => void;
  readonly reject: (error: unknown) => void;
  readonly timer: TimerHandle;
}

/**
 * The requester's side of request/reply (DESIGN.md §2.11): one temporary reply queue per bus,
 * replies matched to requests by their causation id (a reply is caused by its request). Late and
 * duplicate replies find no pending request and are dropped.
 */
export class Requester {
  readonly replyQueue: string;
  private readonly pending = new Map<string, Pending>();
  private started: Promise<ConsumerHandle> | undefined;

  constructor(
    endpoint: string,
    private readonly transport: Transport,
    private readonly clock: Clock,
    private readonly emit: (event: BusEvent) => void,
  ) {
    this.replyQueue = `${endpoint}.reply.${newMessageId().slice(-12)}`;
  }

  /** Declares and consumes the reply queue on first use. */
  ensureStarted(): Promise<ConsumerHandle> {
    this.started ??= (async () => {
      await this.transport.declare({ queues: [{ name: this.replyQueue, temporary: true }], bindings: [] });
      return this.transport.consume(this.replyQueue, { prefetch: 256, leaseMs: 30_000 }, (delivery) => {
        void delivery.ack().then(
          () => this.onReply(delivery.envelope),
          (error) => this.emit({ kind: 'error', error, queue: this.replyQueue }),
        );
      });
    })();
    return this.started;
  }

  /** Registers a request before it is sent; resolves with its reply or rejects on timeout or fault. */
  expect(requestId: string, contract: RequestContract, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.pending.delete(requestId);
        reject(
          new TimeoutError(
            `request '${contract.type}' (${requestId}) got no reply within ${timeoutMs} ms; it may still run`,
          ),
        );
      }, timeoutMs);
      this.pending.set(requestId, { contract, resolve, reject, timer });
    });
  }

  cancel(requestId: string, error: unknown): void {
    const pending = this.pending.get(requestId);
    if (!pending) return;
    this.pending.delete(requestId);
    this.clock.clearTimeout(pending.timer);
    pending.reject(error);
  }

  private async onReply(envelope: Parameters<typeof decodeEnvelope>[0]): Promise<void> {
    let message: ReturnType<typeof decodeEnvelope>;
    try {
      message = decodeEnvelope(envelope);
    } catch (error) {
      this.emit({ kind: 'error', error, queue: this.replyQueue });
      return;
    }
    const requestId = message.causationId;
    const pending = requestId === undefined ? undefined : this.pending.get(requestId);
    if (!pending) return;
    this.pending.delete(requestId!);
    this.clock.clearTimeout(pending.timer);
    if (message.type === faultType) {
      const fault = (message.data ?? {}) as { name?: string; code?: string; message?: string };
      pending.reject(
        new RemoteError(fault.name ?? 'Error', fault.code, fault.message ?? 'the request failed'),
      );
    } else if (message.type === replyType) {
      try {
        pending.resolve(
          await validate(pending.contract.replySchema, message.data, `reply to '${pending.contract.type}'`),
        );
      } catch (error) {
        pending.reject(error);
      }
    }
  }

  /** Rejects every waiting request (bus stopping) and stops consuming replies. */
  async close(): Promise<void> {
    for (const id of [...this.pending.keys()])
      this.cancel(id, new ClosedError('the bus stopped before the reply came'));
    const handle = await this.started?.catch(() => undefined);
    await handle?.stop();
  }
}
