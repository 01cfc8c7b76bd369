// A test connector in JavaScript that misbehaves on request, so the host's tests can check
// a JS component is stopped and isolated exactly as a Rust one (tests/connectors/hostile).
// Each event body is JSON `{"do": "…", …}`:
//
// - `spin`: loops forever (the host's deadline must stop it);
// - `alloc`: allocates without bound, strings and typed arrays kept alive (the memory cap
//   must stop it);
// - `trap`: throws a plain `Error` (not a Failure: the component traps, as a Rust panic);
// - `retry` / `reject`: throws that failure, with `"message"` if given;
// - anything else (`ok`): one delivery, `POST` to the setting `forward_url` with the body
//   echoed (`content-type: application/json`, `x-hostile: js`).
//
// The instructions and the setting are the Rust one's names, so a test can run the same
// events through both. `dedupeKey` returns `"key"` when it is a string; `"dedupe": "spin"`
// makes it loop forever and `"dedupe": "trap"` throws.

import { Delivery, defineConnector, reject, retry } from '@switchyard/sdk';
import pkg from '../package.json' with { type: 'json' };

/**
 * The event body as JSON, or `{}` when it is not JSON.
 * @param {import('@switchyard/sdk').Webhook} webhook
 * @returns {Record<string, any>}
 */
function body(webhook) {
  try {
    const value = JSON.parse(new TextDecoder().decode(webhook.body));
    return value !== null && typeof value === 'object' ? value : {};
  } catch {
    return {};
  }
}

/** @returns {never} */
function spin() {
  let n = 0;
  for (;;) n = (n + 1) % 1_000_003;
}

/**
 * Keeps every allocation reachable, so nothing can be collected, until memory runs out.
 * @returns {never}
 */
function alloc() {
  const hog = [];
  for (let i = 0; ; i++) {
    hog.push(new Uint8Array(1 << 20).fill(i & 0xff));
    hog.push(`${i}:`.padEnd(1 << 18, String.fromCharCode(97 + (i % 26))));
  }
}

export default defineConnector({
  manifest: {
    name: 'hostile-js',
    version: pkg.version,
    description: 'misbehaves on request, for tests (JavaScript)',
    defaultScheme: 'none',
    settings: [{ name: 'forward_url', description: 'where events that do not misbehave go', required: false }],
  },

  dedupeKey(webhook) {
    const event = body(webhook);
    if (event.dedupe === 'spin') spin();
    if (event.dedupe === 'trap') throw new Error('asked to throw in dedupeKey');
    return typeof event.key === 'string' ? event.key : undefined;
  },

  handle(webhook, ctx) {
    const event = body(webhook);
    const message = typeof event.message === 'string' ? event.message : `asked to ${event.do}`;
    switch (event.do) {
      case 'spin':
        return spin();
      case 'alloc':
        return alloc();
      case 'trap':
        throw new Error(message);
      case 'retry':
        throw retry(message);
      case 'reject':
        throw reject(message);
      default:
        return [
          Delivery.post(ctx.requireSetting('forward_url'))
            .header('content-type', 'application/json')
            .header('x-hostile', 'js')
            .body(webhook.body),
        ];
    }
  },
});
