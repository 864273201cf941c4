/** Test helpers for Courier applications and transports. */
export { FakeClock, settle } from './fake-clock.js';
