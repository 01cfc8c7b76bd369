// Bytes and text: the WIT's `list<u8>` is a Uint8Array on both sides.

const encoder = new TextEncoder();
// `ignoreBOM`: keep a leading U+FEFF, as Rust's `from_utf8` does (the body is "exactly as
// signed"; a BOM in front of JSON is an error there too).
const lossy = new TextDecoder('utf-8', { ignoreBOM: true });
const strict = new TextDecoder('utf-8', { ignoreBOM: true, fatal: true });

/** UTF-8 bytes of a string. */
export function utf8(text) {
  return encoder.encode(text);
}

/** Text from UTF-8 bytes, invalid sequences replaced with U+FFFD (Rust's `from_utf8_lossy`). */
export function decodeLossy(bytes) {
  return lossy.decode(bytes);
}

/** Text from UTF-8 bytes; throws a TypeError when they are not UTF-8. */
export function decodeStrict(bytes) {
  return strict.decode(bytes);
}

/**
 * A body as bytes: a Uint8Array as is, a string as UTF-8, any other ArrayBuffer view or
 * ArrayBuffer as its bytes, an array of byte values copied.
 */
export function toBytes(value, what = 'body') {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return encoder.encode(value);
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
    return Uint8Array.from(value);
  }
  throw new TypeError(`${what} must be a Uint8Array or a string, got ${describe(value)}`);
}

/** A short description of a value's type for error messages. */
export function describe(value) {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') {
    const name = value.constructor?.name;
    return name && name !== 'Object' ? `a ${name}` : 'an object';
  }
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  return `${typeof value} ${String(value)}`;
}
