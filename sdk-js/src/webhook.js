// The received event and helpers to read its body.

import { decodeStrict, toBytes, utf8 } from './bytes.js';
import { Failure } from './failure.js';
import { Form } from './form.js';
import { stringify } from './json.js';
import { encodePairs, parsePairs } from './urlencoded.js';

/** The first value of the header `name`, compared case-insensitively. */
export function findHeader(headers, name) {
  const lower = asciiLower(name);
  for (const [k, v] of headers) {
    if (asciiLower(k) === lower) return v;
  }
  return undefined;
}

/** ASCII-only lowercase, as HTTP header names compare (`eq_ignore_ascii_case`). */
export function asciiLower(text) {
  return String(text).replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

/**
 * One received webhook, exactly as the sender sent it (after the host verified it).
 */
export class Webhook {
  /**
   * @param {object} fields the WIT `webhook` record's fields (`receivedAt` may be a bigint)
   */
  constructor(fields) {
    /** The host's event id (`01J…`, time-ordered); stable across retries and replays. */
    this.id = String(fields.id);
    /** The connector id from the operator's config (`/hooks/{connector}`). */
    this.connector = String(fields.connector);
    /** The HTTP method, `POST` for every dispatched event. */
    this.method = String(fields.method);
    /** The request path, e.g. `/hooks/stripe`. */
    this.path = String(fields.path);
    /** The raw query string without `?` (may be empty). */
    this.query = String(fields.query);
    /** Request headers in the order received, names lowercase: `[name, value]` pairs. */
    this.headers = fields.headers.map(([k, v]) => [String(k), String(v)]);
    /** The raw body bytes, exactly as signed. */
    this.body = toBytes(fields.body);
    /** When the host received it, unix milliseconds. */
    this.receivedAt = Number(fields.receivedAt);
    /** 1 for the first call of `handle` for this event, 2 for the first retry, and so on. */
    this.attempt = Number(fields.attempt);
  }

  /** Starts a webhook for tests (see `WebhookBuilder` for the defaults). */
  static builder() {
    return new WebhookBuilder();
  }

  /** The first header named `name` (compared case-insensitively). */
  header(name) {
    return findHeader(this.headers, name);
  }

  /** Every value of the headers named `name` (compared case-insensitively), in order. */
  headerAll(name) {
    const lower = asciiLower(name);
    return this.headers.filter(([k]) => asciiLower(k) === lower).map(([, v]) => v);
  }

  /** The body as UTF-8 text; rejected when it is not UTF-8. */
  text() {
    try {
      return decodeStrict(this.body);
    } catch (e) {
      throw new Failure('reject', `body is not valid UTF-8: ${e?.message ?? e}`);
    }
  }

  /**
   * The body parsed as JSON; rejected (a retry would see the same bytes) when it is not
   * JSON: `body is not valid JSON: …`.
   */
  json() {
    let text;
    try {
      text = decodeStrict(this.body);
    } catch {
      throw new Failure('reject', 'body is not valid JSON: it is not valid UTF-8');
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new Failure('reject', `body is not valid JSON: ${e?.message ?? e}`);
    }
  }

  /**
   * The body parsed as `application/x-www-form-urlencoded`, PHP-style brackets included
   * (`data[merges][FNAME]=Ada`); see `Form`. Never fails on content.
   */
  form() {
    return Form.parse(this.body);
  }

  /** The first query-string parameter named `name`, percent-decoded. */
  queryParam(name) {
    for (const [k, v] of parsePairs(this.query)) {
      if (k === name) return v;
    }
    return undefined;
  }
}

/**
 * Builds a `Webhook` for tests. Defaults: id `01TESTEVENT000000000000000`, connector
 * `test`, method `POST`, path `/hooks/{connector}`, empty query, headers and body,
 * `receivedAt` 0, attempt 1.
 */
export class WebhookBuilder {
  constructor() {
    this._id = '01TESTEVENT000000000000000';
    this._connector = 'test';
    this._method = 'POST';
    this._path = undefined;
    this._query = '';
    this._headers = [];
    this._body = new Uint8Array(0);
    this._receivedAt = 0;
    this._attempt = 1;
  }

  /** Sets the host's event id. */
  id(id) {
    this._id = String(id);
    return this;
  }

  /** Sets the connector id (and the default path `/hooks/{connector}`). */
  connector(connector) {
    this._connector = String(connector);
    return this;
  }

  /** Sets the HTTP method. */
  method(method) {
    this._method = String(method);
    return this;
  }

  /** Sets the request path. */
  path(path) {
    this._path = String(path);
    return this;
  }

  /** Sets the raw query string (without `?`). */
  query(query) {
    this._query = String(query);
    return this;
  }

  /** Appends a header; the name is lowercased as the host does. */
  header(name, value) {
    this._headers.push([asciiLower(name), String(value)]);
    return this;
  }

  /** Sets the raw body (bytes or text). */
  body(body) {
    this._body = toBytes(body).slice();
    return this;
  }

  /**
   * Sets the body to `value` as JSON (`JSON.stringify`; `{sortKeys: true}` sorts object
   * keys) and the `content-type` to `application/json`.
   */
  json(value, options) {
    this._body = utf8(stringify(value, options));
    return this._contentType('application/json');
  }

  /**
   * Sets the body to `pairs` form-encoded (an array of `[name, value]` pairs or a flat
   * object) and the `content-type` to `application/x-www-form-urlencoded`.
   */
  form(pairs) {
    this._body = utf8(encodePairs(pairs));
    return this._contentType('application/x-www-form-urlencoded');
  }

  /** Sets when the host received it (unix milliseconds). */
  receivedAt(ms) {
    this._receivedAt = Number(ms);
    return this;
  }

  /** Sets the attempt number (1 for the first call of `handle`). */
  attempt(attempt) {
    this._attempt = Number(attempt);
    return this;
  }

  /** Finishes the webhook. */
  build() {
    return new Webhook({
      id: this._id,
      connector: this._connector,
      method: this._method,
      path: this._path ?? `/hooks/${this._connector}`,
      query: this._query,
      headers: this._headers.map(([k, v]) => [k, v]),
      body: this._body.slice(),
      receivedAt: this._receivedAt,
      attempt: this._attempt,
    });
  }

  _contentType(value) {
    this._headers = this._headers.filter(([k]) => k !== 'content-type');
    this._headers.push(['content-type', value]);
    return this;
  }
}
