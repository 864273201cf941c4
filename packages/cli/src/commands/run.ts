/**
 * `courier run <service...>`: each named service in a child process of its own (`courier serve`),
 * all sharing the broker file; their output prefixed with the service's name. SIGINT/SIGTERM are
 * forwarded for a graceful stop. Nothing is restarted: a child that dies is reported, the others go on.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { sqlite } from '@courier/sqlite';
import { formatStatus, readStatus } from '../../../../examples/order-processing/src/index.js';
import type { Command, Io } from '../args.js';
import { dataPaths, dbOptionHelp, intOption, parse, UsageError, write } from '../args.js';
import type { ServiceName } from '../services.js';
import { environmentHelp, expandServices, serviceNames } from '../services.js';
import type { ServeMessage } from './serve.js';

const usage =
  'usage: courier run <service...|all> [--transport sqlite] [--db path] [--port n] [--host h] [--status s]';

const help = `${usage}

Starts each named service as a separate process sharing one broker file: ${serviceNames.join(', ')}
(all: every one). Their output is prefixed with the service's name. Ctrl-C (SIGINT) or SIGTERM stops
them gracefully (a second one: at once). Nothing is restarted: a service that exits is reported.
Exits 0 when every service stopped cleanly after a signal, 1 otherwise.

Options:
  --transport <t>     the broker: sqlite (the only one so far; default)
${dbOptionHelp}
  --port <n>          the order service's HTTP port (default $PORT or 3000)
  --host <h>          the order service's address (default $HOST or 127.0.0.1)
  --status <s>        print the system's status line every s seconds (default 5; 0: never)
  --no-saga           with order: do not start the order saga (it comes along by default)
  -h, --help          this help

${environmentHelp}
Each service also runs alone: courier serve <service>.`;

const transports = ['sqlite'] as const;
const launcher = fileURLToPath(new URL('../../bin/courier.mjs', import.meta.url));
const colours = [36, 33, 35, 32, 34, 31];

interface Child {
  readonly name: ServiceName;
  readonly process: ChildProcess;
  ready: boolean;
  exited: boolean;
  /** Exit expected: after a signal from us. */
  expected: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** `courier run <service...>`: each service in its own process on the shared broker file. */
export const runCommand: Command = {
  name: 'run',
  summary: 'run services as separate processes sharing the broker file',
  help,
  async run(argv: string[], io: Io): Promise<number> {
    const { values, positionals } = parse(
      argv,
      {
        transport: { type: 'string' },
        db: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        status: { type: 'string' },
        'no-saga': { type: 'boolean' },
      },
      usage,
    );
    if (values.help) {
      write(io.out, help);
      return 0;
    }
    const transport = values.transport ?? 'sqlite';
    if (!(transports as readonly string[]).includes(transport))
      throw new UsageError(
        `unknown transport ${JSON.stringify(transport)}: available: ${transports.join(', ')}`,
        usage,
      );
    const names = expandServices(positionals, usage);
    // The order saga is part of the order domain: `run order` brings it along, in its own process.
    if (names.includes('order') && !names.includes('saga') && !values['no-saga']) names.push('saga');
    const port = intOption(values.port, 'port', -1, 0, 65_535, usage);
    const statusEvery = intOption(values.status, 'status', 5, 0, 3_600, usage);
    const paths = dataPaths(values.db, io.env);

    const tty = 'isTTY' in io.out && io.out.isTTY === true;
    const width = Math.max(...names.map((n) => n.length));
    const label = (name: string, index: number) => {
      const text = name.padEnd(width);
      return tty ? `\x1b[${colours[index % colours.length]}m${text}\x1b[0m |` : `${text} |`;
    };
    const say = (line: string) =>
      write(io.out, `${tty ? '\x1b[1mcourier\x1b[0m' : 'courier'.padEnd(width)} | ${line}`);

    say(`starting ${names.join(', ')} on ${paths.dbPath} (transport ${transport})`);
    if (names.includes('order') && !names.includes('saga'))
      say('note: --no-saga: orders stay pending unless an order saga runs on this file elsewhere');
    const children: Child[] = names.map((name, index) => {
      const args = [launcher, 'serve', name, '--db', paths.dbPath];
      if (port >= 0) args.push('--port', String(port));
      if (values.host !== undefined) args.push('--host', values.host);
      const child = spawn(process.execPath, args, {
        env: io.env,
        // Own process group: a Ctrl-C reaches the children once, through us. The IPC channel tells
        // them if we die (even SIGKILLed), so they never outlive us.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      });
      const entry: Child = {
        name,
        process: child,
        ready: false,
        exited: false,
        expected: false,
        code: null,
        signal: null,
      };
      const prefix = label(name, index);
      for (const stream of [child.stdout!, child.stderr!])
        createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) =>
          write(stream === child.stderr ? io.err : io.out, `${prefix} ${line}`),
        );
      child.on('message', (message: ServeMessage) => {
        if (message?.type === 'ready') entry.ready = true;
      });
      child.on('error', (error) => say(`${name}: ${error.message}`));
      return entry;
    });

    const monitor = statusEvery > 0 ? sqlite({ path: paths.dbPath }) : undefined;
    let ticker: ReturnType<typeof setInterval> | undefined;
    if (monitor) {
      let reading = false;
      ticker = setInterval(async () => {
        if (reading || !children.some((c) => c.ready && !c.exited)) return;
        reading = true;
        try {
          say(formatStatus(await readStatus(monitor)));
        } catch (error) {
          say(`status: ${(error as Error).message}`);
        } finally {
          reading = false;
        }
      }, statusEvery * 1_000);
    }

    let signals = 0;
    const forward = (signal: NodeJS.Signals) => {
      signals++;
      const live = children.filter((c) => !c.exited);
      say(
        signals === 1
          ? `${signal}: stopping ${live.map((c) => c.name).join(', ') || 'nothing'}...`
          : `${signal} again: the services exit at once`,
      );
      for (const child of live) {
        child.expected = true;
        child.process.kill(signal);
      }
      if (signals === 1)
        setTimeout(() => {
          for (const child of children.filter((c) => !c.exited)) {
            say(`${child.name} did not stop within 8 s: killing it`);
            child.process.kill('SIGKILL');
          }
        }, 8_000).unref();
    };
    const onSigint = () => forward('SIGINT');
    const onSigterm = () => forward('SIGTERM');
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);

    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            child.process.on('exit', (code, signal) => {
              child.exited = true;
              child.code = code;
              child.signal = signal;
              const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
              if (child.expected && code === 0) say(`${child.name} stopped`);
              else if (child.expected) say(`${child.name} ${how} while stopping`);
              else
                say(
                  `${child.name} ${how}${child.ready ? '' : ' before it was ready'}: not restarted` +
                    `${
                      children.some((c) => !c.exited)
                        ? ` (still running: ${children
                            .filter((c) => !c.exited)
                            .map((c) => c.name)
                            .join(', ')})`
                        : ''
                    }`,
                );
              resolve();
            });
          }),
      ),
    );
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    if (ticker) clearInterval(ticker);
    await monitor?.close();
    const clean = children.every((c) => c.expected && c.code === 0);
    say(clean ? 'all services stopped' : 'done (not every service stopped cleanly)');
    return clean ? 0 : 1;
  },
};
