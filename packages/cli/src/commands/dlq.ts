/** `courier dlq list|replay|purge <queue>`: a queue's dead letters, through the bus's dead-letter API. */
import type { DeadLetterFilter } from '@courier/core';
import { copyEnvelope, createBus } from '@courier/core';
import type { Command, Io } from '../args.js';
import { dataPaths, dbOptionHelp, intOption, parse, UsageError, write } from '../args.js';
import { openBroker, requireQueue } from '../broker.js';
import { formatTable } from '../table.js';

const usage =
  'usage: courier dlq list|replay|purge <queue> [--type t] [--reason r] [--limit n] [--db path] [--json]';

const help = `${usage}

  list     shows the queue's dead letters (oldest first): type, reason, attempts, error
  replay   puts matching dead letters back on the queue (same message id, attempts reset)
  purge    deletes matching dead letters

Options:
  --type <t>          only dead letters of this message type (e.g. payments.charge)
  --reason <r>        only this reason: error, max-attempts, validation, decode, expired, rejected, too-large
  --limit <n>         list: at most n (default 20); replay, purge: only the n oldest matching (default: all)
${dbOptionHelp}
  --json              list: JSON instead of a table
  -h, --help          this help`;

const actions = ['list', 'replay', 'purge'] as const;
type Action = (typeof actions)[number];

/** `courier dlq list|replay|purge <queue>`: a queue's dead letters. */
export const dlqCommand: Command = {
  name: 'dlq',
  summary: 'list, replay or purge a queue’s dead letters',
  help,
  async run(argv: string[], io: Io): Promise<number> {
    const { values, positionals } = parse(
      argv,
      {
        type: { type: 'string' },
        reason: { type: 'string' },
        limit: { type: 'string' },
        db: { type: 'string' },
        json: { type: 'boolean' },
      },
      usage,
    );
    if (values.help) {
      write(io.out, help);
      return 0;
    }
    const [action, queue, ...rest] = positionals;
    if (action === undefined) throw new UsageError('say what to do: list, replay or purge', usage);
    if (!(actions as readonly string[]).includes(action))
      throw new UsageError(`unknown action ${JSON.stringify(action)}: use list, replay or purge`, usage);
    if (queue === undefined) throw new UsageError(`name the queue whose dead letters to ${action}`, usage);
    if (rest.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])}`, usage);
    const limit =
      values.limit === undefined ? undefined : intOption(values.limit, 'limit', 20, 1, 100_000, usage);
    const filter: DeadLetterFilter = {
      ...(values.type !== undefined ? { type: values.type } : {}),
      ...(values.reason !== undefined ? { reason: values.reason } : {}),
    };
    const { dbPath } = dataPaths(values.db, io.env);
    const transport = openBroker(dbPath);
    try {
      requireQueue(transport, queue);
      // A bus that never starts: only its dead-letter API is used (nothing is declared or consumed).
      const { deadLetters } = createBus({ endpoint: 'courier-cli', transport });
      const described = describeFilter(filter);
      switch (action as Action) {
        case 'list': {
          const page = await deadLetters.list(queue, { ...filter, limit: limit ?? 20 });
          if (values.json) {
            write(
              io.out,
              JSON.stringify(
                page.items.map(({ envelope, ...rest }) => {
                  // Field by field: a body may be a getter, which a spread leaves out (bodyText repeats it).
                  const { bodyText: _sameAsBody, ...fields } = copyEnvelope(envelope);
                  return { ...rest, envelope: { ...fields, body: decode(envelope.body) } };
                }),
                null,
                2,
              ),
            );
            return 0;
          }
          const total = await transport.deadLetters.count(queue);
          if (page.items.length === 0) {
            write(io.out, `no dead letters in ${queue}${described} (${total} in all)`);
            return 0;
          }
          write(
            io.out,
            formatTable(
              ['id', 'type', 'reason', 'attempts', 'failed at', 'message id', 'error'],
              page.items.map((l) => [
                l.deadLetterId,
                l.envelope.type,
                l.info.reason,
                l.info.attempts,
                new Date(l.info.failedAt).toISOString(),
                l.envelope.id,
                oneLine(`${l.info.errorName ? `${l.info.errorName}: ` : ''}${l.info.errorMessage ?? ''}`, 80),
              ]),
            ),
          );
          write(
            io.out,
            `${page.items.length} shown of ${total} dead letters in ${queue}${described}${page.nextCursor ? ' (more: raise --limit)' : ''}`,
          );
          return 0;
        }
        case 'replay':
        case 'purge': {
          const scope =
            limit === undefined ? filter : { ids: await oldest(deadLetters, queue, filter, limit) };
          const count =
            'ids' in scope && scope.ids?.length === 0
              ? 0
              : action === 'replay'
                ? await deadLetters.replay(queue, scope)
                : await deadLetters.purge(queue, scope);
          write(
            io.out,
            `${action === 'replay' ? 'replayed' : 'purged'} ${count} dead letter${count === 1 ? '' : 's'} of ${queue}${described}`,
          );
          return 0;
        }
      }
      return 0;
    } finally {
      await transport.close();
    }
  },
};

/** Ids of the `limit` oldest dead letters matching `filter`. */
async function oldest(
  deadLetters: ReturnType<typeof createBus>['deadLetters'],
  queue: string,
  filter: DeadLetterFilter,
  limit: number,
): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await deadLetters.list(queue, {
      ...filter,
      limit: Math.min(100, limit - ids.length),
      cursor,
    });
    ids.push(...page.items.map((l) => l.deadLetterId));
    cursor = page.nextCursor;
  } while (cursor !== undefined && ids.length < limit);
  return ids;
}

function describeFilter(filter: DeadLetterFilter): string {
  const parts = [
    filter.type !== undefined ? `type ${filter.type}` : '',
    filter.reason !== undefined ? `reason ${filter.reason}` : '',
  ].filter(Boolean);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

function decode(body: unknown): unknown {
  if (!(body instanceof Uint8Array)) return body;
  const text = Buffer.from(body).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat || '-';
}
