// Prints the events test/rust-golden.json holds (JSON on stdout): Mailchimp's documented
// events, their variations from the tests, odd Unicode, odd settings and a byte soup.
// Regenerate the golden file with the Rust connector (see golden/src/main.rs; its own
// target folder keeps it out of the workspace's):
//
//   node tools/corpus.mjs > /tmp/corpus.json
//   CARGO_TARGET_DIR=/tmp/golden-target cargo run --manifest-path tools/golden/Cargo.toml \
//     < /tmp/corpus.json > test/rust-golden.json

const SUBSCRIBE = [
  ['type', 'subscribe'], ['fired_at', '2009-03-26 21:35:57'], ['data[id]', '8a25ff1d98'],
  ['data[list_id]', 'a6b5da1054'], ['data[email]', 'api@mailchimp.com'], ['data[email_type]', 'html'],
  ['data[merges][EMAIL]', 'api@mailchimp.com'], ['data[merges][FNAME]', 'Mailchimp'],
  ['data[merges][LNAME]', 'API'], ['data[merges][INTERESTS]', 'Group1,Group2'],
  ['data[merges][GROUPINGS][0][id]', '1'], ['data[merges][GROUPINGS][0][name]', 'Interests'],
  ['data[merges][GROUPINGS][0][groups]', 'Group1, Group2'], ['data[ip_opt]', '10.20.10.30'],
  ['data[ip_signup]', '10.20.10.30'],
];
const PROFILE = [
  ['type', 'profile'], ['fired_at', '2009-03-26 21:31:21'], ['data[id]', '8a25ff1d98'],
  ['data[list_id]', 'a6b5da1054'], ['data[email]', 'api@mailchimp.com'], ['data[email_type]', 'html'],
  ['data[merges][EMAIL]', 'api@mailchimp.com'], ['data[merges][FNAME]', 'Mailchimp'],
  ['data[merges][LNAME]', 'API'], ['data[merges][INTERESTS]', 'Group1,Group2'], ['data[ip_opt]', '10.20.10.30'],
];
const UNSUBSCRIBE = [
  ['type', 'unsubscribe'], ['fired_at', '2009-03-26 21:40:57'], ['data[action]', 'unsub'],
  ['data[reason]', 'manual'], ['data[id]', '8a25ff1d98'], ['data[list_id]', 'a6b5da1054'],
  ['data[email]', 'api+unsub@mailchimp.com'], ['data[email_type]', 'html'],
  ['data[merges][EMAIL]', 'api+unsub@mailchimp.com'], ['data[merges][FNAME]', 'Mailchimp'],
  ['data[merges][LNAME]', 'API'], ['data[merges][INTERESTS]', 'Group1,Group2'],
  ['data[ip_opt]', '10.20.10.30'], ['data[campaign_id]', 'cb398d21d2'],
];
const UPEMAIL = [
  ['type', 'upemail'], ['fired_at', '2009-03-26 22:15:09'], ['data[list_id]', 'a6b5da1054'],
  ['data[new_id]', '51da8c3259'], ['data[new_email]', 'api+new@mailchimp.com'],
  ['data[old_email]', 'api+old@mailchimp.com'],
];
const CLEANED = [
  ['type', 'cleaned'], ['fired_at', '2009-03-26 22:01:00'], ['data[list_id]', 'a6b5da1054'],
  ['data[campaign_id]', '4fjk2ma9xd'], ['data[reason]', 'hard'], ['data[email]', 'api+cleaned@mailchimp.com'],
];
const CAMPAIGN = [
  ['type', 'campaign'], ['fired_at', '2009-03-26 21:31:21'], ['data[id]', '5aa2102003'],
  ['data[subject]', 'Test Campaign Subject'], ['data[status]', 'sent'], ['data[reason]', ''],
  ['data[list_id]', 'a6b5da1054'],
];

/** form_urlencoded's serializer (serde_urlencoded). */
function encode(text) {
  let out = '';
  for (const b of new TextEncoder().encode(text)) {
    if (b === 0x2a || b === 0x2d || b === 0x2e || b === 0x5f || (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)) out += String.fromCharCode(b);
    else if (b === 0x20) out += '+';
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
const form = (pairs) => pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&');
const withPair = (pairs, key, value) => [...pairs.filter(([k]) => k !== key), ...(value === undefined ? [] : [[key, value]])];

const CRM = { crm_url: 'http://crm.test/api' };
const events = [];
const add = (name, body, settings = CRM) => events.push({ name, body, settings });

const DOCUMENTED = { SUBSCRIBE, PROFILE, UNSUBSCRIBE, UPEMAIL, CLEANED, CAMPAIGN };
for (const [name, pairs] of Object.entries(DOCUMENTED)) {
  add(name, form(pairs));
  add(`${name} reversed`, form([...pairs].reverse()));
  add(`${name} with a token`, form(pairs), { ...CRM, crm_token: ' crm_secret_123 ' });
  add(`${name} without settings`, form(pairs), {});
}
const ADDRESSES = [
  ' Ada.Lovelace+News/x?y#z%@Example.COM ', 'Zoë@Exämple.org', 'ΟΔΥΣ@İx.gr', 'ΣΑΣ.Σ@x', 'AΣ\u0301B@x',
  '\u0085a@b.c\u0085', '\ufeffa@b.c', 'a@b\u00a0c', '😀@Ⅻ.example', 'ǅ@ǈ', 'ß@ẞ', 'not-an-address', '@x', 'x@',
  'a b@c.d', 'a@b\u0007.c', '  ', 'a@@b', 'a@b@c', 'Ω@Å.K', 'Ꭰ@ꭰ',
];
for (const address of ADDRESSES) {
  add(`subscribe ${JSON.stringify(address)}`, form(withPair(SUBSCRIBE, 'data[email]', address)));
  add(`upemail new ${JSON.stringify(address)}`, form(withPair(UPEMAIL, 'data[new_email]', address)));
  add(`cleaned ${JSON.stringify(address)}`, form(withPair(CLEANED, 'data[email]', address)));
}
const FIRED_AT = [
  '2009-03-26T21:35:57', '2024-02-29 00:00:60', ' 2009-03-26 21:35:57 ', '2009-03-26', '2009-13-26 21:35:57',
  '2009-03-26 24:00:00', '２009-03-26 21:35:5', '20a9-03-26 21:35:57', '2009-03-26 21:35:57Z', '', ' ',
];
for (const firedAt of FIRED_AT) add(`fired_at ${JSON.stringify(firedAt)}`, form(withPair(SUBSCRIBE, 'fired_at', firedAt)));
for (const type of ['Subscribe', ' subscribe ', 'bounce', '', 'ü\n"q"']) add(`type ${JSON.stringify(type)}`, form(withPair(SUBSCRIBE, 'type', type)));
add('merges as a value', form(withPair(SUBSCRIBE, 'data[merges]', 'x')));
add('merges as a list', form([...SUBSCRIBE.filter(([k]) => !k.startsWith('data[merges]')), ['data[merges][]', 'a'], ['data[merges][]', 'b']]));
add('merges with odd keys', form([...SUBSCRIBE, ['data[merges][__proto__]', 'p'], ['data[merges][constructor]', 'c'], ['data[merges][10]', 'ten'], ['data[merges][2]', 'two'], ['data[merges][Ä]', 'ä'], ['data[merges][\u{e000}]', 'pua'], ['data[merges][\u{10000}]', 'astral']]));
add('nested FNAME', form([...SUBSCRIBE.filter(([k]) => k !== 'data[merges][FNAME]'), ['data[merges][FNAME][x]', 'deep']]));
add('profile with nested data', form([...PROFILE, ['data[merges][GROUPINGS][0][groups]', 'A, B'], ['data[merges][GROUPINGS][1][id]', '2'], ['data[extra][]', '1'], ['data[extra][]', '2']]));
add('profile with data as a value', form([['type', 'profile'], ['fired_at', '2009-03-26 21:31:21'], ['data', 'x']]));
add('profile with unicode', form(withPair(PROFILE, 'data[merges][FNAME]', 'Zoë "q" \n\t\u0007 😀')));
add('campaign with an odd subject', form(withPair(CAMPAIGN, 'data[subject]', 'Zoë "q"\n\u0007\u0300 ☃')));
add('campaign without fields', form([['type', 'campaign'], ['fired_at', '2009-03-26 21:31:21'], ['data[id]', 'x']]));
add('campaign without an id', form(withPair(CAMPAIGN, 'data[id]', undefined)));
add('unsubscribe without action', form(withPair(UNSUBSCRIBE, 'data[action]', undefined)));
add('unsubscribe with values to trim', form(withPair(withPair(UNSUBSCRIBE, 'data[reason]', ' spaced '), 'data[list_id]', ' l1 ')));
add('empty body', '');
add('mandrill', 'mandrill_events=%5B%5D');
add('json body', '{"type":"subscribe"}');
add('no type', 'fired_at=2009-03-26+21%3A35%3A57&data[email]=a%40b.c');
add('percent-encoded brackets', 'type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data%5Bemail%5D=api%40mailchimp.com&data%5Bmerges%5D%5BFNAME%5D=Ada&data[merges][LNAME]=Lovelace&data%5Blist_id%5D=a6b5da1054');
add('bad escapes and bytes', 'type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data[email]=a%FF%40b.c&data[merges][FNAME]=%ZZ%4&data[list_id]=%E2%82');
add('repeated keys', `${form(SUBSCRIBE)}&data[email]=second%40mailchimp.com&type=profile`);
for (const url of [' https://crm.example.com/api/ ', 'HTTPS://CRM.example.com//', 'crm.example.com', 'ftp://crm', 'https://', 'http://crm/api?key=1', 'http://crm/#x', '', '  ', 'http://crm/Ä']) {
  add(`crm_url ${JSON.stringify(url)}`, form(CLEANED), { crm_url: url });
}
add('blank token', form(SUBSCRIBE), { ...CRM, crm_token: '  ' });

// A deterministic byte soup around the real shapes (the Rust tests' generator).
const pieces = [
  'type=', 'subscribe', 'profile', 'upemail', '&', '=', '[', ']', 'data', '[email]', '[merges]', '[]', '%',
  '%5B', '%ZZ', '%FF', '@', 'fired_at=2009-03-26+21:35:57', 'data[new_email]=a@b', 'data[old_email]=c@d',
  '+', '\u{0}', 'é', '[0]', 'type=cleaned',
];
let seed = 0x9e3779b97f4a7c15n;
const mask = (1n << 64n) - 1n;
for (let i = 0; i < 400; i++) {
  let body = '';
  for (let n = 0n; n < seed % 12n; n++) {
    seed = (seed * 6_364_136_223_846_793_005n + 1_442_695_040_888_963_407n) & mask;
    body += pieces[Number((seed >> 33n) % BigInt(pieces.length))];
  }
  seed = (seed + 1n) & mask;
  add(`soup ${i}`, body);
}

process.stdout.write(`${JSON.stringify(events, null, 1)}\n`);
