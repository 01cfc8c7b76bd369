// The received event and its body helpers (ports of sdk/src/webhook.rs's tests).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Failure, Webhook } from '../src/index.js';

test('headers are case-insensitive', () => {
  const w = Webhook.builder()
    .header('Stripe-Signature', 't=1,v1=ab')
    .header('X-Multi', 'a')
    .header('x-multi', 'b')
    .build();
  assert.equal(w.header('stripe-signature'), 't=1,v1=ab');
  assert.equal(w.header('STRIPE-SIGNATURE'), 't=1,v1=ab');
  assert.equal(w.headers[0][0], 'stripe-signature');
  assert.equal(w.header('missing'), undefined);
  assert.deepEqual(w.headerAll('X-MULTI'), ['a', 'b']);
});

test('a JSON body parses and bad JSON is rejected', () => {
  const w = Webhook.builder().json({ id: 'evt_1' }).build();
  assert.equal(w.json().id, 'evt_1');
  assert.equal(w.header('content-type'), 'application/json');

  const bad = Webhook.builder().body('{not json').build();
  assert.throws(
    () => bad.json(),
    (e) => e instanceof Failure && e.kind === 'reject' && e.message.startsWith('body is not valid JSON: '),
  );
  const notUtf8 = Webhook.builder().body(new Uint8Array([0x22, 0xff, 0x22])).build();
  assert.throws(() => notUtf8.json(), { kind: 'reject', message: 'body is not valid JSON: it is not valid UTF-8' });
  // A byte-order mark is part of the body, as in Rust: JSON does not start with one.
  assert.throws(() => Webhook.builder().body('\ufeff{}').build().json(), { kind: 'reject' });
});

test('text rejects invalid UTF-8', () => {
  assert.equal(Webhook.builder().body('hi').build().text(), 'hi');
  assert.equal(Webhook.builder().body('\ufeffhi').build().text(), '\ufeffhi', 'the BOM is kept');
  const bad = Webhook.builder().body(new Uint8Array([0xff, 0xfe])).build();
  assert.throws(() => bad.text(), (e) => e.kind === 'reject' && e.message.includes('UTF-8'));
});

test('query params are decoded', () => {
  const w = Webhook.builder().query('token=a%2Bb&x=1&x=2&sp=a+b').build();
  assert.equal(w.queryParam('token'), 'a+b');
  assert.equal(w.queryParam('x'), '1');
  assert.equal(w.queryParam('sp'), 'a b');
  assert.equal(w.queryParam('nope'), undefined);
});

test('builder defaults', () => {
  let w = Webhook.builder().connector('stripe').build();
  assert.equal(w.path, '/hooks/stripe');
  assert.equal(w.method, 'POST');
  assert.equal(w.attempt, 1);
  assert.equal(w.id, '01TESTEVENT000000000000000');
  assert.equal(w.receivedAt, 0);
  assert.deepEqual(w.body, new Uint8Array(0));
  w = Webhook.builder().path('/x').attempt(3).receivedAt(5).build();
  assert.deepEqual([w.path, w.attempt, w.receivedAt], ['/x', 3, 5]);
});

test('the builder form-encodes like serde_urlencoded and sets one content-type', () => {
  const w = Webhook.builder()
    .header('Content-Type', 'text/plain')
    .form([['type', 'subscribe'], ['data[email]', 'a+b@c.d'], ['sp', 'a b/é*']])
    .build();
  assert.equal(w.text(), 'type=subscribe&data%5Bemail%5D=a%2Bb%40c.d&sp=a+b%2F%C3%A9*');
  assert.deepEqual(w.headerAll('content-type'), ['application/x-www-form-urlencoded']);
  assert.equal(Webhook.builder().form({ a: 1, b: true, c: undefined }).build().text(), 'a=1&b=true');
  assert.throws(() => Webhook.builder().form({ a: { b: 1 } }), TypeError);
});

test('a webhook is built from the WIT record', () => {
  const w = new Webhook({
    id: 'i', connector: 'c', method: 'POST', path: '/hooks/c', query: '',
    headers: [['x', '1']], body: new Uint8Array([104, 105]), receivedAt: 1700000000123n, attempt: 2,
  });
  assert.equal(w.receivedAt, 1700000000123);
  assert.equal(w.text(), 'hi');
});
