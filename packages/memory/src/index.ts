export type { MemoryBrokerOptions, SwitchableCapability } from './broker.js';
export { MemoryBroker } from './broker.js';
export { MemoryTransport, memory } from './transport.js';
