// The capabilities the host grants a connector during `handle` (and `checkSettings`).

import { decodeLossy, toBytes } from './bytes.js';
import { Failure, KvError } from './failure.js';
import { Request, Response, rustTrim } from './http.js';
import { quoted } from './quoted.js';

/** The log levels, in increasing severity. */
export const LEVELS = Object.freeze(['trace', 'debug', 'info', 'warn', 'error']);

/**
 * What a host provides (the WIT imports in the component, `TestHost` in Node):
 * - `setting(key)` → string | undefined
 * - `fetch(request)` → `Response`, or throws a `FetchError`
 * - `kvGet(key)` → Uint8Array | undefined; `kvSet(key, bytes)` → undefined, or the host's
 *   refusal as a string; `kvDelete(key)`
 * - `log(level, message)`, `now()` → number (unix ms)
 * @typedef {object} HostApi
 */

/**
 * The capabilities of one `handle` call: settings, outbound fetch, key-value state, logging
 * and the clock.
 */
export class Ctx {
  /** @param {HostApi} host */
  constructor(host) {
    /** @private */
    this._host = host;
    /** The connector's key-value state, which survives across events and restarts. */
    this.kv = new Kv(host);
    const log = (level, message) => {
      if (!LEVELS.includes(level)) {
        throw new TypeError(`log level must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(level)}`);
      }
      host.log(level, String(message));
    };
    for (const level of LEVELS) log[level] = (message) => log(level, message);
    /**
     * Writes a line to the event's attempt record: `ctx.log('info', msg)`, or
     * `ctx.log.info(msg)` (also `ctx.info(msg)`).
     */
    this.log = log;
  }

  /**
   * The operator's `[connector.settings]` value for `key`. Strings come as-is (with
   * `env:`/`file:` references resolved); other TOML values as JSON text (`true`,
   * `["a","b"]`).
   * @returns {string | undefined}
   */
  setting(key) {
    return this._host.setting(String(key));
  }

  /** The setting `key`, or `fallback` when it is not set. */
  settingOr(key, fallback) {
    return this.setting(key) ?? String(fallback);
  }

  /**
   * The setting `key`; throws a rejection naming the setting when it is missing or empty.
   */
  requireSetting(key) {
    const value = this.setting(key);
    if (value === undefined) throw new Failure('reject', `setting \`${key}\` is not set`);
    if (rustTrim(value) === '') throw new Failure('reject', `setting \`${key}\` is empty`);
    return value;
  }

  /**
   * A boolean setting: `true`/`false` (as TOML booleans arrive), also `1`/`0`, `yes`/`no`,
   * `on`/`off`; absent is `false`. Anything else is rejected.
   */
  settingBool(key) {
    const value = this.setting(key);
    if (value === undefined) return false;
    switch (rustTrim(value).replace(/[A-Z]+/g, (s) => s.toLowerCase())) {
      case 'true':
      case '1':
      case 'yes':
      case 'on':
        return true;
      case 'false':
      case '0':
      case 'no':
      case 'off':
      case '':
        return false;
      default:
        throw new Failure('reject', `setting \`${key}\` must be true or false, got ${quoted(value)}`);
    }
  }

  /**
   * A setting holding JSON (how non-string TOML values arrive): `undefined` when absent, a
   * rejection naming the setting when it does not parse.
   */
  settingJson(key) {
    const raw = this.setting(key);
    if (raw === undefined) return undefined;
    try {
      return JSON.parse(raw);
    } catch (e) {
      throw new Failure('reject', `setting \`${key}\` is not valid: ${e?.message ?? e}`);
    }
  }

  /**
   * Performs `request` now and waits for the answer. Only the connector's `allowed_hosts`
   * can be reached; the host logs every call. Throws a `FetchError` (a `Failure`: denied →
   * reject, timeout/transport → retry) when there is no response.
   * @param {Request} request
   * @returns {Response}
   */
  fetch(request) {
    if (!(request instanceof Request)) {
      throw new TypeError('ctx.fetch takes a Request (Request.get(url), Request.post(url) …)');
    }
    return this._host.fetch(request);
  }

  /** Logs at `trace`. */
  trace(message) {
    this.log('trace', message);
  }

  /** Logs at `debug`. */
  debug(message) {
    this.log('debug', message);
  }

  /** Logs at `info`. */
  info(message) {
    this.log('info', message);
  }

  /** Logs at `warn`. */
  warn(message) {
    this.log('warn', message);
  }

  /** Logs at `error`. */
  error(message) {
    this.log('error', message);
  }

  /** The host's wall clock, unix milliseconds. (`Date.now()` is not: it is frozen.) */
  now() {
    return this._host.now();
  }
}

/**
 * The connector's key-value state: per connector id, kept across events and restarts. Keys
 * are at most 512 bytes and values at most 64 KiB (on the host and in `TestHost`).
 */
export class Kv {
  /** @param {HostApi} host */
  constructor(host) {
    /** @private */
    this._host = host;
  }

  /** The bytes stored under `key`. @returns {Uint8Array | undefined} */
  get(key) {
    return this._host.kvGet(String(key));
  }

  /** The value stored under `key` as text (invalid UTF-8 replaced). */
  getString(key) {
    const bytes = this.get(key);
    return bytes === undefined ? undefined : decodeLossy(bytes);
  }

  /**
   * Stores `value` (bytes, or text as UTF-8) under `key`; throws a `KvError` (a rejection)
   * when either is larger than the host allows.
   */
  set(key, value) {
    const refused = this._host.kvSet(String(key), toBytes(value, 'kv value'));
    if (refused !== undefined) throw new KvError(refused);
  }

  /** Removes `key` (nothing happens when it is absent). */
  delete(key) {
    this._host.kvDelete(String(key));
  }
}
