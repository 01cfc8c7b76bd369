// Outbound HTTP (ports of sdk/src/http.rs's tests).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Delivery, Failure, FetchError, Request, Response, stringify } from '../src/index.js';

test('delivery builder', () => {
  const d = Delivery.post('http://x/y').header('Content-Type', 'text/plain').header('x-a', '1').json({ a: 1 });
  assert.equal(d.method, 'POST');
  assert.equal(d.text(), '{"a":1}');
  assert.equal(d.headerValue('content-type'), 'application/json');
  assert.equal(
    d.headers.filter(([k]) => k.toLowerCase() === 'content-type').length,
    1,
    'json() replaces an earlier content-type',
  );
  assert.deepEqual(d.headers, [['x-a', '1'], ['content-type', 'application/json']]);
  assert.equal(Delivery.put('u').method, 'PUT');
  assert.equal(Delivery.get('u').method, 'GET');
  assert.equal(Delivery.patch('u').method, 'PATCH');
  assert.equal(Delivery.delete('u').method, 'DELETE');
  assert.ok(Delivery.post('u') instanceof Delivery);
  assert.deepEqual(new Delivery('PATCH', 'u').body('raw').body(), new TextEncoder().encode('raw'));
  assert.deepEqual(Delivery.post('u').body(), new Uint8Array(0));
});

test('request form and auth', () => {
  const r = Request.post('http://x/api/users/1/')
    .bearerAuth('sk_old')
    .bearerAuth('sk_test')
    .form([['user_group_id', '2'], ['secondary_group_ids[]', '3'], ['secondary_group_ids[]', '4']]);
  assert.ok(r instanceof Request);
  assert.equal(r.headerValue('authorization'), 'Bearer sk_test');
  assert.equal(r.headers.filter(([k]) => k === 'authorization').length, 1);
  assert.equal(r.headerValue('content-type'), 'application/x-www-form-urlencoded');
  assert.equal(r.text(), 'user_group_id=2&secondary_group_ids%5B%5D=3&secondary_group_ids%5B%5D=4');
  assert.throws(() => Request.post('u').form({ a: { b: 1 } }), (e) => e instanceof Failure && e.kind === 'reject');
  assert.throws(() => Request.post('u').json(1n), (e) => e instanceof Failure && e.message.startsWith('request body does not serialize to JSON'));
});

test('json with sorted keys writes what serde_json writes for a Value', () => {
  const value = { b: 1, a: [{ z: null, y: 'é"\n' }], 10: 'x', 2: 'y', '\u{e000}': 1, '\u{10000}': 2, skip: undefined };
  // serde_json: keys sorted by their UTF-8 bytes, so "10" < "2" and U+E000 < U+10000.
  assert.equal(
    stringify(value, { sortKeys: true }),
    '{"10":"x","2":"y","a":[{"y":"é\\"\\n","z":null}],"b":1,"\u{e000}":1,"\u{10000}":2}',
  );
  assert.equal(Delivery.post('u').json(value, { sortKeys: true }).text(), stringify(value, { sortKeys: true }));
  assert.equal(stringify({ b: 1, a: 2 }), '{"b":1,"a":2}', 'insertion order by default');
  assert.equal(stringify([undefined, () => 1, NaN]), '[null,null,null]');
  assert.equal(stringify([undefined, NaN], { sortKeys: true }), '[null,null]');
  const cyclic = {};
  cyclic.self = cyclic;
  assert.throws(() => stringify(cyclic, { sortKeys: true }), TypeError);
  assert.throws(() => stringify(undefined), TypeError);
});

test('response helpers', () => {
  const r = new Response(200).withHeader('X-Request-Id', 'req_1').withJson({ id: 'in_1' });
  assert.ok(r.isSuccess());
  assert.equal(r.header('x-request-id'), 'req_1');
  assert.deepEqual(r.headers[0], ['x-request-id', 'req_1']);
  assert.equal(r.json().id, 'in_1');
  assert.equal(r.text(), '{"id":"in_1"}');
  const html = new Response(200).withBody('<html>');
  assert.throws(() => html.json(), (e) => e instanceof Failure && e.kind === 'retry' && e.message.startsWith('HTTP 200 response body is not the expected JSON'));
  assert.throws(() => new Response(200).withBody(new Uint8Array([0xff])).text(), { kind: 'retry' });
});

test('errorForStatus classifies', () => {
  assert.ok(new Response(204).errorForStatus() instanceof Response);
  for (const status of [408, 425, 429, 500, 502, 503]) {
    assert.throws(() => new Response(status).errorForStatus(), { kind: 'retry', message: `HTTP ${status}` });
  }
  for (const status of [301, 400, 401, 404, 410, 422]) {
    assert.throws(() => new Response(status).errorForStatus(), { kind: 'reject' });
  }
  assert.throws(
    () => new Response(404).withBody(' {"error":{"code":"resource_missing"}}\n').errorForStatus(),
    { kind: 'reject', message: 'HTTP 404: {"error":{"code":"resource_missing"}}' },
  );
  assert.throws(
    () => new Response(500).withBody('é'.repeat(300)).errorForStatus(),
    { kind: 'retry', message: `HTTP 500: ${'é'.repeat(200)}…` },
  );
});

test('fetch errors are failures', () => {
  assert.equal(FetchError.denied('h').kind, 'reject');
  assert.equal(FetchError.denied('h').message, 'fetch denied: h');
  assert.equal(FetchError.timeout().kind, 'retry');
  assert.equal(FetchError.timeout().message, 'fetch timed out');
  assert.equal(FetchError.transport('reset').kind, 'retry');
  assert.equal(FetchError.transport('reset').message, 'fetch failed: reset');
  assert.equal(String(FetchError.transport('reset')), 'retry: fetch failed: reset');
  assert.ok(FetchError.timeout() instanceof Failure);
  assert.throws(() => new FetchError('nope'), TypeError);
});
