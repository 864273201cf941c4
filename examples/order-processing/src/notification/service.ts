/**
 * The notification service: one email per confirmed or cancelled order, written to
 * `<dataDir>/outbox/<orderId>.eml` (the mail transport is a stub; nothing else is). Idempotent: a
 * file that exists is not written again, and a new one appears whole or not at all (written to a
 * temporary file, then hard-linked into place, which fails if another delivery got there first).
 */
import { existsSync, linkSync, mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatAmount } from '../catalogue.js';
import { endpoints, OrderCancelled, OrderConfirmed } from '../contracts.js';
import type { RunningService, ServiceOptions } from '../runtime.js';
import { createServiceBus, once, openTransport, resolvePaths } from '../runtime.js';

export interface NotificationServiceOptions extends ServiceOptions {
  /** Where the emails go (default `<dataDir>/outbox`). */
  outboxDir?: string;
}

export function emailPath(outboxDir: string, orderId: string): string {
  return join(outboxDir, `${orderId}.eml`);
}

export async function startNotificationService(
  options: NotificationServiceOptions = {},
): Promise<RunningService> {
  const outboxDir = options.outboxDir ?? join(resolvePaths(options).dataDir, 'outbox');
  mkdirSync(outboxDir, { recursive: true });
  const transport = openTransport(options);
  const bus = createServiceBus(endpoints.notification, transport, options);

  const send = (
    orderId: string,
    customerId: string,
    subject: string,
    body: string,
    time: string,
    ctx: { deadLetter(reason: string, message?: string): never },
  ) => {
    if (!/^[A-Za-z0-9._-]{1,200}$/.test(orderId) || orderId.startsWith('.'))
      ctx.deadLetter('rejected', `order id ${JSON.stringify(orderId)} cannot name a file`);
    writeOnce(emailPath(outboxDir, orderId), render(orderId, customerId, subject, body, time));
  };

  bus.on(OrderConfirmed, ({ orderId, customerId, total }, ctx) =>
    send(
      orderId,
      customerId,
      `Your order ${orderId} is confirmed`,
      `Thank you for your order.\n\nOrder: ${orderId}\nTotal charged: ${formatAmount(total)} EUR\nStatus: confirmed\n`,
      ctx.message.time,
      ctx,
    ),
  );
  bus.on(OrderCancelled, ({ orderId, customerId, total, reason }, ctx) =>
    send(
      orderId,
      customerId,
      `Your order ${orderId} was cancelled`,
      `We are sorry: your order could not be completed.\n\nOrder: ${orderId}\nTotal: ${formatAmount(total)} EUR\nStatus: cancelled\nReason: ${reason}\n\nNothing was charged, or the charge was refunded.\n`,
      ctx.message.time,
      ctx,
    ),
  );

  await bus.start();
  return { stop: once((timeoutMs) => bus.stop({ timeoutMs })) };
}

/** Writes `content` to `path` unless it exists; never leaves a partial file there. */
function writeOnce(path: string, content: string): void {
  if (existsSync(path)) return;
  const temporary = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(temporary, content);
  try {
    linkSync(temporary, path);
  } catch (error) {
    if ((error as { code?: string }).code !== 'EEXIST') throw error;
  } finally {
    unlinkSync(temporary);
  }
}

function render(orderId: string, customerId: string, subject: string, body: string, time: string): string {
  const customer = oneLine(customerId);
  return [
    'From: Courier Shop <orders@shop.example>',
    `To: ${customer} <customer+${encodeURIComponent(customer).slice(0, 64)}@shop.example>`,
    `Subject: ${oneLine(subject)}`,
    `Date: ${new Date(time).toUTCString()}`,
    `Message-ID: <${orderId}@shop.example>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    body.replace(/\r?\n/g, '\r\n'),
  ].join('\r\n');
}

/** No header injection: control characters (CR, LF, ...) become spaces. */
function oneLine(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
  return text.replace(/[\u0000-\u001f\u007f]/g, ' ');
}
