// switchyard-js's command line: usage and the errors a user meets before componentize-js
// runs (each names the file, and the line where there is one).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { SDK_ROOT } from '../src/build.js';

const CLI = join(SDK_ROOT, 'bin', 'switchyard-js.js');
const execFileAsync = promisify(execFile);

let root;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'switchyard-js-cli-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function cli(args, cwd = root) {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, ...args], { cwd });
    return { code: 0, stdout, stderr };
  } catch (e) {
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A project folder `name` with `files` (path → text); the SDK is reached by its path. */
async function project(name, files) {
  const dir = join(root, name);
  await mkdir(join(dir, 'src'), { recursive: true });
  await mkdir(join(dir, 'node_modules', '@switchyard'), { recursive: true });
  const { symlink } = await import('node:fs/promises');
  await symlink(SDK_ROOT, join(dir, 'node_modules', '@switchyard', 'sdk'));
  for (const [path, text] of Object.entries({ 'package.json': '{"name":"demo","type":"module"}', ...files })) {
    await writeFile(join(dir, path), text);
  }
  return dir;
}

const GOOD = `import { defineConnector } from '@switchyard/sdk';
export default defineConnector({ manifest: { name: 'demo', version: '1' }, handle: () => [] });
`;

test('usage, version, unknown commands and options', async () => {
  const help = await cli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: switchyard-js build \[DIR\] \[--out FILE\] \[--entry FILE\]/);
  assert.equal((await cli([])).code, 2);
  assert.equal((await cli(['--version'])).stdout.trim(), '0.1.1');
  const unknown = await cli(['deploy']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command deploy/);
  assert.match((await cli(['build', '--fast'])).stderr, /unknown option --fast/);
  assert.match((await cli(['build', '--out'])).stderr, /--out needs a value/);
});

test('a missing entry module', async () => {
  const dir = await project('no-entry', {});
  const r = await cli(['build'], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /switchyard-js: error: the entry module src\/index\.js does not exist \(set "main" in package\.json or pass --entry FILE\)/);
  assert.match((await cli(['build', '--entry', 'lib/x.js'], dir)).stderr, /the entry module lib\/x\.js does not exist\n/);
});

test('a syntax error names the file, line and column', async () => {
  const dir = await project('syntax', {
    'src/index.js': GOOD,
    'src/helper.js': 'export function f() {\n  return 1 +;\n}\n',
  });
  await writeFile(join(dir, 'src/index.js'), `import { f } from './helper.js';\n${GOOD}`);
  const r = await cli(['build'], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /bundling src\/index\.js failed:/);
  assert.match(r.stderr, /src\/helper\.js:2:13: error: Unexpected ";"/);
  assert.match(r.stderr, /return 1 \+;/);
});

test('Node.js modules and missing packages are refused by name', async () => {
  const dir = await project('node-api', {
    'src/index.js': `import { readFileSync } from 'node:fs';\nimport left from 'left-pad';\n${GOOD}`,
  });
  const r = await cli(['build'], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /src\/index\.js:1:30: error: "node:fs" is a Node\.js module: a connector runs in the host.s sandbox/);
  assert.match(r.stderr, /src\/index\.js:2:18: error: Could not resolve "left-pad"/);
});

test('the entry must export a connector, and load', async () => {
  let dir = await project('no-default', { 'src/index.js': 'export const x = 1;\n' });
  let r = await cli(['build'], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /src\/index\.js must `export default defineConnector\(\{ … \}\)`/);

  dir = await project('top-level-throw', {
    'src/index.js': `${GOOD}\nif (true) throw new Error('config missing at load');\n`,
  });
  r = await cli(['build'], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /loading src\/index\.js failed: Error: config missing at load/);

  dir = await project('bad-manifest', {
    'src/index.js': `import { defineConnector } from '@switchyard/sdk';\nexport default defineConnector({ manifest: { name: 'x' }, handle: () => [] });\n`,
  });
  r = await cli(['build'], dir);
  assert.match(r.stderr, /manifest\.version must be a string, got undefined/);
});

test('no package name and no --out', async () => {
  const dir = await project('nameless', { 'package.json': '{"type":"module"}', 'src/index.js': GOOD });
  const r = await cli(['build'], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no package name to name the component after .*: pass --out FILE/);
  const broken = await project('broken-json', { 'package.json': '{', 'src/index.js': GOOD });
  assert.match((await cli(['build'], broken)).stderr, /package\.json is not valid JSON/);
});
