// Runs the built component (mailchimp-js.wasm, or the file given) on every event of
// test/rust-golden.json, through jco's transpiler with the SDK's TestHost serving its
// imports, and compares its answers with the Rust connector's. `npm run build` first.
//
//   node tools/check-component.mjs [FILE.wasm]

import { readFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';

import { Webhook } from '@switchyard/sdk';
import { TestHost } from '@switchyard/sdk/test';

import { loadComponent, witWebhook } from '../../../sdk-js/test/support/component.js';

const wasm = process.argv[2] ?? new URL('../mailchimp-js.wasm', import.meta.url).pathname;
const golden = JSON.parse(await readFile(new URL('../test/rust-golden.json', import.meta.url), 'utf8'));
const call = await loadComponent(wasm);
const decoder = new TextDecoder();
const started = Date.now();
let differ = 0;
for (const event of golden) {
  const webhook = Webhook.builder()
    .connector('mailchimp')
    .query('token=****')
    .header('content-type', 'application/x-www-form-urlencoded')
    .body(event.body)
    .build();
  const host = () => {
    const h = new TestHost();
    for (const [key, value] of Object.entries(event.settings)) h.setting(key, value);
    return h;
  };
  const dedupe = await call(host(), 'dedupeKey', witWebhook(webhook));
  const h = host();
  const r = await call(h, 'handle', witWebhook(webhook));
  const result = r.ok
    ? { deliveries: r.ok.map((d) => ({ method: d.method, url: d.url, headers: d.headers, body: decoder.decode(d.body) })) }
    : r.err
      ? { failure: { kind: r.err.tag, message: r.err.val } }
      : { trap: r.trap };
  const got = { dedupe_key: dedupe.ok ?? null, result, logs: h.logs() };
  const want = { dedupe_key: event.dedupe_key, result: event.result, logs: event.logs };
  if (!isDeepStrictEqual(got, want)) {
    differ++;
    console.log(`differs: ${event.name}\n  component: ${JSON.stringify(got)}\n  rust:      ${JSON.stringify(want)}`);
  }
}
console.log(`${golden.length - differ} passed, ${differ} failed (${golden.length} golden events, ${Date.now() - started} ms)`);
process.exitCode = differ === 0 ? 0 : 1;
