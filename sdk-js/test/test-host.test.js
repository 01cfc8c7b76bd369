// TestHost and Ctx (ports of sdk/src/test_host.rs's tests), and what the SDK does with what
// a connector returns.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Delivery, FetchError, Request, Response, Webhook, defineConnector, reject, retry } from '../src/index.js';
import { TestHost } from '../src/test.js';

/** Exercises every capability: counts events in kv, fetches a user, logs. */
const probe = defineConnector({
  manifest: { name: 'probe', version: '0.0.0' },
  dedupeKey(webhook) {
    return webhook.header('x-id');
  },
  handle(webhook, ctx) {
    const target = ctx.requireSetting('target');
    const count = Number(ctx.kv.getString('count') ?? '0') || 0;
    ctx.kv.set('count', String(count + 1));
    ctx.kv.delete('scratch');
    const user = ctx.fetch(Request.get('http://api/users/1').bearerAuth('k')).errorForStatus();
    ctx.info(`event ${webhook.id} at ${ctx.now()}`);
    return [Delivery.post(target).body(user.body)];
  },
});

const webhook = () => Webhook.builder().id('evt').header('X-Id', 'abc').build();

test('settings, kv, fetch and logs', () => {
  const host = new TestHost()
    .setting('target', 'http://backend/in')
    .kvEntry('count', '41')
    .kvEntry('scratch', 'x')
    .now(5)
    .fetchResponse('GET', 'http://api/users/', new Response(200).withBody('{"u":1}'));
  const out = host.handle(probe, webhook());
  assert.deepEqual(out, { ok: [Delivery.post('http://backend/in').body('{"u":1}')] });
  assert.deepEqual(host.kvValue('count'), new TextEncoder().encode('42'));
  assert.equal(host.kvText('count'), '42');
  assert.equal(host.kvValue('scratch'), undefined);
  assert.equal(host.kvSnapshot().size, 1);
  const fetches = host.fetches();
  assert.equal(fetches.length, 1);
  assert.equal(fetches[0].headerValue('Authorization'), 'Bearer k');
  assert.deepEqual(host.logs(), [['info', 'event evt at 5']]);
  assert.equal(host.dedupeKey(probe, webhook()), 'abc');
});

test('a missing setting is rejected by name', () => {
  assert.deepEqual(new TestHost().handle(probe, webhook()), { err: reject('setting `target` is not set') });
  assert.deepEqual(new TestHost().setting('target', ' ').handle(probe, webhook()), {
    err: reject('setting `target` is empty'),
  });
});

test('an unconfigured fetch is denied', () => {
  const host = new TestHost().setting('target', 'http://backend/in');
  const err = host.handle(probe, webhook()).unwrapErr();
  assert.ok(err instanceof FetchError);
  assert.equal(err.kind, 'reject');
  assert.ok(err.message.startsWith('fetch denied'), err.message);
  assert.equal(host.fetches().length, 1, 'denied fetches are recorded too');
});

test('upstream errors map to retry', () => {
  let host = new TestHost().setting('target', 't').fetchError('GET', 'http://api/', FetchError.timeout());
  assert.ok(host.handle(probe, webhook()).unwrapErr().isRetry());
  host = new TestHost().setting('target', 't').fetchResponse('*', 'http://api/', new Response(503));
  assert.deepEqual(host.handle(probe, webhook()), { err: retry('HTTP 503') });
});

test('routes prefer exact, then the longest prefix, then the handler', () => {
  const host = new TestHost()
    .fetchResponse('GET', 'http://a/', new Response(201))
    .fetchResponse('GET', 'http://a/x/', new Response(202))
    .fetchResponse('GET', 'http://a/x/1', new Response(203))
    .fetchResponse('POST', 'http://a/x/2', new Response(204))
    .onFetch((req) => new Response(299).withBody(req.url));
  const ctx = host.ctx();
  const status = (r) => ctx.fetch(r).status;
  assert.equal(status(Request.get('http://a/x/1')), 203);
  assert.equal(status(Request.get('http://a/x/10')), 203, 'prefix of the exact route');
  assert.equal(status(Request.get('http://a/x/2')), 202, 'the method must match');
  assert.equal(status(Request.post('http://a/x/2')), 204);
  assert.equal(status(Request.get('http://a/y')), 201);
  assert.equal(status(Request.get('http://b/')), 299);
  assert.equal(host.fetches().length, 6);
  const errors = new TestHost().onFetch(() => FetchError.transport('reset')).ctx();
  assert.throws(() => errors.fetch(Request.get('http://x')), { kind: 'retry', message: 'fetch failed: reset' });
  assert.throws(() => ctx.fetch(Delivery.get('http://a/')), TypeError, 'a Delivery is not fetched');
});

test('answers are copies: a connector cannot change the canned response', () => {
  const host = new TestHost().fetchResponse('GET', 'http://a/', new Response(200).withBody('x'));
  const first = host.ctx().fetch(Request.get('http://a/'));
  first.body[0] = 0x79;
  assert.equal(host.ctx().fetch(Request.get('http://a/')).text(), 'x');
});

test('kv limits match the host', () => {
  const host = new TestHost();
  const kv = host.ctx().kv;
  kv.set('k'.repeat(512), new Uint8Array(64 * 1024));
  assert.throws(() => kv.set('k'.repeat(513), 'v'), { kind: 'reject', message: 'kv set failed: kv key longer than 512 bytes' });
  assert.throws(() => kv.set('é'.repeat(257), 'v'), { message: 'kv set failed: kv key longer than 512 bytes' }, 'bytes, not characters');
  assert.throws(() => kv.set('k', new Uint8Array(64 * 1024 + 1)), { kind: 'reject', message: 'kv set failed: kv value larger than 65536 bytes' });
  assert.equal(host.kvSnapshot().size, 1);
  assert.equal(kv.get('absent'), undefined);
  assert.equal(kv.getString('absent'), undefined);
});

test('setting helpers', () => {
  const host = new TestHost()
    .setting('flag', 'true')
    .setting('off', '0')
    .setting('bad', 'maybe')
    .setting('list', '["a","b"]');
  const ctx = host.ctx();
  assert.equal(ctx.settingBool('flag'), true);
  assert.equal(ctx.settingBool('off'), false);
  assert.equal(ctx.settingBool('absent'), false);
  assert.throws(() => ctx.settingBool('bad'), { kind: 'reject', message: 'setting `bad` must be true or false, got "maybe"' });
  assert.deepEqual(ctx.settingJson('list'), ['a', 'b']);
  assert.equal(ctx.settingJson('absent'), undefined);
  assert.throws(() => ctx.settingJson('bad'), (e) => e.kind === 'reject' && e.message.startsWith('setting `bad` is not valid: '));
  assert.equal(ctx.settingOr('absent', 'd'), 'd');
  assert.equal(ctx.settingOr('flag', 'd'), 'true');
  ctx.warn('w');
  ctx.error('e');
  ctx.debug('d');
  ctx.trace('t');
  ctx.log.info('i');
  ctx.log('warn', 'w2');
  assert.throws(() => ctx.log('loud', 'x'), TypeError);
  assert.deepEqual(host.logs().map(([l]) => l), ['warn', 'error', 'debug', 'trace', 'info', 'warn']);
  assert.equal(ctx.now(), 1_700_000_000_000);
});

test('checkSettings: nothing accepts, a string or a Failure refuses, other exceptions propagate', () => {
  const check = (checkSettings) => defineConnector({ manifest: { name: 'c', version: '1' }, handle: () => [], checkSettings });
  const host = new TestHost().setting('url', 'ftp://x');
  assert.deepEqual(host.checkSettings(check(undefined)), { ok: undefined });
  assert.deepEqual(host.checkSettings(check(() => {})), { ok: undefined });
  assert.deepEqual(host.checkSettings(check((ctx) => `setting \`url\` is not http: ${ctx.setting('url')}`)), {
    err: 'setting `url` is not http: ftp://x',
  });
  assert.deepEqual(host.checkSettings(check((ctx) => void ctx.requireSetting('token'))), { err: 'setting `token` is not set' });
  assert.throws(() => host.checkSettings(check(() => { throw new RangeError('bug'); })), RangeError);
  assert.throws(() => host.checkSettings(check(() => 42)), TypeError);
  assert.equal(host.checkSettings(check(() => {})).unwrap(), undefined);
  assert.throws(() => host.checkSettings(check(() => 'no')).unwrap(), /unwrap/);
});

test('what handle returns is checked', () => {
  const returning = (value) => defineConnector({ manifest: { name: 'r', version: '1' }, handle: () => value });
  const host = new TestHost();
  const w = Webhook.builder().build();
  assert.throws(() => host.handle(returning(undefined), w), /handle returned undefined; return an array of deliveries/);
  assert.throws(() => host.handle(returning([{ url: 'x' }]), w), /delivery 0 needs a string method and url/);
  assert.throws(() => host.handle(returning([Delivery.post('u').header('a', 'b'), 'x']), w), /delivery 1 is the string/);
  const plain = { method: 'POST', url: 'http://x', headers: [['a', 'b']], body: 'hi' };
  assert.deepEqual(host.handle(returning([plain]), w).unwrap(), [plain], 'plain objects of the same shape are deliveries too');
  assert.throws(() => host.handle(defineConnector({ manifest: { name: 'r', version: '1' }, handle: () => { throw new Error('bug'); } }), w), /bug/);
});

test('an async handle gives a promise of the same result', async () => {
  const connector = defineConnector({
    manifest: { name: 'a', version: '1' },
    async handle(webhook, ctx) {
      await Promise.resolve();
      if (webhook.attempt > 1) throw retry('again');
      return [Delivery.post(ctx.requireSetting('u'))];
    },
  });
  const host = new TestHost().setting('u', 'http://x');
  assert.deepEqual(await host.handle(connector, Webhook.builder().build()), { ok: [Delivery.post('http://x')] });
  assert.deepEqual(await host.handle(connector, Webhook.builder().attempt(2).build()), { err: retry('again') });
});

test('dedupeKey must return a string or nothing', () => {
  const keyed = (dedupeKey) => defineConnector({ manifest: { name: 'k', version: '1' }, handle: () => [], dedupeKey });
  const host = new TestHost();
  const w = Webhook.builder().build();
  assert.equal(host.dedupeKey(keyed(undefined), w), undefined);
  assert.equal(host.dedupeKey(keyed(() => null), w), undefined);
  assert.equal(host.dedupeKey(keyed(() => 'k'), w), 'k');
  assert.throws(() => host.dedupeKey(keyed(() => 42), w), /dedupeKey returned number 42/);
  assert.equal(host.dedupeKey(keyed(() => 'k'), Webhook.builder()), 'k', 'a builder is built');
});

test('defineConnector checks the definition', () => {
  assert.throws(() => defineConnector({ manifest: { name: 'x', version: '1' } }), /no `handle/);
  assert.throws(() => defineConnector({ handle() {} }), /no `manifest`/);
  assert.throws(() => defineConnector({ manifest: { name: 'x' }, handle() {} }), /manifest.version must be a string/);
  assert.throws(() => defineConnector({ manifest: { name: 'x', version: '1' }, handle() {}, handel() {} }), /unknown field `handel`/);
  const c = defineConnector({
    manifest: { name: 'x', version: '1', settings: [{ name: 'a', required: true }, { name: 'b', description: 'B' }] },
    handle() { return []; },
  });
  assert.deepEqual(c.manifest, {
    name: 'x', version: '1', description: '', defaultScheme: 'none',
    settings: [{ name: 'a', description: '', required: true }, { name: 'b', description: 'B', required: false }],
  });
  assert.throws(() => new TestHost().handle({ handle() {} }, Webhook.builder().build()), /not a connector/);
});
