// Failures (ports of sdk/src/failure.rs's tests) and Rust-style quoting.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Failure, KvError, isFailure, quoted, reject, retry } from '../src/index.js';

test('constructors and context', () => {
  const f = retry('HTTP 503').context('refetching in_1');
  assert.deepEqual(f, new Failure('retry', 'refetching in_1: HTTP 503'));
  assert.ok(f.isRetry());
  assert.equal(f.toString(), 'retry: refetching in_1: HTTP 503');
  const r = reject('bad');
  assert.ok(!r.isRetry());
  assert.equal(r.message, 'bad');
  assert.equal(r.name, 'Failure');
  assert.ok(r instanceof Error);
  assert.deepEqual(Failure.reject('x'), reject('x'));
  assert.deepEqual(Failure.retry('x'), retry('x'));
  assert.notDeepStrictEqual(retry('x'), reject('x'));
  assert.throws(() => new Failure('panic', 'x'), TypeError);
  assert.equal(new KvError('too big').message, 'kv set failed: too big');
  assert.equal(new KvError('too big').kind, 'reject');
});

test('isFailure sees failures from another copy of the SDK', () => {
  assert.ok(isFailure(reject('x')));
  assert.ok(!isFailure(new Error('x')));
  assert.ok(!isFailure('x'));
  const foreign = Object.assign(Object.create({ [Symbol.for('switchyard.failure')]: true }), { kind: 'retry', message: 'm' });
  assert.ok(isFailure(foreign));
});

test('quoted matches Rust 1.95 {:?} for str', () => {
  // Expected values printed by `format!("{:?}", s)`.
  const cases = [
    ['a "b"\n\t\\ \0 \u{7f} é \u{300} 😀 \u{200b}', String.raw`"a \"b\"\n\t\\ \0 \u{7f} é \u{300} 😀 \u{200b}"`],
    ['', '""'],
    ['Zoë@Exämple.org', '"Zoë@Exämple.org"'],
    ['a\u{7}b', String.raw`"a\u{7}b"`],
    ['\u{feff}x\u{85}', String.raw`"\u{feff}x\u{85}"`],
    ['\u{301}start', String.raw`"\u{301}start"`],
    ['日本語 \u{e000} \u{10ffff} \u{2028}', String.raw`"日本語 \u{e000} \u{10ffff} \u{2028}"`],
    ["tab\there 'quote'", String.raw`"tab\there 'quote'"`],
  ];
  for (const [text, expected] of cases) assert.equal(quoted(text), expected);
});
