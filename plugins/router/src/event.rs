//! The received event as the routes see it: the body read once as JSON and as a form, the
//! event type, and the dedupe key.

use serde::Deserialize;
use serde_json::Value;
use switchyard_sdk::{Form, Webhook};

/// The headers that name the event type when neither the JSON body nor the form has a
/// `type`, in the order they are tried.
pub(crate) const EVENT_TYPE_HEADERS: [&str; 2] = ["x-github-event", "x-event-type"];

/// The headers that carry a sender's own delivery id, in the order `dedupe_key` tries them.
pub(crate) const DEDUPE_HEADERS: [&str; 3] = ["webhook-id", "svix-id", "x-github-delivery"];

/// One event, with its body parsed the ways the routes can address it.
pub(crate) struct Event<'w> {
    pub(crate) webhook: &'w Webhook,
    /// The body, when it parses as JSON (whatever its `content-type` says).
    pub(crate) json: Option<Value>,
    /// The body, when its `content-type` is `application/x-www-form-urlencoded`.
    pub(crate) form: Option<Form>,
    /// See [`Event::event_type`].
    event_type: Option<String>,
}

impl<'w> Event<'w> {
    /// Reads the body once; a body that is neither JSON nor a form is fine (its pointers
    /// and form fields are simply missing).
    pub(crate) fn new(webhook: &'w Webhook) -> Event<'w> {
        let json = serde_json::from_slice::<Value>(&webhook.body).ok();
        let form = is_form(webhook).then(|| webhook.form().ok()).flatten();
        let event_type = json
            .as_ref()
            .and_then(|body| body.get("type"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .or_else(|| {
                form.as_ref()
                    .and_then(|f| f.get("type"))
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
            })
            .or_else(|| {
                EVENT_TYPE_HEADERS
                    .iter()
                    .filter_map(|name| webhook.header(name))
                    .map(str::trim)
                    .find(|t| !t.is_empty())
            })
            .map(str::to_owned);
        Event {
            webhook,
            json,
            form,
            event_type,
        }
    }

    /// The event type: the JSON body's top-level `type` (Stripe, Standard Webhooks
    /// payloads), else the form field `type` (Mailchimp), else the `x-github-event` header
    /// (GitHub), else `x-event-type`. The first that is a non-blank string wins.
    pub(crate) fn event_type(&self) -> Option<&str> {
        self.event_type.as_deref()
    }

    /// The JSON value at `pointer` (`None`: the body is not JSON or the pointer does not
    /// resolve).
    pub(crate) fn pointer(&self, pointer: &str) -> Option<&Value> {
        self.json.as_ref()?.pointer(pointer)
    }

    /// The first header named `name`.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.webhook.header(name)
    }

    /// The form field `key`, exactly as sent (`"email"`, `"data[email]"`); the last one
    /// when it repeats.
    pub(crate) fn form_field(&self, key: &str) -> Option<&str> {
        self.form.as_ref()?.get(key)
    }

    /// `event 01J… (type invoice.paid)`, for log lines and messages.
    pub(crate) fn describe(&self) -> String {
        match self.event_type() {
            Some(kind) => format!("event {} (type {kind})", self.webhook.id),
            None => format!("event {} (no event type)", self.webhook.id),
        }
    }
}

/// Whether the body is declared form-encoded (parameters such as `charset` ignored).
fn is_form(webhook: &Webhook) -> bool {
    webhook.header("content-type").is_some_and(|value| {
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// The sender's own id for this delivery: the `webhook-id` header (Standard Webhooks),
/// `svix-id` (the same from Svix), `x-github-delivery` (GitHub), else the top-level `id` of
/// a JSON body that says it is an event (`"object": "event"`, Stripe's envelope: `evt_…`).
/// `None` (no dedupe) otherwise.
///
/// Not any string `id`: a sender whose body is the object itself (`{"id": "ord_1",
/// "status": "paid"}`, then `"shipped"`) would have its second update taken for a repeat
/// of the first and lost; without a key it is at worst routed twice, which the
/// `Idempotency-Key`s downstream already allow for. Settings cannot change this: the host
/// gives `dedupe_key` no imports, so it cannot read them.
pub(crate) fn dedupe_key(webhook: &Webhook) -> Option<String> {
    /// Only `id` and `object` are kept; the rest of the body is checked to be JSON and
    /// skipped.
    #[derive(Deserialize)]
    struct Envelope {
        id: Option<Value>,
        object: Option<Value>,
    }

    let from_header = DEDUPE_HEADERS
        .iter()
        .filter_map(|name| webhook.header(name))
        .map(str::trim)
        .find(|id| !id.is_empty());
    if let Some(id) = from_header {
        return Some(id.to_owned());
    }
    let body = serde_json::from_slice::<Envelope>(&webhook.body).ok()?;
    if body.object.as_ref().and_then(Value::as_str) != Some("event") {
        return None;
    }
    match body.id? {
        Value::String(id) if !id.trim().is_empty() => Some(id.trim().to_owned()),
        _ => None,
    }
}
