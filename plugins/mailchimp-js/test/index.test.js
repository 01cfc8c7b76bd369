// Unit tests through the SDK's TestHost, on the payloads of Mailchimp's webhook docs: the
// port of plugins/mailchimp/src/tests.rs, case for case.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';

import { Failure, Webhook, quoted, reject } from '@switchyard/sdk';
import { TestHost } from '@switchyard/sdk/test';

import connector, { rfc3339 } from '../src/index.js';

const CRM = 'http://crm.test/api';

/** Mailchimp's documented `subscribe` example, plus a nested `GROUPINGS` merge. */
const SUBSCRIBE = [
  ['type', 'subscribe'],
  ['fired_at', '2009-03-26 21:35:57'],
  ['data[id]', '8a25ff1d98'],
  ['data[list_id]', 'a6b5da1054'],
  ['data[email]', 'api@mailchimp.com'],
  ['data[email_type]', 'html'],
  ['data[merges][EMAIL]', 'api@mailchimp.com'],
  ['data[merges][FNAME]', 'Mailchimp'],
  ['data[merges][LNAME]', 'API'],
  ['data[merges][INTERESTS]', 'Group1,Group2'],
  ['data[merges][GROUPINGS][0][id]', '1'],
  ['data[merges][GROUPINGS][0][name]', 'Interests'],
  ['data[merges][GROUPINGS][0][groups]', 'Group1, Group2'],
  ['data[ip_opt]', '10.20.10.30'],
  ['data[ip_signup]', '10.20.10.30'],
];

const PROFILE = [
  ['type', 'profile'],
  ['fired_at', '2009-03-26 21:31:21'],
  ['data[id]', '8a25ff1d98'],
  ['data[list_id]', 'a6b5da1054'],
  ['data[email]', 'api@mailchimp.com'],
  ['data[email_type]', 'html'],
  ['data[merges][EMAIL]', 'api@mailchimp.com'],
  ['data[merges][FNAME]', 'Mailchimp'],
  ['data[merges][LNAME]', 'API'],
  ['data[merges][INTERESTS]', 'Group1,Group2'],
  ['data[ip_opt]', '10.20.10.30'],
];

const UNSUBSCRIBE = [
  ['type', 'unsubscribe'],
  ['fired_at', '2009-03-26 21:40:57'],
  ['data[action]', 'unsub'],
  ['data[reason]', 'manual'],
  ['data[id]', '8a25ff1d98'],
  ['data[list_id]', 'a6b5da1054'],
  ['data[email]', 'api+unsub@mailchimp.com'],
  ['data[email_type]', 'html'],
  ['data[merges][EMAIL]', 'api+unsub@mailchimp.com'],
  ['data[merges][FNAME]', 'Mailchimp'],
  ['data[merges][LNAME]', 'API'],
  ['data[merges][INTERESTS]', 'Group1,Group2'],
  ['data[ip_opt]', '10.20.10.30'],
  ['data[campaign_id]', 'cb398d21d2'],
];

const UPEMAIL = [
  ['type', 'upemail'],
  ['fired_at', '2009-03-26 22:15:09'],
  ['data[list_id]', 'a6b5da1054'],
  ['data[new_id]', '51da8c3259'],
  ['data[new_email]', 'api+new@mailchimp.com'],
  ['data[old_email]', 'api+old@mailchimp.com'],
];

const CLEANED = [
  ['type', 'cleaned'],
  ['fired_at', '2009-03-26 22:01:00'],
  ['data[list_id]', 'a6b5da1054'],
  ['data[campaign_id]', '4fjk2ma9xd'],
  ['data[reason]', 'hard'],
  ['data[email]', 'api+cleaned@mailchimp.com'],
];

const CAMPAIGN = [
  ['type', 'campaign'],
  ['fired_at', '2009-03-26 21:31:21'],
  ['data[id]', '5aa2102003'],
  ['data[subject]', 'Test Campaign Subject'],
  ['data[status]', 'sent'],
  ['data[reason]', ''],
  ['data[list_id]', 'a6b5da1054'],
];

function webhook(pairs) {
  return Webhook.builder().connector('mailchimp').query('token=****').form(pairs).build();
}

function raw(body) {
  return Webhook.builder()
    .connector('mailchimp')
    .header('content-type', 'application/x-www-form-urlencoded')
    .body(body)
    .build();
}

/** `pairs` with `key` set to `value` (`undefined`: removed). */
function withPair(pairs, key, value) {
  const out = pairs.filter(([k]) => k !== key);
  if (value !== undefined) out.push([key, value]);
  return webhook(out);
}

function host() {
  return new TestHost().setting('crm_url', CRM);
}

/** The one delivery of an event, and its JSON body. */
function deliver(h, w) {
  const out = h.handle(connector, w).unwrap();
  assert.equal(out.length, 1, JSON.stringify(out));
  return [out[0], JSON.parse(out[0].text())];
}

function rejection(h, w) {
  const result = h.handle(connector, w);
  assert.ok('err' in result && result.err.kind === 'reject', `expected a rejection, got ${JSON.stringify(result)}`);
  return result.err.message;
}

test('manifest describes the connector', async () => {
  const m = connector.manifest;
  assert.equal(m.name, 'mailchimp-js');
  assert.equal(m.version, JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')).version);
  assert.equal(m.defaultScheme, 'token');
  assert.deepEqual(m.settings.map((s) => [s.name, s.required]), [['crm_url', true], ['crm_token', false]]);
});

test('subscribe upserts the contact with every merge field', () => {
  const h = host();
  const [delivery, body] = deliver(h, webhook(SUBSCRIBE));
  assert.equal(delivery.method, 'PUT');
  assert.equal(delivery.url, 'http://crm.test/api/contacts/api%40mailchimp.com');
  assert.equal(delivery.headerValue('content-type'), 'application/json');
  assert.equal(delivery.headerValue('x-mailchimp-event'), 'subscribe');
  assert.equal(delivery.headerValue('authorization'), undefined);
  assert.deepEqual(body, {
    email: 'api@mailchimp.com',
    first_name: 'Mailchimp',
    last_name: 'API',
    merge_fields: {
      EMAIL: 'api@mailchimp.com',
      FNAME: 'Mailchimp',
      LNAME: 'API',
      INTERESTS: 'Group1,Group2',
      GROUPINGS: { 0: { id: '1', name: 'Interests', groups: 'Group1, Group2' } },
    },
    list_id: 'a6b5da1054',
    mailchimp_id: '8a25ff1d98',
    email_type: 'html',
    ip_opt: '10.20.10.30',
    ip_signup: '10.20.10.30',
    status: 'subscribed',
    source: 'mailchimp',
    event: 'subscribe',
    fired_at: '2009-03-26T21:35:57Z',
  });
  assert.deepEqual(h.logs(), [['info', 'subscribe api@mailchimp.com: PUT /contacts/api%40mailchimp.com']]);
  assert.deepEqual(h.fetches(), [], 'deliveries are not fetched');
});

test('the JSON body is what serde_json writes: keys sorted, no spaces', () => {
  const [delivery] = deliver(host(), webhook(UPEMAIL));
  assert.equal(
    delivery.text(),
    '{"email":"api+new@mailchimp.com","event":"upemail","fired_at":"2009-03-26T22:15:09Z",' +
      '"list_id":"a6b5da1054","mailchimp_id":"51da8c3259","old_email":"api+old@mailchimp.com","source":"mailchimp"}',
  );
  assert.deepEqual(delivery.headers, [['x-mailchimp-event', 'upemail'], ['content-type', 'application/json']]);
});

test('percent-encoded brackets parse the same', () => {
  const body =
    'type=subscribe&fired_at=2009-03-26+21%3A35%3A57' +
    '&data%5Bemail%5D=api%40mailchimp.com&data%5Bmerges%5D%5BFNAME%5D=Ada' +
    '&data[merges][LNAME]=Lovelace&data%5Blist_id%5D=a6b5da1054';
  const [, sent] = deliver(host(), raw(body));
  assert.equal(sent.email, 'api@mailchimp.com');
  assert.equal(sent.first_name, 'Ada');
  assert.equal(sent.last_name, 'Lovelace');
  assert.deepEqual(sent.merge_fields, { FNAME: 'Ada', LNAME: 'Lovelace' });
  assert.equal(sent.list_id, 'a6b5da1054');
});

test('profile upserts without touching the subscription status', () => {
  const [delivery, body] = deliver(host(), webhook(PROFILE));
  assert.equal(delivery.method, 'PUT');
  assert.equal(delivery.url, 'http://crm.test/api/contacts/api%40mailchimp.com');
  assert.equal(delivery.headerValue('x-mailchimp-event'), 'profile');
  assert.equal(body.event, 'profile');
  assert.equal(body.first_name, 'Mailchimp');
  assert.equal(body.merge_fields.INTERESTS, 'Group1,Group2');
  assert.equal(body.fired_at, '2009-03-26T21:31:21Z');
  assert.ok(!('status' in body), JSON.stringify(body));
  assert.ok(!('ip_signup' in body), 'fields Mailchimp did not send are absent');
});

test('fields Mailchimp did not send are left out', () => {
  const [, body] = deliver(
    host(),
    webhook([
      ['type', 'subscribe'],
      ['fired_at', '2024-01-02 03:04:05'],
      ['data[email]', 'x@example.com'],
      ['data[merges][LNAME]', ''],
    ]),
  );
  assert.deepEqual(
    body,
    {
      email: 'x@example.com',
      last_name: '',
      merge_fields: { LNAME: '' },
      status: 'subscribed',
      source: 'mailchimp',
      event: 'subscribe',
      fired_at: '2024-01-02T03:04:05Z',
    },
    'an empty merge is sent (it clears the field); a missing one is not',
  );
});

test('upemail moves the contact to the new address', () => {
  const [delivery, body] = deliver(host(), webhook(UPEMAIL));
  assert.equal(delivery.method, 'PUT');
  assert.equal(delivery.url, 'http://crm.test/api/contacts/api%2Bnew%40mailchimp.com');
  assert.equal(delivery.headerValue('x-mailchimp-event'), 'upemail');
  assert.deepEqual(body, {
    email: 'api+new@mailchimp.com',
    old_email: 'api+old@mailchimp.com',
    list_id: 'a6b5da1054',
    mailchimp_id: '51da8c3259',
    source: 'mailchimp',
    event: 'upemail',
    fired_at: '2009-03-26T22:15:09Z',
  });
});

test('unsubscribe marks the contact with the reason', () => {
  const [delivery, body] = deliver(host(), webhook(UNSUBSCRIBE));
  assert.equal(delivery.method, 'PUT');
  assert.equal(delivery.url, 'http://crm.test/api/contacts/api%2Bunsub%40mailchimp.com/subscription');
  assert.deepEqual(body, {
    email: 'api+unsub@mailchimp.com',
    status: 'unsubscribed',
    reason: 'manual',
    action: 'unsub',
    list_id: 'a6b5da1054',
    campaign_id: 'cb398d21d2',
    mailchimp_id: '8a25ff1d98',
    source: 'mailchimp',
    event: 'unsubscribe',
    fired_at: '2009-03-26T21:40:57Z',
  });

  // `action` is sometimes missing, `delete` means the member was removed from the list:
  // either way the contact is unsubscribed, and the fields say what Mailchimp sent.
  let [, sent] = deliver(host(), withPair(UNSUBSCRIBE, 'data[action]', undefined));
  assert.equal(sent.status, 'unsubscribed');
  assert.equal(sent.action, null);
  [, sent] = deliver(host(), withPair(UNSUBSCRIBE, 'data[action]', 'delete'));
  assert.deepEqual([sent.status, sent.action], ['unsubscribed', 'delete']);
  [, sent] = deliver(host(), withPair(UNSUBSCRIBE, 'data[reason]', 'abuse'));
  assert.equal(sent.reason, 'abuse');
});

test('cleaned marks the contact cleaned', () => {
  const [delivery, body] = deliver(host(), webhook(CLEANED));
  assert.equal(delivery.url, 'http://crm.test/api/contacts/api%2Bcleaned%40mailchimp.com/subscription');
  assert.equal(delivery.headerValue('x-mailchimp-event'), 'cleaned');
  assert.deepEqual(body, {
    email: 'api+cleaned@mailchimp.com',
    status: 'cleaned',
    reason: 'hard',
    action: null,
    list_id: 'a6b5da1054',
    campaign_id: '4fjk2ma9xd',
    mailchimp_id: null,
    source: 'mailchimp',
    event: 'cleaned',
    fired_at: '2009-03-26T22:01:00Z',
  });
});

test('campaign is logged and not delivered', () => {
  // No CRM is needed for it.
  const h = new TestHost();
  assert.deepEqual(h.handle(connector, webhook(CAMPAIGN)), { ok: [] });
  assert.deepEqual(h.logs(), [
    ['info', 'campaign 5aa2102003 ("Test Campaign Subject") sent on list a6b5da1054: nothing to do in the CRM'],
  ]);
  assert.deepEqual(h.fetches(), []);
});

test('crm_token is sent as a bearer token', () => {
  const h = host().setting('crm_token', ' crm_secret_123 ');
  for (const event of [SUBSCRIBE, PROFILE, UPEMAIL, UNSUBSCRIBE, CLEANED]) {
    const [delivery] = deliver(h, webhook(event));
    assert.equal(delivery.headerValue('authorization'), 'Bearer crm_secret_123');
    assert.deepEqual(delivery.headers.map(([k]) => k), ['x-mailchimp-event', 'content-type', 'authorization']);
  }
  const blank = new TestHost().setting('crm_url', CRM).setting('crm_token', '  ');
  const [delivery] = deliver(blank, webhook(SUBSCRIBE));
  assert.equal(delivery.headerValue('authorization'), undefined);
});

test('the address is lowercased and one path segment', () => {
  const h = host();
  let [delivery, body] = deliver(h, withPair(SUBSCRIBE, 'data[email]', ' Ada.Lovelace+News/x?y#z%@Example.COM '));
  assert.equal(delivery.url, 'http://crm.test/api/contacts/ada.lovelace%2Bnews%2Fx%3Fy%23z%25%40example.com');
  assert.equal(body.email, 'Ada.Lovelace+News/x?y#z%@Example.COM');
  [delivery] = deliver(h, withPair(SUBSCRIBE, 'data[email]', 'Zoë@Exämple.org'));
  assert.equal(delivery.url, 'http://crm.test/api/contacts/zo%C3%AB%40ex%C3%A4mple.org');
  // As Rust lowercases: a word-final Σ is ς, İ is i + U+0307.
  [delivery] = deliver(h, withPair(SUBSCRIBE, 'data[email]', 'ΟΔΥΣ@İx.gr'));
  assert.equal(delivery.url, `http://crm.test/api/contacts/${encodeURIComponent('οδυς@i\u0307x.gr')}`);
});

test('crm_url is checked and its trailing slash dropped', () => {
  const [delivery] = deliver(new TestHost().setting('crm_url', ' https://crm.example.com/api/ '), webhook(CLEANED));
  assert.equal(delivery.url, 'https://crm.example.com/api/contacts/api%2Bcleaned%40mailchimp.com/subscription');
  assert.deepEqual(new TestHost().handle(connector, webhook(SUBSCRIBE)), { err: reject('setting `crm_url` is not set') });
  for (const bad of ['crm.example.com', 'ftp://crm', 'https://', 'http://crm/api?key=1', 'http://crm/#x']) {
    const message = rejection(new TestHost().setting('crm_url', bad), webhook(SUBSCRIBE));
    assert.ok(message.startsWith('setting `crm_url` must be an http'), `${bad}: ${message}`);
    assert.ok(message.endsWith(`got ${quoted(bad)}`), message);
  }
});

test('the dedupe key is type, fired_at, list and address', () => {
  const h = new TestHost();
  const key = (pairs) => h.dedupeKey(connector, webhook(pairs));
  assert.equal(key(SUBSCRIBE), 'subscribe|2009-03-26 21:35:57|a6b5da1054|api@mailchimp.com');
  assert.equal(key(UNSUBSCRIBE), 'unsubscribe|2009-03-26 21:40:57|a6b5da1054|api+unsub@mailchimp.com');
  assert.equal(key(CLEANED), 'cleaned|2009-03-26 22:01:00|a6b5da1054|api+cleaned@mailchimp.com');
  assert.equal(key(UPEMAIL), 'upemail|2009-03-26 22:15:09|a6b5da1054|api+old@mailchimp.com|api+new@mailchimp.com');
  assert.equal(key(CAMPAIGN), 'campaign|2009-03-26 21:31:21|a6b5da1054|5aa2102003');
  const profile = key(PROFILE);
  assert.ok(profile.startsWith('profile|2009-03-26 21:31:21|a6b5da1054|api@mailchimp.com|'), profile);
  assert.equal(profile.split('|').at(-1).length, 16, profile);

  // Mailchimp retrying the same event: the same key, whatever the case of the address or
  // the order of the fields.
  assert.equal(key([...SUBSCRIBE].reverse()), key(SUBSCRIBE));
  assert.equal(h.dedupeKey(connector, withPair(SUBSCRIBE, 'data[email]', 'API@MailChimp.com')), key(SUBSCRIBE));
  assert.equal(key([...PROFILE].reverse()), profile);

  // Different events: different keys.
  for (const [field, value] of [
    ['fired_at', '2009-03-26 21:35:58'],
    ['data[email]', 'other@mailchimp.com'],
    ['data[list_id]', 'b000000000'],
  ]) {
    assert.notEqual(h.dedupeKey(connector, withPair(SUBSCRIBE, field, value)), key(SUBSCRIBE), field);
  }
  assert.notEqual(h.dedupeKey(connector, withPair(SUBSCRIBE, 'type', 'profile')), key(SUBSCRIBE));
  // Two different profile updates within the same second are both applied.
  assert.notEqual(h.dedupeKey(connector, withPair(PROFILE, 'data[merges][FNAME]', 'Ada')), profile);
  // A missing list id leaves its place empty.
  assert.equal(
    h.dedupeKey(connector, withPair(SUBSCRIBE, 'data[list_id]', undefined)),
    'subscribe|2009-03-26 21:35:57||api@mailchimp.com',
  );
});

test("the profile digest is FNV-1a of serde_json's text of data[…]", () => {
  // The value the Rust connector computes for PROFILE (fnv1a64 over
  // `form.field("data").to_json().to_string()`, keys sorted).
  const data =
    '{"email":"api@mailchimp.com","email_type":"html","id":"8a25ff1d98","ip_opt":"10.20.10.30",' +
    '"list_id":"a6b5da1054","merges":{"EMAIL":"api@mailchimp.com","FNAME":"Mailchimp",' +
    '"INTERESTS":"Group1,Group2","LNAME":"API"}}';
  let hash = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(data)) hash = BigInt.asUintN(64, (hash ^ BigInt(b)) * 0x100000001b3n);
  assert.equal(new TestHost().dedupeKey(connector, webhook(PROFILE)).split('|').at(-1), hash.toString(16).padStart(16, '0'));
});

test('no dedupe key for what handle rejects', () => {
  const h = new TestHost();
  for (const w of [
    raw(''),
    raw('mandrill_events=%5B%5D'),
    raw('{"type":"subscribe"}'),
    withPair(SUBSCRIBE, 'type', 'bounce'),
    withPair(SUBSCRIBE, 'fired_at', undefined),
    withPair(SUBSCRIBE, 'fired_at', 'yesterday'),
    withPair(SUBSCRIBE, 'data[email]', undefined),
    withPair(UPEMAIL, 'data[new_email]', undefined),
    withPair(CAMPAIGN, 'data[id]', undefined),
  ]) {
    assert.equal(h.dedupeKey(connector, w), undefined, w.text());
  }
});

test('bodies without a type are rejected saying why', () => {
  const h = host();
  let message = rejection(h, raw(''));
  assert.ok(message.startsWith('empty body: no Mailchimp event (`type` is missing)'), message);
  assert.equal(
    message,
    'empty body: no Mailchimp event (`type` is missing); Mailchimp sends an empty POST when it validates a webhook URL, so there is nothing to do',
  );
  message = rejection(h, raw('mandrill_events=%5B%5D'));
  assert.ok(message.startsWith('no `type` field: this is a Mailchimp Transactional (Mandrill)'), message);
  for (const body of ['fired_at=2009-03-26+21%3A35%3A57&data[email]=a%40b.c', '{"type":"subscribe"}', 'type=', 'type=+']) {
    message = rejection(h, raw(body));
    assert.ok(message.includes('`type`'), `${body}: ${message}`);
  }
});

test('unknown types are rejected', () => {
  assert.equal(
    rejection(host(), withPair(SUBSCRIBE, 'type', 'Subscribe')),
    'unknown Mailchimp event type "Subscribe" in `type` (expected subscribe, unsubscribe, profile, upemail, cleaned or campaign)',
  );
});

test('missing fields are rejected by name', () => {
  const h = host();
  const cases = [
    [SUBSCRIBE, 'data[email]', '`subscribe` event has no `data[email]`'],
    [PROFILE, 'data[email]', '`profile` event has no `data[email]`'],
    [UNSUBSCRIBE, 'data[email]', '`unsubscribe` event has no `data[email]`'],
    [CLEANED, 'data[email]', '`cleaned` event has no `data[email]`'],
    [UPEMAIL, 'data[new_email]', '`upemail` event has no `data[new_email]`'],
    [UPEMAIL, 'data[old_email]', '`upemail` event has no `data[old_email]`'],
    [SUBSCRIBE, 'fired_at', '`subscribe` event has no `fired_at`'],
    [CLEANED, 'fired_at', '`cleaned` event has no `fired_at`'],
    [CAMPAIGN, 'fired_at', '`campaign` event has no `fired_at`'],
  ];
  for (const [event, field, expected] of cases) {
    assert.equal(rejection(h, withPair(event, field, undefined)), expected);
    if (field !== 'fired_at') assert.equal(rejection(h, withPair(event, field, '  ')), expected, `blank ${field}`);
  }
  // `data` sent as a plain value has no `data[email]` either.
  assert.equal(
    rejection(h, raw('type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data=x')),
    '`subscribe` event has no `data[email]`',
  );
});

test('malformed values are rejected', () => {
  const h = host();
  for (const bad of ['not-an-address', '@mailchimp.com', 'api@', 'a b@c.d', 'a@b\u{7}.c']) {
    assert.equal(
      rejection(h, withPair(SUBSCRIBE, 'data[email]', bad)),
      `\`data[email]\` of the \`subscribe\` event is not an email address: ${quoted(bad)}`,
    );
  }
  assert.equal(
    rejection(h, withPair(SUBSCRIBE, 'data[email]', 'a@b\u{7}.c')),
    '`data[email]` of the `subscribe` event is not an email address: "a@b\\u{7}.c"',
  );
  assert.equal(
    rejection(h, withPair(UPEMAIL, 'data[old_email]', 'old')),
    '`data[old_email]` of the `upemail` event is not an email address: "old"',
  );
  for (const bad of [
    '2009-03-26',
    '2009-03-26T21:35:57+00:00',
    '2009/03/26 21:35:57',
    '2009-13-26 21:35:57',
    '2009-03-26 24:00:00',
    '2009-03-00 21:35:57',
    '２009-03-26 21:35:5',
    '20a9-03-26 21:35:57',
  ]) {
    assert.equal(
      rejection(h, withPair(SUBSCRIBE, 'fired_at', bad)),
      `\`fired_at\` of the \`subscribe\` event is not \`YYYY-MM-DD HH:MM:SS\`: ${quoted(bad)}`,
    );
  }
  assert.equal(
    rejection(h, withPair(SUBSCRIBE, 'data[merges]', 'x')),
    '`data[merges]` of the `subscribe` event is not a set of merge fields',
  );
});

test('fired_at becomes RFC 3339', () => {
  assert.equal(rfc3339('2009-03-26 21:35:57'), '2009-03-26T21:35:57Z');
  assert.equal(rfc3339('2024-02-29T00:00:60'), '2024-02-29T00:00:60Z');
  assert.equal(rfc3339(''), undefined);
  assert.equal(rfc3339('2009-03-26 21:35:57Z'), undefined);
});

test('odd bodies never throw anything but a failure', () => {
  // A deterministic byte soup around the real shapes: `handle` and `dedupeKey` must answer
  // (deliveries or a failure) for every one of them.
  const h = host();
  const pieces = [
    'type=', 'subscribe', 'profile', 'upemail', '&', '=', '[', ']', 'data', '[email]', '[merges]', '[]', '%',
    '%5B', '%ZZ', '%FF', '@', 'fired_at=2009-03-26+21:35:57', 'data[new_email]=a@b', 'data[old_email]=c@d',
    '+', '\u{0}', 'é', '[0]', 'type=cleaned',
  ];
  let seed = 0x9e3779b97f4a7c15n;
  const mask = (1n << 64n) - 1n;
  for (let i = 0; i < 5_000; i++) {
    let body = '';
    for (let n = 0n; n < seed % 12n; n++) {
      seed = (seed * 6_364_136_223_846_793_005n + 1_442_695_040_888_963_407n) & mask;
      body += pieces[Number((seed >> 33n) % BigInt(pieces.length))];
    }
    seed = (seed + 1n) & mask;
    const w = raw(body);
    const result = h.handle(connector, w);
    assert.ok('ok' in result || result.err instanceof Failure);
    h.dedupeKey(connector, w);
  }
});
