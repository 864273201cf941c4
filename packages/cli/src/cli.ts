/**
 * The `courier` command's dispatcher: `main(argv, io)` resolves the exit code, so tests run it in
 * process. Exit codes: 0 success, 1 failure (a failed check, a missing file, an unreachable API),
 * 2 bad usage.
 */
import { readFileSync } from 'node:fs';
import type { Command, Io } from './args.js';
import { CommandError, UsageError, write } from './args.js';
import { demoCommand } from './commands/demo.js';
import { dlqCommand } from './commands/dlq.js';
import { queuesCommand } from './commands/queues.js';
import { runCommand } from './commands/run.js';
import { serveCommand } from './commands/serve.js';

const commands: readonly Command[] = [runCommand, demoCommand, queuesCommand, dlqCommand, serveCommand];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

const help = `usage: courier <command> [options]

Commands:
${commands
  .filter((c) => c.summary !== undefined)
  .map((c) => `  ${c.name.padEnd(8)} ${c.summary}`)
  .join('\n')}

courier <command> --help shows a command's options. courier --version prints the version.`;

/** Runs `courier` with `argv`; resolves the exit code (0 ok, 1 failed, 2 bad usage). */
export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    if (name === 'help' && rest[0] !== undefined) return main([rest[0], '--help'], io);
    write(name === undefined ? io.err : io.out, help);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    write(io.out, version());
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  try {
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`, help);
    return await command.run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      write(io.err, `courier${command ? ` ${command.name}` : ''}: ${error.message}`);
      if (error.usage)
        write(io.err, command ? `${error.usage}\n(courier ${command.name} --help for more)` : error.usage);
      return 2;
    }
    if (error instanceof CommandError) {
      write(io.err, `courier ${name}: ${error.message}`);
      return 1;
    }
    write(io.err, `courier ${name}: ${(error as Error)?.stack ?? String(error)}`);
    return 1;
  }
}
