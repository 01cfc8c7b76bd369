// The scaffold template (what `switchyard new connector NAME --lang js` writes) rendered by
// hand as the host renders it, then used as a user would: npm install, npm test,
// npm run build, and the component it builds handles an event like TestHost does.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

import { SDK_ROOT } from '../src/build.js';
import { Webhook } from '../src/index.js';
import { TestHost } from '../src/test.js';
import { loadComponent, witWebhook } from './support/component.js';
import { renderTemplate } from './support/template.js';

const execFileAsync = promisify(execFile);
// Without the variable `node --test` sets, so the project's own `node --test` reports as it
// does for a user.
const { NODE_TEST_CONTEXT, ...env } = process.env;
const run = (file, args, options) => execFileAsync(file, args, { env, ...options });
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

let root;
let dir;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'switchyard-js-template-'));
  dir = join(root, 'my-hook');
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('the template renders every placeholder', async () => {
  const written = await renderTemplate(dir, 'my-hook');
  assert.deepEqual(written, ['.gitignore', 'README.md', 'jsconfig.json', 'package.json', 'src/index.js', 'test/index.test.js']);
  const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
  assert.equal(pkg.name, 'my-hook');
  assert.equal(pkg.dependencies['@switchyard/sdk'], `file:${SDK_ROOT}`);
  assert.equal(pkg.scripts.build, 'switchyard-js build');
  const readme = await readFile(join(dir, 'README.md'), 'utf8');
  assert.match(readme, /secret = "env:MY_HOOK_SECRET"/);
  for (const file of written) assert.doesNotMatch(await readFile(join(dir, file), 'utf8'), /\{\{/, file);
});

test('npm install links the SDK without downloading anything, and npm test passes', async () => {
  const started = Date.now();
  await run(NPM, ['install', '--no-audit', '--no-fund', '--offline'], { cwd: dir });
  assert.ok(existsSync(join(dir, 'node_modules', '@switchyard', 'sdk', 'package.json')));
  assert.ok(existsSync(join(dir, 'node_modules', '.bin', 'switchyard-js')));
  const installed = Date.now() - started;
  const { stdout } = await run(NPM, ['test'], { cwd: dir });
  assert.match(stdout, /# pass 4\n# fail 0/);
  process.stderr.write(`# npm install ${installed} ms, npm test ${Date.now() - started - installed} ms\n`);
});

test('npm run build writes my-hook.wasm, which forwards an event as TestHost does', async () => {
  const started = Date.now();
  const { stdout } = await run(NPM, ['run', 'build', '--silent'], { cwd: dir });
  assert.match(stdout, /^built my-hook\.wasm \(\d+\.\d MiB\) in \d+\.\d s: my-hook 0\.1\.0$/m);
  process.stderr.write(`# npm run build ${Date.now() - started} ms\n`);
  const call = await loadComponent(join(dir, 'my-hook.wasm'));
  const connector = (await import(pathToFileURL(join(dir, 'src', 'index.js')).href)).default;
  const webhook = Webhook.builder().header('webhook-id', 'msg_1').json({ type: 'order.created' }).build();
  const host = () => new TestHost().setting('forward_url', 'http://127.0.0.1:9000/events');
  const inNode = host();
  const [delivery] = inNode.handle(connector, webhook).unwrap();
  const inComponent = host();
  assert.deepEqual(await call(inComponent, 'handle', witWebhook(webhook)), {
    ok: [{ method: 'POST', url: delivery.url, headers: delivery.headers, body: delivery.body() }],
  });
  assert.deepEqual(inComponent.logs(), inNode.logs());
  assert.deepEqual(await call(host(), 'dedupeKey', witWebhook(webhook)), { ok: 'msg_1' });
  assert.deepEqual((await call(host(), 'manifest')).ok.name, 'my-hook');
});
