/**
 * The conformance suite (DESIGN.md §3): one parameterised set of `node:test` cases that proves the
 * promises of DESIGN.md §2 on a transport, through the public Bus API. Every transport package runs
 * it with a fixture of its own:
 *
 * @example
 * runTransportSuite({ name: 'memory', create: async () => { const clock = new FakeClock(); ... } });
 */
import { describe } from 'node:test';
import { crashCases } from './cases/crashes.js';
import { deadLetterCases } from './cases/dead-letters.js';
import { deliveryCases } from './cases/delivery.js';
import { lifecycleCases } from './cases/lifecycle.js';
import { orderingCases } from './cases/ordering.js';
import { recoverabilityCases } from './cases/recoverability.js';
import { requestReplyCases } from './cases/request-reply.js';
import { routingCases } from './cases/routing.js';
import { timeCases } from './cases/time.js';
import type { TransportSuiteOptions } from './types.js';

export type { CreateFixture, TransportFixture, TransportSuiteOptions } from './types.js';

/** Registers `describe(options.name)` with every conformance case; each case gets a fresh fixture. */
export function runTransportSuite(options: TransportSuiteOptions): void {
  describe(options.name, () => {
    describe('routing and topology', () => routingCases(options.create));
    describe('delivery', () => deliveryCases(options.create));
    describe('recoverability and handler output', () => recoverabilityCases(options.create));
    describe('crashes, leases and stops', () => crashCases(options.create));
    describe('dead letters', () => deadLetterCases(options.create));
    describe('ordering', () => orderingCases(options.create));
    describe('time and dedup', () => timeCases(options.create));
    describe('request/reply', () => requestReplyCases(options.create));
    describe('lifecycle, limits and versions', () => lifecycleCases(options.create));
  });
}
