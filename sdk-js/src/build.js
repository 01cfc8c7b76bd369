// `switchyard-js build`: a connector project → a WebAssembly component the Switchyard host
// loads. esbuild bundles the entry module with the SDK into one ES module (componentize-js
// reads one module graph from one folder, and cannot resolve packages), Node loads the entry
// once to check it exports a connector, componentize-js (StarlingMonkey) turns the bundle
// into a component with no WASI features, and the component's imports are checked against
// what the host provides before it is written, atomically.

import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rename, rm, writeFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The SDK package this build belongs to. */
export const SDK_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The WIT the component is built against (a copy of the repository's `wit/0.1.1`). */
export const WIT_PATH = join(SDK_ROOT, 'wit', 'connector.wit');
/** The WIT package and world. */
export const WIT_PACKAGE = 'switchyard:connector@0.1.1';
export const WORLD = 'connector';
/** Every optional engine feature off: the component imports nothing but the world. */
export const DISABLED_FEATURES = Object.freeze(['random', 'stdio', 'clocks', 'http', 'fetch-event']);
const INTERFACES = ['settings', 'http', 'kv', 'log', 'clock'];
const EXPORTS = ['manifest', 'dedupe-key', 'handle', 'check-settings'];

/** A build error with a message meant for the user (no stack needed). */
export class BuildError extends Error {
  get name() {
    return 'BuildError';
  }
}

function fail(message) {
  throw new BuildError(message);
}

/** `import()` of one of the SDK's dependencies, with a hint when it is not installed. */
async function dependency(name) {
  try {
    return await import(name);
  } catch (e) {
    if (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') {
      fail(
        `cannot load ${name} (${e.message.split('\n')[0]}): install the SDK's dependencies ` +
          `once, as its package-lock.json pins them: (cd ${SDK_ROOT} && npm ci)`,
      );
    }
    throw e;
  }
}

async function readPackage(projectDir) {
  const file = join(projectDir, 'package.json');
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    fail(`${file} is not valid JSON: ${e.message}`);
  }
}

/** `@scope/name` → `name`. */
function unscoped(name) {
  return name.includes('/') ? name.slice(name.lastIndexOf('/') + 1) : name;
}

/**
 * What `build` would build: the project folder, the entry module and the output file.
 * Defaults: the entry is `--entry`, else package.json's `main`, else `src/index.js`; the
 * output is `--out`, else `<package name>.wasm` in the project folder.
 */
export async function plan({ projectDir = process.cwd(), entry, out } = {}) {
  const dir = resolve(projectDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) fail(`${dir} is not a folder`);
  const pkg = await readPackage(dir);
  const entryFile = resolve(dir, entry ?? pkg?.main ?? join('src', 'index.js'));
  if (!existsSync(entryFile)) {
    const shown = relative(process.cwd(), entryFile) || entryFile;
    fail(
      `the entry module ${shown} does not exist` +
        (entry ? '' : ' (set "main" in package.json or pass --entry FILE)'),
    );
  }
  let outFile;
  if (out !== undefined) {
    outFile = resolve(out);
  } else {
    if (typeof pkg?.name !== 'string' || pkg.name === '') {
      fail(`no package name to name the component after (${join(dir, 'package.json')}): pass --out FILE`);
    }
    outFile = join(dir, `${unscoped(pkg.name)}.wasm`);
  }
  return { projectDir: dir, entryFile, outFile, name: pkg?.name ?? basename(outFile, '.wasm') };
}

/** The module componentize-js builds: the connector, wired to the WIT imports. */
function entrySource(entryFile) {
  const imports = INTERFACES.map(
    (i) => `import * as ${i} from 'switchyard:connector/${i}@0.1.1';`,
  ).join('\n');
  return `${imports}
import { exportsFor } from '@switchyard/sdk/guest';
import connector from ${JSON.stringify(entryFile)};

const exported = exportsFor(connector, { ${INTERFACES.join(', ')} });
export const manifest = exported.manifest;
export const dedupeKey = exported.dedupeKey;
export const handle = exported.handle;
export const checkSettings = exported.checkSettings;
`;
}

/** Resolves `@switchyard/sdk[/…]` to this SDK, so the bundle holds one copy of it. */
function sdkPlugin() {
  const targets = {
    '': 'src/index.js',
    '/test': 'src/test.js',
    '/guest': 'src/guest.js',
  };
  return {
    name: 'switchyard-sdk',
    setup(build) {
      build.onResolve({ filter: /^@switchyard\/sdk(\/.*)?$/ }, (args) => {
        const sub = args.path.slice('@switchyard/sdk'.length);
        const target = targets[sub];
        if (target === undefined) {
          return { errors: [{ text: `@switchyard/sdk${sub} cannot be used inside a connector` }] };
        }
        return { path: join(SDK_ROOT, target) };
      });
      build.onResolve({ filter: /^node:|^(fs|path|os|child_process|net|http|https|crypto|url|util|stream|buffer|events|worker_threads|zlib)(\/|$)/ }, (args) => ({
        errors: [
          {
            text: `"${args.path}" is a Node.js module: a connector runs in the host's sandbox, which has no Node.js API (use ctx.fetch, ctx.kv, ctx.setting)`,
          },
        ],
      }));
    },
  };
}

/**
 * esbuild's messages, one per paragraph: `file:line:column: error: text`, then the line and
 * a caret under the column.
 */
function formatMessages(messages, projectDir) {
  return messages
    .map((m) => {
      const text = m.text.replace(/ \[plugin [^\]]+\]$/, '');
      if (!m.location) return `error: ${text}`;
      const { file, line, column, lineText, length } = m.location;
      const gutter = String(line).length;
      return [
        `${shortPath(file, projectDir)}:${line}:${column + 1}: error: ${text}`,
        `  ${line} | ${lineText}`,
        `  ${' '.repeat(gutter)} | ${' '.repeat(column)}${'^'.repeat(Math.max(1, Math.min(length, lineText.length - column)))}`,
      ].join('\n');
    })
    .join('\n\n');
}

function shortPath(file, projectDir) {
  if (!file) return file;
  const abs = resolve(projectDir, file);
  const rel = relative(projectDir, abs);
  return rel.startsWith('..') ? abs : rel;
}

/** How a source of the bundle is named in stack traces. */
function sourceName(abs, projectDir) {
  const inSdk = relative(SDK_ROOT, abs);
  if (!inSdk.startsWith('..') && !inSdk.startsWith(sep)) return `@switchyard/sdk/${inSdk.split(sep).join('/')}`;
  return shortPath(abs, projectDir).split(sep).join('/');
}

/**
 * Bundles the entry (and the SDK) into one ES module named `bundleName` in the stack traces
 * of the component; returns its text, with the table that maps its lines back to the
 * sources appended.
 */
export async function bundle({ projectDir, entryFile }, workDir, bundleName = 'connector.js') {
  const esbuild = await dependency('esbuild');
  const { lineTable, lineTableStatement } = await import('./lines.js');
  const entry = join(workDir, 'entry.js');
  await writeFile(entry, entrySource(entryFile));
  let result;
  try {
    result = await esbuild.build({
      entryPoints: [entry],
      absWorkingDir: projectDir,
      outfile: join(workDir, bundleName),
      bundle: true,
      write: false,
      sourcemap: 'external',
      sourcesContent: false,
      format: 'esm',
      platform: 'neutral',
      target: 'es2022',
      mainFields: ['module', 'main'],
      conditions: ['import', 'default'],
      external: ['switchyard:*'],
      plugins: [sdkPlugin()],
      keepNames: true,
      charset: 'utf8',
      legalComments: 'none',
      logLevel: 'silent',
    });
  } catch (e) {
    if (Array.isArray(e?.errors) && e.errors.length > 0) {
      const shown = shortPath(entryFile, projectDir);
      if (e.errors.some((m) => /^No matching export in ".*" for import "default"$/.test(m.text) && m.location && resolve(projectDir, m.location.file) === entry)) {
        fail(noConnector(shown));
      }
      fail(`bundling ${shown} failed:\n${formatMessages(e.errors, projectDir)}`);
    }
    throw e;
  }
  const js = result.outputFiles.find((f) => f.path.endsWith('.js'));
  const map = result.outputFiles.find((f) => f.path.endsWith('.js.map'));
  let text = js.text.replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n');
  if (map !== undefined) {
    const table = lineTable(bundleName, JSON.parse(map.text), (source) =>
      sourceName(resolve(workDir, source), projectDir),
    );
    text += lineTableStatement(table);
  }
  return text;
}

function noConnector(entry) {
  return `${entry} must \`export default defineConnector({ … })\` (import { defineConnector } from '@switchyard/sdk')`;
}

/**
 * Loads the entry module in Node and checks its default export is a connector: errors at
 * its top level (which componentize-js would report without a stack) show up here with one.
 */
export async function preflight({ projectDir, entryFile }) {
  const { isConnector } = await import('./connector.js');
  let mod;
  try {
    mod = await import(pathToFileURL(entryFile).href);
  } catch (e) {
    fail(`loading ${shortPath(entryFile, projectDir)} failed: ${e?.stack ?? e}`);
  }
  if (!isConnector(mod.default)) fail(noConnector(shortPath(entryFile, projectDir)));
  return mod.default;
}

/** The component's imports and exports, from its WIT. */
export async function componentInterface(component) {
  const { componentWit } = await dependency('@bytecodealliance/jco-transpile/wasm-tools');
  const wit = await componentWit(component);
  const imports = [];
  const exports = [];
  for (const line of wit.split('\n')) {
    const m = /^\s*(import|export)\s+([^:;]+?(?::[^;]+)?)\s*[;:]/.exec(line);
    if (!m) continue;
    let name = m[2].trim();
    if (m[1] === 'export') name = name.replace(/:.*$/, '').trim();
    (m[1] === 'import' ? imports : exports).push(name);
  }
  return { imports, exports, wit };
}

/** Throws unless the component imports only the world's interfaces and has its exports. */
export function checkInterface({ imports, exports }) {
  const allowed = new Set(
    [...INTERFACES, 'types'].map((i) => `switchyard:connector/${i}@0.1.1`),
  );
  const foreign = imports.filter((i) => !allowed.has(i));
  if (foreign.length > 0) {
    fail(
      `the component imports ${foreign.join(', ')}, which the Switchyard host does not give connectors ` +
        `(it provides only ${WIT_PACKAGE}'s interfaces)`,
    );
  }
  const missing = EXPORTS.filter((e) => !exports.includes(e));
  if (missing.length > 0) fail(`the component does not export ${missing.join(', ')}`);
}

/** Writes `bytes` to `file` through a temporary file and a rename. */
export async function writeAtomically(file, bytes) {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    fail(`writing ${file} failed: ${e.message}`);
  }
}

/**
 * Builds the component. Options: `projectDir` (default: the working directory), `entry`,
 * `out`, `log` (a function for progress lines; default none). Returns `{ outFile, size,
 * durationMs, manifest, imports }`.
 */
export async function build(options = {}) {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const target = await plan(options);
  const workDir = await mkdtemp(join(tmpdir(), 'switchyard-js-'));
  try {
    const bundleName = `${unscoped(target.name).replace(/[^A-Za-z0-9._-]/g, '_')}.js`;
    const source = await bundle(target, workDir, bundleName);
    const connector = await preflight(target);
    const bundleFile = join(workDir, bundleName);
    await writeFile(bundleFile, source);
    log(`bundled ${shortPath(target.entryFile, target.projectDir)} (${source.length} bytes), componentizing…`);

    const { componentize } = await dependency('@bytecodealliance/componentize-js');
    let component;
    try {
      ({ component } = await componentize({
        sourcePath: bundleFile,
        witPath: WIT_PATH,
        worldName: WORLD,
        disableFeatures: [...DISABLED_FEATURES],
      }));
    } catch (e) {
      fail(`componentize-js failed: ${String(e?.message ?? e).trim()}`);
    }
    const iface = await componentInterface(component);
    checkInterface(iface);
    await writeAtomically(target.outFile, component);
    return {
      outFile: target.outFile,
      size: component.length,
      durationMs: Date.now() - started,
      manifest: connector.manifest,
      imports: iface.imports,
    };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

