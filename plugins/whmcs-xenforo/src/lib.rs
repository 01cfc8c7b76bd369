//! Switchyard connector: WHMCS service events → XenForo secondary user groups.
//!
//! WHMCS has no outbound webhooks, so this crate ships a WHMCS hook file,
//! `whmcs/switchyard.php`, that POSTs a small JSON document signed with Standard Webhooks
//! headers on `AfterModuleCreate`, `AfterModuleChangePackage`, `AfterModuleSuspend`,
//! `AfterModuleUnsuspend` and `AfterModuleTerminate` (payload and install steps: this
//! crate's `README.md`). The host checks the signature (scheme `standard-webhooks`) and
//! dedupes on the `webhook-id` header.
//!
//! For each event the connector maps the WHMCS product to a XenForo user group
//! (`group_map`), finds the forum user by the client's email
//! (`GET {xenforo_url}/api/users/find-email`), reads their secondary groups, computes the
//! new set and — only when it differs — writes the whole set at once
//! (`POST {xenforo_url}/api/users/{id}/`, form-encoded), all with `ctx.fetch` inside one
//! `handle` call. It returns no deliveries: a write that XenForo answers with 408/429/5xx
//! (or that times out) fails the whole call with a retry, and the retry reads the user's
//! groups again before writing, so a set computed from an old read is never written later.
//! XenForo *replaces* the secondary groups when `secondary_group_ids` is sent, so the
//! connector always sends the full merged list, never a diff. The same event handled twice
//! ends in the same state.
//!
//! | WHMCS hook | effect on the product's group |
//! |---|---|
//! | `AfterModuleCreate`, `AfterModuleUnsuspend` | added |
//! | `AfterModuleSuspend`, `AfterModuleTerminate` | removed |
//! | `AfterModuleChangePackage` | the new product's group added, every *other* group that appears in `group_map` removed |
//!
//! WHMCS tells a package change only by the *new* product, so the connector cannot know
//! which group the old product granted: WHMCS being the source of truth for entitlements,
//! every other mapped group goes. Groups not in `group_map` (staff, moderators, anything
//! granted by hand) are never touched.
//!
//! Ordering: events (and their retries) are handled in the order they run, not in WHMCS
//! order, so the connector keeps, per WHMCS service, the `occurred_at` of the last event it
//! applied (`ctx.kv()`, key `service/{service_id}`) and skips an event that is older. See
//! "Ordering" in the README for what this does and does not guarantee.
//!
//! Settings (`[connector.settings]`):
//! - `xenforo_url` (required): the board's base URL, e.g. `https://forum.example.com`; the
//!   API is under `{xenforo_url}/api/`. Its origin must be in `allowed_hosts`.
//! - `api_key` (required): a XenForo **super user** API key (`XF-Api-Key`); requests carry
//!   `api_bypass_permissions=1`, so the key's scopes (`user:read`, `user:write`) are what
//!   limit it.
//! - `api_user` (default `1`): the acting user id (`XF-Api-User`).
//! - `group_map` (required): WHMCS product id → XenForo user group id, e.g.
//!   `group_map = { "12" = 5, "13" = 6 }`. A product mapped to `0` grants no group but is
//!   known: a package change *to* it removes every mapped group (a downgrade to a tier
//!   without forum access). Products not in the map are ignored with a log line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Value, json};
use switchyard_sdk::{Connector, Ctx, Delivery, Failure, Manifest, Request, Response, Webhook};

/// The WHMCS → XenForo connector.
pub struct WhmcsXenforo;

switchyard_sdk::export!(WhmcsXenforo);

/// `XF-Api-User` when `api_user` is not set: the first admin of a fresh XenForo install.
const DEFAULT_API_USER: &str = "1";

impl Connector for WhmcsXenforo {
    fn manifest() -> Manifest {
        Manifest::new("whmcs-xenforo", env!("CARGO_PKG_VERSION"))
            .description(
                "Keeps XenForo secondary user groups in step with WHMCS services \
                 (create/suspend/unsuspend/terminate/change package)",
            )
            .default_scheme("standard-webhooks")
            .required_setting(
                "xenforo_url",
                "The board's base URL (e.g. https://forum.example.com); the API is under /api/",
            )
            .required_setting("api_key", "A XenForo super user API key (XF-Api-Key)")
            .optional_setting(
                "api_user",
                "The acting XenForo user id (XF-Api-User); default 1",
            )
            .required_setting(
                "group_map",
                "WHMCS product id → XenForo user group id, e.g. { \"12\" = 5, \"13\" = 6 }; \
                 0 = a known product that grants no group",
            )
    }

    /// The `webhook-id` header (`svix-id` from Svix senders): unique per hook call, the same
    /// on a resend of that call.
    fn dedupe_key(webhook: &Webhook) -> Option<String> {
        webhook
            .header("webhook-id")
            .or_else(|| webhook.header("svix-id"))
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
    }

    fn handle(ctx: &Ctx, webhook: &Webhook) -> Result<Vec<Delivery>, Failure> {
        let event = ServiceEvent::parse(webhook)?;
        let settings = Settings::read(ctx)?;

        let Some(&group) = settings.group_map.get(&event.product_id) else {
            ctx.info(format!(
                "{} for service {}: product {} is not in group_map; nothing to do",
                event.hook, event.service_id, event.product_id
            ));
            return Ok(Vec::new());
        };
        if group == NO_GROUP && event.action != Action::Switch {
            ctx.info(format!(
                "{} for service {}: product {} grants no XenForo group; nothing to do",
                event.hook, event.service_id, event.product_id
            ));
            return Ok(Vec::new());
        }

        // Before any call to XenForo: an event older than one already applied to this
        // service (a retry that lost the race, a late resend) must not undo it.
        let history = ServiceHistory::new(ctx, &event);
        if let Some(newer) = history.newer_applied() {
            ctx.info(format!(
                "{} for service {} (occurred_at {}): skipped, older than {} (occurred_at {}, \
                 event {}) already applied to this service",
                event.hook,
                event.service_id,
                event.occurred_at.as_ref().map_or("?", |t| t.text.as_str()),
                newer.event,
                newer.occurred_at,
                newer.event_id
            ));
            return Ok(Vec::new());
        }

        // Read and write in this one call: a failure anywhere is retried as a whole, and
        // the retry starts again from the user's groups as they are then.
        let xenforo = XenForo::new(ctx, &settings);
        let user = xenforo.find_user(&event.email)?;
        let current: BTreeSet<u64> = match user.secondary_group_ids {
            Some(ids) => ids,
            None => xenforo.user_groups(user.user_id)?,
        };
        let next = next_groups(event.action, group, &current, &settings.mapped_groups());

        let who = format!("XenForo user {} ({})", user.user_id, event.email);
        if next == current {
            ctx.info(format!(
                "{} for service {} (product {}): {who} already has secondary groups {}; \
                 nothing to write",
                event.hook,
                event.service_id,
                event.product_id,
                list(&current)
            ));
        } else {
            ctx.info(format!(
                "{} for service {} (product {}): {who} secondary groups {} → {}",
                event.hook,
                event.service_id,
                event.product_id,
                list(&current),
                list(&next)
            ));
            xenforo.write_groups(user.user_id, &next)?;
        }
        history.record_applied(webhook);
        Ok(Vec::new())
    }
}

/// A `group_map` value meaning "a known product that grants no group". XenForo group ids
/// start at 1.
const NO_GROUP: u64 = 0;

/// What a hook does to the product's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Create, unsuspend: the service is active.
    Grant,
    /// Suspend, terminate: the service is not active.
    Revoke,
    /// Change package: the new product is the one that counts.
    Switch,
}

impl Action {
    fn for_hook(hook: &str) -> Option<Action> {
        match hook {
            "AfterModuleCreate" | "AfterModuleUnsuspend" => Some(Action::Grant),
            "AfterModuleSuspend" | "AfterModuleTerminate" => Some(Action::Revoke),
            "AfterModuleChangePackage" => Some(Action::Switch),
            _ => None,
        }
    }
}

/// The secondary groups after `action` for a product granting `group`; `mapped` is every
/// group `group_map` manages. Pure, so replaying an event gives the same set: applying it
/// to its own result changes nothing.
fn next_groups(
    action: Action,
    group: u64,
    current: &BTreeSet<u64>,
    mapped: &BTreeSet<u64>,
) -> BTreeSet<u64> {
    let mut next = current.clone();
    match action {
        Action::Grant => {
            next.insert(group);
        }
        Action::Revoke => {
            next.remove(&group);
        }
        Action::Switch => {
            next.retain(|g| !mapped.contains(g));
            next.insert(group);
        }
    }
    next.remove(&NO_GROUP);
    next
}

/// The body the PHP hook sends (see the crate README).
#[derive(Debug)]
struct ServiceEvent {
    hook: String,
    action: Action,
    /// As sent, or `?` when absent (log lines only).
    service_id: String,
    product_id: String,
    email: String,
    /// `None` when the event has no `occurred_at`: it is applied without the ordering check.
    occurred_at: Option<OccurredAt>,
}

impl ServiceEvent {
    fn parse(webhook: &Webhook) -> Result<ServiceEvent, Failure> {
        let body: Value = webhook.json()?;
        let Some(fields) = body.as_object() else {
            return Err(Failure::reject("WHMCS event is not a JSON object"));
        };
        let text = |name: &str| match fields.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
            Some(_) => Err(Failure::reject(format!(
                "WHMCS event field `{name}` is empty or not a string/number"
            ))),
            None => Err(Failure::reject(format!(
                "WHMCS event has no `{name}` field"
            ))),
        };
        let hook = text("event")?;
        let Some(action) = Action::for_hook(&hook) else {
            return Err(Failure::reject(format!(
                "unsupported WHMCS event {hook:?} (expected AfterModuleCreate, \
                 AfterModuleChangePackage, AfterModuleSuspend, AfterModuleUnsuspend or \
                 AfterModuleTerminate)"
            )));
        };
        let product_id = text("product_id")?;
        if !product_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Failure::reject(format!(
                "WHMCS event field `product_id` is {product_id:?}, not a product id"
            )));
        }
        // Strip leading zeros so "012" and 12 find the same `group_map` entry.
        let product_id = match product_id.trim_start_matches('0') {
            "" => "0".to_owned(),
            digits => digits.to_owned(),
        };
        let email = text("email")?;
        if !email.contains('@') {
            return Err(Failure::reject(format!(
                "WHMCS event field `email` is {email:?}, not an email address"
            )));
        }
        let occurred_at = match fields.get("occurred_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(OccurredAt::parse(s.trim()).ok_or_else(|| {
                Failure::reject(format!(
                    "WHMCS event field `occurred_at` is {s:?}, not an RFC 3339 time"
                ))
            })?),
            Some(other) => {
                return Err(Failure::reject(format!(
                    "WHMCS event field `occurred_at` is {other}, not an RFC 3339 time"
                )));
            }
        };
        Ok(ServiceEvent {
            hook,
            action,
            service_id: text("service_id").unwrap_or_else(|_| "?".to_owned()),
            product_id,
            email,
            occurred_at,
        })
    }

    /// The kv key of the service's history: `service/{id}` for a WHMCS service id (digits,
    /// no leading zeros, not 0); `None` without one (the PHP hook sends 0 when WHMCS gave
    /// none), so unrelated events never share a history.
    fn history_key(&self) -> Option<String> {
        let id = self.service_id.trim_start_matches('0');
        (!id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()))
            .then(|| format!("service/{id}"))
    }
}

/// An RFC 3339 time (`2026-01-02T03:04:05.123456Z`, `2026-01-02T05:04:05+02:00`) as it
/// was sent, and as UTC seconds and nanoseconds for comparing.
#[derive(Debug, Clone)]
struct OccurredAt {
    text: String,
    /// Seconds since 1970-01-01T00:00:00Z and the fraction: compared as a pair.
    instant: (i64, u32),
}

impl OccurredAt {
    /// `YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|±HH:MM)`; `None` for anything else.
    fn parse(text: &str) -> Option<OccurredAt> {
        let b = text.as_bytes();
        let digits = |from: usize, len: usize| -> Option<i64> {
            let part = b.get(from..from + len)?;
            part.iter()
                .all(u8::is_ascii_digit)
                .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
        };
        let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
        let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
        if b.get(4) != Some(&b'-')
            || b.get(7) != Some(&b'-')
            || !matches!(b.get(10), Some(b'T' | b't' | b' '))
            || b.get(13) != Some(&b':')
            || b.get(16) != Some(&b':')
        {
            return None;
        }
        if !(1..=12).contains(&month)
            || !(1..=days_in_month(year, month)).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut at = 19;
        let mut nanos = 0u32;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let start = at;
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == start {
                return None;
            }
            // Nanosecond precision; further digits cannot change the order of real events.
            let fraction = &text[start..at.min(start + 9)];
            nanos = fraction.parse::<u32>().ok()? * 10u32.pow(9 - fraction.len() as u32);
        }
        let offset = match b.get(at..)? {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let (h, m) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
                if h > 23 || m > 59 {
                    return None;
                }
                let minutes = h * 60 + m;
                if *sign == b'-' { -minutes } else { minutes }
            }
            _ => return None,
        };
        let seconds =
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
                - offset * 60;
        Some(OccurredAt {
            text: text.to_owned(),
            instant: (seconds, nanos),
        })
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (year 0000–9999).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The last event applied to one WHMCS service, as stored in kv.
#[derive(Debug)]
struct Applied {
    occurred_at: String,
    event: String,
    event_id: String,
}

/// Per WHMCS service, the newest event applied so far (`ctx.kv()`, key
/// `service/{service_id}`, a small JSON document): what keeps a late event (a retry, a
/// resend) from undoing a newer one. Inactive for an event without `occurred_at` or
/// without a service id.
struct ServiceHistory<'a, 'h> {
    ctx: &'a Ctx<'h>,
    event: &'a ServiceEvent,
    key: Option<String>,
}

impl<'a, 'h> ServiceHistory<'a, 'h> {
    fn new(ctx: &'a Ctx<'h>, event: &'a ServiceEvent) -> Self {
        let key = event.history_key();
        if event.occurred_at.is_none() {
            ctx.warn(format!(
                "{} for service {}: no `occurred_at`; applied in arrival order, without \
                 the ordering check",
                event.hook, event.service_id
            ));
        } else if key.is_none() {
            ctx.warn(format!(
                "{}: no WHMCS `service_id`; applied in arrival order, without the ordering \
                 check",
                event.hook
            ));
        }
        ServiceHistory { ctx, event, key }
    }

    /// What is stored for the service, when there is something readable.
    fn last(&self) -> Option<(Applied, OccurredAt)> {
        let key = self.key.as_deref()?;
        let raw = self.ctx.kv().get(key)?;
        let stored: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        let field = |name: &str| stored.get(name).and_then(Value::as_str);
        let found = field("occurred_at").and_then(OccurredAt::parse).map(|at| {
            let applied = Applied {
                occurred_at: at.text.clone(),
                event: field("event").unwrap_or("?").to_owned(),
                event_id: field("event_id").unwrap_or("?").to_owned(),
            };
            (applied, at)
        });
        if found.is_none() {
            self.ctx.warn(format!(
                "kv `{key}` holds {:?}, not a record of an applied event; ignored",
                String::from_utf8_lossy(&raw)
            ));
        }
        found
    }

    /// The newer event already applied to this service, if there is one. An event with the
    /// same `occurred_at` (a replay of the latest event, or two events the clock could not
    /// tell apart) is applied again.
    fn newer_applied(&self) -> Option<Applied> {
        let ours = self.event.occurred_at.as_ref()?;
        self.last()
            .filter(|(_, theirs)| theirs.instant > ours.instant)
            .map(|(applied, _)| applied)
    }

    /// Stores this event as the service's newest applied one, unless a newer one was stored
    /// meanwhile (by an event handled at the same time). The groups are already written:
    /// a failing kv write is logged, not turned into a failure.
    fn record_applied(&self, webhook: &Webhook) {
        let (Some(key), Some(ours)) = (self.key.as_deref(), self.event.occurred_at.as_ref()) else {
            return;
        };
        if self
            .last()
            .is_some_and(|(_, theirs)| theirs.instant > ours.instant)
        {
            return;
        }
        let record = json!({
            "occurred_at": ours.text,
            "event": self.event.hook,
            "event_id": webhook.id,
        });
        if let Err(e) = self.ctx.kv().set(key, record.to_string()) {
            self.ctx.warn(format!(
                "{} for service {}: applied, but not recorded for the ordering check: {e}",
                self.event.hook, self.event.service_id
            ));
        }
    }
}
/// The connector's settings, checked up front so a bad config rejects every event with the
/// same clear message.
struct Settings {
    /// The API root, `{xenforo_url}/api`, without a trailing slash.
    api: String,
    api_key: String,
    api_user: String,
    /// Product id (digits, no leading zeros) → group id (`NO_GROUP` for none).
    group_map: BTreeMap<String, u64>,
}

impl Settings {
    fn read(ctx: &Ctx) -> Result<Settings, Failure> {
        let base = ctx.require_setting("xenforo_url")?;
        let base = base.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Failure::reject(format!(
                "setting `xenforo_url` must be an http(s) URL, got {base:?}"
            )));
        }
        // Accept the API root too: `https://forum.example.com/api` means the same board.
        let base = base.strip_suffix("/api").unwrap_or(base);
        let api_key = ctx.require_setting("api_key")?.trim().to_owned();
        let api_user = ctx
            .setting_or("api_user", DEFAULT_API_USER)
            .trim()
            .to_owned();
        if api_user.is_empty() || !api_user.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Failure::reject(format!(
                "setting `api_user` must be a XenForo user id, got {api_user:?}"
            )));
        }
        Ok(Settings {
            api: format!("{base}/api"),
            api_key,
            api_user,
            group_map: group_map(ctx)?,
        })
    }

    /// Every group `group_map` manages (what a package change may remove).
    fn mapped_groups(&self) -> BTreeSet<u64> {
        self.group_map
            .values()
            .copied()
            .filter(|g| *g != NO_GROUP)
            .collect()
    }
}

/// `group_map` as product id → group id. Values must be integers (TOML integers arrive as
/// JSON numbers); numeric strings are accepted for maps written as JSON text.
fn group_map(ctx: &Ctx) -> Result<BTreeMap<String, u64>, Failure> {
    ctx.require_setting("group_map")?;
    let raw: BTreeMap<String, Value> = ctx
        .setting_json("group_map")
        .map_err(|_| {
            Failure::reject(
                "setting `group_map` must be a table of WHMCS product id → XenForo group id, \
                 e.g. { \"12\" = 5, \"13\" = 6 }",
            )
        })?
        .unwrap_or_default();
    let mut map = BTreeMap::new();
    for (product, group) in raw {
        let product_key = product.trim();
        if product_key.is_empty() || !product_key.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Failure::reject(format!(
                "setting `group_map`: key {product:?} is not a WHMCS product id"
            )));
        }
        let group_id = match &group {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        let Some(group_id) = group_id else {
            return Err(Failure::reject(format!(
                "setting `group_map`: product {product} maps to {group}, not a XenForo user \
                 group id"
            )));
        };
        let product_key = match product_key.trim_start_matches('0') {
            "" => "0",
            digits => digits,
        };
        map.insert(product_key.to_owned(), group_id);
    }
    Ok(map)
}

/// The part of a XenForo user the connector reads.
struct XfUser {
    user_id: u64,
    /// `None` when the answer did not include them (the key's visibility); read them from
    /// `GET /api/users/{id}/` then.
    secondary_group_ids: Option<BTreeSet<u64>>,
}

/// The XenForo REST API, through `ctx.fetch` (reads and the write).
struct XenForo<'a, 'h> {
    ctx: &'a Ctx<'h>,
    settings: &'a Settings,
}

impl<'a, 'h> XenForo<'a, 'h> {
    fn new(ctx: &'a Ctx<'h>, settings: &'a Settings) -> Self {
        XenForo { ctx, settings }
    }

    /// `GET /api/users/find-email?email=…` → the user, or a rejection when none has it.
    fn find_user(&self, email: &str) -> Result<XfUser, Failure> {
        let query =
            serde_urlencoded::to_string([("email", email), ("api_bypass_permissions", "1")])
                .map_err(|e| Failure::reject(format!("encoding the email {email:?}: {e}")))?;
        let what = format!("looking up the XenForo user with email {email}");
        let body = self.get(
            &format!("{}/users/find-email?{query}", self.settings.api),
            &what,
        )?;
        match body.get("user") {
            Some(Value::Null) => Err(Failure::reject(format!(
                "no XenForo user with email {email}"
            ))),
            Some(user) => parse_user(user).map_err(|f| f.context(&what)),
            None => Err(Failure::retry(format!(
                "{what}: the answer has no `user` field"
            ))),
        }
    }

    /// `GET /api/users/{id}/` → the user's secondary groups.
    fn user_groups(&self, user_id: u64) -> Result<BTreeSet<u64>, Failure> {
        let what = format!("reading XenForo user {user_id}");
        let body = self.get(
            &format!(
                "{}/users/{user_id}/?api_bypass_permissions=1",
                self.settings.api
            ),
            &what,
        )?;
        let user = parse_user(&body["user"]).map_err(|f| f.context(&what))?;
        user.secondary_group_ids.ok_or_else(|| {
            Failure::reject(format!(
                "{what}: the answer has no `secondary_group_ids`; is `api_key` a super user \
                 key?"
            ))
        })
    }

    /// `POST /api/users/{id}/` with the whole secondary group set, now (`ctx.fetch`).
    ///
    /// `secondary_group_ids[]=N` once per group. An empty set is sent as the bare key
    /// `secondary_group_ids=`: XenForo reads the field as `?array-uint`, so a present
    /// non-array value becomes `[]` and clears the set, whereas `secondary_group_ids[]=`
    /// would be the list `[0]`, and omitting the field would leave the groups unchanged.
    ///
    /// Classified like the lookups: 408/425/429/5xx, a timeout or a connection error retry
    /// the event (which reads the groups again first), other statuses reject it naming
    /// XenForo's error code. A write that timed out may still have been applied: the retry
    /// then finds the set already there and writes nothing.
    fn write_groups(&self, user_id: u64, groups: &BTreeSet<u64>) -> Result<(), Failure> {
        let what = format!("writing the secondary groups of XenForo user {user_id}");
        let mut form: Vec<(&str, String)> = vec![("api_bypass_permissions", "1".to_owned())];
        if groups.is_empty() {
            form.push(("secondary_group_ids", String::new()));
        } else {
            form.extend(
                groups
                    .iter()
                    .map(|g| ("secondary_group_ids[]", g.to_string())),
            );
        }
        let request = self
            .request("POST", &format!("{}/users/{user_id}/", self.settings.api))
            .try_form(&form)?;
        let response = self
            .ctx
            .fetch(request)
            .map_err(|e| Failure::from(e).context(&what))?;
        let response = check(response, &what)?;
        // XenForo answers with the saved user. A different set (a group id XenForo
        // dropped) is worth a line in the attempt's log, not a failure: the write was
        // accepted, and writing it again would give the same answer.
        let saved = response
            .json::<Value>()
            .ok()
            .and_then(|body| parse_user(&body["user"]).ok())
            .and_then(|user| user.secondary_group_ids);
        if let Some(saved) = saved.filter(|saved| saved != groups) {
            self.ctx.warn(format!(
                "{what}: sent {}, XenForo saved {}",
                list(groups),
                list(&saved)
            ));
        }
        Ok(())
    }

    /// A request with the API headers.
    fn request(&self, method: &str, url: &str) -> Request {
        Request::new(method, url)
            .header("XF-Api-Key", &self.settings.api_key)
            .header("XF-Api-User", &self.settings.api_user)
            .header("accept", "application/json")
    }

    /// A GET with the API headers; XenForo errors become failures naming their codes.
    fn get(&self, url: &str, what: &str) -> Result<Value, Failure> {
        let response = self
            .ctx
            .fetch(self.request("GET", url))
            .map_err(|e| Failure::from(e).context(what))?;
        check(response, what)?
            .json::<Value>()
            .map_err(|f| f.context(what))
    }
}

/// A 2xx passes. Otherwise 408/425/429/5xx retry and other statuses reject, with XenForo's
/// error codes (`{"errors":[{"code","message"}]}`) in the message: operators branch on the
/// code, not on the wording.
fn check(response: Response, what: &str) -> Result<Response, Failure> {
    if response.is_success() {
        return Ok(response);
    }
    let status = response.status;
    let detail = xenforo_errors(&response).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&response.body);
        let text: String = text.trim().chars().take(200).collect();
        if text.is_empty() {
            "(empty body)".to_owned()
        } else {
            text
        }
    });
    let message = format!("{what}: XenForo answered HTTP {status}: {detail}");
    Err(match status {
        408 | 425 | 429 | 500..=599 => Failure::Retry(message),
        _ => Failure::Reject(message),
    })
}

/// `code (message)` for each entry of XenForo's `errors` list; `None` for another body.
fn xenforo_errors(response: &Response) -> Option<String> {
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    let errors = body.get("errors")?.as_array()?;
    let mut out = String::new();
    for error in errors {
        let code = error.get("code").and_then(Value::as_str).unwrap_or("?");
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(code);
        if let Some(message) = error.get("message").and_then(Value::as_str) {
            let _ = write!(out, " ({message})");
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A XenForo `User` object: `user_id` and, when visible, `secondary_group_ids`.
fn parse_user(user: &Value) -> Result<XfUser, Failure> {
    let id = |v: &Value| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    };
    let Some(user_id) = user.get("user_id").and_then(id).filter(|id| *id > 0) else {
        return Err(Failure::retry("the answer has no valid `user.user_id`"));
    };
    let secondary_group_ids = match user.get("secondary_group_ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| id(v).ok_or(v))
                .collect::<Result<_, _>>()
                .map_err(|v| {
                    Failure::retry(format!("`secondary_group_ids` holds {v}, not a group id"))
                })?,
        ),
        Some(other) => {
            return Err(Failure::retry(format!(
                "`secondary_group_ids` is {other}, not a list"
            )));
        }
    };
    Ok(XfUser {
        user_id,
        secondary_group_ids,
    })
}

/// `[3, 5]` for log lines.
fn list(groups: &BTreeSet<u64>) -> String {
    let items: Vec<String> = groups.iter().map(u64::to_string).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use serde_json::json;
    use switchyard_sdk::{FetchError, Level, TestHost};

    const XF: &str = "http://xf.test";
    const FIND: &str = "http://xf.test/api/users/find-email";
    /// Ada's user: read when find-email omits the groups, and written.
    const USER: &str = "http://xf.test/api/users/7/";
    const EMAIL: &str = "ada@example.com";
    /// `occurred_at` of `event(…)`.
    const T1: &str = "2026-01-02T03:04:05.000001Z";
    const T2: &str = "2026-01-02T03:04:05.000002Z";
    const T3: &str = "2026-01-02T03:04:06Z";

    /// Products 12 → group 5, 13 → group 6, 14 → group 7, 20 → no group.
    fn host() -> TestHost {
        TestHost::new()
            .setting("xenforo_url", format!("{XF}/"))
            .setting("api_key", "xf_super_key")
            .setting("group_map", r#"{"12": 5, "13": 6, "14": 7, "20": 0}"#)
    }

    /// XenForo's user 7 (Ada) holding `groups`, as find-email and the user endpoints show it.
    fn ada(groups: &BTreeSet<u64>) -> Value {
        json!({
            "user_id": 7, "username": "ada", "email": EMAIL, "user_group_id": 2,
            "secondary_group_ids": groups, "user_state": "valid", "is_admin": false,
        })
    }

    /// `host()` where find-email answers with user 7 holding `groups` and the write to
    /// user 7 succeeds.
    fn host_with_user(groups: &[u64]) -> TestHost {
        host()
            .fetch_response(
                "GET",
                FIND,
                Response::new(200)
                    .with_json(&json!({"user": ada(&groups.iter().copied().collect())})),
            )
            .fetch_response(
                "POST",
                USER,
                Response::new(200).with_json(&json!({"success": true})),
            )
    }

    /// A board that keeps Ada's groups: find-email shows them, a write replaces them
    /// (PHP-style form) unless `fail_writes` says to answer 503 first.
    struct Board {
        groups: BTreeSet<u64>,
        fail_writes: usize,
    }

    fn host_with_board(groups: &[u64]) -> (TestHost, Rc<RefCell<Board>>) {
        let board = Rc::new(RefCell::new(Board {
            groups: groups.iter().copied().collect(),
            fail_writes: 0,
        }));
        let state = board.clone();
        let host = host().on_fetch(move |request| {
            let mut board = state.borrow_mut();
            match request.method.as_str() {
                "GET" if request.url.starts_with(FIND) => {
                    Ok(Response::new(200).with_json(&json!({"user": ada(&board.groups)})))
                }
                "POST" if request.url == USER => {
                    if board.fail_writes > 0 {
                        board.fail_writes -= 1;
                        return Ok(Response::new(503).with_json(&json!({"errors": [{
                            "code": "service_unavailable", "message": "busy"
                        }]})));
                    }
                    let form: Vec<(String, String)> =
                        serde_urlencoded::from_bytes(&request.body).unwrap();
                    board.groups = form
                        .iter()
                        .filter(|(k, _)| k == "secondary_group_ids[]")
                        .map(|(_, v)| v.parse().unwrap())
                        .collect();
                    Ok(Response::new(200)
                        .with_json(&json!({"success": true, "user": ada(&board.groups)})))
                }
                _ => Err(FetchError::Denied(request.url.clone())),
            }
        });
        (host, board)
    }

    fn groups_of(board: &Rc<RefCell<Board>>) -> Vec<u64> {
        board.borrow().groups.iter().copied().collect()
    }

    /// An event for service 42 (Ada), occurred at `T1`.
    fn event(hook: &str, product: Value) -> Webhook {
        event_at(hook, product, json!(T1))
    }

    /// An event for service 42 (Ada) with this `occurred_at` (`null`: left out); the host's
    /// event id is `evt_{hook}_{occurred_at}`.
    fn event_at(hook: &str, product: Value, occurred_at: Value) -> Webhook {
        let mut body = json!({
            "event": hook, "service_id": 42, "client_id": 9, "email": EMAIL,
            "product_id": product, "status": "Active", "occurred_at": occurred_at,
        });
        if occurred_at.is_null() {
            body.as_object_mut().unwrap().remove("occurred_at");
        }
        Webhook::builder()
            .id(format!(
                "evt_{hook}_{}",
                occurred_at.as_str().unwrap_or("none")
            ))
            .connector("whmcs")
            .header("webhook-id", "whmcs_42_create_ab12")
            .json(&body)
            .build()
    }

    /// Handles `webhook` expecting success, which never returns a delivery.
    fn handled(host: &TestHost, webhook: &Webhook) {
        assert_eq!(host.handle::<WhmcsXenforo>(webhook), Ok(vec![]));
    }

    /// The writes fetched so far.
    fn writes(host: &TestHost) -> Vec<Request> {
        host.fetches()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect()
    }

    /// The form pairs of the single write, after checking where it went and how.
    fn written(host: &TestHost) -> Vec<(String, String)> {
        let writes = writes(host);
        assert_eq!(writes.len(), 1, "{writes:?}");
        let w = &writes[0];
        assert_eq!(w.url, USER);
        assert_eq!(w.header_value("xf-api-key"), Some("xf_super_key"));
        assert_eq!(w.header_value("xf-api-user"), Some("1"));
        assert_eq!(
            w.header_value("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        serde_urlencoded::from_bytes(&w.body).unwrap()
    }

    fn groups_sent(host: &TestHost) -> Vec<String> {
        written(host)
            .into_iter()
            .filter(|(k, _)| k == "secondary_group_ids[]")
            .map(|(_, v)| v)
            .collect()
    }

    /// What the service's history in kv says: `(occurred_at, event, event_id)`.
    fn history(host: &TestHost) -> Option<(String, String, String)> {
        let raw = host.kv_value("service/42")?;
        let v: Value = serde_json::from_slice(&raw).unwrap();
        let field = |name: &str| v[name].as_str().unwrap().to_owned();
        Some((field("occurred_at"), field("event"), field("event_id")))
    }

    #[test]
    fn manifest_describes_the_connector() {
        let m = WhmcsXenforo::manifest();
        assert_eq!(m.name, "whmcs-xenforo");
        assert_eq!(m.default_scheme, "standard-webhooks");
        let names: Vec<_> = m
            .settings
            .iter()
            .map(|s| (s.name.as_str(), s.required))
            .collect();
        assert_eq!(
            names,
            [
                ("xenforo_url", true),
                ("api_key", true),
                ("api_user", false),
                ("group_map", true)
            ]
        );
    }

    #[test]
    fn dedupe_key_is_the_webhook_id() {
        let host = TestHost::new();
        let with = |name: &str, value: &str| Webhook::builder().header(name, value).build();
        assert_eq!(
            host.dedupe_key::<WhmcsXenforo>(&with("Webhook-Id", "msg_1"))
                .as_deref(),
            Some("msg_1")
        );
        assert_eq!(
            host.dedupe_key::<WhmcsXenforo>(&with("svix-id", "msg_2"))
                .as_deref(),
            Some("msg_2")
        );
        assert_eq!(
            host.dedupe_key::<WhmcsXenforo>(&with("webhook-id", " ")),
            None
        );
        assert_eq!(
            host.dedupe_key::<WhmcsXenforo>(&Webhook::builder().build()),
            None
        );
    }

    #[test]
    fn create_reads_then_writes_in_the_same_call() {
        let host = host_with_user(&[3]);
        handled(&host, &event("AfterModuleCreate", json!(12)));
        assert_eq!(
            written(&host),
            [
                ("api_bypass_permissions".to_owned(), "1".to_owned()),
                ("secondary_group_ids[]".to_owned(), "3".to_owned()),
                ("secondary_group_ids[]".to_owned(), "5".to_owned()),
            ]
        );
        let fetches = host.fetches();
        let calls: Vec<_> = fetches
            .iter()
            .map(|r| format!("{} {}", r.method, r.url))
            .collect();
        assert_eq!(
            calls,
            [
                "GET http://xf.test/api/users/find-email?email=ada%40example.com\
                 &api_bypass_permissions=1",
                "POST http://xf.test/api/users/7/",
            ],
            "find-email carried the groups; the write follows at once"
        );
        for fetch in &fetches {
            assert_eq!(fetch.header_value("XF-Api-Key"), Some("xf_super_key"));
            assert_eq!(fetch.header_value("XF-Api-User"), Some("1"));
            assert_eq!(fetch.header_value("accept"), Some("application/json"));
        }
        assert_eq!(
            host.logs(),
            [(
                Level::Info,
                "AfterModuleCreate for service 42 (product 12): XenForo user 7 \
                 (ada@example.com) secondary groups [3] → [3, 5]"
                    .to_owned()
            )]
        );
        assert_eq!(
            history(&host),
            Some((
                T1.to_owned(),
                "AfterModuleCreate".to_owned(),
                format!("evt_AfterModuleCreate_{T1}")
            ))
        );
    }

    #[test]
    fn unsuspend_adds_the_group() {
        let host = host_with_user(&[]);
        handled(&host, &event("AfterModuleUnsuspend", json!("13")));
        assert_eq!(groups_sent(&host), ["6"]);
    }

    #[test]
    fn suspend_and_terminate_remove_the_group() {
        for hook in ["AfterModuleSuspend", "AfterModuleTerminate"] {
            let host = host_with_user(&[3, 5, 6]);
            handled(&host, &event(hook, json!(12)));
            assert_eq!(groups_sent(&host), ["3", "6"], "{hook}");
        }
    }

    #[test]
    fn removing_the_last_group_sends_an_empty_set() {
        let host = host_with_user(&[5]);
        handled(&host, &event("AfterModuleTerminate", json!(12)));
        assert_eq!(
            written(&host),
            [
                ("api_bypass_permissions".to_owned(), "1".to_owned()),
                ("secondary_group_ids".to_owned(), String::new()),
            ]
        );
        assert_eq!(
            String::from_utf8(writes(&host)[0].body.clone()).unwrap(),
            "api_bypass_permissions=1&secondary_group_ids="
        );
    }

    #[test]
    fn change_package_swaps_mapped_groups_only() {
        // 3 and 9 are not in group_map (granted by hand): kept. 5 and 7 are: removed.
        let host = host_with_user(&[3, 5, 7, 9]);
        handled(&host, &event("AfterModuleChangePackage", json!(13)));
        assert_eq!(groups_sent(&host), ["3", "6", "9"]);
    }

    #[test]
    fn change_package_to_a_product_without_a_group_removes_the_mapped_ones() {
        let host = host_with_user(&[3, 5]);
        handled(&host, &event("AfterModuleChangePackage", json!(20)));
        assert_eq!(groups_sent(&host), ["3"]);
        // Other hooks for that product do nothing, without calling XenForo.
        let host = host_with_user(&[3, 5]);
        handled(&host, &event("AfterModuleCreate", json!(20)));
        assert!(host.fetches().is_empty());
        assert_eq!(history(&host), None, "a no-op is not recorded");
    }

    #[test]
    fn unknown_product_does_nothing_with_a_log_line() {
        let host = host_with_user(&[5]);
        for hook in [
            "AfterModuleCreate",
            "AfterModuleChangePackage",
            "AfterModuleTerminate",
        ] {
            handled(&host, &event(hook, json!(99)));
        }
        assert!(host.fetches().is_empty());
        assert!(host.kv_snapshot().is_empty());
        assert_eq!(
            host.logs()[0],
            (
                Level::Info,
                "AfterModuleCreate for service 42: product 99 is not in group_map; nothing to do"
                    .to_owned()
            )
        );
    }

    #[test]
    fn unchanged_set_writes_nothing() {
        let cases: [(&str, Value, &[u64]); 4] = [
            ("AfterModuleCreate", json!(12), &[3, 5]),
            ("AfterModuleUnsuspend", json!(12), &[5]),
            ("AfterModuleSuspend", json!(12), &[3]),
            ("AfterModuleChangePackage", json!(13), &[3, 6]),
        ];
        for (hook, product, groups) in cases {
            let host = host_with_user(groups);
            handled(&host, &event(hook, product));
            assert!(writes(&host).is_empty(), "{hook}");
            let (level, line) = host.logs().pop().unwrap();
            assert_eq!(level, Level::Info);
            assert!(line.contains("nothing to write"), "{line}");
            // Applied all the same: an older event must not undo it.
            assert_eq!(history(&host).unwrap().1, hook);
        }
    }

    #[test]
    fn replaying_gives_the_same_state() {
        let mapped = BTreeSet::from([5, 6, 7]);
        let start = BTreeSet::from([3, 5, 7]);
        for action in [Action::Grant, Action::Revoke, Action::Switch] {
            for group in [5, 6, NO_GROUP] {
                let once = next_groups(action, group, &start, &mapped);
                let twice = next_groups(action, group, &once, &mapped);
                assert_eq!(once, twice, "{action:?} {group}");
                assert!(!once.contains(&NO_GROUP));
            }
        }
    }

    #[test]
    fn groups_come_from_the_user_endpoint_when_find_email_omits_them() {
        let host = host()
            .fetch_response(
                "GET",
                FIND,
                Response::new(200).with_json(&json!({"user": {"user_id": 7, "username": "ada"}})),
            )
            .fetch_response(
                "GET",
                USER,
                Response::new(200).with_json(&json!({"user": {
                    "user_id": 7, "user_group_id": 2, "secondary_group_ids": [4]
                }})),
            )
            .fetch_response("POST", USER, Response::new(200));
        handled(&host, &event("AfterModuleCreate", json!(14)));
        assert_eq!(groups_sent(&host), ["4", "7"]);
        let fetches = host.fetches();
        assert_eq!(fetches.len(), 3);
        assert_eq!(
            fetches[1].url,
            "http://xf.test/api/users/7/?api_bypass_permissions=1"
        );
        assert_eq!(fetches[1].header_value("XF-Api-Key"), Some("xf_super_key"));
        assert_eq!(
            (fetches[2].method.as_str(), fetches[2].url.as_str()),
            ("POST", USER)
        );
    }

    #[test]
    fn unknown_user_is_rejected_clearly() {
        let host = host().fetch_response(
            "GET",
            FIND,
            Response::new(200).with_json(&json!({"user": null})),
        );
        assert_eq!(
            host.handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12))),
            Err(Failure::Reject(
                "no XenForo user with email ada@example.com".into()
            ))
        );
        assert_eq!(history(&host), None);
    }

    #[test]
    fn email_is_query_encoded() {
        let host = host().on_fetch(|_| Ok(Response::new(200).with_json(&json!({"user": null}))));
        let mut webhook = event("AfterModuleCreate", json!(12));
        let mut body: Value = webhook.json().unwrap();
        body["email"] = json!("ada+forum&x=1@example.com");
        webhook.body = serde_json::to_vec(&body).unwrap();
        let _ = host.handle::<WhmcsXenforo>(&webhook);
        assert_eq!(
            host.fetches()[0].url,
            "http://xf.test/api/users/find-email?email=ada%2Bforum%26x%3D1%40example.com\
             &api_bypass_permissions=1"
        );
    }

    #[test]
    fn xenforo_4xx_rejects_naming_the_code() {
        let denied = Response::new(401).with_json(&json!({"errors": [{
            "code": "api_key_not_found",
            "message": "API key provided in request was not found.",
            "params": {}
        }]}));
        let err = host()
            .fetch_response("GET", FIND, denied)
            .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
            .unwrap_err();
        assert_eq!(
            err,
            Failure::Reject(
                "looking up the XenForo user with email ada@example.com: XenForo answered \
                 HTTP 401: api_key_not_found (API key provided in request was not found.)"
                    .into()
            )
        );

        let forbidden = Response::new(403).with_json(&json!({"errors": [
            {"code": "no_permission", "message": "No."},
            {"code": "api_scope_missing"}
        ]}));
        let err = host()
            .fetch_response("GET", FIND, forbidden)
            .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Reject(m) if m.ends_with("no_permission (No.); api_scope_missing")),
            "{err:?}"
        );

        let not_found = Response::new(404).with_body("<html>nope</html>");
        let err = host()
            .fetch_response("GET", FIND, not_found)
            .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Reject(m) if m.ends_with("HTTP 404: <html>nope</html>")),
            "{err:?}"
        );
    }

    #[test]
    fn xenforo_5xx_429_and_timeouts_retry() {
        for status in [500, 502, 503, 429] {
            let answer = Response::new(status).with_json(&json!({"errors": [{
                "code": "server_error", "message": "busy"
            }]}));
            let err = host()
                .fetch_response("GET", FIND, answer)
                .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
                .unwrap_err();
            assert!(
                matches!(&err, Failure::Retry(m) if m.contains(&format!("HTTP {status}: server_error"))),
                "{err:?}"
            );
        }
        for error in [FetchError::Timeout, FetchError::Transport("reset".into())] {
            let err = host()
                .fetch_error("GET", FIND, error)
                .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
                .unwrap_err();
            assert!(err.is_retry(), "{err:?}");
        }
        // A proxy's HTML page with a 200, or an answer of another shape: retried too.
        for body in [
            "<html>",
            r#"{"ok": true}"#,
            r#"{"user": {"username": "x"}}"#,
        ] {
            let err = host()
                .fetch_response("GET", FIND, Response::new(200).with_body(body))
                .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
                .unwrap_err();
            assert!(err.is_retry(), "{body}: {err:?}");
        }
        // The second lookup is classified the same way.
        let err = host()
            .fetch_response(
                "GET",
                FIND,
                Response::new(200).with_json(&json!({"user": {"user_id": 7}})),
            )
            .fetch_response("GET", USER, Response::new(503))
            .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Retry(m) if m.starts_with("reading XenForo user 7: XenForo answered HTTP 503")),
            "{err:?}"
        );
    }

    #[test]
    fn write_failures_are_classified_like_the_lookups() {
        let with_write = |answer: Result<Response, FetchError>| {
            let host = host().fetch_response(
                "GET",
                FIND,
                Response::new(200).with_json(&json!({"user": ada(&BTreeSet::from([3]))})),
            );
            let host = match answer {
                Ok(response) => host.fetch_response("POST", USER, response),
                Err(error) => host.fetch_error("POST", USER, error),
            };
            let result = host.handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)));
            assert_eq!(writes(&host).len(), 1, "the write was attempted");
            assert_eq!(history(&host), None, "a failed write is not recorded");
            result.unwrap_err()
        };
        let busy = |status| {
            Response::new(status).with_json(&json!({"errors": [{
                "code": "service_unavailable", "message": "The board is busy."
            }]}))
        };
        assert_eq!(
            with_write(Ok(busy(503))),
            Failure::Retry(
                "writing the secondary groups of XenForo user 7: XenForo answered HTTP 503: \
                 service_unavailable (The board is busy.)"
                    .into()
            )
        );
        for status in [408, 429, 500, 502] {
            assert!(with_write(Ok(busy(status))).is_retry(), "{status}");
        }
        for error in [FetchError::Timeout, FetchError::Transport("reset".into())] {
            let err = with_write(Err(error));
            assert!(
                matches!(&err, Failure::Retry(m) if m.starts_with("writing the secondary groups of XenForo user 7: fetch")),
                "{err:?}"
            );
        }
        let invalid = Response::new(400).with_json(&json!({"errors": [{
            "code": "please_enter_valid_user_group",
            "message": "Please select a valid user group.",
            "params": {}
        }]}));
        assert_eq!(
            with_write(Ok(invalid)),
            Failure::Reject(
                "writing the secondary groups of XenForo user 7: XenForo answered HTTP 400: \
                 please_enter_valid_user_group (Please select a valid user group.)"
                    .into()
            )
        );
        let scope = Response::new(403).with_json(&json!({"errors": [{
            "code": "api_scope_missing", "message": "user:write"
        }]}));
        let err = with_write(Ok(scope));
        assert!(
            matches!(&err, Failure::Reject(m) if m.ends_with("HTTP 403: api_scope_missing (user:write)")),
            "{err:?}"
        );
        let err = with_write(Err(FetchError::Denied("not allowed".into())));
        assert!(
            matches!(&err, Failure::Reject(m) if m.contains("fetch denied")),
            "{err:?}"
        );
    }

    #[test]
    fn a_retry_reads_the_groups_again_before_writing() {
        let (host, board) = host_with_board(&[3]);
        board.borrow_mut().fail_writes = 1;
        let create = event("AfterModuleCreate", json!(12));
        let err = host.handle::<WhmcsXenforo>(&create).unwrap_err();
        assert!(err.is_retry(), "{err:?}");
        assert_eq!(groups_of(&board), [3]);
        // Meanwhile someone grants group 6 by hand.
        board.borrow_mut().groups.insert(6);
        handled(&host, &create);
        assert_eq!(
            groups_of(&board),
            [3, 5, 6],
            "6 survives: the retry re-read"
        );
        let calls: Vec<_> = host.fetches().iter().map(|r| r.method.clone()).collect();
        assert_eq!(calls, ["GET", "POST", "GET", "POST"]);
        let first: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&writes(&host)[0].body).unwrap();
        let second: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&writes(&host)[1].body).unwrap();
        assert_eq!(first.len(), 3, "[3, 5] then: {first:?}");
        assert_eq!(second.len(), 4, "[3, 5, 6] now: {second:?}");
    }

    #[test]
    fn a_saved_set_that_differs_is_logged() {
        // XenForo drops a group id it does not know, and says so only by its answer.
        let saved = json!({"success": true, "user": ada(&BTreeSet::from([3]))});
        let host = host()
            .fetch_response(
                "GET",
                FIND,
                Response::new(200).with_json(&json!({"user": ada(&BTreeSet::from([3]))})),
            )
            .fetch_response("POST", USER, Response::new(200).with_json(&saved));
        handled(&host, &event("AfterModuleCreate", json!(12)));
        assert_eq!(
            host.logs().last().unwrap(),
            &(
                Level::Warn,
                "writing the secondary groups of XenForo user 7: sent [3, 5], XenForo saved [3]"
                    .to_owned()
            )
        );
    }

    #[test]
    fn denied_fetch_is_rejected() {
        let err = host()
            .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Reject(m) if m.contains("fetch denied")),
            "{err:?}"
        );
    }

    #[test]
    fn api_user_and_api_root() {
        let host = host_with_user(&[])
            .setting("api_user", "14")
            .setting("xenforo_url", "http://xf.test/api/");
        handled(&host, &event("AfterModuleCreate", json!(12)));
        for fetch in host.fetches() {
            assert!(
                fetch.url.starts_with("http://xf.test/api/users/"),
                "{}",
                fetch.url
            );
            assert_eq!(fetch.header_value("XF-Api-User"), Some("14"));
        }
        assert_eq!(writes(&host)[0].url, USER);
    }

    #[test]
    fn malformed_events_are_rejected() {
        let host = host_with_user(&[]);
        let cases = [
            ("{", "body is not valid JSON"),
            ("[]", "WHMCS event is not a JSON object"),
            (r#"{"product_id": 12}"#, "WHMCS event has no `event` field"),
            (
                r#"{"event": "AfterModuleUpgrade", "product_id": 12, "email": "a@b"}"#,
                "unsupported WHMCS event \"AfterModuleUpgrade\"",
            ),
            (
                r#"{"event": "AfterModuleCreate", "email": "a@b"}"#,
                "WHMCS event has no `product_id` field",
            ),
            (
                r#"{"event": "AfterModuleCreate", "product_id": "12a", "email": "a@b"}"#,
                "WHMCS event field `product_id` is \"12a\"",
            ),
            (
                r#"{"event": "AfterModuleCreate", "product_id": -1, "email": "a@b"}"#,
                "WHMCS event field `product_id` is empty or not a string/number",
            ),
            (
                r#"{"event": "AfterModuleCreate", "product_id": 12, "email": ""}"#,
                "WHMCS event field `email` is empty",
            ),
            (
                r#"{"event": "AfterModuleCreate", "product_id": 12, "email": "nobody"}"#,
                "WHMCS event field `email` is \"nobody\", not an email address",
            ),
            (
                r#"{"event": "AfterModuleCreate", "product_id": 12, "email": "a@b",
                    "occurred_at": "yesterday"}"#,
                "WHMCS event field `occurred_at` is \"yesterday\", not an RFC 3339 time",
            ),
            (
                r#"{"event": "AfterModuleCreate", "product_id": 12, "email": "a@b",
                    "occurred_at": 1767323045}"#,
                "WHMCS event field `occurred_at` is 1767323045, not an RFC 3339 time",
            ),
        ];
        for (body, expected) in cases {
            let webhook = Webhook::builder().body(body).build();
            match host.handle::<WhmcsXenforo>(&webhook) {
                Err(Failure::Reject(m)) => assert!(m.starts_with(expected), "{body}: {m}"),
                other => panic!("{body}: expected a rejection, got {other:?}"),
            }
        }
        assert!(host.fetches().is_empty());
    }

    #[test]
    fn product_ids_match_as_numbers() {
        for product in [json!(12), json!("12"), json!(" 0012 ")] {
            let host = host_with_user(&[]).setting("group_map", r#"{"012": "5"}"#);
            handled(&host, &event("AfterModuleCreate", product.clone()));
            assert_eq!(groups_sent(&host), ["5"], "{product}");
        }
    }

    #[test]
    fn bad_settings_are_rejected_by_name() {
        let cases = [
            (
                host().setting("group_map", "[5]"),
                "setting `group_map` must be a table",
            ),
            (
                host().setting("group_map", r#"{"gold": 5}"#),
                "setting `group_map`: key \"gold\" is not a WHMCS product id",
            ),
            (
                host().setting("group_map", r#"{"12": -5}"#),
                "setting `group_map`: product 12 maps to -5, not a XenForo user group id",
            ),
            (
                host().setting("group_map", r#"{"12": [5]}"#),
                "setting `group_map`: product 12 maps to [5]",
            ),
            (
                host().setting("api_user", "admin"),
                "setting `api_user` must be a XenForo user id",
            ),
            (
                host().setting("xenforo_url", "forum.example.com"),
                "setting `xenforo_url` must be an http(s) URL",
            ),
            (
                TestHost::new()
                    .setting("xenforo_url", XF)
                    .setting("group_map", "{}"),
                "setting `api_key` is not set",
            ),
            (
                TestHost::new().setting("api_key", "k"),
                "setting `xenforo_url` is not set",
            ),
            (
                TestHost::new()
                    .setting("xenforo_url", XF)
                    .setting("api_key", "k"),
                "setting `group_map` is not set",
            ),
        ];
        for (host, expected) in cases {
            match host.handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12))) {
                Err(Failure::Reject(m)) => assert!(m.starts_with(expected), "{m}"),
                other => panic!("{expected}: expected a rejection, got {other:?}"),
            }
        }
    }

    // ---- ordering -------------------------------------------------------------------------

    #[test]
    fn an_older_event_is_skipped_after_a_newer_one_was_applied() {
        let (host, board) = host_with_board(&[3, 5]);
        handled(&host, &event_at("AfterModuleSuspend", json!(12), json!(T2)));
        assert_eq!(groups_of(&board), [3]);
        let fetched = host.fetches().len();

        // The create that happened before the suspend arrives (or is retried) only now.
        handled(&host, &event_at("AfterModuleCreate", json!(12), json!(T1)));
        assert_eq!(groups_of(&board), [3], "the suspend stands");
        assert_eq!(host.fetches().len(), fetched, "XenForo was not called");
        assert_eq!(
            host.logs().last().unwrap(),
            &(
                Level::Info,
                format!(
                    "AfterModuleCreate for service 42 (occurred_at {T1}): skipped, older than \
                     AfterModuleSuspend (occurred_at {T2}, event evt_AfterModuleSuspend_{T2}) \
                     already applied to this service"
                )
            )
        );
        assert_eq!(history(&host).unwrap().0, T2);

        // A newer one applies.
        handled(
            &host,
            &event_at("AfterModuleUnsuspend", json!(12), json!(T3)),
        );
        assert_eq!(groups_of(&board), [3, 5]);
        assert_eq!(history(&host).unwrap().1, "AfterModuleUnsuspend");
    }

    #[test]
    fn a_create_retried_after_a_newer_suspend_does_not_bring_the_group_back() {
        let (host, board) = host_with_board(&[3]);
        let create = event_at("AfterModuleCreate", json!(12), json!(T1));
        let suspend = event_at("AfterModuleSuspend", json!(12), json!(T2));

        // The create's write meets a 503: nothing written, nothing recorded, retry.
        board.borrow_mut().fail_writes = 1;
        assert!(host.handle::<WhmcsXenforo>(&create).unwrap_err().is_retry());
        assert_eq!(history(&host), None);

        // The suspend is handled before the create's retry: group 5 is not there, so
        // nothing to write, but it is the service's newest event now.
        handled(&host, &suspend);
        assert_eq!(groups_of(&board), [3]);
        assert_eq!(history(&host).unwrap().0, T2);

        // The create's retry: WHMCS suspended the service after creating it, so the group
        // stays off.
        let fetched = host.fetches().len();
        handled(&host, &create);
        assert_eq!(groups_of(&board), [3]);
        assert_eq!(host.fetches().len(), fetched);
    }

    #[test]
    fn the_same_occurred_at_is_applied_again() {
        // A replay of the service's newest event re-applies it (a group removed by hand
        // comes back).
        let (host, board) = host_with_board(&[3]);
        let create = event_at("AfterModuleCreate", json!(12), json!(T1));
        handled(&host, &create);
        board.borrow_mut().groups.remove(&5);
        handled(&host, &create);
        assert_eq!(groups_of(&board), [3, 5]);
        // The same instant written another way is the same instant.
        let same = event_at(
            "AfterModuleSuspend",
            json!(12),
            json!("2026-01-02T05:04:05.000001+02:00"),
        );
        handled(&host, &same);
        assert_eq!(groups_of(&board), [3]);
    }

    #[test]
    fn events_without_occurred_at_or_service_id_apply_in_arrival_order() {
        let (host, board) = host_with_board(&[3]);
        handled(&host, &event_at("AfterModuleSuspend", json!(12), json!(T3)));
        // No occurred_at: applied, with a warning, and the record is left alone.
        handled(
            &host,
            &event_at("AfterModuleCreate", json!(12), Value::Null),
        );
        assert_eq!(groups_of(&board), [3, 5]);
        assert!(
            host.logs().contains(&(
                Level::Warn,
                "AfterModuleCreate for service 42: no `occurred_at`; \
                    applied in arrival order, without the ordering check"
                    .to_owned()
            )),
            "{:?}",
            host.logs()
        );
        assert_eq!(history(&host).unwrap().0, T3);

        // Service id 0 (the hook's value when WHMCS gave none) or missing: no history.
        for service_id in [json!(0), Value::Null] {
            let mut webhook = event_at("AfterModuleTerminate", json!(12), json!(T1));
            let mut body: Value = webhook.json().unwrap();
            if service_id.is_null() {
                body.as_object_mut().unwrap().remove("service_id");
            } else {
                body["service_id"] = service_id.clone();
            }
            webhook.body = serde_json::to_vec(&body).unwrap();
            board.borrow_mut().groups.insert(5);
            handled(&host, &webhook);
            assert_eq!(groups_of(&board), [3], "{service_id}");
        }
        assert_eq!(
            host.kv_snapshot().keys().collect::<Vec<_>>(),
            ["service/42"]
        );
    }

    #[test]
    fn history_is_kept_per_service() {
        let (host, board) = host_with_board(&[3, 5]);
        handled(&host, &event_at("AfterModuleSuspend", json!(12), json!(T3)));
        // Another service of Ada's, created earlier: its own history is empty.
        let mut webhook = event_at("AfterModuleCreate", json!(13), json!(T1));
        let mut body: Value = webhook.json().unwrap();
        body["service_id"] = json!("0043");
        webhook.body = serde_json::to_vec(&body).unwrap();
        handled(&host, &webhook);
        assert_eq!(groups_of(&board), [3, 6]);
        assert_eq!(
            host.kv_snapshot().keys().collect::<Vec<_>>(),
            ["service/42", "service/43"]
        );
    }

    #[test]
    fn an_unreadable_record_is_ignored_with_a_warning() {
        let (host, board) = host_with_board(&[3]);
        let host = host.kv_entry("service/42", "garbage");
        handled(&host, &event_at("AfterModuleCreate", json!(12), json!(T1)));
        assert_eq!(groups_of(&board), [3, 5]);
        assert!(
            host.logs().contains(&(
                Level::Warn,
                "kv `service/42` holds \"garbage\", not a record of \
                    an applied event; ignored"
                    .to_owned()
            )),
            "{:?}",
            host.logs()
        );
        assert_eq!(history(&host).unwrap().0, T1, "replaced by a good record");
    }

    #[test]
    fn the_record_never_moves_back() {
        // An event handled at the same time recorded a newer one after this event's check.
        let host = host().kv_entry(
            "service/42",
            json!({"occurred_at": T3, "event": "AfterModuleTerminate", "event_id": "evt_t"})
                .to_string(),
        );
        let webhook = event_at("AfterModuleCreate", json!(12), json!(T1));
        let event = ServiceEvent::parse(&webhook).unwrap();
        let ctx = host.ctx();
        let history_of = ServiceHistory::new(&ctx, &event);
        assert_eq!(
            history_of.newer_applied().unwrap().event,
            "AfterModuleTerminate"
        );
        history_of.record_applied(&webhook);
        assert_eq!(history(&host).unwrap().0, T3);
    }

    #[test]
    fn occurred_at_is_rfc_3339() {
        let at = |text: &str| OccurredAt::parse(text).map(|t| t.instant);
        assert_eq!(at("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(at("2026-01-02T03:04:05Z"), Some((1_767_323_045, 0)));
        assert_eq!(
            at("2026-01-02t03:04:05.5z"),
            Some((1_767_323_045, 500_000_000))
        );
        assert_eq!(
            at("2026-01-02 03:04:05.123456Z"),
            Some((1_767_323_045, 123_456_000))
        );
        assert_eq!(
            at("2026-01-02T03:04:05.1234567891Z"),
            Some((1_767_323_045, 123_456_789))
        );
        assert_eq!(at("2026-01-02T05:34:05+02:30"), at("2026-01-02T03:04:05Z"));
        assert_eq!(at("2026-01-01T22:04:05-05:00"), at("2026-01-02T03:04:05Z"));
        assert_eq!(at("2024-02-29T00:00:00Z"), Some((1_709_164_800, 0)));
        assert!(at(T1) < at(T2) && at(T2) < at(T3));
        assert!(at("2026-01-02T03:04:05.9Z") < at("2026-01-02T03:04:06Z"));
        for bad in [
            "",
            "2026-01-02",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04:05+0200",
            "2026-01-02T03:04:05+2:00",
            "2026-01-02T03:04:05.Z",
            "2026-01-02T03:04:05Zjunk",
            "2026-13-02T03:04:05Z",
            "2025-02-29T03:04:05Z",
            "2026-01-02T24:00:00Z",
            "2026-01-02T03:60:00Z",
            "2026/01/02T03:04:05Z",
            "+026-01-02T03:04:05Z",
            "2026-01-02T03:04:05+24:00",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }
}
