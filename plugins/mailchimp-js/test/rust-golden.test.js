// The Rust connector's own answers (test/rust-golden.json, printed by tools/golden from
// plugins/mailchimp for tools/corpus.mjs's events): the JavaScript port must give the same
// dedupe key, the same deliveries byte for byte (URL, headers, JSON body) or the same
// failure, and the same log lines, for every one of them.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';

import { Webhook } from '@switchyard/sdk';
import { TestHost } from '@switchyard/sdk/test';

import connector from '../src/index.js';

const golden = JSON.parse(await readFile(new URL('./rust-golden.json', import.meta.url), 'utf8'));

/** What the port does with one golden event, in the golden file's terms. */
export function run(event) {
  const webhook = Webhook.builder()
    .connector('mailchimp')
    .query('token=****')
    .header('content-type', 'application/x-www-form-urlencoded')
    .body(event.body)
    .build();
  const host = new TestHost();
  for (const [key, value] of Object.entries(event.settings)) host.setting(key, value);
  const dedupe = host.dedupeKey(connector, webhook);
  const outcome = host.handle(connector, webhook);
  const result =
    'ok' in outcome
      ? { deliveries: outcome.ok.map((d) => ({ method: d.method, url: d.url, headers: d.headers, body: d.text() })) }
      : { failure: { kind: outcome.err.kind, message: outcome.err.message } };
  return { dedupe_key: dedupe ?? null, result, logs: host.logs() };
}

test(`the port answers the ${golden.length} golden events exactly as the Rust connector`, () => {
  assert.ok(golden.length > 500);
  for (const event of golden) {
    const { dedupe_key, result, logs } = run(event);
    assert.deepEqual(
      { dedupe_key, result, logs },
      { dedupe_key: event.dedupe_key, result: event.result, logs: event.logs },
      event.name,
    );
  }
});
