// Builds test/fixtures/probe.js into a component with `switchyard-js build`, checks what it
// imports and exports, and runs it (jco transpile) beside TestHost: the component must do
// exactly what the connector does in Node, failures, logs, fetches and kv included.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { componentInterface, SDK_ROOT } from '../src/build.js';
import { toWitRequest } from '../src/http.js';
import { FetchError, Response, Webhook } from '../src/index.js';
import { TestHost } from '../src/test.js';
import probe from './fixtures/probe.js';
import { loadComponent, witWebhook } from './support/component.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const CLI = join(SDK_ROOT, 'bin', 'switchyard-js.js');
const run = promisify(execFile);

let outDir;
let wasmFile;
let call;

before(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'switchyard-js-build-'));
  wasmFile = join(outDir, 'probe.wasm');
  const started = Date.now();
  const { stdout } = await run(process.execPath, [CLI, 'build', FIXTURES, '--entry', 'probe.js', '--out', wasmFile], {
    cwd: FIXTURES,
  });
  process.stderr.write(`# built probe.wasm in ${Date.now() - started} ms: ${stdout}`);
  call = await loadComponent(wasmFile);
});

after(async () => {
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

test('the build writes the component atomically and reports it', async () => {
  assert.ok(existsSync(wasmFile));
  assert.deepEqual(readdirSync(outDir), ['probe.wasm'], 'no temporary file is left behind');
  const bytes = await readFile(wasmFile);
  assert.deepEqual([...bytes.subarray(0, 8)], [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00], 'a component');
});

test('the component imports nothing but the switchyard:connector interfaces', async () => {
  const { imports, exports } = await componentInterface(await readFile(wasmFile));
  assert.deepEqual(imports.sort(), [
    'switchyard:connector/clock@0.1.1',
    'switchyard:connector/http@0.1.1',
    'switchyard:connector/kv@0.1.1',
    'switchyard:connector/log@0.1.1',
    'switchyard:connector/settings@0.1.1',
    'switchyard:connector/types@0.1.1',
  ]);
  assert.deepEqual(exports.sort(), ['check-settings', 'dedupe-key', 'handle', 'manifest']);
});

test('manifest', async () => {
  assert.deepEqual(await call(new TestHost(), 'manifest'), {
    ok: {
      name: 'probe',
      version: '1.2.3',
      description: 'Exercises the SDK',
      defaultScheme: 'none',
      settings: [
        { name: 'target', description: 'Where deliveries go', required: true },
        { name: 'flag', description: 'A boolean', required: false },
      ],
    },
  });
});

const TARGET = 'http://backend.test/in';
const API = 'http://api.test';
const FORM =
  'type=subscribe&data%5Bmerges%5D%5BEMAIL%5D=a%40b.c&data[merges][FNAME]=Zo%C3%AB&data[list][]=1&data[list][]=2&x=%FF%ZZ';

function host() {
  return new TestHost()
    .setting('target', TARGET)
    .setting('form', FORM)
    .setting('flag', 'Yes')
    .setting('list', '["a", {"b": 1}]')
    .now(1_234_567_890_123)
    .kvEntry('gone', 'x')
    .fetchResponse('GET', `${API}/users/`, new Response(200).withHeader('X-Request-Id', 'req_1').withJson({ name: 'Ada' }))
    .fetchResponse('*', `${API}/busy`, new Response(503).withBody('try later'))
    .fetchError('POST', `${API}/slow`, FetchError.timeout())
    .fetchError('*', `${API}/reset`, FetchError.transport('connection reset'));
}

function event(body, build = (b) => b) {
  return build(Webhook.builder().id('01PROBE').connector('probe').json(body)).build();
}

/** TestHost's outcome in the component's terms. */
function nodeOutcome(h, webhook) {
  try {
    const result = h.handle(probe, webhook);
    return Promise.resolve(result).then(
      (r) => ('ok' in r ? { ok: r.ok.map((d, i) => toWitRequest(d, `delivery ${i}`)) } : { err: { tag: r.err.kind, val: r.err.message } }),
      (e) => ({ thrown: e }),
    );
  } catch (e) {
    return Promise.resolve({ thrown: e });
  }
}

function state(h) {
  return {
    logs: h.logs(),
    fetches: h.fetches().map((r, i) => toWitRequest(r, `fetch ${i}`)),
    kv: [...h.kvSnapshot()],
  };
}

/** Runs `webhook` through TestHost and the component, each with a fresh `host()`. */
async function both(webhook) {
  const inNode = host();
  const node = await nodeOutcome(inNode, webhook);
  const inComponent = host();
  const component = await call(inComponent, 'handle', witWebhook(webhook));
  return { node, component, nodeState: state(inNode), componentState: state(inComponent) };
}

const SAME = [
  ['helpers', event({ op: 'helpers' }, (b) => b.header('X-Probe', 'p').header('x-multi', '1').header('X-Multi', '2').query('q=a+b%2B&q=2').attempt(3).receivedAt(1_700_000_000_999))],
  ['form body', Webhook.builder().form([['type', 'sub scribe'], ['data[email]', 'a+b@c.d']]).build()],
  ['fetch', event({ op: 'fetch', api: API })],
  ['fetch: 503', event({ op: 'fetch', api: `${API}/busy` })],
  ['fetch: timeout', event({ op: 'fetch-error', api: `${API}/slow` })],
  ['fetch: transport', event({ op: 'fetch-error', api: `${API}/reset` })],
  ['fetch: denied', event({ op: 'fetch-error', api: 'http://elsewhere.test/' })],
  ['fetch: uncaught denied', event({ op: 'fetch-uncaught', api: 'http://elsewhere.test/x' })],
  ['fetch: uncaught transport', event({ op: 'fetch-uncaught', api: `${API}/reset` })],
  ['kv', event({ op: 'kv' })],
  ['kv: too big', event({ op: 'kv', big: true })],
  ['logs', event({ op: 'logs' })],
  ['retry', event({ op: 'retry' }, (b) => b.attempt(4))],
  ['reject with context', event({ op: 'reject' })],
  ['status 404', event({ op: 'status', status: 404 })],
  ['status 429', event({ op: 'status', status: 429 })],
  ['async', event({ op: 'await' })],
  ['plain object', event({ op: 'plain' })],
  ['no deliveries', event({ op: 'none' })],
  ['echo', event({ op: 'echo', 'ü': [1, 2.5, null] })],
];

for (const [name, webhook] of SAME) {
  test(`same outcome in Node and in the component: ${name}`, async () => {
    const { node, component, nodeState, componentState } = await both(webhook);
    assert.ok(!('thrown' in node), `TestHost threw: ${node.thrown?.stack}`);
    assert.deepEqual(component, node);
    assert.deepEqual(componentState, nodeState);
  });
}

test('a setting missing, a body that is not JSON, a value with no JSON text: the same rejections', async () => {
  const missing = Webhook.builder().json({ op: 'x' }).build();
  const inComponent = new TestHost();
  assert.deepEqual(await call(inComponent, 'handle', witWebhook(missing)), {
    err: { tag: 'reject', val: 'setting `target` is not set' },
  });
  // The engines word their JSON errors differently: the start of the message is the SDK's.
  for (const [webhook, prefix] of [
    [Webhook.builder().body('not json').build(), 'body is not valid JSON: '],
    [event({ op: 'json-bigint' }), 'request body does not serialize to JSON: '],
  ]) {
    const { node, component } = await both(webhook);
    for (const outcome of [node, component]) {
      assert.equal(outcome.err?.tag, 'reject', JSON.stringify(outcome));
      assert.ok(outcome.err.val.startsWith(prefix), outcome.err.val);
    }
  }
});

test('an exception that is not a Failure traps, logged with a stack naming the source line', async () => {
  const source = await readFile(join(FIXTURES, 'probe.js'), 'utf8');
  const line = source.split('\n').findIndex((l) => l.includes('throw new RangeError')) + 1;
  const cases = [
    [{ op: 'throw', n: 7 }, 'uncaught exception in handle: RangeError: bad range 7', new RegExp(`^handle@@switchyard/sdk/test/fixtures/probe\\.js:${line}:\\d+$`, 'm')],
    [{ op: 'throw-string' }, 'uncaught exception in handle: a string', undefined],
    [{ op: 'return-undefined' }, 'uncaught exception in handle: TypeError: handle returned undefined; return an array of deliveries', undefined],
    [{ op: 'bad-delivery' }, 'uncaught exception in handle: TypeError: delivery 0 needs a string method and url', undefined],
  ];
  for (const [body, first, frame] of cases) {
    const { node, component, componentState } = await both(event(body));
    assert.ok('thrown' in node, `TestHost lets ${JSON.stringify(body)} propagate`);
    assert.match(component.trap, /unreachable/, JSON.stringify(component));
    const [level, message] = componentState.logs.at(-1);
    assert.equal(level, 'error');
    assert.ok(message.startsWith(first), message);
    if (frame) assert.match(message, frame);
    assert.doesNotMatch(message, /runHandle|exportsFor|initializer\.js/, 'the SDK glue is left out');
  }
});

test('console output goes to the log in the component (in Node it stays on the console)', async () => {
  const h = host();
  assert.deepEqual(await call(h, 'handle', witWebhook(event({ op: 'console' }))), { ok: [] });
  assert.deepEqual(h.logs(), [['info', 'hello {"a":1} [2]'], ['warn', 'careful'], ['debug', 'detail']]);
});

test('dedupeKey', async () => {
  const webhook = (key) => Webhook.builder().header('x-dedupe', key).build();
  assert.deepEqual(await call(host(), 'dedupeKey', witWebhook(webhook('evt_1'))), { ok: 'evt_1' });
  assert.deepEqual(await call(host(), 'dedupeKey', witWebhook(Webhook.builder().build())), { ok: undefined });
  assert.throws(() => new TestHost().dedupeKey(probe, webhook('number')), TypeError);
  assert.match((await call(host(), 'dedupeKey', witWebhook(webhook('number')))).trap, /unreachable/);
});

test('checkSettings', async () => {
  const check = async (target) => {
    const h = new TestHost();
    if (target !== undefined) h.setting('target', target);
    let node;
    try {
      node = h.checkSettings(probe);
    } catch (e) {
      node = { thrown: e.message };
    }
    return { node: { ...node }, component: await call(h, 'checkSettings') };
  };
  assert.deepEqual(await check('http://ok'), { node: { ok: undefined }, component: { ok: undefined } });
  assert.deepEqual(await check(undefined), {
    node: { err: 'setting `target` is not set' },
    component: { err: 'setting `target` is not set' },
  });
  assert.deepEqual(await check('ftp\n'), {
    node: { err: 'setting `target` is not a URL: "ftp\\n"' },
    component: { err: 'setting `target` is not a URL: "ftp\\n"' },
  });
  const crash = await check('http://crash');
  assert.equal(crash.node.thrown, 'checkSettings crashed');
  assert.match(crash.component.trap, /unreachable/);
});
