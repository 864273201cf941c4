import type { Clock, Transport } from '@courier/core';

/**
 * What a transport package hands the conformance suite: a way to open connections to one broker
 * (or one storage), the clock that broker runs on, and a way to let time pass.
 */
export interface TransportFixture {
  /** A new connection to the same broker/storage, standing in for another process. */
  connect(): Transport | Promise<Transport>;
  /** The clock the transport's leases and schedules use; the suite passes it to buses as `clock`. */
  readonly clock: Clock;
  /** Let time pass: a FakeClock advance, or a real sleep. */
  advance(ms: number): Promise<void>;
  /** Release everything the fixture holds (files, server-side names, connections). */
  dispose(): Promise<void>;
}

/** Options of `runTransportSuite`. */
export interface TransportSuiteOptions {
  /** Name of the `describe` block, e.g. `memory` or `sqlite (synchronous=FULL)`. */
  readonly name: string;
  /** A fresh fixture per case. */
  readonly create: () => Promise<TransportFixture>;
}

/** Makes a fresh fixture for one case. */
export type CreateFixture = TransportSuiteOptions['create'];
