// Runs a built connector component in Node (jco transpile: the component's core wasm,
// SpiderMonkey included, on V8) with its WIT imports served by a `TestHost`, so a test can
// call the component exactly as the Switchyard host does and compare with the same
// connector run by `TestHost` directly.

import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { FetchError, Request } from '../../src/index.js';

/** A WIT `webhook` record from a `Webhook`. */
export function witWebhook(webhook) {
  return {
    id: webhook.id,
    connector: webhook.connector,
    method: webhook.method,
    path: webhook.path,
    query: webhook.query,
    headers: webhook.headers.map(([k, v]) => [k, v]),
    body: webhook.body.slice(),
    receivedAt: BigInt(webhook.receivedAt),
    attempt: webhook.attempt,
  };
}

/** The WIT imports, served by `host` (a TestHost). */
function imports(host) {
  const api = host._api;
  return {
    'switchyard:connector/settings': { get: (key) => api.setting(key) },
    'switchyard:connector/http': {
      fetch(request) {
        const r = new Request(request.method, request.url);
        r.headers = request.headers.map(([k, v]) => [k, v]);
        r.body(request.body.slice());
        try {
          const response = api.fetch(r);
          return { status: response.status, headers: response.headers, body: response.body };
        } catch (e) {
          if (e instanceof FetchError) {
            throw { payload: e.error === 'timeout' ? { tag: 'timeout' } : { tag: e.error, val: e.detail } };
          }
          throw e;
        }
      },
    },
    'switchyard:connector/kv': {
      get: (key) => api.kvGet(key),
      set(key, value) {
        const refused = api.kvSet(key, value);
        if (refused !== undefined) throw { payload: refused };
      },
      delete: (key) => api.kvDelete(key),
    },
    'switchyard:connector/log': { emit: (level, message) => api.log(level, message) },
    'switchyard:connector/clock': { now: () => BigInt(api.now()) },
    'switchyard:connector/types': {},
  };
}

/**
 * Loads the component at `wasmFile`. Returns `call(host, fn, ...args)`, which runs one
 * export in a fresh instance (as the host does for `handle`) and answers
 * `{ ok: value }`, `{ err: payload }` for a WIT `err`, or `{ trap: message }`.
 */
export async function loadComponent(wasmFile) {
  const { transpileBytes } = await import('@bytecodealliance/jco-transpile');
  const outDir = await mkdtemp(join(tmpdir(), 'switchyard-js-component-'));
  const { files } = await transpileBytes(await readFile(wasmFile), {
    name: 'connector',
    instantiation: { tag: 'async' },
    noTypescript: true,
  });
  for (const [name, bytes] of Object.entries(files)) {
    const file = join(outDir, name);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, bytes);
  }
  const { instantiate } = await import(pathToFileURL(join(outDir, 'connector.js')).href);
  const modules = new Map();
  const getCoreModule = async (path) => {
    if (!modules.has(path)) modules.set(path, await WebAssembly.compile(await readFile(join(outDir, path))));
    return modules.get(path);
  };
  return async function call(host, fn, ...args) {
    const root = await instantiate(getCoreModule, imports(host));
    try {
      return { ok: await root[fn](...args) };
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError) return { trap: e.message };
      if (e !== null && typeof e === 'object' && 'payload' in e) return { err: e.payload };
      if (!(e instanceof Error)) return { err: e };
      throw e;
    }
  };
}
