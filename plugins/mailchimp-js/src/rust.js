// What the Rust connector (plugins/mailchimp) gets from Rust's standard library, done the
// same way here so both send the same bytes: `str::trim` and `char::is_whitespace` (Unicode
// White_Space), `char::is_control`, `str::to_lowercase` (Unicode's mappings as Rust 1.95
// has them, a word-final Σ included, which the component's engine does not do) and the
// FNV-1a digest. The tables are printed by tools/rust-lowercase-tables.rs.

// `char::to_lowercase` for every char it changes but Σ and İ, as runs: `gap.count.stride.delta`
// (base 36): `count` chars from the previous run's start + `gap`, `stride` apart, each mapped
// to itself + `delta`.
const LOWER =
  '1t.q.1.w,3j.n.1.w,o.7.1.w,14.o.2.1,1e.3.2.1,7.8.2.1,h.n.2.1,1a.1.1.-3d,1.3.2.1,8.1.1.5u,1.2.2.1,4.1.1.5q,1.1.1.1,2.2.1.5p,2.1.1.1,3.1.1.27,1.1.1.5m,1.1.1.5n,1.1.1.1,2.1.1.5p,1.1.1.5r,2.1.1.5v,1.1.1.5t,1.1.1.1,4.1.1.5v,1.1.1.5x,2.1.1.5y,1.3.2.1,6.1.1.62,1.1.1.1,2.1.1.62,3.1.1.1,2.1.1.62,1.1.1.1,2.2.1.61,2.2.2.1,4.1.1.63,1.1.1.1,4.1.1.1,8.1.1.2,1.1.1.1,2.1.1.2,1.1.1.1,2.1.1.2,1.9.2.1,j.9.2.1,j.1.1.2,1.2.2.1,4.1.1.-2p,1.1.1.-1k,1.k.2.1,14.1.1.-3m,2.9.2.1,o.1.1.8bv,1.1.1.1,2.1.1.-4j,1.1.1.8bs,3.1.1.1,2.1.1.-5f,1.1.1.1x,1.1.1.1z,1.5.2.1,8a.2.2.1,6.1.1.1,9.1.1.38,7.1.1.12,2.3.1.11,4.1.1.1s,2.2.1.1r,3.h.1.w,j.8.1.w,17.1.1.8,9.c.2.1,s.1.1.-1o,3.1.1.1,2.1.1.-7,1.1.1.1,3.3.1.-3m,3.g.1.28,g.w.1.w,28.h.2.1,16.r.2.1,1i.1.1.f,1.7.2.1,f.1c.2.1,2p.12.1.1c,29b.12.1.5ls,13.1.1.5ls,6.1.1.5ls,k3.28.1.tzk,28.6.1.8,1p5.1.1.1,7.17.1.-2bk,19.3.1.-2bk,8z.23.2.1,4e.1.1.-5vj,2.1c.2.1,2w.8.1.-8,g.6.1.-8,g.8.1.-8,g.8.1.-8,g.6.1.-8,h.4.2.-8,f.8.1.-8,w.8.1.-8,g.8.1.-8,g.8.1.-8,g.2.1.-8,2.2.1.-22,2.1.1.-9,c.4.1.-2e,4.1.1.-9,c.2.1.-8,2.2.1.-2s,e.2.1.-8,2.2.1.-34,2.1.1.-7,c.2.1.-3k,2.2.1.-3i,2.1.1.-9,8a.1.1.-5st,4.1.1.-6gv,1.1.1.-6di,7.1.1.s,1a.g.1.g,z.1.1.1,mr.q.1.q,1fu.1c.1.1c,2o.1.1.1,2.1.1.-8af,1.1.1.-2xy,1.1.1.-89z,3.3.2.1,6.1.1.-8bg,1.1.1.-8al,1.1.1.-8bj,1.1.1.-8bi,2.1.1.1,3.1.1.1,9.2.1.-8cf,2.1e.2.1,2z.2.2.1,7.1.1.1,nym.n.2.1,1s.e.2.1,4i.7.2.1,g.v.2.1,1z.2.2.1,4.1.1.-r9g,1.5.2.1,d.1.1.1,2.1.1.-wmg,3.2.2.1,6.a.2.1,k.1.1.-wn8,1.1.1.-wnj,1.1.1.-wnf,1.1.1.-wn5,1.1.1.-wn8,2.1.1.-wlu,1.1.1.-wmi,1.1.1.-wlx,1.1.1.ps,1.8.2.1,g.1.1.-1c,1.1.1.-wn7,1.1.1.-raw,1.2.2.1,4.1.1.-wo7,1.8.2.1,g.1.1.-wu9,p.1.1.1,h7w.q.1.w,yn.14.1.14,4w.10.1.14,5c.b.1.13,c.f.1.13,g.7.1.13,8.2.1.13,1d8.1f.1.1s,5s.m.1.w,28g.w.1.w,gww.w.1.w,2o.p.1.r,o68.y.1.y';

// `str::to_lowercase`'s final-sigma rule: Case_Ignorable chars are skipped (SKIP), then the
// next char must be Cased (CASED). Ranges as `gap.length` (base 36) from the previous end.
const SKIP =
  '13.0,6.0,b.0,z.0,1.0,1z.0,4.0,1.0,4.0,2.1,dz.5b,4.1,4.0,9.1,1.0,6z.6,5r.0,5.0,1d.18,1.0,1.1,1.1,1.0,18.0,b.5,a.a,1.0,z.0,a.k,g.0,2t.7,1.9,1.3,x.0,1.0,u.q,2j.a,1m.a,4.0,2.0,o.n,17.2,18.0,7.1,5.8,15.1l,1j.0,1.0,4.7,4.0,3.6,a.1,d.0,f.0,1m.0,4.3,8.0,k.1,q.0,2.1,1l.0,4.1,4.1,2.2,3.0,u.1,3.0,b.1,1l.0,4.4,1.1,4.0,k.1,m.5,1.0,1m.0,2.0,1.3,8.0,7.1,b.1,u.0,1p.0,c.0,1e.0,3.0,1j.0,1.2,5.2,1.3,7.1,b.1,t.0,1m.0,2.0,6.0,5.1,k.1,s.1,1l.1,4.3,8.0,k.1,t.0,20.0,7.2,1.0,2i.0,2.6,b.8,2q.0,2.8,9.0,1.6,21.1,r.0,1.0,1.0,1j.d,1.4,1.1,5.a,1.z,9.0,2u.3,1.5,1.1,2.1,p.1,4.2,g.3,d.0,2.1,6.0,f.0,2m.0,gw.2,qa.2,t.1,u.1,u.1,1s.1,1.6,8.0,2.a,3.0,5.0,19.4,1f.0,1t.1,y.0,3a.2,4.1,9.0,6.2,63.1,2.0,1m.0,1.6,1.0,1.0,2.7,6.9,2.0,13.0,8.19,2.b,k.3,1c.0,1.4,1.0,5.0,14.8,c.1,w.3,2.1,1.2,1k.0,1.1,3.0,1.2,1m.7,2.1,1s.5,2a.2,1.c,1.6,4.0,6.0,3.1,1e.1q,d.0,y.2s,cd.0,1.2,b.2,d.2,d.2,d.1,c.4,8.1,a.0,2.0,2.4,1d.4,1.9,1.0,d.0,g.c,1f.w,2a3.1,35.2,3h.0,f.0,2o.v,1b.0,d1.0,10.3,3.4,5.0,2l.5,2l.2,lxy.0,yq.5,7i.0,2q.3,1.9,1.0,s.3,28.1,e.x,26.0,n.2,2u.3,3.1,8.0,3.0,4.0,p.1,5.0,47.1,q.h,d.0,12.7,p.a,1a.2,1c.0,2.3,2.1,h.0,l.1,1u.5,2.1,2.1,c.0,8.0,z.0,b.0,1f.0,1.2,2.1,5.1,1.0,r.0,e.1,5.1,1.0,2s.4,9.2,3d.0,2.0,4.0,fn4.0,43.g,fx.f,3.0,c.f,y.0,2.0,4p.0,7.0,6.0,b.0,z.0,1.0,1b.0,19.1,1v.0,l.2,e9.0,6a.0,45.4,sl.5,1.15,1.8,g6.2,1.1,5.3,14.2,4.0,4l.1,fx.3,12.0,q.4,1.0,8r.1,o.0,1g.5,1y.a,1d.3,3f.0,1i.e,15.0,2.1,a.2,1d.3,2.1,2.0,4.0,a.0,1e.2,10.4,1.7,1q.0,c.1,1g.8,a.3,2.0,2n.2,2.0,1.1,6.0,2.0,4d.0,3.7,l.1,1l.1,3.0,11.6,3.4,1y.5,d.0,1.0,1.0,e.1,2d.7,2.2,1.0,n.0,2c.5,1.0,4.1,1.1,6m.3,6.1,1.1,r.1,2d.7,2.0,1.1,2y.0,1.0,2.5,1.0,2t.0,1.0,2.3,1.4,77.8,1.1,74.1,1.0,4.0,40.3,2.1,4.0,w.9,14.5,2.3,8.0,9.5,2.2,1a.c,1.1,5i.0,1.2,1.0,5l.6,1.5,1.0,2a.l,2.6,1.1,1.1,3e.5,3.0,1.1,1.6,1.0,20.1,3.0,1.0,1t.0,7t.1,b.1,1g.4,5.0,1.0,n.0,445.g,6.e,8ug.b,3.2,1xc.4,1n.6,9.3,e4.2,14.1,de.0,1r.g,1s.1,1.1,d.1,cn0.3,1.6,1.1,2hq.1,1.3,3mk.19,2.m,f4.2,9.f,2.6,u.3,44.2,1iz.1i,4.1d,8.0,e.0,m.4,1.e,11s.6,1.g,2.6,1.1,1.4,5.1p,x.0,4g.d,a8.0,1p.3,e3.4,72.1,6r.0,2.0,7.1,5.0,9.0,cw.6,31.7,23z.4,gx6p.0,u.2n,3k.6n';
const CASED =
  '1t.p,6.p,1b.0,a.0,4.0,5.m,1.u,1.5e,1.3,4.5r,2.p,5c.3,2.1,3.2,1.0,6.0,1.2,1.0,1.j,1.2a,1.3u,8.4l,1.11,9.14,26v.11,1.0,5.0,2.16,2.2,io.2d,2.5,1oi.a,5.16,2.2,1s.17,1r.c,1.x,2t.7p,2.5,2.11,2.5,2.7,1.0,1.0,1.0,1.u,2.1g,1.6,1.0,3.2,1.6,3.3,2.5,4.c,5.2,1.6,79.0,4.0,2.9,1.0,3.4,6.0,1.0,1.0,1.3,1.5,4.0,2.3,5.4,4.0,h.v,3.1,mp.1f,1ee.3f,2.2u,6.3,3.1,c.11,1.0,5.0,nwy.19,i.r,3q.25,1.m,3.3,1.24,o.1,3.0,mt.16,5.8,7.27,fnk.6,c.4,sp.p,6.p,x1.27,2o.z,4.z,38.a,1.e,1.6,1.1,1.a,1.e,1.6,1.1,1c3.1e,d.1e,2l.l,a.l,26y.1r,gv4.1r,w.o,2.o,jzg.2c,1.1y,1.1,2.0,2.1,2.3,1.b,1.0,1.6,1.1s,1.3,2.7,1.6,1.r,1.3,1.4,1.0,3.6,1.9f,2.o,1.o,1.u,1.o,1.u,1.o,1.u,1.o,1.u,1.o,1.7,1f8.9,1.j,6.5,1xx.1v,1kc.p,6.p,6.p';

// The tables are built at the module's top level, which `switchyard-js build` runs once and
// snapshots: the host starts every event's instance from that snapshot, so a table built
// lazily in a call would be built again for every event (it was most of a call's time).
const LOWER_MAP = lowerTable();

function lowerTable() {
  const map = new Map();
  let start = 0;
  for (const part of LOWER.split(',')) {
    const [gap, count, stride, delta] = part.split('.');
    start += parseInt(gap, 36);
    const n = parseInt(count, 36);
    const d = delta.startsWith('-') ? -parseInt(delta.slice(1), 36) : parseInt(delta, 36);
    for (let i = 0; i < n; i++) {
      const cp = start + i * Number(stride);
      map.set(cp, cp + d);
    }
  }
  return map;
}

function ranges(table) {
  const out = [];
  let next = 0;
  for (const part of table.split(',')) {
    const [gap, extra] = part.split('.');
    const start = next + parseInt(gap, 36);
    const end = start + parseInt(extra, 36);
    out.push(start, end);
    next = end + 1;
  }
  return out;
}

function inRanges(r, cp) {
  let lo = 0;
  let hi = r.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < r[2 * mid]) hi = mid - 1;
    else if (cp > r[2 * mid + 1]) lo = mid + 1;
    else return true;
  }
  return false;
}

const SKIP_RANGES = ranges(SKIP);
const CASED_RANGES = ranges(CASED);

/** Whether the chars from `from` on (stepping `step`) start, after case-ignorable ones, with a cased one. */
function caseIgnorableThenCased(chars, from, step) {
  for (let i = from; i >= 0 && i < chars.length; i += step) {
    const cp = chars[i].codePointAt(0);
    if (inRanges(CASED_RANGES, cp)) return true;
    if (!inRanges(SKIP_RANGES, cp)) return false;
  }
  return false;
}

/** Rust's `str::to_lowercase`. */
export function toLowercase(text) {
  const chars = Array.from(text);
  const map = LOWER_MAP;
  let out = '';
  for (let i = 0; i < chars.length; i++) {
    const cp = chars[i].codePointAt(0);
    if (cp < 0x80) {
      out += cp >= 0x41 && cp <= 0x5a ? String.fromCharCode(cp + 32) : chars[i];
    } else if (cp === 0x3a3) {
      const final = caseIgnorableThenCased(chars, i - 1, -1) && !caseIgnorableThenCased(chars, i + 1, 1);
      out += final ? '\u03c2' : '\u03c3';
    } else if (cp === 0x130) {
      out += 'i\u0307';
    } else {
      const to = map.get(cp);
      out += to === undefined ? chars[i] : String.fromCodePoint(to);
    }
  }
  return out;
}

/** Unicode White_Space: Rust's `char::is_whitespace`. */
const WHITE_SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const TRIM = new RegExp(`^[${WHITE_SPACE}]+|[${WHITE_SPACE}]+$`, 'g');
const WHITESPACE_OR_CONTROL = new RegExp(`[${WHITE_SPACE}\\u0000-\\u001f\\u007f-\\u009f]`);

/** Rust's `str::trim`. */
export function trim(text) {
  return text.replace(TRIM, '');
}

/** Whether any char `c` has `c.is_whitespace() || c.is_control()`. */
export function hasWhitespaceOrControl(text) {
  return WHITESPACE_OR_CONTROL.test(text);
}

/** 64-bit FNV-1a of `bytes`, as 16 lowercase hex digits (`{:016x}`). */
export function fnv1a64Hex(bytes) {
  let hash = 0xcbf29ce484222325n;
  for (const b of bytes) hash = BigInt.asUintN(64, (hash ^ BigInt(b)) * 0x100000001b3n);
  return hash.toString(16).padStart(16, '0');
}
