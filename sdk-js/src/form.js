// Form-encoded bodies with PHP-style nested keys (`data[merges][FNAME]`), as Mailchimp and
// PHP applications such as WHMCS send them. The same semantics as the Rust SDK's `Form`.

import { compareCodePoints } from './json.js';
import { parsePairs } from './urlencoded.js';

/**
 * One node of a `Form`'s nested view: a leaf string (`kind: 'text'`), a list built by
 * repeated empty brackets (`ids[]=1&ids[]=2`, `kind: 'list'`) or a map built by named
 * brackets (`data[email]=…`, `kind: 'map'`).
 */
export class FormValue {
  /** @private */
  constructor(kind, value) {
    /** @type {'text' | 'list' | 'map'} */
    this.kind = kind;
    /** @private */
    this._value = value;
  }

  /** @private */
  static text(text) {
    return new FormValue('text', text);
  }

  /** The leaf text, if this is a leaf. */
  asStr() {
    return this.kind === 'text' ? this._value : undefined;
  }

  /** The items, if this is a list. */
  asList() {
    return this.kind === 'list' ? this._value.slice() : undefined;
  }

  /** The entries sorted by key, if this is a map. */
  asMap() {
    return this.kind === 'map' ? sortedMap(this._value) : undefined;
  }

  /** The child named `key`: a map key, or a list index such as `"0"`. */
  get(key) {
    if (this.kind === 'map') return this._value.get(key);
    if (this.kind === 'list') {
      const index = parseIndex(key);
      return index === undefined ? undefined : this._value[index];
    }
    return undefined;
  }

  /** This node as plain JSON values: strings, arrays and objects. */
  toJson() {
    switch (this.kind) {
      case 'text':
        return this._value;
      case 'list':
        return this._value.map((v) => v.toJson());
      default:
        return mapToJson(this._value);
    }
  }
}

/**
 * A parsed `application/x-www-form-urlencoded` body. Two views of the same data:
 * - flat: `get` / `getAll` look a name up exactly as sent, brackets included
 *   (`form.get('data[merges][FNAME]')`);
 * - nested, as PHP builds `$_POST`: `field('data')`, `path(['data', 'merges', 'FNAME'])`,
 *   `toJson()`. `a[]=x&a[]=y` becomes a list; every leaf is a string.
 *
 * Like PHP: a later name wins over an earlier one at the same place, `a[]` appends,
 * malformed names stay flat.
 */
export class Form {
  /** @private */
  constructor(pairs, root) {
    /** @private */
    this._pairs = pairs;
    /** @private */
    this._root = root;
  }

  /** Parses form-encoded bytes or text. Never fails on content. */
  static parse(body) {
    const pairs = parsePairs(body);
    const root = new Map();
    for (const [key, value] of pairs) insertPair(root, key, value);
    return new Form(pairs, root);
  }

  /** The value of `name` exactly as sent; the last one when the name repeats. */
  get(name) {
    for (let i = this._pairs.length - 1; i >= 0; i--) {
      if (this._pairs[i][0] === name) return this._pairs[i][1];
    }
    return undefined;
  }

  /** Every value of `name` exactly as sent, in order (`'ids[]'`). */
  getAll(name) {
    return this._pairs.filter(([k]) => k === name).map(([, v]) => v);
  }

  /** The decoded `[name, value]` pairs in the order received. */
  pairs() {
    return this._pairs.map(([k, v]) => [k, v]);
  }

  /** A top-level field of the nested view. */
  field(name) {
    return this._root.get(name);
  }

  /** Walks the nested view: `form.path(['data', 'merges', 'FNAME'])`; list items by index. */
  path(path) {
    if (path.length === 0) return undefined;
    let node = this._root.get(path[0]);
    for (let i = 1; i < path.length && node !== undefined; i++) node = node.get(path[i]);
    return node;
  }

  /** The nested view as a plain object (every leaf a string). */
  toJson() {
    return mapToJson(this._root);
  }
}

function sortedMap(map) {
  return new Map([...map.entries()].sort(([a], [b]) => compareCodePoints(a, b)));
}

function mapToJson(map) {
  const out = {};
  for (const [k, v] of sortedMap(map)) {
    // Defined, not assigned: a key such as `__proto__` is data here.
    Object.defineProperty(out, k, { value: v.toJson(), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

const U32_MAX = 0xffffffff;

/**
 * A list index as Rust's `str::parse::<usize>` reads one on wasm32: ASCII digits with an
 * optional `+`, at most 2³²−1.
 */
function parseIndex(key) {
  if (!/^\+?[0-9]+$/.test(key)) return undefined;
  const n = Number(key.startsWith('+') ? key.slice(1) : key);
  return n <= U32_MAX ? n : undefined;
}

/**
 * Splits `base[a][b][]` into `['base', ['a', 'b', '']]`. A name without brackets, or with
 * unbalanced ones, is a plain name (`undefined`). Text after the last `]` is ignored.
 */
function splitKey(key) {
  const open = key.indexOf('[');
  if (open <= 0) return undefined;
  const base = key.slice(0, open);
  const segments = [];
  let rest = key.slice(open);
  while (rest.startsWith('[')) {
    const close = rest.indexOf(']', 1);
    if (close === -1) return undefined;
    segments.push(rest.slice(1, close));
    rest = rest.slice(close + 1);
  }
  return [base, segments];
}

function insertPair(root, key, value) {
  const split = splitKey(key);
  if (split === undefined) {
    root.set(key, FormValue.text(value));
    return;
  }
  const [base, segments] = split;
  let slot = root.get(base);
  if (slot === undefined) {
    slot = FormValue.text('');
    root.set(base, slot);
  }
  insertPath(slot, segments, 0, value);
}

/**
 * Stores `value` at `path[from..]` below `slot` (mutated in place), turning leaves into lists
 * or maps as needed; a later pair wins over an earlier one at the same place.
 */
function insertPath(slot, path, from, value) {
  if (from === path.length) {
    slot.kind = 'text';
    slot._value = value;
    return;
  }
  const key = path[from];
  let child;
  if (key === '') {
    // `[]`: append a new item.
    if (slot.kind === 'list') {
      child = FormValue.text('');
      slot._value.push(child);
    } else if (slot.kind === 'map') {
      let max = -1;
      for (const k of slot._value.keys()) {
        const i = parseIndex(k);
        if (i !== undefined && i > max) max = i;
      }
      const next = String(max + 1);
      child = slot._value.get(next);
      if (child === undefined) {
        child = FormValue.text('');
        slot._value.set(next, child);
      }
    } else {
      child = FormValue.text('');
      slot.kind = 'list';
      slot._value = [child];
    }
  } else {
    // `[name]`: a map entry; an existing list becomes a map keyed by index.
    if (slot.kind === 'list') {
      slot._value = new Map(slot._value.map((v, i) => [String(i), v]));
    } else if (slot.kind === 'text') {
      slot._value = new Map();
    }
    slot.kind = 'map';
    child = slot._value.get(key);
    if (child === undefined) {
      child = FormValue.text('');
      slot._value.set(key, child);
    }
  }
  insertPath(child, path, from + 1, value);
}
