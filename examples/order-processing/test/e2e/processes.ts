/**
 * The services as real processes for the end-to-end tests: each one is `courier serve <service>` on
 * the test's broker file, its output kept (and shown when a test fails), killable and restartable.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const launcher = fileURLToPath(new URL('../../../../packages/cli/bin/courier.mjs', import.meta.url));

export type ServiceName = 'order' | 'inventory' | 'payment' | 'notification' | 'saga';

export class ServiceProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** The current child's exit is ours (a signal we sent). */
  private expecting = false;
  /** The order service's API, once started. */
  url = '';
  /** Times started (1 after the first start). */
  starts = 0;
  /** Exits we did not cause. */
  readonly crashes: string[] = [];

  constructor(
    readonly name: ServiceName,
    private readonly dbPath: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly log: (line: string) => void,
  ) {}

  get running(): boolean {
    return this.child !== undefined;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Spawns the service and resolves once it consumes (and, for `order`, listens). */
  async start(timeoutMs = 30_000): Promise<void> {
    if (this.child) throw new Error(`${this.name} is running already`);
    this.starts++;
    const child = spawn(
      process.execPath,
      [launcher, 'serve', this.name, '--db', this.dbPath, '--port', '0'],
      {
        env: { ...process.env, ...this.env },
        // The IPC channel: `serve` reports ready through it, and stops if this process dies.
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      },
    );
    this.child = child;
    this.expecting = false;
    for (const stream of [child.stdout!, child.stderr!])
      createInterface({ input: stream }).on('line', (line) =>
        this.log(`[${this.name}#${this.starts}] ${line}`),
      );
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        if (!this.expecting) this.crashes.push(`${this.name} exited (${signal ?? code})`);
        if (this.child === child) this.child = undefined;
        resolve();
      });
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.name} not ready within ${timeoutMs} ms`)),
        timeoutMs,
      );
      child.on('message', (message: { type?: string; url?: string }) => {
        if (message?.type !== 'ready') return;
        clearTimeout(timer);
        if (message.url) this.url = message.url;
        resolve();
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited before it was ready (${signal ?? code})`));
      });
    });
  }

  /** SIGKILL: a crash, nothing settled; resolves once the process is gone. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** SIGTERM: a graceful stop; resolves once the process is gone. */
  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.expecting = true;
    child.kill(signal);
    await this.exited;
  }
}
