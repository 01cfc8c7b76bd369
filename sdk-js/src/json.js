// JSON text for bodies. `JSON.stringify` keeps keys in insertion order; with `sortKeys`
// every object's keys are sorted by code point, which is what `serde_json` writes for a
// `serde_json::Value` (its maps are sorted), so a port of a Rust connector can send the
// same bytes.

import { Failure } from './failure.js';

/** Compares two strings by code point (= by their UTF-8 bytes), not by UTF-16 unit. */
export function compareCodePoints(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i);
    const y = b.codePointAt(i);
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

/**
 * JSON text of `value`, as `JSON.stringify(value)` (no spaces), or with every object's keys
 * sorted by code point when `sortKeys` is set. Throws a TypeError for what has no JSON text
 * (`undefined`, a function, a BigInt, a cycle).
 */
export function stringify(value, { sortKeys = false } = {}) {
  const text = sortKeys ? sorted(value, '', new Set()) : JSON.stringify(value);
  if (text === undefined) {
    throw new TypeError(`${typeof value} has no JSON text`);
  }
  return text;
}

function sorted(value, key, seen) {
  if (value !== null && typeof value === 'object' && typeof value.toJSON === 'function') {
    value = value.toJSON(key);
  }
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      throw new TypeError('Do not know how to serialize a BigInt');
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
    default:
      break;
  }
  if (value === null) return 'null';
  if (value instanceof Number || value instanceof String || value instanceof Boolean) {
    return sorted(value.valueOf(), key, seen);
  }
  if (seen.has(value)) throw new TypeError('cyclic object value');
  seen.add(value);
  let text;
  if (Array.isArray(value)) {
    const items = [];
    for (let i = 0; i < value.length; i++) {
      items.push(sorted(value[i], String(i), seen) ?? 'null');
    }
    text = `[${items.join(',')}]`;
  } else {
    const entries = [];
    for (const k of Object.keys(value).sort(compareCodePoints)) {
      const v = sorted(value[k], k, seen);
      if (v !== undefined) entries.push(`${JSON.stringify(k)}:${v}`);
    }
    text = `{${entries.join(',')}}`;
  }
  seen.delete(value);
  return text;
}

/** `stringify`, throwing a rejection that starts with `what` instead of a TypeError. */
export function stringifyOrReject(value, options, what) {
  try {
    return stringify(value, options);
  } catch (e) {
    throw new Failure('reject', `${what}: ${e?.message ?? e}`);
  }
}
