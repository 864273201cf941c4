/** Request/reply (DESIGN.md §2.11): replies, timeouts, remote errors, request metadata. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { defineRequest, RemoteError, TimeoutError } from '@courier/core';
import { z } from 'zod';
import { caseOptions, run } from '../helpers.js';
import type { CreateFixture } from '../types.js';

class OutOfStockError extends Error {
  override name = 'OutOfStockError';
  readonly code = 'OUT_OF_STOCK';
}

const stockQuery = z.object({ sku: z.string() });
const stockReply = z.object({ sku: z.string(), available: z.number() });

/** Registers the conformance cases of this area; `runTransportSuite` calls it. */
export function requestReplyCases(create: CreateFixture): void {
  it(
    'answers a request with the handler’s reply',
    caseOptions,
    run(create, async (h) => {
      const Check = defineRequest(h.type('stock.check'), stockQuery, stockReply);
      const q = h.queue('inventory');
      const seen: {
        replyTo: string | undefined;
        expiresAt: number | undefined;
        correlationId: string;
        now: number;
      }[] = [];
      await h.bus(q, (b) =>
        b.handle(Check, (d, ctx) => {
          seen.push({
            replyTo: ctx.message.replyTo,
            expiresAt: ctx.message.expiresAt,
            correlationId: ctx.correlationId,
            now: h.clock.now(),
          });
          return { sku: d.sku, available: d.sku.length };
        }),
      );
      const client = await h.bus(h.queue('client'), undefined, { routes: { [Check.type]: q } });
      const reply = await h.whileAdvancing(client.request(Check, { sku: 'widget' }, { timeoutMs: 5_000 }));
      assert.deepEqual(reply, { sku: 'widget', available: 6 });
      const second = await h.whileAdvancing(client.request(Check, { sku: 'gizmo-xl' }, { timeoutMs: 5_000 }));
      assert.deepEqual(second, { sku: 'gizmo-xl', available: 8 }, 'replies are matched to their requests');
      const request = seen[0]!;
      assert.ok(request.replyTo, 'the request carries replyTo');
      assert.ok(request.expiresAt !== undefined, 'the request carries expiresAt = its timeout');
      assert.ok(
        request.expiresAt > request.now && request.expiresAt <= request.now + 5_000,
        'request.expiresAt > request.now && request.expiresAt <= request.now + 5_000',
      );
    }),
  );

  it(
    'answers concurrent requests each with its own reply',
    caseOptions,
    run(create, async (h) => {
      const Check = defineRequest(h.type('stock.check'), stockQuery, stockReply);
      const q = h.queue('inventory');
      await h.bus(q, (b) => b.handle(Check, (d) => ({ sku: d.sku, available: Number(d.sku.slice(1)) })));
      const client = await h.bus(h.queue('client'), undefined, { routes: { [Check.type]: q } });
      const skus = ['s1', 's2', 's3', 's4', 's5'];
      const replies = await h.whileAdvancing(
        Promise.all(skus.map((sku) => client.request(Check, { sku }, { timeoutMs: 5_000 }))),
      );
      assert.deepEqual(
        replies.map((r) => r.available),
        [1, 2, 3, 4, 5],
      );
    }),
  );

  it(
    'rejects a request nobody answers with TimeoutError',
    caseOptions,
    run(create, async (h) => {
      const Check = defineRequest(h.type('stock.check'), stockQuery, stockReply);
      const q = h.queue('inventory');
      await h.declare(q);
      const client = await h.bus(h.queue('client'), undefined, { routes: { [Check.type]: q } });
      const started = h.clock.now();
      const outcome = client.request(Check, { sku: 'x' }, { timeoutMs: 1_000 }).then(
        () => undefined,
        (error: unknown) => error,
      );
      const error = await h.whileAdvancing(outcome, { within: 5_000, step: 50 });
      assert.ok(error instanceof TimeoutError, `expected TimeoutError, got ${String(error)}`);
      assert.equal(error.code, 'COURIER_TIMEOUT');
      assert.ok(h.clock.now() - started >= 1_000, 'not before the timeout');
    }),
  );

  it(
    'rejects with RemoteError carrying the remote name, code and message when the handler fails',
    caseOptions,
    run(create, async (h) => {
      const Check = defineRequest(h.type('stock.check'), stockQuery, stockReply);
      const q = h.queue('inventory');
      await h.bus(q, (b) =>
        b.handle(
          Check,
          (d) => {
            throw new OutOfStockError(`no ${d.sku} left`);
          },
          { retry: { maxAttempts: 1 } },
        ),
      );
      const client = await h.bus(h.queue('client'), undefined, { routes: { [Check.type]: q } });
      const outcome = client.request(Check, { sku: 'widget' }, { timeoutMs: 5_000 }).then(
        () => undefined,
        (error: unknown) => error,
      );
      const error = await h.whileAdvancing(outcome);
      assert.ok(error instanceof RemoteError, `expected RemoteError, got ${String(error)}`);
      assert.equal(error.code, 'COURIER_REMOTE');
      assert.equal(error.remoteName, 'OutOfStockError');
      assert.equal(error.remoteCode, 'OUT_OF_STOCK');
      assert.match(error.message, /no widget left/);
    }),
  );

  it(
    'drops a late reply and keeps serving later requests',
    caseOptions,
    run(create, async (h) => {
      const Check = defineRequest(h.type('stock.check'), stockQuery, stockReply);
      const q = h.queue('inventory');
      let slow = true;
      await h.bus(q, (b) =>
        b.handle(Check, async (d) => {
          if (slow) await new Promise<void>((resolve) => h.clock.setTimeout(resolve, 2_000));
          return { sku: d.sku, available: slow ? -1 : 1 };
        }),
      );
      const client = await h.bus(h.queue('client'), undefined, { routes: { [Check.type]: q } });
      const first = client.request(Check, { sku: 'a' }, { timeoutMs: 1_000 }).then(
        () => undefined,
        (error: unknown) => error,
      );
      assert.ok(
        (await h.whileAdvancing(first)) instanceof TimeoutError,
        '(await h.whileAdvancing(first)) instanceof TimeoutError',
      );
      await h.quiet(2_000);
      slow = false;
      const reply = await h.whileAdvancing(client.request(Check, { sku: 'b' }, { timeoutMs: 1_000 }));
      assert.deepEqual(reply, { sku: 'b', available: 1 }, 'the late reply to the first request is not taken');
    }),
  );
}
