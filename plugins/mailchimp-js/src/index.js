// Switchyard connector for Mailchimp audience (Marketing) webhooks → a CRM's contacts: the
// JavaScript port of plugins/mailchimp (Rust), with the same settings, dedupe keys,
// deliveries (byte for byte) and failures.
//
// Mailchimp POSTs `application/x-www-form-urlencoded` bodies with PHP-style nested keys
// (`type=subscribe&fired_at=…&data[email]=…&data[merges][FNAME]=…`). Its webhooks are not
// signed: the host checks a secret `?token=` (scheme `token`) and answers Mailchimp's
// `GET`/`HEAD` URL validation itself, so only real events reach this connector.
//
// Each event becomes at most one idempotent `PUT` on the CRM (the REST contract is in
// plugins/mailchimp/README.md):
// - `subscribe`, `profile` → `PUT {crm_url}/contacts/{email}`: upsert the contact with every
//   merge field (`subscribe` also sets `status: "subscribed"`);
// - `upemail` → `PUT {crm_url}/contacts/{new email}` with `old_email`;
// - `unsubscribe`, `cleaned` → `PUT {crm_url}/contacts/{email}/subscription`: marked
//   `unsubscribed` or `cleaned`, with the reason;
// - `campaign` → nothing to do in the CRM: an info line in the event log.
//
// A malformed event (no `type`, an unknown one, a missing address) is rejected with a
// message that names the field.
//
// Settings (`[connector.settings]`):
// - `crm_url` (required): the base URL of the CRM's contact API; its origin must be in the
//   connector's `allowed_hosts`.
// - `crm_token`: sent as `Authorization: Bearer …` on every CRM request.
//
// JSON bodies are written with their keys sorted (`{sortKeys: true}`), as serde_json writes
// the Rust connector's `Value`s, and the text helpers in rust.js do what Rust's do.

import { Delivery, defineConnector, isFailure, quoted, reject, stringify } from '@switchyard/sdk';
import pkg from '../package.json' with { type: 'json' };

import { fnv1a64Hex, hasWhitespaceOrControl, toLowercase, trim } from './rust.js';

/** The six event types of an audience webhook, as Mailchimp names them. */
export const KINDS = Object.freeze(['subscribe', 'unsubscribe', 'profile', 'upemail', 'cleaned', 'campaign']);

const encoder = new TextEncoder();

/** Why a body without `type` is not an audience event, naming the field. */
function noType(form) {
  if (form.pairs().length === 0) {
    return reject(
      'empty body: no Mailchimp event (`type` is missing); Mailchimp sends an empty POST when it ' +
        'validates a webhook URL, so there is nothing to do',
    );
  }
  if (form.get('mandrill_events') !== undefined) {
    return reject(
      'no `type` field: this is a Mailchimp Transactional (Mandrill) webhook (`mandrill_events`), ' +
        'not an audience webhook',
    );
  }
  return reject('no `type` field: not a Mailchimp audience webhook');
}

/**
 * `YYYY-MM-DD HH:MM:SS` (UTC, as Mailchimp sends it; a `T` separator is accepted too) →
 * RFC 3339 `YYYY-MM-DDTHH:MM:SSZ`. `undefined` when it is not that shape or out of range.
 */
export function rfc3339(firedAt) {
  const b = encoder.encode(firedAt);
  if (
    b.length !== 19 || b[4] !== 0x2d || b[7] !== 0x2d || (b[10] !== 0x20 && b[10] !== 0x54) ||
    b[13] !== 0x3a || b[16] !== 0x3a
  ) {
    return undefined;
  }
  const number = (from, to) => {
    let n = 0;
    for (let i = from; i < to; i++) {
      if (b[i] < 0x30 || b[i] > 0x39) return undefined;
      n = n * 10 + (b[i] - 0x30);
    }
    return n;
  };
  const [year, month, day, hour, minute, second] = [
    number(0, 4), number(5, 7), number(8, 10), number(11, 13), number(14, 16), number(17, 19),
  ];
  if ([year, month, day, hour, minute, second].includes(undefined)) return undefined;
  const valid = month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour < 24 && minute < 60 && second <= 60;
  return valid ? `${firedAt.slice(0, 10)}T${firedAt.slice(11)}Z` : undefined;
}

/**
 * Percent-encodes everything but RFC 3986 unreserved characters, so an address is one path
 * segment whatever it contains (`+`, `/`, `%`, `?`…).
 */
export function pathSegment(text) {
  let out = '';
  for (const byte of encoder.encode(text)) {
    const unreserved =
      (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) ||
      byte === 0x2d || byte === 0x2e || byte === 0x5f || byte === 0x7e;
    out += unreserved ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** One audience event: its type, when it fired, and the form holding its `data[…]`. */
class Event {
  constructor(kind, firedAt, firedAtRfc3339, form) {
    this.kind = kind;
    /** `fired_at` as sent, trimmed: part of the dedupe key. */
    this.firedAt = firedAt;
    /** The same instant as RFC 3339, as the CRM receives it. */
    this.firedAtRfc3339 = firedAtRfc3339;
    this.form = form;
  }

  /** Reads `type` and `fired_at`; the rest is read per type. */
  static parse(form) {
    const type = form.get('type');
    const name = type === undefined ? undefined : trim(type);
    if (name === undefined || name === '') throw noType(form);
    if (!KINDS.includes(name)) {
      throw reject(
        `unknown Mailchimp event type ${quoted(name)} in \`type\` (expected subscribe, unsubscribe, ` +
          'profile, upemail, cleaned or campaign)',
      );
    }
    const sent = form.get('fired_at');
    const firedAt = sent === undefined ? '' : trim(sent);
    if (firedAt === '') throw reject(`\`${name}\` event has no \`fired_at\``);
    const firedAtRfc3339 = rfc3339(firedAt);
    if (firedAtRfc3339 === undefined) {
      throw reject(`\`fired_at\` of the \`${name}\` event is not \`YYYY-MM-DD HH:MM:SS\`: ${quoted(firedAt)}`);
    }
    return new Event(name, firedAt, firedAtRfc3339, form);
  }

  /** `data[key]` as sent, when it is a plain value. */
  data(key) {
    return this.form.path(['data', key])?.asStr();
  }

  /** `data[key]`, trimmed; rejected, naming the field, when it is missing or blank. */
  require(key) {
    const value = this.data(key);
    const trimmed = value === undefined ? '' : trim(value);
    if (trimmed === '') throw reject(`\`${this.kind}\` event has no \`data[${key}]\``);
    return trimmed;
  }

  /** The address in `data[key]`: as sent (trimmed) and as the CRM's contact key (lowercase). */
  email(key) {
    const sent = this.require(key);
    const at = sent.indexOf('@');
    const plausible = at > 0 && at < sent.length - 1 && !hasWhitespaceOrControl(sent);
    if (!plausible) {
      throw reject(`\`data[${key}]\` of the \`${this.kind}\` event is not an email address: ${quoted(sent)}`);
    }
    return { sent, key: toLowercase(sent) };
  }

  /**
   * `{type}|{fired_at}|{list_id}|{who}`: `who` is the lowercased address (`upemail`: old and
   * new, `|`-separated; `campaign`: the campaign id), and `profile` adds a digest of its data
   * so two different updates within the same second are both applied.
   */
  dedupeKey() {
    let who;
    switch (this.kind) {
      case 'subscribe':
      case 'unsubscribe':
      case 'cleaned':
        who = this.email('email').key;
        break;
      case 'profile': {
        const data = this.form.field('data');
        const json = data === undefined ? 'null' : stringify(data.toJson(), { sortKeys: true });
        const digest = fnv1a64Hex(encoder.encode(json));
        who = `${this.email('email').key}|${digest}`;
        break;
      }
      case 'upemail':
        who = `${this.email('old_email').key}|${this.email('new_email').key}`;
        break;
      default:
        who = this.require('id');
    }
    const list = this.data('list_id');
    return `${this.kind}|${this.firedAt}|${list === undefined ? '' : trim(list)}|${who}`;
  }

  /** The fields every CRM request ends with. */
  stamp(body) {
    body.source = 'mailchimp';
    body.event = this.kind;
    body.fired_at = this.firedAtRfc3339;
  }

  /** Copies `data[key]` into `body[field]` when Mailchimp sent it. */
  copyIfSent(body, field, key) {
    const value = this.data(key);
    if (value !== undefined) body[field] = value;
  }
}

/** `subscribe`/`profile` → `PUT /contacts/{email}`: a merge-upsert of the contact. */
function upsertContact(event) {
  const email = event.email('email');
  const node = event.form.path(['data', 'merges']);
  let merges;
  if (node === undefined) merges = {};
  else if (node.kind === 'map') merges = node.toJson();
  else throw reject(`\`data[merges]\` of the \`${event.kind}\` event is not a set of merge fields`);
  const body = { email: email.sent };
  for (const [field, tag] of [['first_name', 'FNAME'], ['last_name', 'LNAME']]) {
    if (typeof merges[tag] === 'string') body[field] = merges[tag];
  }
  body.merge_fields = merges;
  event.copyIfSent(body, 'list_id', 'list_id');
  event.copyIfSent(body, 'mailchimp_id', 'id');
  event.copyIfSent(body, 'email_type', 'email_type');
  event.copyIfSent(body, 'ip_opt', 'ip_opt');
  event.copyIfSent(body, 'ip_signup', 'ip_signup');
  // A profile update says nothing about the subscription: an unsubscribed member can be
  // edited too, and must stay unsubscribed.
  if (event.kind === 'subscribe') body.status = 'subscribed';
  event.stamp(body);
  return { path: `/contacts/${pathSegment(email.key)}`, body, who: email.key };
}

/**
 * `upemail` → `PUT /contacts/{new email}` with `old_email`: keyed by the address the contact
 * ends up with, so a repeat finds it already moved and changes nothing.
 */
function changeEmail(event) {
  const old = event.email('old_email');
  const next = event.email('new_email');
  const body = { email: next.sent, old_email: old.sent };
  event.copyIfSent(body, 'list_id', 'list_id');
  event.copyIfSent(body, 'mailchimp_id', 'new_id');
  event.stamp(body);
  return { path: `/contacts/${pathSegment(next.key)}`, body, who: `${old.key} → ${next.key}` };
}

/**
 * `unsubscribe`/`cleaned` → `PUT /contacts/{email}/subscription`: replaces the contact's
 * subscription state (every field present, `null` when Mailchimp did not send it).
 */
function setSubscription(event) {
  const email = event.email('email');
  const sent = (key) => event.data(key) ?? null;
  const body = {
    email: email.sent,
    status: event.kind === 'cleaned' ? 'cleaned' : 'unsubscribed',
    reason: sent('reason'),
    action: sent('action'),
    list_id: sent('list_id'),
    campaign_id: sent('campaign_id'),
    mailchimp_id: sent('id'),
  };
  event.stamp(body);
  return { path: `/contacts/${pathSegment(email.key)}/subscription`, body, who: email.key };
}

/** The log line for a `campaign` event, which needs nothing from the CRM. */
function campaignLine(event) {
  const field = (key) => event.data(key) ?? '?';
  return `campaign ${field('id')} (${quoted(field('subject'))}) ${field('status')} on list ${field('list_id')}: nothing to do in the CRM`;
}

/** The CRM from the settings: `crm_url` without its trailing `/`, and the token. */
function crmFromSettings(ctx) {
  const url = ctx.requireSetting('crm_url');
  const base = trim(url).replace(/\/+$/, '');
  const lower = base.replace(/[A-Z]+/g, (s) => s.toLowerCase());
  const afterScheme = lower.startsWith('https://')
    ? lower.slice(8)
    : lower.startsWith('http://')
      ? lower.slice(7)
      : undefined;
  // Paths are appended to it: a query or fragment would swallow them.
  if (!afterScheme || base.includes('?') || base.includes('#')) {
    throw reject(
      `setting \`crm_url\` must be an http:// or https:// URL without a query or fragment, got ${quoted(url)}`,
    );
  }
  const token = ctx.setting('crm_token');
  const trimmed = token === undefined ? '' : trim(token);
  return { base, token: trimmed === '' ? undefined : trimmed };
}

function put(crm, path, kind, body) {
  const delivery = Delivery.put(`${crm.base}${path}`)
    .header('x-mailchimp-event', kind)
    .json(body, { sortKeys: true });
  return crm.token === undefined ? delivery : delivery.bearerAuth(crm.token);
}

export default defineConnector({
  manifest: {
    name: 'mailchimp-js',
    version: pkg.version,
    description:
      'Mailchimp audience webhooks to CRM contacts: upsert on subscribe/profile, email change on ' +
      'upemail, unsubscribed/cleaned with the reason',
    defaultScheme: 'token',
    settings: [
      {
        name: 'crm_url',
        description:
          "Base URL of the CRM's contact API (e.g. https://crm.example.com/api); its origin must be in allowed_hosts",
        required: true,
      },
      {
        name: 'crm_token',
        description: 'Bearer token sent as `Authorization: Bearer …` on every CRM request',
        required: false,
      },
    ],
  },

  /** `undefined` (no dedupe) for anything `handle` would reject. */
  dedupeKey(webhook) {
    try {
      return Event.parse(webhook.form()).dedupeKey();
    } catch (e) {
      if (isFailure(e)) return undefined;
      throw e;
    }
  },

  handle(webhook, ctx) {
    const event = Event.parse(webhook.form());
    let change;
    switch (event.kind) {
      case 'campaign':
        ctx.info(campaignLine(event));
        return [];
      case 'subscribe':
      case 'profile':
        change = upsertContact(event);
        break;
      case 'upemail':
        change = changeEmail(event);
        break;
      default:
        change = setSubscription(event);
    }
    const crm = crmFromSettings(ctx);
    ctx.info(`${event.kind} ${change.who}: PUT ${change.path}`);
    return [put(crm, change.path, event.kind, change.body)];
  },
});
