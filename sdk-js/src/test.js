// @switchyard/sdk/test: a stand-in for the Switchyard host, for unit tests of a connector
// under `node --test`. The same behaviour as the Rust SDK's `TestHost`.

import { toBytes, decodeLossy, utf8 } from './bytes.js';
import { assertConnector, runCheckSettings, runDedupeKey, runHandle } from './connector.js';
import { Ctx } from './ctx.js';
import { FetchError, isFailure } from './failure.js';
import { Request, Response } from './http.js';
import { compareCodePoints } from './json.js';
import { Webhook } from './webhook.js';

/** The real host's kv limits (`host/src/plugin/imports/mod.rs`), enforced here too. */
export const MAX_KV_KEY_BYTES = 512;
export const MAX_KV_VALUE_BYTES = 64 * 1024;

function copyRequest(request) {
  const copy = new Request(request.method, request.url);
  copy.headers = request.headers.map(([k, v]) => [k, v]);
  copy.body(request.body().slice());
  return copy;
}

function copyResponse(response) {
  return new Response(response.status, response.headers, response.body.slice());
}

function copyAnswer(answer) {
  return answer instanceof Response ? copyResponse(answer) : answer;
}

/** `{ok}` / `{err}` with `unwrap()` and `unwrapErr()` that do not take part in equality. */
function result(value) {
  Object.defineProperties(value, {
    unwrap: {
      value() {
        if ('ok' in value) return value.ok;
        throw new Error(`called unwrap() on an error: ${value.err}`);
      },
    },
    unwrapErr: {
      value() {
        if ('err' in value) return value.err;
        throw new Error('called unwrapErr() on a success');
      },
    },
  });
  return value;
}

/**
 * Runs a connector in Node with mocked settings, fetches, key-value state and clock, and
 * records what it fetched and logged.
 *
 * ```js
 * const host = new TestHost()
 *   .setting('api', 'http://api')
 *   .fetchResponse('GET', 'http://api/users/', new Response(200).withBody('{}'));
 * const { ok: deliveries } = host.handle(connector, Webhook.builder().build());
 * assert.equal(host.fetches()[0].url, 'http://api/users/1');
 * ```
 *
 * A fetch that matches no route answers `FetchError.denied(…)`, as the real host does for a
 * URL outside `allowed_hosts`.
 */
export class TestHost {
  constructor() {
    this._settings = new Map();
    this._routes = [];
    this._onFetch = undefined;
    this._kv = new Map();
    this._now = 1_700_000_000_000;
    this._fetches = [];
    this._logs = [];
    const self = this;
    /** @private the host API the connector's `Ctx` calls */
    this._api = {
      setting: (key) => self._settings.get(key),
      fetch: (request) => self._fetch(request),
      kvGet: (key) => {
        const v = self._kv.get(key);
        return v === undefined ? undefined : v.slice();
      },
      kvSet: (key, value) => self._kvSet(key, value),
      kvDelete: (key) => {
        self._kv.delete(key);
      },
      log: (level, message) => {
        self._logs.push([level, message]);
      },
      now: () => self._now,
    };
  }

  /**
   * Sets a connector setting, as the operator's `[connector.settings]` would (give
   * non-string values as JSON text, e.g. `'true'` or `'["invoice.*"]'`).
   */
  setting(key, value) {
    this._settings.set(String(key), String(value));
    return this;
  }

  /**
   * Answers fetches of `method` (`'*'` for any) to `url` with `response`. `url` matches
   * exactly or as a prefix; an exact match wins, then the longest prefix.
   */
  fetchResponse(method, url, response) {
    if (!(response instanceof Response)) throw new TypeError('fetchResponse takes a Response');
    return this._route(method, url, response);
  }

  /**
   * Answers fetches of `method` (`'*'` for any) to `url` with `error`
   * (`FetchError.timeout()`, …); matched like `fetchResponse`.
   */
  fetchError(method, url, error) {
    if (!(error instanceof FetchError)) throw new TypeError('fetchError takes a FetchError');
    return this._route(method, url, error);
  }

  /**
   * Answers every fetch no route matches with `handler(request)`: it returns a `Response`,
   * or returns or throws a `FetchError`.
   */
  onFetch(handler) {
    if (typeof handler !== 'function') throw new TypeError('onFetch takes a function');
    this._onFetch = handler;
    return this;
  }

  /** Pre-seeds the key-value state (bytes or text). */
  kvEntry(key, value) {
    this._kv.set(String(key), toBytes(value, 'kv value').slice());
    return this;
  }

  /** Sets the clock (unix milliseconds; the default is 1 700 000 000 000, 2023-11-14). */
  now(ms) {
    this._now = Number(ms);
    return this;
  }

  /**
   * Calls the connector's `handle` with a `Ctx` backed by this host: `{ ok: deliveries }`,
   * or `{ err: failure }` when it threw a `Failure`. Any other exception propagates (on the
   * real host it traps, and the event is retried). A promise when `handle` is async: write
   * `await host.handle(…)` if yours is.
   */
  handle(connector, webhook) {
    assertConnector(connector);
    const outcome = runHandle(connector, asWebhook(webhook), this.ctx(), { lower: false });
    return typeof outcome?.then === 'function' ? outcome.then(result) : result(outcome);
  }

  /**
   * What the connector's `checkSettings` says of this host's settings, as the real host
   * asks it at load: `{ ok: undefined }` or `{ err: message }`.
   */
  checkSettings(connector) {
    assertConnector(connector);
    const outcome = runCheckSettings(connector, this.ctx());
    return typeof outcome?.then === 'function' ? outcome.then(result) : result(outcome);
  }

  /** The connector's dedupe key for `webhook` (`undefined`: none). */
  dedupeKey(connector, webhook) {
    assertConnector(connector);
    return runDedupeKey(connector, asWebhook(webhook));
  }

  /** A `Ctx` backed by this host, for testing helper functions directly. */
  ctx() {
    return new Ctx(this._api);
  }

  /** Every request fetched so far, in order (copies). */
  fetches() {
    return this._fetches.map(copyRequest);
  }

  /** Every log line so far, in order: `[level, message]` pairs. */
  logs() {
    return this._logs.map(([l, m]) => [l, m]);
  }

  /** The bytes stored under `key` now. */
  kvValue(key) {
    const v = this._kv.get(key);
    return v === undefined ? undefined : v.slice();
  }

  /** The value stored under `key` now, as text. */
  kvText(key) {
    const v = this._kv.get(key);
    return v === undefined ? undefined : decodeLossy(v);
  }

  /** The whole key-value state now: a Map sorted by key. */
  kvSnapshot() {
    const keys = [...this._kv.keys()].sort(compareCodePoints);
    return new Map(keys.map((k) => [k, this._kv.get(k).slice()]));
  }

  _route(method, url, answer) {
    this._routes.push({ method: String(method), url: String(url), answer });
    return this;
  }

  _findRoute(request) {
    let best;
    for (const r of this._routes) {
      const methodMatches = r.method === '*' || r.method.toUpperCase() === request.method.toUpperCase();
      if (!methodMatches || !request.url.startsWith(r.url)) continue;
      // Exact beats prefix; among prefixes the longest wins; among equals the first.
      if (best !== undefined && (best.url === request.url || best.url.length >= r.url.length)) continue;
      best = r;
    }
    return best;
  }

  _fetch(request) {
    this._fetches.push(copyRequest(request));
    const route = this._findRoute(request);
    let answer;
    if (route !== undefined) {
      answer = copyAnswer(route.answer);
    } else if (this._onFetch !== undefined) {
      answer = this._onFetch(copyRequest(request));
      if (!(answer instanceof Response) && !(answer instanceof FetchError)) {
        throw new TypeError('the onFetch handler must return a Response or a FetchError');
      }
    } else {
      answer = FetchError.denied(`${request.method} ${request.url} is not configured on the TestHost`);
    }
    if (answer instanceof FetchError) throw answer;
    return answer;
  }

  _kvSet(key, value) {
    if (utf8(key).length > MAX_KV_KEY_BYTES) return `kv key longer than ${MAX_KV_KEY_BYTES} bytes`;
    if (value.length > MAX_KV_VALUE_BYTES) return `kv value larger than ${MAX_KV_VALUE_BYTES} bytes`;
    this._kv.set(key, value.slice());
    return undefined;
  }
}

function asWebhook(webhook) {
  if (webhook instanceof Webhook) return webhook;
  if (webhook !== null && typeof webhook === 'object' && typeof webhook.build === 'function') {
    return webhook.build();
  }
  throw new TypeError('pass a Webhook (Webhook.builder()….build())');
}

export { isFailure };
