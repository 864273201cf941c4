/**
 * What the child processes of the multi-process tests share: the contract, the topology built from
 * a list of endpoints, a wall clock common to all processes, and the IPC plumbing on the child side.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { defineEvent, defineTopology } from '@courier/core';
import { z } from 'zod';

export const Tick = defineEvent(
  'mp.tick',
  z.object({ producer: z.string(), n: z.number().int(), sentAt: z.number() }),
);

/** Every endpoint in `endpoints` takes every `Tick`: each process declares the whole topology. */
export function tickTopology(endpoints: readonly string[]) {
  return defineTopology({
    endpoints: Object.fromEntries(endpoints.map((endpoint) => [endpoint, { events: [Tick] }])),
  });
}

/** Epoch ms with sub-millisecond resolution, comparable across processes on one machine. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

export type ParentMessage =
  | { kind: 'go' }
  | { kind: 'count' }
  | { kind: 'report' }
  | { kind: 'measure-idle'; ms: number }
  | { kind: 'stop' };

export type ChildMessage =
  | { kind: 'ready'; pid: number }
  | { kind: 'count'; handled: number; errors: number }
  | {
      kind: 'report';
      handled: string[];
      /** Handler start on the shared wall clock, per handled message. */
      startedAt: number[];
      /** Handler start minus the Tick's `sentAt`, per handled message. */
      latenciesMs: number[];
      errors: string[];
    }
  | { kind: 'idle'; cpuMs: number; wallMs: number }
  | {
      kind: 'done';
      resolved: number[];
      rejected: string[];
      /** How long each resolved publish took, from its `sentAt` stamp to its resolve, in ms. */
      publishMs: number[];
    };

/** The config a child takes as its one argument, as JSON. */
export function childConfig<T>(): T {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error('usage: <script> <config as JSON>');
  return JSON.parse(raw) as T;
}

export function toParent(message: ChildMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error('no IPC channel: spawn me with an ipc stdio slot'));
    process.send(message, (error: Error | null) => (error ? reject(error) : resolve()));
  });
}

export function onParent(listener: (message: ParentMessage) => void): void {
  process.on('message', (message) => listener(message as ParentMessage));
  // The parent went away (test ended or crashed): do not linger.
  process.on('disconnect', () => process.exit(0));
}

export { sleep };
