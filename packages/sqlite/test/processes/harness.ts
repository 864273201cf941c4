/**
 * The parent's side of the multi-process tests: spawn a child script under tsx with an IPC channel,
 * wait for its messages, and kill whatever is still running when the test ends.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ChildMessage, ParentMessage } from './shared.js';

export type ChildScript = 'consumer' | 'producer' | 'lock-holder';

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** The next message of this kind (or one already received and not yet taken). */
  next<K extends ChildMessage['kind']>(
    kind: K,
    timeoutMs?: number,
  ): Promise<Extract<ChildMessage, { kind: K }>>;
  /** Sends `message` and waits for the reply of kind `reply`. */
  ask<K extends ChildMessage['kind']>(
    message: ParentMessage,
    reply: K,
    timeoutMs?: number,
  ): Promise<Extract<ChildMessage, { kind: K }>>;
  send(message: ParentMessage): void;
  /** Resolves with the exit code (or signal) once the child exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  /** What the child wrote to stderr and stdout (last 20,000 characters). */
  output(): string;
}

export class Children {
  private readonly all: Child[] = [];

  spawn(script: ChildScript, name: string, config: unknown): Child {
    const path = fileURLToPath(new URL(`./${script}.ts`, import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', path, JSON.stringify(config)], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const inbox: ChildMessage[] = [];
    const waiters: { kind: string; resolve: (m: ChildMessage) => void }[] = [];
    // A send racing the child's exit: the exit is what the test reports.
    child.on('error', (error) => keep(Buffer.from(`\n[child error] ${String(error)}\n`)));
    child.on('message', (raw) => {
      const message = raw as ChildMessage;
      const i = waiters.findIndex((w) => w.kind === message.kind);
      if (i >= 0) waiters.splice(i, 1)[0]!.resolve(message);
      else inbox.push(message);
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    const handle: Child = {
      name,
      process: child,
      exited,
      alive: () => child.exitCode === null && child.signalCode === null,
      output: () => output,
      send: (message) => {
        if (child.connected) child.send(message);
      },
      next: (kind, timeoutMs = 60_000) => {
        const i = inbox.findIndex((m) => m.kind === kind);
        if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0] as never);
        return new Promise((resolve, reject) => {
          const waiter = {
            kind,
            resolve: (m: ChildMessage) => {
              clearTimeout(timer);
              resolve(m as never);
            },
          };
          const timer = setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1);
            reject(new Error(`${name}: no '${kind}' message within ${timeoutMs} ms\n${output}`));
          }, timeoutMs);
          waiters.push(waiter);
          // A child that dies never answers: fail now, with what it printed.
          void exited.then(({ code, signal }) => {
            if (!waiters.includes(waiter)) return;
            waiters.splice(waiters.indexOf(waiter), 1);
            clearTimeout(timer);
            reject(new Error(`${name} exited (code ${code}, signal ${signal}) before '${kind}':\n${output}`));
          });
        });
      },
      ask: (message, reply, timeoutMs) => {
        const answer = handle.next(reply, timeoutMs);
        handle.send(message);
        return answer;
      },
    };
    this.all.push(handle);
    return handle;
  }

  /** SIGKILLs every child still running and waits for each to exit. */
  async killAll(): Promise<void> {
    await Promise.all(
      this.all.map(async (child) => {
        if (child.alive()) child.process.kill('SIGKILL');
        await child.exited;
      }),
    );
  }

  /** Asks each consumer to stop gracefully; any that does not exit in time is killed. */
  async stop(children: readonly Child[], timeoutMs = 10_000): Promise<void> {
    await Promise.all(
      children.map(async (child) => {
        if (!child.alive()) return;
        child.send({ kind: 'stop' });
        const timer = setTimeout(() => child.process.kill('SIGKILL'), timeoutMs);
        await child.exited;
        clearTimeout(timer);
      }),
    );
  }
}

/** The value at quantile `q` (0..1) of `values` (nearest rank). */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
