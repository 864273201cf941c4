/**
 * `courier serve <service>`: one service in this process, on a connection of its own to the broker
 * file. What each child of `courier run` runs; also usable alone (one process per service, by hand or
 * under a process manager). SIGINT/SIGTERM stop it gracefully; a second signal exits at once. Started
 * by `courier run` (an IPC channel), it also stops when that parent goes away.
 */
import type { Command, Io } from '../args.js';
import { dataPaths, intOption, parse, UsageError, write } from '../args.js';
import type { ServiceName } from '../services.js';
import { environmentHelp, isServiceName, numberFromEnv, serviceNames, startService } from '../services.js';

const usage = 'usage: courier serve <service> [--db path] [--port n] [--host h]';

const help = `${usage}

Runs one service of the order-processing system in this process: ${serviceNames.join(', ')}.
Each service opens the shared SQLite broker file itself; run each at most once per file
(the order service also runs the outbox relay). Prints "<service>: ready" once it consumes.

Options:
  --db <path>     the SQLite broker file (default: $COURIER_DB, else $DATA_DIR/courier.db, else ./data/courier.db)
  --port <n>      the order service's HTTP port (default $PORT or 3000; 0 picks a free one)
  --host <h>      the order service's address (default $HOST or 127.0.0.1)
  -h, --help      this help

${environmentHelp}`;

/** What a child tells `courier run` over IPC. */
export type ServeMessage = { type: 'ready'; service: ServiceName; url?: string };

/** `courier serve <service>`: one service in this process (what `run` starts). */
export const serveCommand: Command = {
  name: 'serve',
  summary: undefined, // what `courier run` starts; documented in its help
  help,
  async run(argv: string[], io: Io): Promise<number> {
    const { values, positionals } = parse(
      argv,
      { db: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' } },
      usage,
    );
    if (values.help) {
      write(io.out, help);
      return 0;
    }
    if (positionals.length !== 1)
      throw new UsageError(`name exactly one service (${serviceNames.join(', ')})`, usage);
    const name = positionals[0]!;
    if (!isServiceName(name))
      throw new UsageError(`unknown service ${JSON.stringify(name)}: use ${serviceNames.join(', ')}`, usage);
    const paths = dataPaths(values.db, io.env);
    const settings = {
      ...paths,
      port: intOption(values.port ?? io.env.PORT, 'port', 3000, 0, 65_535, usage),
      host: values.host ?? (io.env.HOST || '127.0.0.1'),
      deadlineMs: numberFromEnv(io.env, 'ORDER_TIMEOUT_MS', 10_000),
      declineRate: numberFromEnv(io.env, 'DECLINE_RATE', 0.1),
      failureRate: numberFromEnv(io.env, 'FAILURE_RATE', 0.1),
      log: (line: string) => write(io.err, line),
    };

    let started: Awaited<ReturnType<typeof startService>>;
    try {
      started = await startService(name, settings);
    } catch (error) {
      write(io.err, `${name}: could not start: ${(error as Error)?.message ?? String(error)}`);
      return 1;
    }
    write(
      io.out,
      `${name}: ready${started.url ? ` (API on ${started.url})` : ''} · pid ${process.pid} · ${paths.dbPath}`,
    );
    process.send?.({
      type: 'ready',
      service: name,
      ...(started.url ? { url: started.url } : {}),
    } satisfies ServeMessage);

    return new Promise<number>((resolve) => {
      let stopping = false;
      const stop = (why: string) => {
        if (stopping) {
          write(io.err, `${name}: ${why} again: exiting now`);
          process.exit(130);
        }
        stopping = true;
        write(io.out, `${name}: ${why}: stopping...`);
        // Whatever happens, gone within 5 s.
        setTimeout(() => {
          write(io.err, `${name}: could not stop in time: exiting`);
          process.exit(1);
        }, 4_500).unref();
        started.service.stop(3_000).then(
          () => {
            write(io.out, `${name}: stopped`);
            process.disconnect?.();
            resolve(0);
          },
          (error: unknown) => {
            write(io.err, `${name}: stop failed: ${(error as Error)?.message ?? String(error)}`);
            resolve(1);
          },
        );
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
      // Started by `courier run`: its going away (even killed) stops this service too.
      process.on('disconnect', () => {
        if (!stopping) stop('parent gone');
      });
    });
  },
};
