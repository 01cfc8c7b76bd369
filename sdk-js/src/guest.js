// The component side: the WIT imports behind the SDK's host API, and the world's exports
// around a connector. `switchyard-js build` generates an entry module that imports the
// `switchyard:connector/*` interfaces and the connector, and calls `exportsFor`.
//
// How componentize-js (0.23) maps the WIT, which this module relies on:
// - an export returning `result<T, E>`: a returned `{tag: 'ok', val}` / `{tag: 'err', val}` is
//   taken as is, any other value is `ok(value)`; a thrown value with an own `payload` is
//   `err(payload)`, a thrown `Error` without one traps, any other thrown value is `err(value)`;
// - `option<T>`: `undefined`/`null` is `none`, anything else `some(value)`;
// - variants are `{tag, val}` objects, enums strings, `u64` a BigInt, `list<u8>` a
//   Uint8Array, records objects with camelCase fields;
// - an import returning `result` returns the `ok` value or throws an error whose
//   `payload` is the `err` value.
// These wrappers always return explicit `{tag}` results, so nothing a connector returns can
// be misread, and turn any exception that is not a `Failure` into a trap.

import { isConnector, runCheckSettings, runDedupeKey, runHandle, witManifest } from './connector.js';
import { Ctx } from './ctx.js';
import { FetchError } from './failure.js';
import { Response } from './http.js';
import { mapStack } from './lines.js';
import { Webhook } from './webhook.js';

/** Frames of the SDK's own glue (and the bindings), left out of a trap's stack trace. */
function isGlue({ frame, file }) {
  if (file === undefined) return !/@/.test(frame) || /initializer\.js:\d+:\d+$/.test(frame);
  return /@switchyard\/sdk\/src\/(connector|guest)\.js$/.test(file);
}

/** The real host, reached through the component's imports. */
function witHost({ settings, http, kv, log, clock }) {
  return {
    setting(key) {
      return settings.get(key) ?? undefined;
    },
    fetch(request) {
      let response;
      try {
        response = http.fetch({
          method: request.method,
          url: request.url,
          headers: request.headers.map(([k, v]) => [k, v]),
          body: request.body(),
        });
      } catch (e) {
        const error = e?.payload;
        if (error && (error.tag === 'denied' || error.tag === 'timeout' || error.tag === 'transport')) {
          throw new FetchError(error.tag, error.val);
        }
        throw e;
      }
      return new Response(response.status, response.headers, response.body);
    },
    kvGet(key) {
      return kv.get(key) ?? undefined;
    },
    kvSet(key, value) {
      try {
        kv.set(key, value);
        return undefined;
      } catch (e) {
        if (e !== null && typeof e === 'object' && 'payload' in e) return String(e.payload);
        throw e;
      }
    },
    kvDelete(key) {
      kv.delete(key);
    },
    log(level, message) {
      log.emit(level, message);
    },
    now() {
      return Number(clock.now());
    },
  };
}

/** A line for the log: strings as they are, other values as JSON where they have it. */
function show(value) {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return value.stack ? `${value}\n${value.stack}` : String(value);
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
  } catch {
    // fall through
  }
  return String(value);
}

/** Whether a call is running (imports work only then, not while the snapshot is taken). */
let inCall = false;

/**
 * `console.*` in the component: the engine has no stdio here, so during a call the lines go
 * to the event's log instead (`console.log`/`info` at info, `warn`, `error`, `debug`,
 * `trace`); outside a call (at the module's top level, evaluated at build time) they are
 * dropped.
 */
function routeConsole(host) {
  const c = globalThis.console;
  if (c === undefined || c === null) return;
  const levels = { log: 'info', info: 'info', warn: 'warn', error: 'error', debug: 'debug', trace: 'trace' };
  for (const [method, level] of Object.entries(levels)) {
    try {
      c[method] = (...args) => {
        if (inCall) host.log(level, args.map(show).join(' '));
      };
    } catch {
      // a read-only console stays as it is
    }
  }
}

/**
 * Logs an exception that is not a `Failure` and traps, which the host treats as a Rust
 * panic: the attempt's outcome is a trap, and the event is retried.
 */
function trap(host, where, error) {
  let text = `uncaught exception in ${where}: ${error instanceof Error ? `${error.name}: ${error.message}` : show(error)}`;
  const stack = error instanceof Error && typeof error.stack === 'string' ? mapStack(error.stack.trim(), isGlue) : '';
  if (stack) text += `\n${stack}`;
  try {
    host.log('error', text);
  } catch {
    // the trap below says enough
  }
  // An `Error` without a `payload` makes the export's glue trap (`unreachable`).
  throw new Error(text);
}

function witFailure(failure) {
  return { tag: failure.kind, val: failure.message };
}

/** The component's exports for `connector` over the WIT imports `wit`. */
export function exportsFor(connector, wit) {
  if (!isConnector(connector)) {
    throw new TypeError(
      'the entry module must `export default defineConnector({ … })` (from @switchyard/sdk)',
    );
  }
  const host = witHost(wit);
  routeConsole(host);

  const call = (where, body, finish) => {
    inCall = true;
    let result;
    try {
      result = body();
    } catch (e) {
      inCall = false;
      return trap(host, where, e);
    }
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      return result.then(
        (value) => {
          inCall = false;
          return finish(value);
        },
        (e) => {
          inCall = false;
          return trap(host, where, e);
        },
      );
    }
    inCall = false;
    return finish(result);
  };

  return {
    manifest() {
      return witManifest(connector);
    },
    dedupeKey(webhook) {
      return call('dedupeKey', () => runDedupeKey(connector, new Webhook(webhook)), (key) => key);
    },
    handle(webhook) {
      return call(
        'handle',
        () => runHandle(connector, new Webhook(webhook), new Ctx(host)),
        (result) => ('ok' in result ? { tag: 'ok', val: result.ok } : { tag: 'err', val: witFailure(result.err) }),
      );
    },
    checkSettings() {
      return call(
        'checkSettings',
        () => runCheckSettings(connector, new Ctx(host)),
        (result) => ('ok' in result ? { tag: 'ok', val: undefined } : { tag: 'err', val: result.err }),
      );
    },
  };
}
