// What hostile-js does in Node (the misbehaviours that would hang or exhaust the test
// process, `spin` and `alloc`, are for the host's tests only).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Delivery, Webhook, reject, retry } from '@switchyard/sdk';
import { TestHost } from '@switchyard/sdk/test';

import connector from '../src/index.js';

const event = (body) => Webhook.builder().json(body).build();
const host = () => new TestHost().setting('forward_url', 'http://127.0.0.1:9000/in');

test('manifest', () => {
  assert.equal(connector.manifest.name, 'hostile-js');
  assert.equal(connector.manifest.defaultScheme, 'none');
});

test('anything else is echoed to forward_url', () => {
  const w = event({ do: 'ok', n: 1 });
  assert.deepEqual(host().handle(connector, w), {
    ok: [
      Delivery.post('http://127.0.0.1:9000/in')
        .header('content-type', 'application/json')
        .header('x-hostile', 'js')
        .body(w.body),
    ],
  });
  assert.deepEqual(new TestHost().handle(connector, w), { err: reject('setting `forward_url` is not set') });
});

test('retry and reject are failures; trap is an uncaught Error', () => {
  assert.deepEqual(host().handle(connector, event({ do: 'retry' })), { err: retry('asked to retry') });
  assert.deepEqual(host().handle(connector, event({ do: 'reject', message: 'no' })), { err: reject('no') });
  assert.throws(() => host().handle(connector, event({ do: 'trap' })), { name: 'Error', message: 'asked to trap' });
});

test('dedupeKey', () => {
  assert.equal(host().dedupeKey(connector, event({ key: 'k1' })), 'k1');
  assert.equal(host().dedupeKey(connector, event({})), undefined);
  assert.throws(() => host().dedupeKey(connector, event({ dedupe: 'trap' })), /asked to throw in dedupeKey/);
});
