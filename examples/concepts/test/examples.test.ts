/**
 * Runs every concept example and checks what it printed, so docs/concepts.md cannot drift from the
 * code it quotes. Each example uses the memory transport and short delays or a fake clock.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { sagaDoc, withDiagram } from '../../../scripts/docs-diagrams.js';
import { main as batch } from '../src/batch.js';
import { main as concurrency } from '../src/concurrency.js';
import { main as deadLetters } from '../src/dead-letters.js';
import { main as dedup } from '../src/dedup.js';
import { main as fanOut } from '../src/fan-out.js';
import { main as gracefulStop } from '../src/graceful-stop.js';
import { main as limits } from '../src/limits.js';
import { main as messageFlow } from '../src/message-flow.js';
import { main as middleware } from '../src/middleware.js';
import { main as orderSaga } from '../src/order-saga.js';
import { main as ordering } from '../src/ordering.js';
import { main as requestReply } from '../src/request-reply.js';
import { main as retries } from '../src/retries.js';
import { main as time } from '../src/time.js';
import { main as topology } from '../src/topology.js';
import type { Log } from '../src/util.js';
import { main as versions } from '../src/versions.js';

async function run(main: (log: Log) => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  await main((line) => lines.push(line));
  return lines;
}

/** Asserts that `patterns` each match a line, in this order (other lines may come between). */
function inOrder(lines: readonly string[], patterns: readonly RegExp[]): void {
  let from = 0;
  for (const pattern of patterns) {
    const index = lines.findIndex((line, i) => i >= from && pattern.test(line));
    assert.ok(index >= 0, `no line matching ${pattern} after line ${from} in:\n${lines.join('\n')}`);
    from = index + 1;
  }
}

const count = (lines: readonly string[], pattern: RegExp) => lines.filter((l) => pattern.test(l)).length;

/** Asserts that the example printed `line`, exactly. */
function printed(lines: readonly string[], line: string): void {
  assert.ok(lines.includes(line), `no line ${JSON.stringify(line)} in:\n${lines.join('\n')}`);
}

describe('concept examples', { timeout: 20_000 }, () => {
  it('fan-out: events reach every binding, header filters narrow, commands go to their owner', async () => {
    const lines = await run(fanOut);
    assert.equal(count(lines, /^billing: {2}got orders\.placed o-[12]$/), 2);
    assert.equal(count(lines, /^shipping: got orders\.placed o-[12]$/), 2);
    assert.equal(count(lines, /^audit: {4}got orders\.placed \(pattern orders\.#\)$/), 2);
    assert.equal(count(lines, /^audit: {4}got orders\.shipped \(pattern orders\.#\)$/), 1);
    assert.deepEqual(
      lines.filter((l) => l.startsWith('eu-desk')),
      ['eu-desk:  got orders.placed o-1 (region=eu)'],
    );
    printed(lines, 'billing:  charged 42 for o-1');
    assert.equal(count(lines, /^shipping: COURIER_NO_ROUTE: no endpoint owns command 'payments\.refund'/), 1);
  });

  it('message-flow: output held until success, derived ids, causation and correlation', async () => {
    const lines = await run(messageFlow);
    inOrder(lines, [
      /attempt 1 sent a charge, then failed: the charge is discarded/,
      /attempt 2 sent a charge and succeeded/,
      /charged 42 for o-1/,
    ]);
    printed(lines, 'charges handled: 1');
    printed(lines, "charge id is deriveMessageId(order id, 0, 'billing'): true");
    printed(lines, "charge causationId is the order's id: true");
    printed(lines, 'charge correlationId: checkout-7');
    assert.equal(
      count(lines, /^publish refused: COURIER_VALIDATION: message 'orders\.placed' is invalid: total:/),
      1,
    );
  });

  it('retries: default backoff, NonRetryableError, DelayedRetry', async () => {
    const lines = await run(retries);
    assert.deepEqual(
      lines.filter((l) => l.startsWith('charge:')),
      [
        'charge: attempt 1 at +0 ms fails',
        'charge: attempt 2 at +0 ms fails',
        'charge: attempt 3 at +1000 ms fails',
        'charge: attempt 4 at +3000 ms fails',
        'charge: attempt 5 at +7000 ms fails',
      ],
    );
    assert.deepEqual(
      lines.filter((l) => l.startsWith('refund:')),
      ['refund: attempt 1 at +0 ms fails for good'],
    );
    printed(lines, 'sync:   attempt 2 at +30000 ms succeeds');
    assert.ok(
      lines.includes('dlq:    payments.charge reason=max-attempts attempts=5 error=Error: card service down'),
    );
    assert.ok(
      lines.includes(
        'dlq:    payments.refund reason=rejected attempts=1 error=NonRetryableError: order o-2 was never paid',
      ),
    );
    assert.equal(count(lines, /^dlq:/), 2);
  });

  it('dead-letters: list, replay to the original queue only, purge', async () => {
    const lines = await run(deadLetters);
    inOrder(lines, [
      /^billing: {2}o-1 and o-2 dead-lettered$/,
      /^dlq: {6}orders\.placed o-1 reason=card-expired attempts=1: card 4000-0000 has expired$/,
      /^replayed 1$/,
      /^billing: {2}o-1 billed on attempt 1$/,
      /^the replayed message kept its id: true$/,
      /^purged 1; dead letters left: 0$/,
      /^shipping handled 2 messages: the replay did not reach it$/,
    ]);
    assert.equal(count(lines, /^dlq:/), 2);
  });

  it('ordering: priority then FIFO, per-key order, release and park', async () => {
    const lines = await run(ordering);
    assert.ok(
      lines.includes(
        'priority: handled d (priority 9), c (priority 5), e (priority 5), a (priority 0), b (priority 0)',
      ),
    );
    printed(lines, 'key:      acct-A handled 1, 2, 3; acct-B handled 1, 2');
    printed(lines, 'key:      two handlers of one key ever ran at once: false');
    printed(lines, 'release:  lenient handled 1, 3 (#2 dead-lettered, the key moved on)');
    inOrder(lines, [
      /^park: {5}strict handled 1; #3 waits behind the parked key \(depth 1\)$/,
      /^park: {5}after the replay strict handled 1, 2, 3$/,
    ]);
  });

  it('time: delay and deliverAt hold messages, ttl dead-letters them', async () => {
    const lines = await run(time);
    assert.deepEqual(lines, [
      'reminders: the first one was dead-lettered, reason=expired',
      'reminders: 0 sent after 59.9 s',
      'reminders: sent to ada@example.com at +60000 ms',
      'reminders: sent to alan@example.com at +90000 ms',
      'reminders: 2 sent after 99.9 s',
    ]);
  });

  it('dedup: one dedupId stored once; the inbox skips an id already handled', async () => {
    const lines = await run(dedup);
    assert.equal(count(lines, /^payments: captured 42 for o-1/), 1);
    assert.equal(count(lines, /^payments: captured 7 for o-2/), 1);
    printed(lines, 'dedup:    2 publishes with one dedupId, 1 capture');
    printed(lines, 'inbox:    message capture-o-2-msg delivered twice, 1 capture');
  });

  it('request-reply: reply, RemoteError, TimeoutError and a handler that still ran', async () => {
    const lines = await run(requestReply);
    inOrder(lines, [
      /^shop: {4}ada has 3000 cents$/,
      /^shop: {4}COURIER_REMOTE from NonRetryableError \(COURIER_NON_RETRYABLE\): account mallory is blocked$/,
      /^shop: {4}COURIER_TIMEOUT: request 'payments\.balance' got no reply within 5000 ms; it may still run$/,
      /^billing: the slow request ran to the end after its requester gave up$/,
    ]);
  });

  it('versions: upcast from version 1, dead-letter a version newer than the consumer', async () => {
    const lines = await run(versions);
    printed(lines, 'billing: o-1 (sent as version 1) total 1250 cents EUR');
    printed(lines, 'billing: o-2 (sent as version 2) total 990 cents USD');
    assert.ok(
      lines.includes(
        "dlq:     reason=validation: message 'orders.placed' is version 3, newer than version 2 this consumer knows: deploy the newer consumer",
      ),
    );
  });

  it('limits: too large at publish and at consume', async () => {
    const lines = await run(limits);
    assert.deepEqual(
      lines.filter((l) => l.startsWith('notes:')),
      ['notes:  stored 1000 characters'],
    );
    assert.equal(count(lines, /^writer: COURIER_TOO_LARGE: \d+ > 2048 bytes$/), 1);
    assert.equal(
      count(
        lines,
        /^dlq: {4}reason=too-large: message is \d+ bytes, over the 4096-byte limit \(maxMessageBytes\)$/,
      ),
      1,
    );
  });

  it('concurrency: per-queue limits, a queue of its own, lease extension', async () => {
    const lines = await run(concurrency);
    assert.deepEqual(lines, [
      'media:        20 emails, at most 4 at once (concurrency 4)',
      'media.render: 5 videos, at most 1 at once (concurrency 1, its own queue)',
      'media.render: lease extended: true',
    ]);
  });

  it('graceful-stop: in-flight work past the deadline goes back to the queue, uncounted', async () => {
    const lines = await run(gracefulStop);
    inOrder(lines, [
      /^first: {2}yearly report started \(attempt 1\)$/,
      /^first: {2}yearly report aborted: the bus of 'reports' stopped$/,
      /^broker: after the stop 'reports' holds 1 message$/,
      /^second: took over yearly report \(attempt 1\)$/,
    ]);
  });

  it('middleware: logging, a consume middleware that dead-letters, a publish middleware', async () => {
    const lines = await run(middleware);
    assert.deepEqual(lines, [
      'publish: orders.placed to topic (tenant=acme)',
      'billing: o-1 for tenant acme',
      'handled: orders.placed attempt 1: handled',
      'publish: orders.placed to topic (tenant=-)',
      'handled: orders.placed attempt 1: failed',
      'dlq:     reason=no-tenant',
    ]);
  });

  it('topology: queues declared by any process keep messages for services not yet started', async () => {
    const lines = await run(topology);
    assert.deepEqual(lines, [
      'orders:   published and sent before any other service started',
      'billing:  orders.placed o-1',
      'billing:  payments.charge o-1',
      'shipping: orders.cancelled',
      'shipping: orders.placed',
      'vip:      orders.placed o-1',
    ]);
  });

  it('batch: batches of at most `size`, one message failed alone', async () => {
    const lines = await run(batch);
    const sizes = /batches of at most 10 \(([\d, ]+)\)$/.exec(lines[0] ?? '');
    assert.ok(sizes, lines.join('\n'));
    const numbers = sizes[1]!.split(', ').map(Number);
    assert.equal(
      numbers.reduce((a, b) => a + b, 0),
      25,
    );
    assert.ok(
      numbers.every((n) => n >= 1 && n <= 10),
      'numbers.every((n) => n >= 1 && n <= 10)',
    );
    printed(lines, 'metering: 24 stored');
    printed(lines, 'dlq:      reason=rejected: meter m-7: negative reading');
  });
});

describe('sagas doc', () => {
  it('order saga: confirms, compensates a rejection, and times out a silent payment', async () => {
    const lines = await run(orderSaga);
    inOrder(lines, [/charged 42 for o-1/, /o-1 confirmed/]);
    printed(lines, 'orders:    o-2 cancelled: out of stock');
    inOrder(lines, [
      /o-3 gateway does not answer/,
      /30 s later/,
      /released the stock of o-3/,
      /o-3 cancelled: no payment within 30 s/,
    ]);
    assert.equal(count(lines, /confirmed|cancelled/), 3, 'each order settles once');
  });

  it('docs/sagas.md shows the diagram generated from the saga (npm run docs:diagrams)', () => {
    const markdown = readFileSync(sagaDoc, 'utf8');
    assert.equal(
      markdown,
      withDiagram(markdown),
      'the diagram in docs/sagas.md is stale: run npm run docs:diagrams',
    );
  });
});
