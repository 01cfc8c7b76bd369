//! Switchyard connector for Mailchimp audience (Marketing) webhooks → a CRM's contacts.
//!
//! Mailchimp POSTs `application/x-www-form-urlencoded` bodies with PHP-style nested keys
//! (`type=subscribe&fired_at=…&data[email]=…&data[merges][FNAME]=…`). Its webhooks are not
//! signed: the host checks a secret `?token=` (scheme `token`) and answers Mailchimp's
//! `GET`/`HEAD` URL validation itself, so only real events reach this connector.
//!
//! Each event becomes at most one idempotent `PUT` on the CRM (the REST contract is in
//! this crate's `README.md`):
//! - `subscribe`, `profile` → `PUT {crm_url}/contacts/{email}`: upsert the contact with
//!   every merge field (`subscribe` also sets `status: "subscribed"`);
//! - `upemail` → `PUT {crm_url}/contacts/{new email}` with `old_email`: the contact moves to
//!   its new address;
//! - `unsubscribe`, `cleaned` → `PUT {crm_url}/contacts/{email}/subscription`: marked
//!   `unsubscribed` or `cleaned`, with the reason;
//! - `campaign` → nothing to do in the CRM: an info line in the event log.
//!
//! The host delivers the `PUT`s with retries and an `Idempotency-Key`; a malformed event
//! (no `type`, an unknown one, a missing address) is rejected with a message that names
//! the field.
//!
//! Settings (`[connector.settings]`):
//! - `crm_url` (required): the base URL of the CRM's contact API; its origin must be in
//!   the connector's `allowed_hosts`.
//! - `crm_token`: sent as `Authorization: Bearer …` on every CRM request.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use switchyard_sdk::{Connector, Ctx, Delivery, Failure, Form, FormValue, Manifest, Webhook};

/// The Mailchimp → CRM connector.
pub struct Mailchimp;

switchyard_sdk::export!(Mailchimp);

impl Connector for Mailchimp {
    fn manifest() -> Manifest {
        Manifest::new("mailchimp", env!("CARGO_PKG_VERSION"))
            .description(
                "Mailchimp audience webhooks to CRM contacts: upsert on subscribe/profile, \
                 email change on upemail, unsubscribed/cleaned with the reason",
            )
            .default_scheme("token")
            .required_setting(
                "crm_url",
                "Base URL of the CRM's contact API (e.g. https://crm.example.com/api); \
                 its origin must be in allowed_hosts",
            )
            .optional_setting(
                "crm_token",
                "Bearer token sent as `Authorization: Bearer …` on every CRM request",
            )
    }

    /// `{type}|{fired_at}|{list_id}|{who}`: `who` is the lowercased address (`upemail`: old
    /// and new, `|`-separated; `campaign`: the campaign id), and `profile` adds a digest of
    /// its data so two different updates within the same second are both applied.
    /// `None` (no dedupe) for anything `handle` would reject.
    fn dedupe_key(webhook: &Webhook) -> Option<String> {
        let form = webhook.form().ok()?;
        Event::parse(&form).ok()?.dedupe_key().ok()
    }

    fn handle(ctx: &Ctx, webhook: &Webhook) -> Result<Vec<Delivery>, Failure> {
        let form = webhook.form()?;
        let event = Event::parse(&form)?;
        let change = match event.kind {
            Kind::Campaign => {
                ctx.info(campaign_line(&event));
                return Ok(Vec::new());
            }
            Kind::Subscribe | Kind::Profile => upsert_contact(&event)?,
            Kind::Upemail => change_email(&event)?,
            Kind::Unsubscribe | Kind::Cleaned => set_subscription(&event)?,
        };
        let crm = Crm::from_settings(ctx)?;
        ctx.info(format!(
            "{} {}: PUT {}",
            event.kind.name(),
            change.who,
            change.path
        ));
        Ok(vec![crm.put(&change.path, event.kind, &change.body)?])
    }
}

/// The six event types of an audience webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Subscribe,
    Unsubscribe,
    Profile,
    Upemail,
    Cleaned,
    Campaign,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Subscribe,
        Kind::Unsubscribe,
        Kind::Profile,
        Kind::Upemail,
        Kind::Cleaned,
        Kind::Campaign,
    ];

    /// The `type` value Mailchimp sends.
    fn name(self) -> &'static str {
        match self {
            Kind::Subscribe => "subscribe",
            Kind::Unsubscribe => "unsubscribe",
            Kind::Profile => "profile",
            Kind::Upemail => "upemail",
            Kind::Cleaned => "cleaned",
            Kind::Campaign => "campaign",
        }
    }

    fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One audience event: its type, when it fired, and the form holding its `data[…]`.
struct Event<'f> {
    kind: Kind,
    /// `fired_at` as sent (`YYYY-MM-DD HH:MM:SS`, UTC), trimmed: part of the dedupe key.
    fired_at: &'f str,
    /// The same instant as RFC 3339 (`2009-03-26T21:35:57Z`), as the CRM receives it.
    fired_at_rfc3339: String,
    form: &'f Form,
}

/// An address from the event: as sent (trimmed) and as the CRM's contact key (lowercase).
struct Email<'f> {
    sent: &'f str,
    key: String,
}

impl<'f> Event<'f> {
    /// Reads `type` and `fired_at`; the rest is read per type.
    fn parse(form: &'f Form) -> Result<Event<'f>, Failure> {
        let kind = match form.get("type").map(str::trim) {
            None | Some("") => return Err(no_type(form)),
            Some(name) => Kind::from_name(name).ok_or_else(|| {
                Failure::reject(format!(
                    "unknown Mailchimp event type {name:?} in `type` (expected subscribe, \
                     unsubscribe, profile, upemail, cleaned or campaign)"
                ))
            })?,
        };
        let fired_at = form
            .get("fired_at")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Failure::reject(format!("`{}` event has no `fired_at`", kind.name())))?;
        let fired_at_rfc3339 = rfc3339(fired_at).ok_or_else(|| {
            Failure::reject(format!(
                "`fired_at` of the `{}` event is not `YYYY-MM-DD HH:MM:SS`: {fired_at:?}",
                kind.name()
            ))
        })?;
        Ok(Event {
            kind,
            fired_at,
            fired_at_rfc3339,
            form,
        })
    }

    /// `data[key]` as sent, when it is a plain value.
    fn data(&self, key: &str) -> Option<&'f str> {
        self.form.path(&["data", key]).and_then(FormValue::as_str)
    }

    /// `data[key]`, trimmed; the event is rejected, naming the field, when it is missing
    /// or blank.
    fn require(&self, key: &str) -> Result<&'f str, Failure> {
        self.data(key)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Failure::reject(format!("`{}` event has no `data[{key}]`", self.kind.name()))
            })
    }

    /// The address in `data[key]`; rejected when missing or not an address.
    fn email(&self, key: &str) -> Result<Email<'f>, Failure> {
        let sent = self.require(key)?;
        let plausible = sent.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !sent.chars().any(|c| c.is_whitespace() || c.is_control())
        });
        if !plausible {
            return Err(Failure::reject(format!(
                "`data[{key}]` of the `{}` event is not an email address: {sent:?}",
                self.kind.name()
            )));
        }
        Ok(Email {
            sent,
            key: sent.to_lowercase(),
        })
    }

    fn dedupe_key(&self) -> Result<String, Failure> {
        let who = match self.kind {
            Kind::Subscribe | Kind::Unsubscribe | Kind::Cleaned => self.email("email")?.key,
            Kind::Profile => {
                let data = self.form.field("data").map(FormValue::to_json);
                let digest = fnv1a64(data.unwrap_or_default().to_string().as_bytes());
                format!("{}|{digest:016x}", self.email("email")?.key)
            }
            Kind::Upemail => format!(
                "{}|{}",
                self.email("old_email")?.key,
                self.email("new_email")?.key
            ),
            Kind::Campaign => self.require("id")?.to_owned(),
        };
        let list = self.data("list_id").map_or("", str::trim);
        Ok(format!(
            "{}|{}|{list}|{who}",
            self.kind.name(),
            self.fired_at
        ))
    }

    /// The fields every CRM request ends with.
    fn stamp(&self, body: &mut Map<String, Value>) {
        body.insert("source".into(), json!("mailchimp"));
        body.insert("event".into(), json!(self.kind.name()));
        body.insert("fired_at".into(), json!(self.fired_at_rfc3339));
    }

    /// Copies `data[key]` into `body[field]` when Mailchimp sent it.
    fn copy_if_sent(&self, body: &mut Map<String, Value>, field: &str, key: &str) {
        if let Some(value) = self.data(key) {
            body.insert(field.into(), json!(value));
        }
    }
}

/// Why a body without `type` is not an audience event, naming the field.
fn no_type(form: &Form) -> Failure {
    if form.pairs().is_empty() {
        Failure::reject(
            "empty body: no Mailchimp event (`type` is missing); Mailchimp sends an empty \
             POST when it validates a webhook URL, so there is nothing to do",
        )
    } else if form.get("mandrill_events").is_some() {
        Failure::reject(
            "no `type` field: this is a Mailchimp Transactional (Mandrill) webhook \
             (`mandrill_events`), not an audience webhook",
        )
    } else {
        Failure::reject("no `type` field: not a Mailchimp audience webhook")
    }
}

/// One CRM request to make: the path under `crm_url`, its JSON body, and who it is about
/// (for the log line).
struct Change {
    path: String,
    body: Value,
    who: String,
}

/// `subscribe`/`profile` → `PUT /contacts/{email}`: a merge-upsert of the contact.
fn upsert_contact(event: &Event) -> Result<Change, Failure> {
    let email = event.email("email")?;
    let merges = match event.form.path(&["data", "merges"]) {
        None => Value::Object(Map::new()),
        Some(merges @ FormValue::Map(_)) => merges.to_json(),
        Some(_) => {
            return Err(Failure::reject(format!(
                "`data[merges]` of the `{}` event is not a set of merge fields",
                event.kind.name()
            )));
        }
    };
    let mut body = Map::new();
    body.insert("email".into(), json!(email.sent));
    for (field, tag) in [("first_name", "FNAME"), ("last_name", "LNAME")] {
        if let Some(value) = merges.get(tag).and_then(Value::as_str) {
            body.insert(field.into(), json!(value));
        }
    }
    body.insert("merge_fields".into(), merges);
    event.copy_if_sent(&mut body, "list_id", "list_id");
    event.copy_if_sent(&mut body, "mailchimp_id", "id");
    event.copy_if_sent(&mut body, "email_type", "email_type");
    event.copy_if_sent(&mut body, "ip_opt", "ip_opt");
    event.copy_if_sent(&mut body, "ip_signup", "ip_signup");
    // A profile update says nothing about the subscription: an unsubscribed member can be
    // edited too, and must stay unsubscribed.
    if event.kind == Kind::Subscribe {
        body.insert("status".into(), json!("subscribed"));
    }
    event.stamp(&mut body);
    Ok(Change {
        path: format!("/contacts/{}", path_segment(&email.key)),
        body: Value::Object(body),
        who: email.key,
    })
}

/// `upemail` → `PUT /contacts/{new email}` with `old_email`: keyed by the address the
/// contact ends up with, so a repeat finds it already moved and changes nothing.
fn change_email(event: &Event) -> Result<Change, Failure> {
    let old = event.email("old_email")?;
    let new = event.email("new_email")?;
    let mut body = Map::new();
    body.insert("email".into(), json!(new.sent));
    body.insert("old_email".into(), json!(old.sent));
    event.copy_if_sent(&mut body, "list_id", "list_id");
    event.copy_if_sent(&mut body, "mailchimp_id", "new_id");
    event.stamp(&mut body);
    Ok(Change {
        path: format!("/contacts/{}", path_segment(&new.key)),
        body: Value::Object(body),
        who: format!("{} → {}", old.key, new.key),
    })
}

/// `unsubscribe`/`cleaned` → `PUT /contacts/{email}/subscription`: replaces the contact's
/// subscription state (every field present, `null` when Mailchimp did not send it).
fn set_subscription(event: &Event) -> Result<Change, Failure> {
    let email = event.email("email")?;
    let status = match event.kind {
        Kind::Cleaned => "cleaned",
        _ => "unsubscribed",
    };
    let sent = |key: &str| event.data(key).map_or(Value::Null, |v| json!(v));
    let mut body = Map::new();
    body.insert("email".into(), json!(email.sent));
    body.insert("status".into(), json!(status));
    body.insert("reason".into(), sent("reason"));
    body.insert("action".into(), sent("action"));
    body.insert("list_id".into(), sent("list_id"));
    body.insert("campaign_id".into(), sent("campaign_id"));
    body.insert("mailchimp_id".into(), sent("id"));
    event.stamp(&mut body);
    Ok(Change {
        path: format!("/contacts/{}/subscription", path_segment(&email.key)),
        body: Value::Object(body),
        who: email.key,
    })
}

/// The log line for a `campaign` event, which needs nothing from the CRM.
fn campaign_line(event: &Event) -> String {
    let field = |key: &str| event.data(key).unwrap_or("?");
    format!(
        "campaign {} ({:?}) {} on list {}: nothing to do in the CRM",
        field("id"),
        field("subject"),
        field("status"),
        field("list_id")
    )
}

/// The CRM from the settings.
struct Crm {
    /// `crm_url` without its trailing `/`.
    base: String,
    token: Option<String>,
}

impl Crm {
    fn from_settings(ctx: &Ctx) -> Result<Crm, Failure> {
        let url = ctx.require_setting("crm_url")?;
        let base = url.trim().trim_end_matches('/');
        let lower = base.to_ascii_lowercase();
        let after_scheme = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"));
        // Paths are appended to it: a query or fragment would swallow them.
        if after_scheme.is_none_or(str::is_empty) || base.contains(['?', '#']) {
            return Err(Failure::reject(format!(
                "setting `crm_url` must be an http:// or https:// URL without a query or \
                 fragment, got {url:?}"
            )));
        }
        let token = ctx
            .setting("crm_token")
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Ok(Crm {
            base: base.to_owned(),
            token,
        })
    }

    fn put(&self, path: &str, kind: Kind, body: &Value) -> Result<Delivery, Failure> {
        let delivery = Delivery::put(format!("{}{path}", self.base))
            .header("x-mailchimp-event", kind.name())
            .try_json(body)?;
        Ok(match &self.token {
            Some(token) => delivery.bearer_auth(token),
            None => delivery,
        })
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC, as Mailchimp sends it; a `T` separator is accepted too) →
/// RFC 3339 `YYYY-MM-DDTHH:MM:SSZ`. `None` when it is not that shape or out of range.
fn rfc3339(fired_at: &str) -> Option<String> {
    let b = fired_at.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        let digits = b.get(from..to)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let (month, day) = (number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    number(0, 4)?;
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60;
    valid.then(|| format!("{}T{}Z", &fired_at[..10], &fired_at[11..]))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so an address is one
/// path segment whatever it contains (`+`, `/`, `%`, `?`…).
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// 64-bit FNV-1a: a small, stable digest (it only tells two different `profile` updates
/// apart in the dedupe key; nothing relies on it being hard to collide on purpose).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
