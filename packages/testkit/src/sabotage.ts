import type {
  ConsumerHandle,
  DeadLetterInfo,
  Delivery,
  Envelope,
  PublishItem,
  QueueStats,
  Topology,
  Transport,
} from '@courier/core';
import { copyEnvelope } from '@courier/core';

/**
 * Ways to break a transport on purpose (DESIGN.md §3). The conformance suite must catch each one;
 * a test runs the suite against every kind and expects failures.
 */
export const sabotageKinds = [
  'ack-before-output',
  'drop-on-restart',
  'reorder-key',
  'ignore-priority',
  'forget-attempts',
  'redeliver-to-topic',
] as const;
/** One way of breaking a transport on purpose. */
export type SabotageKind = (typeof sabotageKinds)[number];

const stashedKey = 'x-sabotage-key';
const stashedPriority = 'x-sabotage-priority';

/** Shared by the connections of one broker, so "restart" can be told from a first start. */
export interface SabotageState {
  connections: number;
}

/**
 * Wraps `transport` so it breaks one promise:
 * - `ack-before-output`: acks first and stores the handler's output afterwards, dropping it if that fails;
 * - `drop-on-restart`: every connection after the first silently acks its first delivery (a lost message);
 * - `reorder-key`: hides keys from the broker, so same-key messages run at once and out of order;
 * - `ignore-priority`: hides priorities from the broker;
 * - `forget-attempts`: reports every delivery as attempt 1;
 * - `redeliver-to-topic`: dead-letter replays go through the topic (every subscriber gets a copy) instead of the queue.
 */
export function sabotage(transport: Transport, kind: SabotageKind, state: SabotageState): Transport {
  const connection = ++state.connections;
  let droppedOne = false;

  const hide = (envelope: Envelope): Envelope => {
    if (kind === 'reorder-key' && envelope.key !== undefined) {
      return copyEnvelope(envelope, {
        key: undefined,
        headers: { ...envelope.headers, [stashedKey]: envelope.key },
      });
    }
    if (kind === 'ignore-priority' && envelope.priority !== undefined) {
      return copyEnvelope(envelope, {
        priority: undefined,
        headers: { ...envelope.headers, [stashedPriority]: String(envelope.priority) },
      });
    }
    return envelope;
  };
  const restore = (envelope: Envelope): Envelope => {
    const { [stashedKey]: key, [stashedPriority]: priority, ...headers } = envelope.headers;
    if (key === undefined && priority === undefined) return envelope;
    return copyEnvelope(envelope, {
      headers,
      ...(key !== undefined ? { key } : {}),
      ...(priority !== undefined ? { priority: Number(priority) } : {}),
    });
  };
  const rewrite = (items: readonly PublishItem[]): PublishItem[] =>
    items.map((item) => ({
      ...item,
      envelope: hide(item.envelope),
      to: kind === 'redeliver-to-topic' && item.bypassDedup ? { kind: 'topic' } : item.to,
    }));

  const wrapDelivery = (delivery: Delivery): Delivery => ({
    envelope: restore(delivery.envelope),
    queue: delivery.queue,
    attempt: kind === 'forget-attempts' ? 1 : delivery.attempt,
    ack: async (outgoing = []) => {
      if (kind !== 'ack-before-output') return delivery.ack(rewrite(outgoing));
      const acked = await delivery.ack();
      await transport.publish(rewrite(outgoing)).catch(() => {});
      return acked;
    },
    retry: (delayMs) => delivery.retry(delayMs),
    defer: (untilMs) => delivery.defer(untilMs),
    deadLetter: (info: DeadLetterInfo) => delivery.deadLetter(info),
    release: () => delivery.release(),
    extendLease: (ms) => delivery.extendLease(ms),
  });

  return {
    name: `${transport.name}+${kind}`,
    durability: transport.durability,
    capabilities: transport.capabilities,
    maxMessageBytes: transport.maxMessageBytes,
    deadLetters: transport.deadLetters,
    now: () => transport.now(),
    start: () => transport.start(),
    declare: (topology: Topology) => transport.declare(topology),
    publish: (items) => transport.publish(rewrite(items)),
    consume: (queue, options, onDelivery): Promise<ConsumerHandle> =>
      transport.consume(queue, options, (delivery) => {
        if (kind === 'drop-on-restart' && connection > 1 && !droppedOne && !queue.includes('.reply.')) {
          droppedOne = true;
          void delivery.ack();
          return;
        }
        onDelivery(wrapDelivery(delivery));
      }),
    stats: (queue): Promise<QueueStats> => transport.stats(queue),
    close: (options) => transport.close(options),
  };
}
