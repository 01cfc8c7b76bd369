// Form bodies with PHP-style nested keys (ports of sdk/src/form.rs's tests).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Form } from '../src/index.js';

const MAILCHIMP =
  'type=subscribe&fired_at=2009-03-26+21%3A35%3A57' +
  '&data%5Bid%5D=8a25ff1d98&data%5Blist_id%5D=a6b5da1054' +
  '&data[email]=api%40mailchimp.com&data[email_type]=html' +
  '&data[merges][EMAIL]=api%40mailchimp.com&data[merges][FNAME]=Mailchimp' +
  '&data[merges][LNAME]=API&data[merges][INTERESTS]=Group1%2CGroup2' +
  '&data[ip_opt]=10.20.10.30&data[ip_signup]=10.20.10.30';

test('mailchimp nested keys', () => {
  const form = Form.parse(new TextEncoder().encode(MAILCHIMP));
  // Flat lookups, whether or not the sender percent-encoded the brackets.
  assert.equal(form.get('type'), 'subscribe');
  assert.equal(form.get('fired_at'), '2009-03-26 21:35:57');
  assert.equal(form.get('data[id]'), '8a25ff1d98');
  assert.equal(form.get('data[email]'), 'api@mailchimp.com');
  assert.equal(form.get('data[merges][FNAME]'), 'Mailchimp');
  assert.equal(form.get('data[merges][INTERESTS]'), 'Group1,Group2');

  // Nested view.
  const data = form.field('data');
  assert.equal(data.get('list_id').asStr(), 'a6b5da1054');
  assert.equal(form.path(['data', 'merges', 'LNAME']).asStr(), 'API');
  assert.equal(form.path(['data', 'nope']), undefined);
  assert.deepEqual(form.toJson().data.merges, {
    EMAIL: 'api@mailchimp.com', FNAME: 'Mailchimp', LNAME: 'API', INTERESTS: 'Group1,Group2',
  });
  assert.deepEqual(Object.keys(form.toJson().data.merges), ['EMAIL', 'FNAME', 'INTERESTS', 'LNAME'], 'sorted like a BTreeMap');
  assert.equal(data.kind, 'map');
  assert.deepEqual([...data.asMap().keys()], ['email', 'email_type', 'id', 'ip_opt', 'ip_signup', 'list_id', 'merges']);
});

test('lists and deep indices', () => {
  const form = Form.parse('ids[]=1&ids[]=2&g[0][id]=7&g[0][groups]=A&g[1][id]=8&name=x&name=y');
  assert.deepEqual(form.getAll('ids[]'), ['1', '2']);
  assert.equal(form.get('name'), 'y', 'the last value wins');
  assert.deepEqual(form.toJson().ids, ['1', '2']);
  assert.deepEqual(form.toJson().g, { 0: { id: '7', groups: 'A' }, 1: { id: '8' } });
  assert.equal(form.path(['g', '1', 'id']).asStr(), '8');
  assert.equal(form.path(['ids', '1']).asStr(), '2');
  assert.equal(form.path(['ids', '+1']).asStr(), '2', 'an index parses as Rust parses a usize');
  assert.equal(form.field('ids').kind, 'list');
  assert.equal(form.field('ids').asList().length, 2);
});

test('odd keys stay flat or follow PHP', () => {
  const form = Form.parse('a[b=1&[x]=2&c[d]tail=3&e=4&e[f]=5&h[k][]=6&h[k][]=7');
  assert.equal(form.field('a[b').asStr(), '1');
  assert.equal(form.field('[x]').asStr(), '2');
  assert.equal(form.path(['c', 'd']).asStr(), '3');
  // A later nested key replaces an earlier leaf of the same name.
  assert.equal(form.path(['e', 'f']).asStr(), '5');
  assert.deepEqual(form.toJson().h, { k: ['6', '7'] });
  assert.equal(form.get('e'), '4');
});

test('appending to a map continues after its largest index; a named key turns a list into a map', () => {
  const form = Form.parse('m[3]=a&m[x]=b&m[]=c&l[]=p&l[]=q&l[k]=r');
  assert.deepEqual(form.toJson().m, { 3: 'a', 4: 'c', x: 'b' });
  assert.deepEqual(form.toJson().l, { 0: 'p', 1: 'q', k: 'r' });
});

test('decoding keeps bad escapes and replaces bad UTF-8, like form_urlencoded', () => {
  const form = Form.parse(new Uint8Array([...new TextEncoder().encode('a=%ZZ%4&b=%FF&&c&=d&e=1=2&')]));
  assert.deepEqual(form.pairs(), [['a', '%ZZ%4'], ['b', '\ufffd'], ['c', ''], ['', 'd'], ['e', '1=2']]);
});

test('every key is data, __proto__ included', () => {
  const json = Form.parse('a[__proto__]=x&__proto__=y&a[constructor]=z').toJson();
  assert.deepEqual(Object.keys(json), ['__proto__', 'a']);
  assert.equal(Object.getPrototypeOf(json.a), Object.prototype);
  assert.deepEqual(Object.keys(json.a), ['__proto__', 'constructor']);
  assert.equal(JSON.stringify(json), '{"__proto__":"y","a":{"__proto__":"x","constructor":"z"}}');
});

test('an empty body is an empty form', () => {
  const form = Form.parse('');
  assert.deepEqual(form.pairs(), []);
  assert.deepEqual(form.toJson(), {});
});
