import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as core from '@courier/core';

const docs = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');

describe('errors', () => {
  it('every error class has a distinct stable code listed in docs/errors.md', () => {
    const codes = new Set<string>();
    for (const ErrorClass of core.errorClasses) {
      assert.match(ErrorClass.code, /^COURIER_[A-Z_]+$/);
      assert.ok(!codes.has(ErrorClass.code), `${ErrorClass.code} is used twice`);
      codes.add(ErrorClass.code);
      assert.ok(
        docs.includes(`\`${ErrorClass.code}\``),
        `${ErrorClass.code} (${ErrorClass.name}) is missing from docs/errors.md`,
      );
    }
  });

  it('every error class is exported from the package root with its name set', () => {
    for (const ErrorClass of core.errorClasses) {
      assert.equal((core as Record<string, unknown>)[ErrorClass.name], ErrorClass);
    }
    const error = new core.NoRouteError('no route', { cause: new Error('inner') });
    assert.equal(error.name, 'NoRouteError');
    assert.equal(error.code, 'COURIER_NO_ROUTE');
    assert.ok(error instanceof core.CourierError, 'error instanceof core.CourierError');
    assert.equal((error.cause as Error).message, 'inner');
  });

  it('names are validated with a message that names the value and the rule', () => {
    assert.throws(() => core.assertQueueName('a b'), /queue name "a b" is invalid: use 1 to 200 letters/);
    assert.throws(() => core.assertMessageType('Orders.Placed'), /message type "Orders.Placed" is invalid/);
    assert.throws(() => core.assertPattern('orders.**'), /binding pattern "orders.\*\*" is invalid/);
    core.assertQueueName('inventory.v2_x-1');
    core.assertMessageType('orders.placed');
    core.assertPattern('orders.#');
  });

  it('topic patterns follow AMQP rules', () => {
    const cases: [string, string, boolean][] = [
      ['orders.*', 'orders.placed', true],
      ['orders.*', 'orders', false],
      ['orders.*', 'orders.placed.eu', false],
      ['orders.#', 'orders', true],
      ['orders.#', 'orders.placed.eu', true],
      ['#.eu', 'orders.placed.eu', true],
      ['*.placed', 'orders.placed', true],
      ['orders.#.eu', 'orders.eu', true],
      ['orders.#.eu', 'orders.x.y.eu', true],
      ['orders.#.eu', 'orders.x.y', false],
      ['#', 'a.b.c', true],
    ];
    for (const [pattern, type, expected] of cases) {
      assert.equal(core.matchesPattern(pattern, type), expected, `${pattern} vs ${type}`);
    }
  });
});
