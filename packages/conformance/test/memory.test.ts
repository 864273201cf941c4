import type { SwitchableCapability } from '@courier/memory';
import { MemoryBroker, MemoryTransport } from '@courier/memory';
import { FakeClock } from '@courier/testkit';
import { runTransportSuite } from '../src/index.js';

const all: SwitchableCapability[] = ['delay', 'priority', 'keyOrdering', 'dedup', 'deadLetter', 'ttl'];
const variants: SwitchableCapability[][] = [[], ...all.map((c) => [c]), all];

for (const disable of variants) {
  runTransportSuite({
    name: disable.length === 0 ? 'memory' : `memory without ${disable.join(', ')}`,
    create: async () => {
      const clock = new FakeClock();
      const broker = new MemoryBroker({ clock, disable });
      return {
        connect: () => new MemoryTransport(broker),
        clock,
        advance: (ms) => clock.advance(ms),
        dispose: async () => {},
      };
    },
  });
}
