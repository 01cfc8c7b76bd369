// application/x-www-form-urlencoded, byte for byte as the Rust SDK's (`form_urlencoded`,
// which `serde_urlencoded` uses): the same pairs from the same bytes, the same bytes from the
// same pairs.

import { decodeLossy, utf8 } from './bytes.js';

const AMP = 0x26;
const EQ = 0x3d;
const PLUS = 0x2b;
const PERCENT = 0x25;

function hexValue(byte) {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x41 + 10;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  return -1;
}

/** `+` → space, `%XX` → the byte (a `%` without two hex digits stays), then lossy UTF-8. */
function decodeComponent(bytes) {
  const out = new Uint8Array(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === PLUS) {
      out[n++] = 0x20;
    } else if (b === PERCENT && i + 2 < bytes.length) {
      const h = hexValue(bytes[i + 1]);
      const l = hexValue(bytes[i + 2]);
      if (h >= 0 && l >= 0) {
        out[n++] = h * 16 + l;
        i += 2;
      } else {
        out[n++] = b;
      }
    } else {
      out[n++] = b;
    }
  }
  return decodeLossy(out.subarray(0, n));
}

/**
 * Decodes form-encoded bytes (or a string) into `[name, value]` pairs, in order. Never
 * fails: invalid escapes stay literally, invalid UTF-8 becomes U+FFFD, empty pieces
 * (`a=1&&b=2`) are skipped and a piece without `=` has the value `""`.
 */
export function parsePairs(input) {
  const bytes = typeof input === 'string' ? utf8(input) : input;
  const pairs = [];
  let start = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(AMP, start);
    if (end === -1) end = bytes.length;
    if (end > start) {
      const piece = bytes.subarray(start, end);
      const eq = piece.indexOf(EQ);
      const name = eq === -1 ? piece : piece.subarray(0, eq);
      const value = eq === -1 ? piece.subarray(piece.length) : piece.subarray(eq + 1);
      pairs.push([decodeComponent(name), decodeComponent(value)]);
    }
    start = end + 1;
  }
  return pairs;
}

const HEX = '0123456789ABCDEF';

/** One name or value: `*-._`, digits and ASCII letters stay, space → `+`, the rest `%XX`. */
export function encodeComponent(text) {
  let out = '';
  for (const b of utf8(text)) {
    if (
      b === 0x2a || b === 0x2d || b === 0x2e || b === 0x5f ||
      (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
    ) {
      out += String.fromCharCode(b);
    } else if (b === 0x20) {
      out += '+';
    } else {
      out += `%${HEX[b >> 4]}${HEX[b & 15]}`;
    }
  }
  return out;
}

/**
 * Encodes pairs: an array of `[name, value]` pairs (repeat a name for several values) or a
 * flat object (`{a: '1', n: 2, ok: true}`; `undefined` and `null` values are left out).
 * Values must be strings, numbers, booleans or bigints: a nested object or array throws a
 * TypeError (write bracketed names such as `data[email]` instead).
 */
export function encodePairs(pairs) {
  let list;
  if (Array.isArray(pairs)) {
    list = pairs.map((pair, i) => {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new TypeError(`form pair ${i} is not a [name, value] pair`);
      }
      return pair;
    });
  } else if (pairs !== null && typeof pairs === 'object') {
    list = Object.entries(pairs).filter(([, v]) => v !== undefined && v !== null);
  } else {
    throw new TypeError('a form body is an array of [name, value] pairs or a flat object');
  }
  return list
    .map(([name, value]) => `${encodeComponent(scalar(name, 'name'))}=${encodeComponent(scalar(value, name))}`)
    .join('&');
}

function scalar(value, what) {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    default:
      throw new TypeError(
        `form value of ${JSON.stringify(String(what))} is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}: only strings, numbers and booleans form-encode`,
      );
  }
}
