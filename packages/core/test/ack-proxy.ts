/** A transport whose deliveries settle their ack another way, for tests of what the bus does then. */
import type { Delivery, Transport } from '../src/transport.js';

/**
 * `inner` with every delivery's `ack` replaced by `ack(delivery, outgoing)` (which may call the
 * delivery's own); everything else goes to `inner` itself (a transport may keep private fields).
 */
export function withAck(
  inner: Transport,
  ack: (delivery: Delivery, outgoing?: Parameters<Delivery['ack']>[0]) => Promise<boolean>,
): Transport {
  const consume: Transport['consume'] = (queue, options, onDelivery) =>
    inner.consume(queue, options, (delivery) => {
      const wrapped = new Proxy(delivery, {
        get: (target, name) => {
          if (name === 'ack') return (outgoing?: Parameters<Delivery['ack']>[0]) => ack(target, outgoing);
          const value = Reflect.get(target, name, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      onDelivery(wrapped);
    });
  return new Proxy(inner, {
    get: (target, name) => {
      if (name === 'consume') return consume;
      const value = Reflect.get(target, name, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
