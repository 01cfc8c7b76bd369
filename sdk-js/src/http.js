// Outbound HTTP: deliveries the host performs after `handle`, and requests a connector
// makes during `handle` through `ctx.fetch`.

import { decodeLossy, decodeStrict, describe, toBytes, utf8 } from './bytes.js';
import { Failure } from './failure.js';
import { stringify, stringifyOrReject } from './json.js';
import { encodePairs } from './urlencoded.js';
import { asciiLower, findHeader } from './webhook.js';

/** The shared builder of `Delivery` and `Request`. */
class OutboundRequest {
  /**
   * A request with any method and an empty body.
   * @param {string} method
   * @param {string} url
   */
  constructor(method, url) {
    /** `GET`, `POST`, … */
    this.method = String(method);
    /** The absolute URL; its origin must be in the connector's `allowed_hosts`. */
    this.url = String(url);
    /** Headers to send, in order: `[name, value]` pairs. */
    this.headers = [];
    /** The body bytes (read them with `body()`). @private */
    this._body = new Uint8Array(0);
  }

  /** A `GET`. */
  static get(url) {
    return new this('GET', url);
  }

  /** A `POST`. */
  static post(url) {
    return new this('POST', url);
  }

  /** A `PUT`. */
  static put(url) {
    return new this('PUT', url);
  }

  /** A `PATCH`. */
  static patch(url) {
    return new this('PATCH', url);
  }

  /** A `DELETE`. */
  static delete(url) {
    return new this('DELETE', url);
  }

  /** Appends a header (repeat it for a multi-valued header). */
  header(name, value) {
    this.headers.push([String(name), String(value)]);
    return this;
  }

  /** Sets `authorization: Bearer {token}`, replacing an earlier one. */
  bearerAuth(token) {
    return this._replaceHeader('authorization', `Bearer ${token}`);
  }

  /**
   * Sets the body to `value` as JSON and `content-type: application/json` (replacing an
   * earlier content-type). `JSON.stringify` order; `{sortKeys: true}` sorts every object's
   * keys by code point, as `serde_json` writes a `Value`. A value with no JSON text (a
   * BigInt, a cycle, `undefined`) throws a rejection.
   */
  json(value, options) {
    const text = stringifyOrReject(value, options, 'request body does not serialize to JSON');
    this._body = utf8(text);
    return this._replaceHeader('content-type', 'application/json');
  }

  /**
   * Sets the body to `pairs` form-encoded (`[['a', '1'], ['ids[]', '2']]` or a flat
   * object) and `content-type: application/x-www-form-urlencoded`. Nested values throw a
   * rejection.
   */
  form(pairs) {
    let text;
    try {
      text = encodePairs(pairs);
    } catch (e) {
      throw new Failure('reject', `request body does not form-encode: ${e?.message ?? e}`);
    }
    this._body = utf8(text);
    return this._replaceHeader('content-type', 'application/x-www-form-urlencoded');
  }

  /**
   * `body(bytes)` sets the raw body: bytes, or text sent as UTF-8 (set a content-type
   * yourself), and returns the builder. `body()` returns the body bytes.
   */
  body(...args) {
    if (args.length === 0) return this._body;
    this._body = toBytes(args[0]);
    return this;
  }

  /** The body as text (invalid UTF-8 replaced), for assertions in tests. */
  text() {
    return decodeLossy(this._body);
  }

  /** The first header named `name` (case-insensitive), for assertions in tests. */
  headerValue(name) {
    return findHeader(this.headers, name);
  }

  _replaceHeader(name, value) {
    const lower = asciiLower(name);
    this.headers = this.headers.filter(([k]) => asciiLower(k) !== lower);
    this.headers.push([name, String(value)]);
    return this;
  }
}

/**
 * An outbound HTTP request the host performs after `handle` returns, with its own retries,
 * an `Idempotency-Key` that stays the same across them, and optional signing.
 */
export class Delivery extends OutboundRequest {}

/**
 * An HTTP request performed at once by `ctx.fetch` (for reading detail before acting).
 * Same builder as `Delivery`.
 */
export class Request extends OutboundRequest {}

/** The answer to a `ctx.fetch`. */
export class Response {
  /**
   * A response with no headers and an empty body (build answers for `TestHost` with
   * `withHeader`, `withBody`, `withJson`).
   * @param {number} status
   */
  constructor(status, headers = [], body = new Uint8Array(0)) {
    /** The HTTP status code. */
    this.status = Number(status);
    /** Response headers in order, names lowercase: `[name, value]` pairs. */
    this.headers = headers.map(([k, v]) => [String(k), String(v)]);
    /** The body bytes. */
    this.body = toBytes(body);
  }

  /** Appends a header (the name is lowercased, as the host delivers them). */
  withHeader(name, value) {
    this.headers.push([asciiLower(name), String(value)]);
    return this;
  }

  /** Sets the raw body (bytes or text). */
  withBody(body) {
    this.body = toBytes(body);
    return this;
  }

  /** Sets the body to `value` as JSON and `content-type: application/json`. */
  withJson(value, options) {
    return this.withHeader('content-type', 'application/json').withBody(stringify(value, options));
  }

  /** Whether the status is 2xx. */
  isSuccess() {
    return this.status >= 200 && this.status < 300;
  }

  /** The first header named `name` (case-insensitive). */
  header(name) {
    return findHeader(this.headers, name);
  }

  /**
   * The body as UTF-8 text. Invalid UTF-8 is treated as a transient upstream problem
   * (a retry).
   */
  text() {
    try {
      return decodeStrict(this.body);
    } catch (e) {
      throw new Failure('retry', `HTTP ${this.status} response body is not valid UTF-8: ${e?.message ?? e}`);
    }
  }

  /**
   * The body parsed as JSON. A body that does not parse is treated as a transient upstream
   * problem (a retry: proxies answer with HTML error pages); catch it and throw a
   * rejection yourself where a retry cannot help.
   */
  json() {
    try {
      return JSON.parse(decodeStrict(this.body));
    } catch (e) {
      throw new Failure('retry', `HTTP ${this.status} response body is not the expected JSON: ${e?.message ?? e}`);
    }
  }

  /**
   * This response for a 2xx status, else throws the `Failure` the status calls for: a
   * retry for 408, 425, 429 and 5xx (the upstream may recover), a rejection for any other
   * status (404, 401, 422…: asking again will not help). The message carries the status
   * and the start of the body.
   */
  errorForStatus() {
    if (this.isSuccess()) return this;
    const text = rustTrim(decodeLossy(this.body));
    const chars = Array.from(text);
    let message;
    if (text === '') message = `HTTP ${this.status}`;
    else if (chars.length <= 200) message = `HTTP ${this.status}: ${text}`;
    else message = `HTTP ${this.status}: ${chars.slice(0, 200).join('')}…`;
    const retryable = [408, 425, 429].includes(this.status) || (this.status >= 500 && this.status <= 599);
    throw new Failure(retryable ? 'retry' : 'reject', message);
  }
}

/**
 * Unicode's White_Space, which Rust's `char::is_whitespace` and `str::trim` use (U+0085 in,
 * U+FEFF out, unlike JS's `trim`). Spelled out: the engine in the component has no
 * `\p{…}` property escapes.
 */
export const WHITE_SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const TRIM = new RegExp(`^[${WHITE_SPACE}]+|[${WHITE_SPACE}]+$`, 'g');

/** Rust's `str::trim`: strips Unicode White_Space from both ends. */
export function rustTrim(text) {
  return String(text).replace(TRIM, '');
}

/**
 * A delivery (or request) as the WIT record: method, url, headers, body bytes. Accepts a
 * `Delivery`, a `Request` or a plain object of the same shape (body: bytes or text).
 */
export function toWitRequest(value, what) {
  if (value === null || typeof value !== 'object') {
    throw new TypeError(`${what} is ${describe(value)}, not a Delivery`);
  }
  const { method, url } = value;
  if (typeof method !== 'string' || typeof url !== 'string') {
    throw new TypeError(`${what} needs a string method and url (build it with Delivery.post(url) …)`);
  }
  const headers = value.headers ?? [];
  if (!Array.isArray(headers)) throw new TypeError(`${what}'s headers are not an array of [name, value] pairs`);
  return {
    method,
    url,
    headers: headers.map((h, i) => {
      if (!Array.isArray(h) || h.length !== 2) {
        throw new TypeError(`${what}'s header ${i} is not a [name, value] pair`);
      }
      return [String(h[0]), String(h[1])];
    }),
    body: value instanceof OutboundRequest
      ? value._body
      : value.body === undefined
        ? new Uint8Array(0)
        : toBytes(value.body, `${what}'s body`),
  };
}
