/**
 * The message size limit (`maxMessageBytes`).
 * - a publish over the publisher's limit is refused with MessageTooLargeError: nothing is stored;
 * - a message over the consumer's own (smaller) limit is dead-lettered with reason `too-large`.
 */
import { createBus, defineCommand, MessageTooLargeError } from '@courier/core';
import { MemoryBroker, memory } from '@courier/memory';
import { z } from 'zod';
import type { Log } from './util.js';
import { runIfMain, until } from './util.js';

const StoreNote = defineCommand('notes.store', z.object({ text: z.string() }));

export async function main(log: Log): Promise<void> {
  const broker = new MemoryBroker();
  const notes = createBus({ endpoint: 'notes', transport: memory({ broker }), maxMessageBytes: 4_096 });
  const strictWriter = createBus({
    endpoint: 'strict-writer',
    transport: memory({ broker }),
    maxMessageBytes: 2_048,
    routes: { 'notes.store': 'notes' },
  });
  const writer = createBus({
    endpoint: 'writer',
    transport: memory({ broker }),
    routes: { 'notes.store': 'notes' },
  });
  notes.handle(StoreNote, (note) => log(`notes:  stored ${note.text.length} characters`));

  for (const bus of [notes, strictWriter, writer]) await bus.start();
  try {
    await writer.send(StoreNote, { text: 'x'.repeat(1_000) });
    try {
      await strictWriter.send(StoreNote, { text: 'x'.repeat(3_000) });
    } catch (error) {
      if (!(error instanceof MessageTooLargeError)) throw error;
      log(`writer: ${error.code}: ${error.sizeBytes} > ${error.maxBytes} bytes`);
    }
    await writer.send(StoreNote, { text: 'x'.repeat(5_000) }); // within the writer's 1 MiB default
    await until(async () => (await notes.stats()).deadLettered === 1);
    const { items } = await notes.deadLetters.list('notes');
    log(`dlq:    reason=${items[0]!.info.reason}: ${items[0]!.info.errorMessage}`);
  } finally {
    for (const bus of [writer, strictWriter, notes]) await bus.stop();
  }
}

await runIfMain(import.meta.url, main);
