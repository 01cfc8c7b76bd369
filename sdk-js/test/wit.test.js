// The WIT the SDK builds against and the declarations generated from it cannot drift.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { test } from 'node:test';

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';

import { TYPES_DIR, WIT_FILE, writeWitTypes } from '../scripts/gen-types.js';
import { SDK_ROOT } from '../src/build.js';
import * as sdk from '../src/index.js';
import * as testing from '../src/test.js';

const REPO_WIT = join(SDK_ROOT, '..', 'wit', '0.1.1', 'connector.wit');

test("wit/connector.wit is the repository's wit/0.1.1/connector.wit, byte for byte", async (t) => {
  if (!existsSync(REPO_WIT)) {
    t.skip('not inside the Switchyard repository');
    return;
  }
  assert.ok((await readFile(WIT_FILE)).equals(await readFile(REPO_WIT)), `${WIT_FILE} differs from ${REPO_WIT}: copy it over`);
});

async function files(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await files(path)));
    else out.push(path);
  }
  return out;
}

async function contents(dir) {
  const out = new Map();
  for (const file of await files(dir)) out.set(relative(dir, file), await readFile(file, 'utf8'));
  return out;
}

test('types/wit/ is what jco generates from wit/connector.wit (npm run gen-types)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-js-types-'));
  let generated;
  try {
    await writeWitTypes(dir);
    generated = await contents(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const checkedIn = await contents(TYPES_DIR);
  assert.deepEqual([...checkedIn.keys()].sort(), [...generated.keys()].sort(), 'the same files');
  for (const [path, text] of generated) {
    assert.equal(checkedIn.get(path), text, `types/wit/${path} is stale: run npm run gen-types`);
  }
  // The declarations describe the world's imports and exports as the build wires them.
  const world = generated.get('connector.d.ts');
  for (const name of ['manifest', 'dedupeKey', 'handle', 'checkSettings']) {
    assert.match(world, new RegExp(`export function ${name}\\(`));
  }
});

/** The names a hand-written .d.ts declares at its top level. */
function declared(dts) {
  const names = new Set();
  for (const m of dts.matchAll(/^export declare (?:const|function|class) (\w+)/gm)) names.add(m[1]);
  return names;
}

test('index.d.ts and test.d.ts declare every runtime export', async () => {
  const index = declared(await readFile(join(SDK_ROOT, 'index.d.ts'), 'utf8'));
  for (const name of Object.keys(sdk)) assert.ok(index.has(name), `index.d.ts does not declare ${name}`);
  for (const name of index) assert.ok(name in sdk, `index.d.ts declares ${name}, which src/index.js does not export`);
  const test = declared(await readFile(join(SDK_ROOT, 'test.d.ts'), 'utf8'));
  for (const name of Object.keys(testing)) assert.ok(test.has(name), `test.d.ts does not declare ${name}`);
});
