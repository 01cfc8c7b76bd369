//! Switchyard connector for Stripe webhooks.
//!
//! Forwards the chosen event types to a backend as JSON. The host has already checked the
//! `Stripe-Signature` (scheme `stripe`) and dedupes on the event `id`.
//!
//! Settings (`[connector.settings]`):
//! - `forward_url` (required): where each selected event is POSTed, with
//!   `content-type: application/json`, `x-stripe-event-id` and `x-stripe-event-type`.
//! - `events`: which event types to forward, as globs (`["invoice.*", "customer.created"]`
//!   or `"invoice.*, customer.created"`). Absent: every event. Others are acknowledged and
//!   dropped with a log line.
//! - `refetch`: when `true`, the event's object is fetched from the Stripe API before
//!   forwarding and replaces `data.object`, because Stripe does not guarantee order (an
//!   `*.updated` can arrive before the `*.created`, or after a later change).
//! - `api_base` (default `https://api.stripe.com`) and `api_key` (`sk_…`, required with
//!   `refetch`): the Stripe API to refetch from. Its host must be in `allowed_hosts`.

use serde::Deserialize;
use serde_json::Value;
use switchyard_sdk::{Connector, Ctx, Delivery, Failure, Manifest, Request, Webhook};
use wildmatch::WildMatch;

/// The Stripe connector.
pub struct Stripe;

switchyard_sdk::export!(Stripe);

const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// Object types that have no retrieve endpoint of their own (they live under a parent,
/// e.g. `/v1/customers/{cus}/sources/{card}`); events about them are forwarded as received.
const NOT_REFETCHABLE: &[&str] = &[
    "bank_account",
    "capability",
    "card",
    "cash_balance",
    "customer_balance_transaction",
    "customer_cash_balance_transaction",
    "discount",
    "fee_refund",
    "line_item",
    "person",
    "transfer_reversal",
    "usage_record_summary",
];

impl Connector for Stripe {
    fn manifest() -> Manifest {
        Manifest::new("stripe", env!("CARGO_PKG_VERSION"))
            .description(
                "Forwards chosen Stripe events (optionally refetched from the API) as JSON",
            )
            .default_scheme("stripe")
            .required_setting("forward_url", "URL each selected event is POSTed to")
            .optional_setting(
                "events",
                "Event types to forward, as globs: a JSON array or a comma-separated string \
                 (e.g. [\"invoice.*\", \"customer.created\"]); default: all",
            )
            .optional_setting(
                "refetch",
                "true: replace data.object with the current object from the Stripe API \
                 before forwarding (Stripe does not guarantee order); default false",
            )
            .optional_setting(
                "api_base",
                "Stripe API base URL; default https://api.stripe.com",
            )
            .optional_setting(
                "api_key",
                "Stripe secret key (sk_…) for refetch; required with refetch",
            )
    }

    fn dedupe_key(webhook: &Webhook) -> Option<String> {
        #[derive(Deserialize)]
        struct EventId {
            id: String,
        }
        serde_json::from_slice::<EventId>(&webhook.body)
            .ok()
            .map(|e| e.id)
            .filter(|id| !id.is_empty())
    }

    fn handle(ctx: &Ctx, webhook: &Webhook) -> Result<Vec<Delivery>, Failure> {
        let forward_url = ctx.require_setting("forward_url")?;
        let filter = event_filter(ctx)?;

        let mut event: Value = webhook.json()?;
        let (id, kind) = event_id_and_type(&event)?;

        if let Some(patterns) = &filter
            && !patterns.iter().any(|p| p.matches(&kind))
        {
            ctx.info(format!(
                "event {id} of type {kind} is not in `events`; not forwarded"
            ));
            return Ok(Vec::new());
        }

        let body = if ctx.setting_bool("refetch")? && refetch(ctx, &mut event, &kind)? {
            serde_json::to_vec(&event)
                .map_err(|e| Failure::reject(format!("re-encoding event {id}: {e}")))?
        } else {
            webhook.body.clone()
        };

        Ok(vec![
            Delivery::post(forward_url)
                .header("content-type", "application/json")
                .header("x-stripe-event-id", id)
                .header("x-stripe-event-type", kind)
                .body(body),
        ])
    }
}

/// The `id` and `type` every Stripe event carries.
fn event_id_and_type(event: &Value) -> Result<(String, String), Failure> {
    let Some(fields) = event.as_object() else {
        return Err(Failure::reject("Stripe event is not a JSON object"));
    };
    let field = |name: &str| match fields.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(Failure::reject(format!(
            "Stripe event field `{name}` is not a non-empty string"
        ))),
        None => Err(Failure::reject(format!(
            "Stripe event has no `{name}` field"
        ))),
    };
    Ok((field("id")?, field("type")?))
}

/// The `events` setting as glob matchers; `None` means every event.
///
/// An `events` setting that names no pattern at all (`[]`, `""`, `","`) is rejected rather
/// than read as "all" or "none": both guesses would silently do the wrong thing to every
/// event, while a rejection shows up in the event log and can be replayed once fixed.
fn event_filter(ctx: &Ctx) -> Result<Option<Vec<WildMatch>>, Failure> {
    let Some(raw) = ctx.setting("events") else {
        return Ok(None);
    };
    let patterns: Vec<String> = if raw.trim_start().starts_with('[') {
        serde_json::from_str(&raw).map_err(|e| {
            Failure::reject(format!(
                "setting `events` is not a JSON array of strings: {e}"
            ))
        })?
    } else {
        raw.split(',').map(str::to_owned).collect()
    };
    let patterns: Vec<WildMatch> = patterns
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(WildMatch::new)
        .collect();
    if patterns.is_empty() {
        return Err(Failure::reject(
            "setting `events` lists no event types; remove it to forward every event",
        ));
    }
    Ok(Some(patterns))
}

/// Replaces `data.object` with the object's current state from the Stripe API. Returns
/// whether the event changed (`false`: forwarded as received, with a log line saying why).
fn refetch(ctx: &Ctx, event: &mut Value, kind: &str) -> Result<bool, Failure> {
    let object = &event["data"]["object"];
    let (Some(object_type), Some(object_id)) = (object["object"].as_str(), object["id"].as_str())
    else {
        return Err(Failure::reject(
            "cannot refetch: the event's `data.object` has no `object` type or `id`",
        ));
    };
    if kind.ends_with(".deleted") {
        ctx.debug(format!(
            "{kind}: {object_type} {object_id} is gone; not refetched"
        ));
        return Ok(false);
    }
    let Some(resource) = resource_path(object_type) else {
        ctx.warn(format!(
            "{object_type} objects cannot be retrieved on their own; forwarding {object_id} as received"
        ));
        return Ok(false);
    };
    // The id goes into the URL path: anything but a plain Stripe id could point elsewhere.
    if !object_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Failure::reject(format!(
            "cannot refetch: {object_type} id {object_id:?} is not a Stripe id"
        )));
    }

    let api_key = ctx.require_setting("api_key")?;
    let api_base = ctx.setting_or("api_base", DEFAULT_API_BASE);
    let url = format!(
        "{}/v1/{resource}/{object_id}",
        api_base.trim_end_matches('/')
    );
    let mut request = Request::get(url).bearer_auth(api_key);
    // Render the object with the event's API version so it has the shape the backend
    // already parses in events, and read it from the connected account for Connect events.
    if let Some(version) = event["api_version"].as_str() {
        request = request.header("stripe-version", version);
    }
    if let Some(account) = event["account"].as_str() {
        request = request.header("stripe-account", account);
    }

    let context = format!("refetching {object_type} {object_id}");
    let current: Value = ctx
        .fetch(request)
        .map_err(|e| Failure::from(e).context(&context))?
        .error_for_status()
        .map_err(|f| f.context(&context))?
        .json()
        .map_err(|f: Failure| f.context(&context))?;
    if !current.is_object() {
        return Err(Failure::retry(format!(
            "{context}: the API answered with a non-object"
        )));
    }
    ctx.info(format!("refetched {object_type} {object_id}"));
    event["data"]["object"] = current;
    Ok(true)
}

/// The API path for an object type: `payment_intent` → `payment_intents`,
/// `checkout.session` → `checkout/sessions`; `None` for objects without a retrieve
/// endpoint of their own.
fn resource_path(object_type: &str) -> Option<String> {
    if NOT_REFETCHABLE.contains(&object_type)
        || object_type.is_empty()
        || !object_type
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
    {
        return None;
    }
    Some(format!("{}s", object_type.replace('.', "/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_sdk::{FetchError, Level, Response, TestHost};

    const FORWARD: &str = "http://127.0.0.1:9000/billing";

    /// A Stripe event as sent, with deliberate spacing to prove the body is forwarded
    /// byte for byte.
    const INVOICE_PAID: &str = r#"{
  "id": "evt_1NqXk2",
  "object": "event",
  "api_version": "2023-10-16",
  "created": 1700000000,
  "data": {"object": {"id": "in_1Nq", "object": "invoice", "status": "open"}},
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": "invoice.paid"
}"#;

    fn event(kind: &str, object: Value) -> Webhook {
        Webhook::builder()
            .connector("stripe")
            .json(&json!({
                "id": "evt_1", "object": "event", "api_version": "2023-10-16",
                "data": {"object": object}, "type": kind,
            }))
            .build()
    }

    fn raw(body: &str) -> Webhook {
        Webhook::builder().connector("stripe").body(body).build()
    }

    fn host() -> TestHost {
        TestHost::new().setting("forward_url", FORWARD)
    }

    fn refetch_host() -> TestHost {
        host()
            .setting("refetch", "true")
            .setting("api_key", "sk_test_123")
            .setting("api_base", "http://stripe.test/")
    }

    fn sent_body(deliveries: &[Delivery]) -> Value {
        serde_json::from_slice(&deliveries[0].body).unwrap()
    }

    #[test]
    fn manifest_describes_the_connector() {
        let m = Stripe::manifest();
        assert_eq!(m.name, "stripe");
        assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(m.default_scheme, "stripe");
        let names: Vec<_> = m
            .settings
            .iter()
            .map(|s| (s.name.as_str(), s.required))
            .collect();
        assert_eq!(
            names,
            [
                ("forward_url", true),
                ("events", false),
                ("refetch", false),
                ("api_base", false),
                ("api_key", false)
            ]
        );
    }

    #[test]
    fn dedupe_key_is_the_event_id() {
        let host = TestHost::new();
        assert_eq!(
            host.dedupe_key::<Stripe>(&raw(INVOICE_PAID)).as_deref(),
            Some("evt_1NqXk2")
        );
        assert_eq!(host.dedupe_key::<Stripe>(&raw("not json")), None);
        assert_eq!(host.dedupe_key::<Stripe>(&raw(r#"{"type":"x"}"#)), None);
        assert_eq!(host.dedupe_key::<Stripe>(&raw(r#"{"id":42}"#)), None);
        assert_eq!(host.dedupe_key::<Stripe>(&raw(r#"{"id":""}"#)), None);
    }

    #[test]
    fn forwards_every_event_unchanged_by_default() {
        let host = host();
        let out = host.handle::<Stripe>(&raw(INVOICE_PAID)).unwrap();
        assert_eq!(
            out,
            vec![
                Delivery::post(FORWARD)
                    .header("content-type", "application/json")
                    .header("x-stripe-event-id", "evt_1NqXk2")
                    .header("x-stripe-event-type", "invoice.paid")
                    .body(INVOICE_PAID)
            ]
        );
        assert!(host.fetches().is_empty());
    }

    #[test]
    fn events_json_array_of_globs() {
        let host = host().setting("events", r#"["invoice.*", "customer.created"]"#);
        assert_eq!(host.handle::<Stripe>(&raw(INVOICE_PAID)).unwrap().len(), 1);
        assert_eq!(
            host.handle::<Stripe>(&event("customer.created", json!({})))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            host.handle::<Stripe>(&event("customer.updated", json!({}))),
            Ok(vec![])
        );
        assert_eq!(
            host.logs(),
            [(
                Level::Info,
                "event evt_1 of type customer.updated is not in `events`; not forwarded".to_owned()
            )]
        );
    }

    #[test]
    fn events_comma_separated() {
        let host = host().setting("events", " payment_intent.* , charge.refunded,");
        assert_eq!(
            host.handle::<Stripe>(&event("payment_intent.succeeded", json!({})))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            host.handle::<Stripe>(&event("charge.refunded", json!({})))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            host.handle::<Stripe>(&event("charge.captured", json!({}))),
            Ok(vec![])
        );
        assert_eq!(host.handle::<Stripe>(&raw(INVOICE_PAID)), Ok(vec![]));
    }

    #[test]
    fn bad_events_setting_is_rejected() {
        for bad in [r#"["invoice.*""#, r#"[1, 2]"#] {
            let err = host()
                .setting("events", bad)
                .handle::<Stripe>(&raw(INVOICE_PAID))
                .unwrap_err();
            assert!(
                matches!(&err, Failure::Reject(m) if m.starts_with("setting `events` is not a JSON array")),
                "{err:?}"
            );
        }
        for empty in ["[]", "", " , "] {
            let err = host()
                .setting("events", empty)
                .handle::<Stripe>(&raw(INVOICE_PAID))
                .unwrap_err();
            assert!(
                matches!(&err, Failure::Reject(m) if m.contains("lists no event types")),
                "{err:?}"
            );
        }
    }

    #[test]
    fn missing_forward_url_is_rejected() {
        assert_eq!(
            TestHost::new().handle::<Stripe>(&raw(INVOICE_PAID)),
            Err(Failure::Reject("setting `forward_url` is not set".into()))
        );
    }

    #[test]
    fn malformed_events_are_rejected() {
        let host = host();
        let cases = [
            ("{\"id\":", "body is not valid JSON"),
            ("[1]", "Stripe event is not a JSON object"),
            (
                r#"{"type":"invoice.paid"}"#,
                "Stripe event has no `id` field",
            ),
            (r#"{"id":"evt_1"}"#, "Stripe event has no `type` field"),
            (
                r#"{"id":"evt_1","type":7}"#,
                "Stripe event field `type` is not a non-empty string",
            ),
        ];
        for (body, expected) in cases {
            match host.handle::<Stripe>(&raw(body)) {
                Err(Failure::Reject(m)) => assert!(m.starts_with(expected), "{body}: {m}"),
                other => panic!("{body}: expected a rejection, got {other:?}"),
            }
        }
    }

    #[test]
    fn refetch_replaces_the_object() {
        let current = json!({"id": "in_1Nq", "object": "invoice", "status": "paid"});
        let host = refetch_host().fetch_response(
            "GET",
            "http://stripe.test/v1/invoices/in_1Nq",
            Response::new(200).with_json(&current),
        );
        let out = host.handle::<Stripe>(&raw(INVOICE_PAID)).unwrap();
        let sent = sent_body(&out);
        assert_eq!(sent["data"]["object"], current);
        assert_eq!(sent["id"], "evt_1NqXk2");
        assert_eq!(sent["type"], "invoice.paid");
        assert_eq!(out[0].header_value("x-stripe-event-id"), Some("evt_1NqXk2"));
        assert_eq!(
            out[0].header_value("content-type"),
            Some("application/json")
        );

        let fetches = host.fetches();
        assert_eq!(fetches.len(), 1);
        assert_eq!(fetches[0].method, "GET");
        assert_eq!(
            fetches[0].header_value("authorization"),
            Some("Bearer sk_test_123")
        );
        assert_eq!(
            fetches[0].header_value("stripe-version"),
            Some("2023-10-16")
        );
        assert_eq!(fetches[0].header_value("stripe-account"), None);
    }

    #[test]
    fn refetch_resource_paths_and_connect_account() {
        let cases = [
            (
                "payment_intent",
                "pi_1",
                "http://stripe.test/v1/payment_intents/pi_1",
            ),
            ("customer", "cus_1", "http://stripe.test/v1/customers/cus_1"),
            (
                "subscription",
                "sub_1",
                "http://stripe.test/v1/subscriptions/sub_1",
            ),
            ("charge", "ch_1", "http://stripe.test/v1/charges/ch_1"),
            (
                "checkout.session",
                "cs_1",
                "http://stripe.test/v1/checkout/sessions/cs_1",
            ),
        ];
        for (object_type, id, url) in cases {
            let host = refetch_host().on_fetch(|req| {
                Ok(Response::new(200).with_json(&json!({"id": "x", "fetched": req.url})))
            });
            let mut webhook = event("x.updated", json!({"id": id, "object": object_type}));
            let mut body: Value = webhook.json().unwrap();
            body["account"] = json!("acct_9");
            webhook.body = serde_json::to_vec(&body).unwrap();
            let out = host.handle::<Stripe>(&webhook).unwrap();
            assert_eq!(sent_body(&out)["data"]["object"]["fetched"], url);
            assert_eq!(
                host.fetches()[0].header_value("stripe-account"),
                Some("acct_9")
            );
        }
    }

    #[test]
    fn refetch_uses_the_default_api_base() {
        let host = host()
            .setting("refetch", "true")
            .setting("api_key", "sk_test_123")
            .fetch_response(
                "GET",
                "https://api.stripe.com/v1/invoices/in_1Nq",
                Response::new(200).with_json(&json!({"id": "in_1Nq"})),
            );
        assert!(host.handle::<Stripe>(&raw(INVOICE_PAID)).is_ok());
    }

    #[test]
    fn refetch_errors_reject_or_retry() {
        let url = "http://stripe.test/v1/invoices/in_1Nq";
        let not_found = Response::new(404).with_json(
            &json!({"error": {"type": "invalid_request_error", "code": "resource_missing"}}),
        );
        let err = refetch_host()
            .fetch_response("GET", url, not_found)
            .handle::<Stripe>(&raw(INVOICE_PAID))
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Reject(m) if m.starts_with("refetching invoice in_1Nq: HTTP 404")),
            "{err:?}"
        );

        for status in [500, 503, 429] {
            let err = refetch_host()
                .fetch_response("GET", url, Response::new(status))
                .handle::<Stripe>(&raw(INVOICE_PAID))
                .unwrap_err();
            assert!(err.is_retry(), "{status}: {err:?}");
        }
        for error in [
            FetchError::Timeout,
            FetchError::Transport("connection reset".into()),
        ] {
            let err = refetch_host()
                .fetch_error("GET", url, error)
                .handle::<Stripe>(&raw(INVOICE_PAID))
                .unwrap_err();
            assert!(err.is_retry(), "{err:?}");
        }
        let err = refetch_host()
            .handle::<Stripe>(&raw(INVOICE_PAID))
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Reject(m) if m.contains("fetch denied")),
            "{err:?}"
        );
        let html = Response::new(200).with_body("<html>");
        let err = refetch_host()
            .fetch_response("GET", url, html)
            .handle::<Stripe>(&raw(INVOICE_PAID))
            .unwrap_err();
        assert!(err.is_retry(), "{err:?}");
    }

    #[test]
    fn refetch_needs_an_api_key_and_an_object() {
        let host = host().setting("refetch", "true");
        assert_eq!(
            host.handle::<Stripe>(&raw(INVOICE_PAID)),
            Err(Failure::Reject("setting `api_key` is not set".into()))
        );
        let err = refetch_host()
            .handle::<Stripe>(&event("invoice.paid", json!({"status": "paid"})))
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Reject(m) if m.contains("`data.object`")),
            "{err:?}"
        );
        let err = refetch_host()
            .handle::<Stripe>(&event(
                "invoice.paid",
                json!({"id": "in_1/../../x", "object": "invoice"}),
            ))
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Reject(m) if m.contains("is not a Stripe id")),
            "{err:?}"
        );
    }

    #[test]
    fn refetch_skips_deleted_and_nested_objects() {
        let host = refetch_host();
        let deleted = event(
            "customer.deleted",
            json!({"id": "cus_1", "object": "customer"}),
        );
        let out = host.handle::<Stripe>(&deleted).unwrap();
        assert_eq!(out[0].body, deleted.body);
        let card = event(
            "customer.source.updated",
            json!({"id": "card_1", "object": "card"}),
        );
        let out = host.handle::<Stripe>(&card).unwrap();
        assert_eq!(out[0].body, card.body);
        assert!(host.fetches().is_empty());
        assert_eq!(host.logs().last().map(|(l, _)| *l), Some(Level::Warn));
    }

    #[test]
    fn refetch_off_does_not_fetch() {
        let host = host().setting("refetch", "false").setting("api_key", "sk");
        let out = host.handle::<Stripe>(&raw(INVOICE_PAID)).unwrap();
        assert_eq!(out[0].body, INVOICE_PAID.as_bytes());
        assert!(host.fetches().is_empty());
        let err = host_with_bad_flag()
            .handle::<Stripe>(&raw(INVOICE_PAID))
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Reject(m) if m.contains("`refetch`")),
            "{err:?}"
        );
    }

    fn host_with_bad_flag() -> TestHost {
        host().setting("refetch", "sometimes")
    }

    #[test]
    fn refetch_not_done_for_unselected_events() {
        let host = refetch_host().setting("events", "customer.*");
        assert_eq!(host.handle::<Stripe>(&raw(INVOICE_PAID)), Ok(vec![]));
        assert!(host.fetches().is_empty());
    }
}
