//! Unit tests through the SDK's `TestHost`, with settings written in TOML as an operator
//! writes them and handed over as the host does (strings as-is, the rest as JSON text).

use super::*;
use crate::condition::glob;
use serde_json::{Value, json};
use switchyard_sdk::{Level, TestHost};

/// A host with the settings of a `[connector.settings]` table written in TOML.
fn host(settings: &str) -> TestHost {
    let table: toml::Table = toml::from_str(settings).expect("test settings are TOML");
    with_settings(TestHost::new(), &table)
}

/// `table`'s keys as the host passes them: strings as they are, anything else as JSON.
fn with_settings(mut host: TestHost, table: &toml::Table) -> TestHost {
    for (key, value) in table {
        let text = match value {
            toml::Value::String(text) => text.clone(),
            other => serde_json::to_string(other).unwrap(),
        };
        host = host.setting(key, text);
    }
    host
}

/// A JSON event, as a Standard Webhooks sender posts it.
fn json_event(body: Value) -> Webhook {
    Webhook::builder()
        .id("01EVENT")
        .received_at(1_700_000_000_123)
        .header("webhook-id", "msg_1")
        .json(&body)
        .build()
}

/// A form-encoded event.
fn form_event(pairs: &[(&str, &str)]) -> Webhook {
    Webhook::builder().id("01EVENT").form(pairs).build()
}

fn deliveries(host: &TestHost, webhook: &Webhook) -> Vec<Delivery> {
    host.handle::<Router>(webhook)
        .unwrap_or_else(|failure| panic!("expected deliveries, got {failure:?}"))
}

fn urls(deliveries: &[Delivery]) -> Vec<&str> {
    deliveries.iter().map(|d| d.url.as_str()).collect()
}

fn body(delivery: &Delivery) -> Value {
    serde_json::from_slice(&delivery.body).expect("a JSON body")
}

/// The URLs an event goes to under one condition (a route to `http://hit.test/`).
fn routed(condition: &str, webhook: &Webhook) -> bool {
    let host = host(&format!(
        "[[routes]]\nname = \"r\"\nwhen = {condition}\nto = [\"http://hit.test/\"]\n"
    ));
    match deliveries(&host, webhook).as_slice() {
        [] => false,
        [one] if one.url == "http://hit.test/" => true,
        other => panic!("{other:?}"),
    }
}

/// The message of the retry a settings problem causes, without its fixed frame; the
/// host's load-time check (`check-settings`) refuses the settings with the same message.
fn settings_error(settings: &str) -> String {
    let host = host(settings);
    let message = match host.handle::<Router>(&json_event(json!({"type": "x"}))) {
        Err(Failure::Retry(message)) => message
            .strip_prefix("invalid [connector.settings]: ")
            .and_then(|m| m.strip_suffix(" (the event is retried until the settings are fixed)"))
            .unwrap_or_else(|| panic!("unexpected frame: {message}"))
            .to_owned(),
        other => panic!("expected a retry for {settings}, got {other:?}"),
    };
    assert_eq!(host.check_settings::<Router>(), Err(message.clone()));
    message
}

/// [`settings_error`] for one route named "r" with `to` and the given keys.
fn route_error(keys: &str) -> String {
    settings_error(&format!(
        "[[routes]]\nname = \"r\"\nto = [\"http://a.test/\"]\n{keys}\n"
    ))
}

const STRIPE_INVOICE: &str = r#"{
  "id": "evt_1", "object": "event", "type": "invoice.paid",
  "data": {"object": {"id": "in_1", "customer": "cus_9", "amount_paid": 2000,
                      "currency": "usd", "paid": true, "lines": {"data": []}, "note": null}}
}"#;

fn stripe_invoice() -> Webhook {
    Webhook::builder()
        .id("01EVENT")
        .received_at(1_700_000_000_123)
        .header("content-type", "application/json")
        .body(STRIPE_INVOICE)
        .build()
}

// ---- the manifest ----------------------------------------------------------------------

#[test]
fn manifest_describes_the_connector() {
    let m = Router::manifest();
    assert_eq!(m.name, "router");
    assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(m.default_scheme, "standard-webhooks");
    let settings: Vec<_> = m
        .settings
        .iter()
        .map(|s| (s.name.as_str(), s.required))
        .collect();
    assert_eq!(settings, [("routes", true), ("no_match", false)]);
}

// ---- conditions ------------------------------------------------------------------------

#[test]
fn pointer_conditions() {
    let event = stripe_invoice();
    // equals: strings, numbers by value, booleans, null is not "missing" for equals.
    assert!(routed(
        r#"{ pointer = "/type", equals = "invoice.paid" }"#,
        &event
    ));
    assert!(!routed(
        r#"{ pointer = "/type", equals = "invoice.created" }"#,
        &event
    ));
    assert!(routed(
        r#"{ pointer = "/data/object/amount_paid", equals = 2000 }"#,
        &event
    ));
    assert!(routed(
        r#"{ pointer = "/data/object/amount_paid", equals = 2000.0 }"#,
        &event
    ));
    assert!(!routed(
        r#"{ pointer = "/data/object/amount_paid", equals = "2000" }"#,
        &event
    ));
    assert!(routed(
        r#"{ pointer = "/data/object/paid", equals = true }"#,
        &event
    ));
    assert!(routed(
        r#"{ pointer = "/data/object/lines", equals = { data = [] } }"#,
        &event
    ));
    // in
    assert!(routed(
        r#"{ pointer = "/type", in = ["invoice.created", "invoice.paid"] }"#,
        &event
    ));
    assert!(!routed(
        r#"{ pointer = "/type", in = ["charge.succeeded"] }"#,
        &event
    ));
    assert!(routed(
        r#"{ pointer = "/data/object/amount_paid", in = [1000, 2000] }"#,
        &event
    ));
    // glob: strings only
    assert!(routed(
        r#"{ pointer = "/type", glob = "invoice.*" }"#,
        &event
    ));
    assert!(routed(
        r#"{ pointer = "/data/object/id", glob = "in_?" }"#,
        &event
    ));
    assert!(!routed(
        r#"{ pointer = "/type", glob = "charge.*" }"#,
        &event
    ));
    assert!(!routed(
        r#"{ pointer = "/data/object/amount_paid", glob = "*" }"#,
        &event
    ));
    // exists: a pointer to null is absent
    assert!(routed(
        r#"{ pointer = "/data/object/customer", exists = true }"#,
        &event
    ));
    assert!(!routed(
        r#"{ pointer = "/data/object/customer", exists = false }"#,
        &event
    ));
    assert!(!routed(
        r#"{ pointer = "/data/object/note", exists = true }"#,
        &event
    ));
    assert!(routed(
        r#"{ pointer = "/data/object/note", exists = false }"#,
        &event
    ));
    assert!(routed(
        r#"{ pointer = "/data/object/nope", exists = false }"#,
        &event
    ));
    // A missing subject fails every other test.
    assert!(!routed(r#"{ pointer = "/nope", equals = "x" }"#, &event));
    assert!(!routed(r#"{ pointer = "/nope", glob = "*" }"#, &event));
    // `~1` is a `/` inside a key.
    let slashed = json_event(json!({"a/b": {"c~d": 1}}));
    assert!(routed(
        r#"{ pointer = "/a~1b/c~0d", equals = 1 }"#,
        &slashed
    ));
    // A body that is not JSON has no pointers.
    let text = Webhook::builder().body("invoice.paid").build();
    assert!(!routed(r#"{ pointer = "/type", glob = "*" }"#, &text));
    assert!(routed(r#"{ pointer = "/type", exists = false }"#, &text));
}

#[test]
fn header_conditions() {
    let event = Webhook::builder()
        .header("X-GitHub-Event", "pull_request")
        .header("X-Empty", "")
        .json(&json!({"action": "opened"}))
        .build();
    assert!(routed(
        r#"{ header = "x-github-event", equals = "pull_request" }"#,
        &event
    ));
    assert!(routed(
        r#"{ header = "X-GitHub-Event", equals = "pull_request" }"#,
        &event
    ));
    assert!(!routed(
        r#"{ header = "x-github-event", equals = "push" }"#,
        &event
    ));
    assert!(routed(
        r#"{ header = "x-github-event", in = ["push", "pull_request"] }"#,
        &event
    ));
    assert!(routed(
        r#"{ header = "x-github-event", glob = "pull_*" }"#,
        &event
    ));
    assert!(!routed(
        r#"{ header = "x-github-event", glob = "Pull_*" }"#,
        &event
    ));
    assert!(routed(
        r#"{ header = "x-github-event", exists = true }"#,
        &event
    ));
    assert!(routed(r#"{ header = "x-empty", exists = true }"#, &event));
    assert!(routed(
        r#"{ header = "x-missing", exists = false }"#,
        &event
    ));
    assert!(!routed(r#"{ header = "x-missing", equals = "" }"#, &event));
}

#[test]
fn form_conditions() {
    let event = form_event(&[
        ("type", "subscribe"),
        ("email", "ada@example.com"),
        ("data[merges][FNAME]", "Ada"),
        ("topic", "sales"),
        ("website", ""),
    ]);
    assert!(routed(
        r#"{ form = "email", equals = "ada@example.com" }"#,
        &event
    ));
    assert!(routed(
        r#"{ form = "data[merges][FNAME]", equals = "Ada" }"#,
        &event
    ));
    assert!(routed(
        r#"{ form = "topic", in = ["sales", "pricing"] }"#,
        &event
    ));
    assert!(routed(
        r#"{ form = "email", glob = "*@example.com" }"#,
        &event
    ));
    assert!(routed(r#"{ form = "email", exists = true }"#, &event));
    assert!(routed(r#"{ form = "website", exists = true }"#, &event));
    assert!(routed(r#"{ form = "phone", exists = false }"#, &event));
    assert!(!routed(r#"{ form = "phone", equals = "" }"#, &event));
    // A content type with parameters is still a form.
    let charset = Webhook::builder()
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .body("email=a%40b.c")
        .build();
    assert!(routed(r#"{ form = "email", equals = "a@b.c" }"#, &charset));
    // Any other content type has no form fields.
    let json = json_event(json!({"email": "a@b.c"}));
    assert!(routed(r#"{ form = "email", exists = false }"#, &json));
    let undeclared = Webhook::builder().body("email=a%40b.c").build();
    assert!(!routed(r#"{ form = "email", exists = true }"#, &undeclared));
}

#[test]
fn the_event_type_comes_from_the_body_the_form_then_the_headers() {
    let condition = r#"{ event_type = true, equals = "wanted" }"#;
    // JSON `/type` first, even when a header says otherwise.
    let json = Webhook::builder()
        .header("x-github-event", "other")
        .json(&json!({"type": "wanted"}))
        .build();
    assert!(routed(condition, &json));
    // A `/type` that is not a non-blank string does not count.
    for body in [json!({"type": 5}), json!({"type": " "}), json!(["wanted"])] {
        let event = Webhook::builder()
            .header("x-github-event", "wanted")
            .json(&body)
            .build();
        assert!(routed(condition, &event), "{body}");
    }
    // The form's `type`.
    assert!(routed(condition, &form_event(&[("type", "wanted")])));
    // Then x-github-event, then x-event-type.
    let github = Webhook::builder()
        .header("x-github-event", "wanted")
        .header("x-event-type", "other")
        .json(&json!({"action": "opened"}))
        .build();
    assert!(routed(condition, &github));
    let generic = Webhook::builder()
        .header("x-event-type", "wanted")
        .body("raw")
        .build();
    assert!(routed(condition, &generic));
    // None at all.
    let none = Webhook::builder().json(&json!({"kind": "wanted"})).build();
    assert!(!routed(condition, &none));
    assert!(routed("{ event_type = true, exists = false }", &none));
    assert!(routed(
        r#"{ event_type = true, glob = "invoice.*" }"#,
        &stripe_invoice()
    ));
}

#[test]
fn a_list_of_conditions_must_all_hold_and_no_when_matches_everything() {
    let event = stripe_invoice();
    assert!(routed(
        r#"[{ event_type = true, glob = "invoice.*" }, { pointer = "/data/object/paid", equals = true }]"#,
        &event
    ));
    assert!(!routed(
        r#"[{ event_type = true, glob = "invoice.*" }, { pointer = "/data/object/paid", equals = false }]"#,
        &event
    ));
    assert!(routed("[]", &event), "an empty list holds");
    let host = host("[[routes]]\nname = \"all\"\nto = [\"http://all.test/\"]\n");
    for webhook in [event, form_event(&[("a", "b")]), Webhook::builder().build()] {
        assert_eq!(urls(&deliveries(&host, &webhook)), ["http://all.test/"]);
    }
}

#[test]
fn glob_patterns() {
    let cases = [
        ("invoice.*", "invoice.paid", true),
        ("invoice.*", "invoice.payment_failed", true),
        ("invoice.*", "invoice.", true),
        ("invoice.*", "invoices", false),
        ("invoice.*", "invoice", false),
        ("*", "", true),
        ("*", "anything.at.all", true),
        ("", "", true),
        ("", "x", false),
        ("?", "x", true),
        ("?", "", false),
        ("?", "xy", false),
        ("in_???", "in_123", true),
        ("*.paid", "invoice.payment.paid", true),
        ("*.paid", "invoice.paid.later", false),
        ("a*b*c", "aXXbYYbZZc", true),
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "acb", false),
        ("**", "x", true),
        ("*x", "yyyyyyyyyyyyyyyyyyyyyyyyyyyyy", false),
        ("customer.*.created", "customer.subscription.created", true),
        ("Invoice.*", "invoice.paid", false),
        ("é?", "éü", true),
    ];
    for (pattern, text, expected) in cases {
        assert_eq!(glob(pattern, text), expected, "{pattern:?} vs {text:?}");
    }
}

// ---- routes, fan-out, stop ---------------------------------------------------------------

const FAN_OUT: &str = r#"
[[routes]]
name = "invoices"
when = { event_type = true, glob = "invoice.*" }
to = ["http://billing.test/a", "http://billing.test/b"]
method = "put"
headers = { x-route = "invoices", Authorization = "Bearer t" }

[[routes]]
name = "paid"
when = { pointer = "/data/object/paid", equals = true }
to = "destination:ledger"

[[routes]]
name = "audit"
to = ["http://audit.test/all"]
"#;

#[test]
fn every_matching_route_adds_one_delivery_per_destination_in_order() {
    let host = host(FAN_OUT);
    let out = deliveries(&host, &stripe_invoice());
    assert_eq!(
        urls(&out),
        [
            "http://billing.test/a",
            "http://billing.test/b",
            "destination:ledger",
            "http://audit.test/all"
        ]
    );
    for delivery in &out {
        assert_eq!(
            delivery.body,
            STRIPE_INVOICE.as_bytes(),
            "forwarded unchanged"
        );
        assert_eq!(
            delivery.header_value("content-type"),
            Some("application/json")
        );
    }
    assert_eq!(out[0].method, "PUT");
    assert_eq!(out[0].header_value("x-route"), Some("invoices"));
    assert_eq!(out[0].header_value("authorization"), Some("Bearer t"));
    assert_eq!(out[2].method, "POST");
    assert_eq!(out[2].header_value("x-route"), None);
    assert_eq!(
        host.logs(),
        [(
            Level::Info,
            "event 01EVENT (type invoice.paid): routes \"invoices\", \"paid\", \"audit\" → 4 \
             deliveries"
                .to_owned()
        )]
    );

    // Another event takes only the routes that match it.
    let host = self::host(FAN_OUT);
    let out = deliveries(&host, &json_event(json!({"type": "customer.created"})));
    assert_eq!(urls(&out), ["http://audit.test/all"]);
    assert_eq!(
        host.logs()[0].1,
        "event 01EVENT (type customer.created): route \"audit\" → 1 delivery"
    );
}

#[test]
fn a_body_is_forwarded_byte_for_byte_with_its_own_content_type() {
    let host = host("[[routes]]\nname = \"all\"\nto = [\"http://all.test/\"]\n");
    let form = form_event(&[("email", "a@b.c"), ("ids[]", "1")]);
    let out = deliveries(&host, &form);
    assert_eq!(out[0].body, form.body);
    assert_eq!(
        out[0].header_value("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // No content-type in, none out; nothing else of the request is forwarded.
    let raw = Webhook::builder()
        .header("webhook-signature", "v1,abc")
        .body(vec![0xff, 0x00, 0x01])
        .build();
    let out = deliveries(&host, &raw);
    assert_eq!(out[0].body, [0xff, 0x00, 0x01]);
    assert!(out[0].headers.is_empty(), "{:?}", out[0].headers);
}

#[test]
fn stop_ends_the_routing_once_its_route_matched() {
    let settings = r#"
[[routes]]
name = "main"
when = [{ header = "x-github-event", equals = "push" }, { pointer = "/ref", equals = "refs/heads/main" }]
to = ["http://deploy.test/"]
stop = true

[[routes]]
name = "pushes"
when = { header = "x-github-event", equals = "push" }
to = ["http://pushes.test/"]
stop = false

[[routes]]
name = "all"
to = ["http://all.test/"]
"#;
    let push = |branch: &str| {
        Webhook::builder()
            .header("x-github-event", "push")
            .json(&json!({"ref": format!("refs/heads/{branch}")}))
            .build()
    };
    let host = host(settings);
    assert_eq!(
        urls(&deliveries(&host, &push("main"))),
        ["http://deploy.test/"]
    );
    // A `stop` route that does not match stops nothing.
    assert_eq!(
        urls(&deliveries(&host, &push("dev"))),
        ["http://pushes.test/", "http://all.test/"]
    );
}

// ---- templates ---------------------------------------------------------------------------

#[test]
fn a_placeholder_alone_keeps_its_json_type() {
    let host = host(
        r#"
[[routes]]
name = "t"
to = ["http://t.test/"]
[routes.template]
id = "{{/id}}"
amount = "{{/data/object/amount_paid}}"
paid = "{{/data/object/paid}}"
lines = "{{/data/object/lines}}"
note = "{{/data/object/note}}"
missing = "{{/data/object/nope}}"
spaced = "{{ /type }}"
literal = 42
flag = false
list = ["{{/data/object/currency}}", 1, "{{/nope}}"]
nested = { customer = "{{/data/object/customer}}" }
"#,
    );
    let out = deliveries(&host, &stripe_invoice());
    assert_eq!(
        out[0].header_value("content-type"),
        Some("application/json")
    );
    assert_eq!(
        body(&out[0]),
        json!({
            "id": "evt_1",
            "amount": 2000,
            "paid": true,
            "lines": {"data": []},
            "note": null,
            "missing": null,
            "spaced": "invoice.paid",
            "literal": 42,
            "flag": false,
            "list": ["usd", 1, null],
            "nested": {"customer": "cus_9"},
        })
    );
}

#[test]
fn placeholders_in_longer_text_are_filled_in_as_text() {
    let host = host(
        r#"
[[routes]]
name = "t"
to = ["http://t.test/"]
[routes.template]
summary = "{{event.type}}: {{/data/object/id}} ({{/data/object/amount_paid}} {{/data/object/currency}})"
json = "lines={{/data/object/lines}} paid={{/data/object/paid}}"
missing = "[{{/nope}}][{{/data/object/note}}][{{header:x-nope}}]"
braces = "a } b }} c {"
"#,
    );
    assert_eq!(
        body(&deliveries(&host, &stripe_invoice())[0]),
        json!({
            "summary": "invoice.paid: in_1 (2000 usd)",
            "json": "lines={\"data\":[]} paid=true",
            "missing": "[][][]",
            "braces": "a } b }} c {",
        })
    );
}

#[test]
fn header_form_event_payload_and_setting_placeholders() {
    let settings = r#"
api_token = "env:API_TOKEN"
[[routes]]
name = "t"
to = ["http://t.test/"]
headers = { authorization = "Bearer {{setting:api_token}}", x-source = "{{header:x-shop}}/{{form:email}}" }
[routes.template]
shop = "{{header:X-Shop}}"
email = "{{form:email}}"
first_name = "{{form:data[merges][FNAME]}}"
absent_form = "{{form:nope}}"
absent_header = "{{header:x-nope}}"
id = "{{event.id}}"
type = "{{event.type}}"
received_at = "{{event.received_at}}"
at_text = "at {{event.received_at}}"
token = "{{setting:api_token}}"
whole = "{{payload}}"
"#;
    let webhook = Webhook::builder()
        .id("01FORM")
        .received_at(1_700_000_000_123)
        .header("x-shop", "shop-1")
        .form(&[
            ("type", "subscribe"),
            ("email", "ada@example.com"),
            ("data[merges][FNAME]", "Ada"),
        ])
        .build();
    let out = deliveries(&host(settings), &webhook);
    assert_eq!(
        body(&out[0]),
        json!({
            "shop": "shop-1",
            "email": "ada@example.com",
            "first_name": "Ada",
            "absent_form": null,
            "absent_header": null,
            "id": "01FORM",
            "type": "subscribe",
            "received_at": 1_700_000_000_123u64,
            "at_text": "at 1700000000123",
            "token": "env:API_TOKEN",
            "whole": null,
        }),
        "a form body is not JSON: {{payload}} is null"
    );
    assert_eq!(
        out[0].header_value("authorization"),
        Some("Bearer env:API_TOKEN"),
        "the setting as the host resolved it (here: not at all)"
    );
    assert_eq!(
        out[0].header_value("x-source"),
        Some("shop-1/ada@example.com")
    );

    // `{{payload}}` wraps a JSON body whole.
    let host = host(
        "[[routes]]\nname = \"w\"\nto = [\"http://t.test/\"]\n\
         template = { source = \"stripe\", event = \"{{payload}}\" }\n",
    );
    let out = deliveries(&host, &stripe_invoice());
    let original: Value = serde_json::from_str(STRIPE_INVOICE).unwrap();
    assert_eq!(
        body(&out[0]),
        json!({"source": "stripe", "event": original})
    );
}

#[test]
fn a_template_can_be_any_json_value() {
    let host = host(
        r#"
[[routes]]
name = "string"
to = ["http://t.test/string"]
template = "{{/data/object/id}}"
[[routes]]
name = "list"
to = ["http://t.test/list"]
template = ["{{event.id}}", "{{/type}}"]
[[routes]]
name = "number"
to = ["http://t.test/number"]
template = 7
"#,
    );
    let out = deliveries(&host, &stripe_invoice());
    assert_eq!(out[0].body, br#""in_1""#);
    assert_eq!(body(&out[1]), json!(["01EVENT", "invoice.paid"]));
    assert_eq!(out[2].body, b"7");
}

#[test]
fn route_headers_override_the_content_type_and_are_made_safe() {
    let host = host(
        r#"
[[routes]]
name = "t"
to = ["http://t.test/"]
headers = { Content-Type = "application/vnd.example+json", x-title = "{{/title}}" }
template = { title = "{{/title}}" }
"#,
    );
    let webhook = json_event(json!({"title": "line one\r\nX-Injected: yes\tend"}));
    let out = deliveries(&host, &webhook);
    let content_types: Vec<_> = out[0]
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .collect();
    assert_eq!(
        content_types,
        [&(
            "content-type".to_owned(),
            "application/vnd.example+json".to_owned()
        )]
    );
    assert_eq!(
        out[0].header_value("x-title"),
        Some("line one  X-Injected: yes end")
    );
    assert_eq!(body(&out[0])["title"], "line one\r\nX-Injected: yes\tend");
}

// ---- no match ----------------------------------------------------------------------------

const ONLY_INVOICES: &str = r#"
[[routes]]
name = "invoices"
when = { event_type = true, glob = "invoice.*" }
to = ["http://billing.test/"]
"#;

#[test]
fn an_unmatched_event_is_dropped_with_a_log_line_by_default() {
    for settings in [
        ONLY_INVOICES.to_owned(),
        format!("no_match = \"drop\"\n{ONLY_INVOICES}"),
    ] {
        let host = host(&settings);
        let event = json_event(json!({"type": "customer.created"}));
        assert_eq!(host.handle::<Router>(&event), Ok(vec![]));
        assert_eq!(
            host.logs(),
            [(
                Level::Info,
                "event 01EVENT (type customer.created): no route matched; dropped \
                 (no_match = \"drop\")"
                    .to_owned()
            )]
        );
    }
    let host = host(ONLY_INVOICES);
    host.handle::<Router>(&Webhook::builder().id("01RAW").body("x").build())
        .unwrap();
    assert_eq!(
        host.logs()[0].1,
        "event 01RAW (no event type): no route matched; dropped (no_match = \"drop\")"
    );
}

#[test]
fn an_unmatched_event_is_rejected_with_no_match_reject() {
    let host = host(&format!("no_match = \"reject\"\n{ONLY_INVOICES}"));
    assert_eq!(
        host.handle::<Router>(&json_event(json!({"type": "customer.created"}))),
        Err(Failure::reject(
            "event 01EVENT (type customer.created): no route matched (no_match = \"reject\")"
        ))
    );
    assert_eq!(
        urls(&deliveries(&host, &stripe_invoice())),
        ["http://billing.test/"]
    );
}

// ---- settings errors -----------------------------------------------------------------------

#[test]
fn missing_or_malformed_routes_are_retried_with_the_reason() {
    assert_eq!(
        settings_error(""),
        "setting `routes` is not set: add at least one [[connector.settings.routes]] table"
    );
    let list = "setting `routes` must be a list of route tables ([[connector.settings.routes]])";
    assert_eq!(settings_error("routes = \"not json\""), list);
    assert_eq!(settings_error("routes = { name = \"a\" }"), list);
    assert_eq!(settings_error("routes = 5"), list);
    assert_eq!(
        settings_error("routes = []"),
        "setting `routes` has no routes"
    );
    assert_eq!(
        settings_error(&format!("no_match = \"ignore\"\n{ONLY_INVOICES}")),
        "setting `no_match` must be \"drop\" or \"reject\", got \"ignore\""
    );
    // A JSON string works too (the host passes strings as they are).
    let host = host(r#"routes = '[{"name": "a", "to": ["http://a.test/"]}]'"#);
    assert_eq!(
        urls(&deliveries(&host, &stripe_invoice())),
        ["http://a.test/"]
    );
}

#[test]
fn every_route_error_names_the_route() {
    let cases: &[(&str, &str)] = &[
        // the route itself
        (
            "tempalte = {}",
            "unknown field `tempalte`, expected one of `name`, `when`, `to`, `method`, \
             `headers`, `template`, `stop`",
        ),
        (
            "method = \"SEND\"",
            "method: \"SEND\" is not one of POST, PUT, PATCH, DELETE, GET",
        ),
        ("method = 1", "method: must be a string, got a number"),
        (
            "stop = \"yes\"",
            "stop: must be true or false, got a string",
        ),
        // when
        (
            "when = \"invoice.*\"",
            "when: must be a condition table or a list of them, got a string",
        ),
        (
            "when = [\"invoice.*\"]",
            "when[0]: a condition must be a table such as { pointer = \"/type\", equals = \"x\" \
             }, got a string",
        ),
        (
            "when = [{ pointer = \"/type\", equals = \"a\" }, { equals = \"b\" }]",
            "when[1]: a condition needs exactly one of pointer/header/form/event_type (found none)",
        ),
        (
            "when = { pointer = \"/type\", header = \"x-type\", equals = \"a\" }",
            "when: a condition needs exactly one of pointer/header/form/event_type (found \
             pointer and header)",
        ),
        (
            "when = { pointer = \"/type\" }",
            "when: a condition needs exactly one of equals/in/glob/exists (found none)",
        ),
        (
            "when = { pointer = \"/type\", equals = \"a\", glob = \"a*\" }",
            "when: a condition needs exactly one of equals/in/glob/exists (found equals and glob)",
        ),
        (
            "when = { pointer = \"/type\", equal = \"a\" }",
            "when: unknown field `equal`, expected one of `pointer`, `header`, `form`, \
             `event_type`, `equals`, `in`, `glob`, `exists`",
        ),
        (
            "when = { pointer = \"type\", equals = \"a\" }",
            "when: \"type\" is not a JSON pointer: it must start with `/` (e.g. \"/type\", \
             \"/data/object/id\")",
        ),
        (
            "when = { pointer = \"/a~2\", exists = true }",
            "when: \"/a~2\" is not a JSON pointer: `~` must be written `~0`, and a `/` inside a \
             key `~1`",
        ),
        (
            "when = { pointer = \"/type\", glob = 5 }",
            "when: `glob` must be a string such as \"invoice.*\", got a number",
        ),
        (
            "when = { header = \"x-count\", equals = 12 }",
            "when: header values are text: compare with strings, got 12",
        ),
        (
            "when = { form = \"n\", in = [\"1\", 2] }",
            "when: form field values are text: compare with strings, got 2",
        ),
        (
            "when = { event_type = true, equals = true }",
            "when: event type values are text: compare with strings, got true",
        ),
        (
            "when = { pointer = \"/type\", in = [] }",
            "when: `in` needs at least one value",
        ),
        (
            "when = { event_type = false, equals = \"a\" }",
            "when: `event_type = false` means nothing: `event_type = true` makes the event type \
             the subject",
        ),
        (
            "when = { header = \"bad header\", exists = true }",
            "when: \"bad header\" is not a valid header name",
        ),
        (
            "when = { form = \" \", exists = true }",
            "when: `form` names no field",
        ),
        (
            "when = { pointer = \"/type\", exists = \"yes\" }",
            "when: invalid type: string \"yes\", expected a boolean",
        ),
        // headers
        (
            "headers = \"x\"",
            "headers: must be a table of header name = value, got a string",
        ),
        (
            "headers = { \"bad name\" = \"x\" }",
            "headers: \"bad name\" is not a valid header name",
        ),
        (
            "headers = { Idempotency-Key = \"x\" }",
            "headers: `idempotency-key` is set by the host and cannot be set by a route",
        ),
        (
            "headers = { content-length = \"1\" }",
            "headers: `content-length` is set by the host and cannot be set by a route",
        ),
        (
            "headers = { x-a = \"1\", X-A = \"2\" }",
            "headers: `x-a` is given twice (header names ignore case)",
        ),
        (
            "headers = { x-n = 5 }",
            "headers.x-n: must be a string, got a number",
        ),
        (
            "headers = { x-a = \"{{nope}}\" }",
            "headers.x-a: unknown placeholder {{nope}} (placeholders are {{/json/pointer}}, \
             {{payload}}, {{header:NAME}}, {{form:FIELD}}, {{event.id}}, {{event.type}}, \
             {{event.received_at}} or {{setting:NAME}})",
        ),
        // template
        (
            "template = { a = { b = \"{{/x\" } }",
            "template.a.b: `{{` without a closing `}}` in \"{{/x\" (placeholders are \
             {{/json/pointer}}, {{payload}}, {{header:NAME}}, {{form:FIELD}}, {{event.id}}, \
             {{event.type}}, {{event.received_at}} or {{setting:NAME}})",
        ),
        (
            "template = [1, \"{{/a~}}\"]",
            "template[1]: {{/a~}}: \"/a~\" is not a JSON pointer: `~` must be written `~0`, \
             and a `/` inside a key `~1`",
        ),
        (
            "template = { t = \"{{setting:missing}}\" }",
            "template.t: {{setting:missing}}: there is no setting `missing` in [connector.settings]",
        ),
        (
            "template = { t = \"{{header:a b}}\" }",
            "template.t: {{header:a b}}: \"a b\" is not a valid header name",
        ),
        (
            "template = { t = \"{{form:}}\" }",
            "template.t: unknown placeholder {{form:}} (placeholders are {{/json/pointer}}, \
             {{payload}}, {{header:NAME}}, {{form:FIELD}}, {{event.id}}, {{event.type}}, \
             {{event.received_at}} or {{setting:NAME}})",
        ),
    ];
    for (keys, expected) in cases {
        assert_eq!(
            route_error(keys),
            format!("route \"r\": {expected}"),
            "{keys}"
        );
    }
}

#[test]
fn destination_errors_name_the_route() {
    let cases: &[(&str, &str)] = &[
        ("", "a route needs `to`, the destination(s)"),
        ("to = []", "to: needs at least one destination"),
        (
            "to = 5",
            "to: must be a list of destination URLs, got a number",
        ),
        (
            "to = [\"http://a.test/\", 5]",
            "to[1]: must be a destination URL (a string), got a number",
        ),
        ("to = [\" \"]", "to[0]: is blank"),
        (
            "to = [\"http://a.test/ x\"]",
            "to[0]: \"http://a.test/ x\" contains spaces or control characters",
        ),
        (
            "to = [\"http://a.test/\", \" http://a.test/ \"]",
            "to[1]: \"http://a.test/\" is listed twice",
        ),
    ];
    for (to, expected) in cases {
        let settings = format!("[[routes]]\nname = \"invoices\"\n{to}\n");
        assert_eq!(
            settings_error(&settings),
            format!("route \"invoices\": {expected}"),
            "{to}"
        );
    }
    // Anything else is passed through as written (trimmed).
    let host = host(
        "[[routes]]\nname = \"r\"\nto = [\" destination:billing \", \"https://x.test/a?b=c#d\"]\n",
    );
    assert_eq!(
        urls(&deliveries(&host, &stripe_invoice())),
        ["destination:billing", "https://x.test/a?b=c#d"]
    );
}

#[test]
fn routes_without_a_usable_name_are_named_by_position() {
    let cases: &[(&str, &str)] = &[
        (
            "routes = [5]",
            "routes[0]: a route must be a table, got a number",
        ),
        (
            "[[routes]]\nname = \"a\"\nto = [\"http://a.test/\"]\n\
             [[routes]]\nto = [\"http://b.test/\"]",
            "routes[1]: a route needs a `name`",
        ),
        (
            "[[routes]]\nname = \"  \"\nto = [\"http://a.test/\"]",
            "routes[0]: `name` must not be blank",
        ),
        (
            "[[routes]]\nname = 7\nto = [\"http://a.test/\"]",
            "routes[0]: `name` must be a string, got a number",
        ),
        (
            "[[routes]]\nname = \"a\\u0007\"\nto = [\"http://a.test/\"]",
            "routes[0]: `name` \"a\\u{7}\" contains control characters",
        ),
        (
            "[[routes]]\nname = \"audit\"\nto = [\"http://a.test/\"]\n\
             [[routes]]\nname = \" audit \"\nto = [\"http://b.test/\"]",
            "route \"audit\": the name is used by an earlier route; names must be unique",
        ),
    ];
    for (settings, expected) in cases {
        assert_eq!(settings_error(settings), *expected, "{settings}");
    }
}

#[test]
fn the_first_error_wins_and_later_routes_are_checked_too() {
    let settings = r#"
[[routes]]
name = "fine"
to = ["http://a.test/"]

[[routes]]
name = "invoices"
when = [{ event_type = true, glob = "invoice.*" }, { equals = "x" }]
to = ["http://b.test/"]

[[routes]]
name = "later"
to = []
"#;
    assert_eq!(
        settings_error(settings),
        "route \"invoices\": when[1]: a condition needs exactly one of \
         pointer/header/form/event_type (found none)"
    );
    // Even an event that only the first route would take waits: half a config is not
    // applied.
    let host = host(settings);
    assert!(
        host.handle::<Router>(&stripe_invoice())
            .unwrap_err()
            .is_retry()
    );
    assert!(host.logs().is_empty());
}

// ---- dedupe --------------------------------------------------------------------------------

#[test]
fn dedupe_keys() {
    let key = |webhook: Webhook| TestHost::new().dedupe_key::<Router>(&webhook);
    let builder =
        || Webhook::builder().json(&json!({"id": "evt_1", "object": "event", "type": "x"}));
    assert_eq!(
        key(builder().header("webhook-id", " msg_1 ").build()).as_deref(),
        Some("msg_1")
    );
    assert_eq!(
        key(builder().header("svix-id", "msg_2").build()).as_deref(),
        Some("msg_2")
    );
    assert_eq!(
        key(builder()
            .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
            .build())
        .as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    assert_eq!(
        key(builder()
            .header("x-github-delivery", "gh")
            .header("webhook-id", "msg_3")
            .build())
        .as_deref(),
        Some("msg_3"),
        "webhook-id first"
    );
    assert_eq!(
        key(builder().header("webhook-id", " ").build()).as_deref(),
        Some("evt_1"),
        "a blank header is no key"
    );
    assert_eq!(key(builder().build()).as_deref(), Some("evt_1"));
    assert_eq!(key(stripe_invoice()).as_deref(), Some("evt_1"));
    for body in [
        json!({"id": 42}),
        json!({"id": ""}),
        json!({"id": null}),
        json!({"type": "x"}),
        json!([{"id": "evt_1"}]),
        json!({"data": {"id": "evt_1"}}),
        json!({"id": "evt_1", "type": "x"}),
        json!({"id": "ord_1", "status": "paid"}),
        json!({"id": "evt_1", "object": "invoice"}),
    ] {
        assert_eq!(key(Webhook::builder().json(&body).build()), None, "{body}");
    }
    assert_eq!(key(form_event(&[("id", "1")])), None);
    assert_eq!(
        key(Webhook::builder().body("{\"id\": \"evt_1\"").build()),
        None
    );
}

// ---- the README's configurations -----------------------------------------------------------

/// The ```toml blocks of README.md that configure the router, in order.
fn readme_configs() -> Vec<toml::Table> {
    let readme = include_str!("../README.md");
    let mut configs = Vec::new();
    let mut rest = readme;
    while let Some(start) = rest.find("```toml\n") {
        let block = &rest[start + "```toml\n".len()..];
        let end = block.find("```").expect("a closed code block");
        if block[..end].contains("plugin = \"router.wasm\"") {
            let table: toml::Table = toml::from_str(&block[..end])
                .unwrap_or_else(|e| panic!("README block does not parse: {e}\n{}", &block[..end]));
            configs.push(table);
        }
        rest = &block[end + 3..];
    }
    configs
}

/// A host with the settings of the only `[[connector]]` in `config`.
fn readme_host(config: &toml::Table) -> TestHost {
    let connectors = config["connector"].as_array().expect("[[connector]]");
    assert_eq!(connectors.len(), 1);
    let connector = connectors[0].as_table().unwrap();
    assert_eq!(connector["plugin"].as_str(), Some("router.wasm"));
    let settings = connector["settings"]
        .as_table()
        .expect("[connector.settings]");
    let host = with_settings(TestHost::new(), settings);
    // Every route's destinations are within allowed_hosts, as the host will require.
    let allowed: Vec<&str> = connector["allowed_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|origin| origin.as_str().unwrap())
        .collect();
    for route in settings["routes"].as_array().unwrap() {
        for to in route["to"].as_array().unwrap() {
            let to = to.as_str().unwrap();
            assert!(
                allowed
                    .iter()
                    .any(|origin| to.starts_with(&format!("{origin}/"))),
                "{to} is not in allowed_hosts {allowed:?}"
            );
        }
    }
    // The host's load-time check takes it.
    assert_eq!(host.check_settings::<Router>(), Ok(()));
    host
}

#[test]
fn the_readme_has_three_configurations() {
    let ids: Vec<String> = readme_configs()
        .iter()
        .map(|config| config["connector"][0]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["stripe", "contact-form", "github"]);
}

#[test]
fn readme_stripe_invoices_to_billing_everything_to_audit() {
    let config = &readme_configs()[0];
    let host = readme_host(config);
    let out = deliveries(&host, &stripe_invoice());
    assert_eq!(
        urls(&out),
        [
            "https://billing.internal.example/stripe/invoices",
            "https://audit.internal.example/queue/stripe"
        ]
    );
    assert_eq!(
        body(&out[0]),
        json!({
            "stripe_event": "evt_1",
            "type": "invoice.paid",
            "invoice": "in_1",
            "customer": "cus_9",
            "amount_paid": 2000,
            "currency": "usd",
            "summary": "invoice.paid: in_1 (2000 usd)",
        })
    );
    assert_eq!(
        out[0].header_value("authorization"),
        Some("Bearer env:BILLING_API_TOKEN"),
        "the host resolves the reference; TestHost passes it as written"
    );
    assert_eq!(out[1].body, STRIPE_INVOICE.as_bytes());
    assert_eq!(
        TestHost::new()
            .dedupe_key::<Router>(&stripe_invoice())
            .as_deref(),
        Some("evt_1")
    );

    let customer = json_event(json!({"id": "evt_2", "type": "customer.created"}));
    assert_eq!(
        urls(&deliveries(&readme_host(config), &customer)),
        ["https://audit.internal.example/queue/stripe"]
    );
}

#[test]
fn readme_form_submissions_to_several_destinations() {
    let config = &readme_configs()[1];
    let submission = |topic: &str| {
        Webhook::builder()
            .id("01FORM")
            .received_at(1_700_000_000_123)
            .header("x-signature", "sha256=…")
            .form(&[
                ("name", "Ada Lovelace"),
                ("email", "ada@example.com"),
                ("topic", topic),
                ("message", "How much for 10 seats?"),
            ])
            .build()
    };
    let sales = submission("pricing");
    let out = deliveries(&readme_host(config), &sales);
    assert_eq!(
        urls(&out),
        [
            "https://crm.example.com/api/leads",
            "https://chat.internal.example/hooks/sales",
            "https://archive.internal.example/forms/contact"
        ]
    );
    assert_eq!(
        body(&out[0]),
        json!({
            "email": "ada@example.com",
            "name": "Ada Lovelace",
            "topic": "pricing",
            "message": "How much for 10 seats?",
            "source": "website",
            "submitted_at": 1_700_000_000_123u64,
        })
    );
    assert_eq!(
        out[0].header_value("authorization"),
        Some("Bearer env:CRM_API_TOKEN")
    );
    assert_eq!(
        body(&out[1]),
        json!({
            "text": "New pricing enquiry from Ada Lovelace <ada@example.com>: How much for 10 \
                     seats?"
        })
    );
    assert_eq!(
        out[1].header_value("authorization"),
        Some("Bearer env:CHAT_HOOK_TOKEN")
    );
    assert_eq!(out[2].body, sales.body, "archived as received");
    assert_eq!(
        out[2].header_value("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(TestHost::new().dedupe_key::<Router>(&sales), None);

    let support = submission("support");
    assert_eq!(
        urls(&deliveries(&readme_host(config), &support)),
        [
            "https://crm.example.com/api/leads",
            "https://archive.internal.example/forms/contact"
        ]
    );
    let anonymous = form_event(&[("message", "hi")]);
    assert_eq!(
        urls(&deliveries(&readme_host(config), &anonymous)),
        ["https://archive.internal.example/forms/contact"]
    );
}

#[test]
fn readme_github_deploys_main_and_announces_pull_requests() {
    let config = &readme_configs()[2];
    let github = |event: &str, body: Value| {
        Webhook::builder()
            .id("01GH")
            .header("x-github-event", event)
            .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
            .json(&body)
            .build()
    };
    let push = |branch: &str| {
        github(
            "push",
            json!({
                "ref": format!("refs/heads/{branch}"),
                "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
                "repository": {"full_name": "octo/app"},
                "pusher": {"name": "ada"},
            }),
        )
    };

    let host = readme_host(config);
    let out = deliveries(&host, &push("main"));
    assert_eq!(urls(&out), ["https://deploy.internal.example/hooks/github"]);
    assert_eq!(
        body(&out[0]),
        json!({
            "repository": "octo/app",
            "commit": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "pusher": "ada",
        })
    );
    assert_eq!(
        out[0].header_value("x-github-delivery"),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    assert_eq!(
        out[0].header_value("authorization"),
        Some("Bearer env:DEPLOY_TOKEN")
    );
    assert_eq!(
        host.dedupe_key::<Router>(&push("main")).as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );

    assert_eq!(
        urls(&deliveries(&readme_host(config), &push("feature"))),
        ["https://audit.internal.example/queue/github-pushes"]
    );

    let pull_request = github(
        "pull_request",
        json!({
            "action": "opened",
            "number": 42,
            "repository": {"full_name": "octo/app"},
            "pull_request": {
                "title": "Add the router",
                "user": {"login": "ada"},
                "html_url": "https://github.com/octo/app/pull/42",
            },
        }),
    );
    let out = deliveries(&readme_host(config), &pull_request);
    assert_eq!(urls(&out), ["https://chat.internal.example/hooks/dev"]);
    assert_eq!(
        body(&out[0]),
        json!({
            "text": "PR #42 opened in octo/app: Add the router by ada \
                     https://github.com/octo/app/pull/42"
        })
    );

    // A closed pull request, and GitHub's ping, are dropped with a log line.
    let closed = github("pull_request", json!({"action": "closed", "number": 42}));
    let ping = github(
        "ping",
        json!({"zen": "Keep it logically awesome.", "hook_id": 1}),
    );
    for event in [closed, ping] {
        let host = readme_host(config);
        assert_eq!(host.handle::<Router>(&event), Ok(vec![]));
        assert!(
            host.logs()[0]
                .1
                .ends_with("no route matched; dropped (no_match = \"drop\")")
        );
    }
}
