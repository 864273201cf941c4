/** Test helpers for Courier applications and transports. */
export { FakeClock, settle } from './fake-clock.js';
export type { BusEventKind, BusEventOf, Harness, QueueInspection, WaitForOptions } from './harness.js';
export { createHarness, inspectQueue } from './harness.js';
export type { SabotageKind, SabotageState } from './sabotage.js';
export { sabotage, sabotageKinds } from './sabotage.js';
