#!/usr/bin/env node
// Generates the TypeScript declarations of the WIT world (`types/wit/`) from
// `wit/connector.wit` with jco's guest type generation: the `switchyard:connector/*`
// modules as a connector component sees them. `npm test` regenerates them and fails when
// the checked-in files differ (test/wit.test.js).
//
//   node scripts/gen-types.js            writes types/wit/
//   node scripts/gen-types.js --out DIR  writes DIR instead

import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const WIT_FILE = join(ROOT, 'wit', 'connector.wit');
export const TYPES_DIR = join(ROOT, 'types', 'wit');

const HEADER =
  '// Generated from wit/connector.wit by scripts/gen-types.js (jco guest types). Do not edit:\n' +
  '// run `npm run gen-types` after changing the WIT.\n';

/** The declarations for `witText`: relative path → file text. */
export async function generateWitTypes(witText) {
  const { generateTypes, $init } = await import('@bytecodealliance/jco-transpile/component');
  await $init;
  const files = generateTypes('connector', {
    wit: { tag: 'source', val: witText },
    world: 'connector',
    guest: true,
    tlaCompat: false,
    features: { tag: 'list', val: [] },
  });
  const decoder = new TextDecoder();
  return new Map(files.map(([path, bytes]) => [path, HEADER + decoder.decode(bytes)]));
}

/** Writes the declarations into `outDir` (emptied first). */
export async function writeWitTypes(outDir = TYPES_DIR) {
  const files = await generateWitTypes(await readFile(WIT_FILE, 'utf8'));
  await rm(outDir, { recursive: true, force: true });
  for (const [path, text] of files) {
    const file = join(outDir, path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, text);
  }
  return files;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--out');
  const outDir = at === -1 ? TYPES_DIR : resolve(process.argv[at + 1]);
  const files = await writeWitTypes(outDir);
  for (const path of files.keys()) console.log(join(outDir, path));
}
