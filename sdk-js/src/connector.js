// Defining a connector, and running its functions the same way in the component (guest.js)
// and in Node (TestHost): the same checks of what they return, the same failures.

import { describe } from './bytes.js';
import { Ctx } from './ctx.js';
import { isFailure } from './failure.js';
import { toWitRequest } from './http.js';
import { Webhook } from './webhook.js';

/** The version of the WIT contract (`switchyard:connector@…`) this SDK builds against. */
export const WIT_VERSION = '0.1.1';

const CONNECTOR = Symbol.for('switchyard.connector');

/**
 * Defines a connector: the default export of its entry module.
 *
 * ```js
 * export default defineConnector({
 *   manifest: { name: 'hello', version: '0.1.0', description: '…', defaultScheme: 'none',
 *               settings: [{ name: 'forward_url', description: '…', required: true }] },
 *   dedupeKey(webhook) { return webhook.header('webhook-id'); },
 *   handle(webhook, ctx) { return [Delivery.post(ctx.requireSetting('forward_url'))]; },
 *   checkSettings(ctx) {},
 * });
 * ```
 *
 * Only `manifest` and `handle` are required. `dedupeKey` defaults to no dedupe and
 * `checkSettings` to accepting any settings.
 */
export function defineConnector(definition) {
  if (definition === null || typeof definition !== 'object') {
    throw new TypeError('defineConnector takes an object with `manifest` and `handle`');
  }
  const manifest = normalizeManifest(definition.manifest);
  for (const name of ['handle', 'dedupeKey', 'checkSettings']) {
    const fn = definition[name];
    if (fn !== undefined && typeof fn !== 'function') {
      throw new TypeError(`the connector's \`${name}\` must be a function, got ${describe(fn)}`);
    }
  }
  if (definition.handle === undefined) {
    throw new TypeError('the connector has no `handle(webhook, ctx)` function');
  }
  const known = new Set(['manifest', 'handle', 'dedupeKey', 'checkSettings']);
  for (const key of Object.keys(definition)) {
    if (!known.has(key)) {
      throw new TypeError(
        `defineConnector: unknown field \`${key}\` (expected manifest, handle, dedupeKey, checkSettings)`,
      );
    }
  }
  return Object.freeze({
    [CONNECTOR]: true,
    manifest,
    handle: definition.handle,
    dedupeKey: definition.dedupeKey,
    checkSettings: definition.checkSettings,
  });
}

/** Whether `value` came from `defineConnector`. */
export function isConnector(value) {
  return value !== null && typeof value === 'object' && value[CONNECTOR] === true;
}

/** `connector`, or a TypeError saying what it is instead. */
export function assertConnector(connector, what = 'connector') {
  if (!isConnector(connector)) {
    throw new TypeError(
      `${what} is ${describe(connector)}, not a connector: export default defineConnector({ … })`,
    );
  }
  return connector;
}

function normalizeManifest(manifest) {
  if (manifest === null || typeof manifest !== 'object') {
    throw new TypeError('the connector has no `manifest` object');
  }
  const text = (field, fallback) => {
    const value = manifest[field] ?? fallback;
    if (typeof value !== 'string') {
      throw new TypeError(`manifest.${field} must be a string, got ${describe(value)}`);
    }
    return value;
  };
  const name = text('name');
  const version = text('version');
  if (name === '') throw new TypeError('manifest.name is empty');
  if (version === '') throw new TypeError('manifest.version is empty');
  const settings = manifest.settings ?? [];
  if (!Array.isArray(settings)) throw new TypeError('manifest.settings must be an array');
  return Object.freeze({
    name,
    version,
    description: text('description', ''),
    defaultScheme: text('defaultScheme', 'none'),
    settings: Object.freeze(
      settings.map((s, i) => {
        if (s === null || typeof s !== 'object' || typeof s.name !== 'string') {
          throw new TypeError(`manifest.settings[${i}] needs a string \`name\``);
        }
        return Object.freeze({
          name: s.name,
          description: String(s.description ?? ''),
          required: s.required === true,
        });
      }),
    ),
  });
}

/** The manifest as the WIT record (a fresh copy). */
export function witManifest(connector) {
  const m = connector.manifest;
  return {
    name: m.name,
    version: m.version,
    description: m.description,
    defaultScheme: m.defaultScheme,
    settings: m.settings.map((s) => ({ name: s.name, description: s.description, required: s.required })),
  };
}

/** Calls `f(value)` now, or when `value` (a promise) settles. */
function then(value, f, onError) {
  if (value !== null && typeof value === 'object' && typeof value.then === 'function') {
    return value.then(f, onError);
  }
  return f(value);
}

/** Runs `call()`, passing an exception (or a rejected promise) to `onError`. */
function attempt(call, f, onError) {
  let value;
  try {
    value = call();
  } catch (e) {
    return onError(e);
  }
  return then(value, f, onError);
}

/**
 * The connector's dedupe key for `webhook`: a string, or `undefined` for none. Anything
 * else it returns is a programming error (a TypeError).
 */
export function runDedupeKey(connector, webhook) {
  if (connector.dedupeKey === undefined) return undefined;
  const key = connector.dedupeKey(webhook);
  if (key === undefined || key === null) return undefined;
  if (typeof key !== 'string') {
    throw new TypeError(`dedupeKey returned ${describe(key)}; return a string, or undefined for no dedupe`);
  }
  return key;
}

/**
 * Runs `handle`: `{ ok: [WIT delivery records] }`, `{ err: Failure }` when it threw a
 * `Failure`. Any other exception, or a return value that is not an array of deliveries,
 * propagates (in the component it traps, as a panic does in Rust). A promise when `handle`
 * is async.
 */
export function runHandle(connector, webhook, ctx, { lower = true } = {}) {
  return attempt(
    () => connector.handle(webhook, ctx),
    (deliveries) => {
      if (!Array.isArray(deliveries)) {
        throw new TypeError(
          `handle returned ${describe(deliveries)}; return an array of deliveries ([] when there is nothing to send)`,
        );
      }
      const checked = deliveries.map((d, i) => toWitRequest(d, `delivery ${i}`));
      return { ok: lower ? checked : deliveries };
    },
    (e) => {
      if (isFailure(e)) return { err: e };
      throw e;
    },
  );
}

/**
 * Runs `checkSettings`: `{ ok: undefined }`, or `{ err: message }` when it returned a
 * string or threw a `Failure`. Other exceptions propagate. A promise when it is async.
 */
export function runCheckSettings(connector, ctx) {
  if (connector.checkSettings === undefined) return { ok: undefined };
  return attempt(
    () => connector.checkSettings(ctx),
    (result) => {
      if (result === undefined || result === null || result === true) return { ok: undefined };
      if (typeof result === 'string') {
        return { err: result === '' ? 'checkSettings refused the settings' : result };
      }
      throw new TypeError(
        `checkSettings returned ${describe(result)}; return nothing to accept the settings, or a message saying what is wrong`,
      );
    },
    (e) => {
      if (isFailure(e)) return { err: e.message };
      throw e;
    },
  );
}

export { Ctx, Webhook };
