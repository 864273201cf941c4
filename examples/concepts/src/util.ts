/** Shared by the concept examples: where they print, how they wait, how they run on their own. */
import { pathToFileURL } from 'node:url';
import type { Bus } from '@courier/core';
import type { FakeClock } from '@courier/testkit';

/** Where an example prints what happened: `console.log` when run, an array in the test. */
export type Log = (line: string) => void;

/** Polls `check` until it holds; fails after `timeoutMs` of real time so a broken example cannot hang. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('the example did not finish in time');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** True when `queue` holds nothing ready, in flight or scheduled: the bus has nothing left to do there. */
export async function drained(bus: Bus, queue: string = bus.endpoint): Promise<boolean> {
  const stats = await bus.stats(queue);
  return stats.depth + stats.inFlight + stats.scheduled === 0;
}

/** Moves a fake clock in small steps, so the work each timer starts finishes before the next one fires. */
export async function advance(clock: FakeClock, ms: number, stepMs = 100): Promise<void> {
  for (let passed = 0; passed < ms; passed += stepMs) await clock.advance(Math.min(stepMs, ms - passed));
}

/** Runs `main` when the file is run directly (`node --import tsx examples/concepts/src/retries.ts`). */
export async function runIfMain(moduleUrl: string, main: (log: Log) => Promise<void>): Promise<void> {
  const script = process.argv[1];
  if (script !== undefined && moduleUrl === pathToFileURL(script).href) await main(console.log);
}
