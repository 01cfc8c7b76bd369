//! The `router` connector end to end: the built component in a real host, a signed
//! Standard Webhooks event fanned out to two receiver paths (one through a template), and
//! a settings error that keeps events retrying until the config is fixed (run
//! `make plugins` first). `plugins/router/README.md` describes the settings.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::Config;
use switchyard_tests::*;

/// The sender's Standard Webhooks secret (`whsec_` + base64 of 24 bytes).
const SECRET: &str = "whsec_cm91dGVyLXRlc3Qtc2VjcmV0LTI0Ynl0ZXM=";

/// An `order.created` as a shop sends it.
const ORDER: &str =
    r#"{"type":"order.created","data":{"id":"ord_1","total":4200,"currency":"eur"}}"#;

/// The routes of the fan-out test: orders through a template, every event unchanged to the
/// audit path, and a route that never matches.
fn routes(origin: &str) -> String {
    format!(
        r#"
[[connector.settings.routes]]
name = "orders"
when = {{ event_type = true, glob = "order.*" }}
to = ["{origin}/orders"]
headers = {{ x-route = "orders" }}
[connector.settings.routes.template]
order = "{{{{/data/id}}}}"
total = "{{{{/data/total}}}}"
summary = "{{{{event.type}}}} {{{{/data/id}}}} from {{{{header:x-shop}}}}"
event = "{{{{event.id}}}}"
missing = "{{{{/data/nope}}}}"

[[connector.settings.routes]]
name = "audit"
to = ["{origin}/audit"]

[[connector.settings.routes]]
name = "never"
when = {{ header = "x-never", exists = true }}
to = ["{origin}/never"]
"#
    )
}

/// A `[[connector]]` `router` (default scheme: standard-webhooks) reaching `origin`, with
/// quick retries and `settings` (keys, then route tables).
fn connector(origin: &str, settings: &str) -> String {
    format!(
        r#"
[[connector]]
id = "router"
plugin = "router.wasm"
secret = "{SECRET}"
allowed_hosts = ["{origin}"]
[connector.retry]
initial_backoff = "200ms"
max_backoff = "200ms"
max_attempts = 50
[connector.settings]
{settings}
"#
    )
}

/// Signs `body` as message `msg_id` now, and POSTs it to `/hooks/router`.
async fn send(host: &Host, body: &[u8], msg_id: &str) -> reqwest::Response {
    let mut headers = standard_webhooks_headers(SECRET, body, msg_id);
    headers.push(("x-shop".into(), "shop-7".into()));
    host.post_hook("router", &headers, body).await
}

/// Sends a signed event that must be accepted; returns its event id.
async fn send_accepted(host: &Host, body: &[u8], msg_id: &str) -> String {
    let response = send(host, body, msg_id).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "accepted", "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_signed_event_is_fanned_out_to_two_destinations_one_through_a_template() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["router.wasm"]);
    let origin = receiver.origin();
    let host = Host::start(&(dirs.base_config() + &connector(&origin, &routes(&origin)))).await;

    let msg_id = format!("msg_{}", ulid::Ulid::new());
    let id = send_accepted(&host, ORDER.as_bytes(), &msg_id).await;
    let record = host.wait_for_status(&id, "succeeded").await;

    let mut delivered = receiver.delivered();
    delivered.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<&str> = delivered.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/audit", "/orders"]);
    let (audit, orders) = (&delivered[0], &delivered[1]);

    // The audit path gets the event exactly as signed, with its content type.
    assert_eq!(audit.method, "POST");
    assert_eq!(audit.body.as_ref(), ORDER.as_bytes());
    assert_eq!(audit.header("content-type"), Some("application/json"));
    assert_eq!(audit.header("x-route"), None);
    assert_eq!(audit.header("webhook-signature"), None, "not forwarded");

    // The orders path gets the template, filled in.
    assert_eq!(orders.method, "POST");
    assert_eq!(orders.header("content-type"), Some("application/json"));
    assert_eq!(orders.header("x-route"), Some("orders"));
    let sent: Value = serde_json::from_slice(&orders.body).unwrap();
    assert_eq!(
        sent,
        json!({
            "order": "ord_1",
            "total": 4200,
            "summary": "order.created ord_1 from shop-7",
            "event": id,
            "missing": null,
        })
    );

    // Two deliveries of one event: each with its own Idempotency-Key.
    let keys: Vec<&str> = delivered
        .iter()
        .map(|r| r.header("idempotency-key").expect("Idempotency-Key"))
        .collect();
    assert_ne!(keys[0], keys[1]);
    assert!(keys.iter().all(|k| k.starts_with(&id)), "{keys:?}");

    assert_eq!(record["dedupe_key"], msg_id);
    assert_eq!(record["verification"]["scheme"], "standard-webhooks");
    assert_eq!(record["verification"]["verified"], true);
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{record:#}");
    assert_eq!(attempts[0]["outcome"], "deliveries");
    assert_eq!(attempts[0]["deliveries"], 2);
    assert!(
        attempts[0]["logs"].to_string().contains(&format!(
            "event {id} (type order.created): routes \\\"orders\\\", \\\"audit\\\" → 2 deliveries"
        )),
        "{:#}",
        attempts[0]
    );
    let urls: Vec<&str> = record["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["request"]["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [format!("{origin}/orders"), format!("{origin}/audit")],
        "in route order"
    );

    // The sender retrying the same message is a duplicate, routed nowhere again.
    let again = send(&host, ORDER.as_bytes(), &msg_id).await;
    let answer: Value = again.json().await.unwrap();
    assert_eq!(answer, json!({"id": id, "status": "duplicate"}));

    // An event only the audit route takes; and a forged one, which reaches nothing.
    let refund = br#"{"type":"refund.created","data":{"id":"re_1"}}"#;
    let other = send_accepted(&host, refund, &format!("msg_{}", ulid::Ulid::new())).await;
    host.wait_for_status(&other, "succeeded").await;
    let forged = host
        .post_hook(
            "router",
            &[("content-type".into(), "application/json".into())],
            refund,
        )
        .await;
    assert_eq!(forged.status(), 401);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received = receiver.received();
    let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert_eq!(paths[2], "/audit");
    assert_eq!(received[2].body.as_ref(), refund);
    host.stop().await;
}

#[tokio::test]
async fn a_settings_error_is_refused_at_load_and_the_previous_config_keeps_serving() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["router.wasm"]);
    let origin = receiver.origin();
    let audit =
        format!("\n[[connector.settings.routes]]\nname = \"audit\"\nto = [\"{origin}/audit\"]\n");
    let broken = format!(
        r#"{audit}
[[connector.settings.routes]]
name = "invoices"
when = {{ event_type = true, glob = "invoice.*" }}
to = []
"#
    );
    let expected = "settings refused: route \"invoices\": to: needs at least one destination";
    let path = dirs.root.path().join("switchyard.toml");
    std::fs::write(&path, dirs.base_config() + &connector(&origin, &audit)).unwrap();
    let host = Host::start_from_file(&path).await;
    let body = br#"{"type":"invoice.paid","data":{"id":"in_1"}}"#;

    // A reload with a broken route is refused, naming the route, before any event.
    write_atomically(&path, &(dirs.base_config() + &connector(&origin, &broken)));
    let report: Value = host.admin_post("/v1/reload").await.json().await.unwrap();
    let failed = report["failed"]["router"].as_str().unwrap_or_default();
    assert!(failed.contains(expected), "{report:#}");
    let view = host.connector("router").await;
    assert!(
        view["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(expected)),
        "{view:#}"
    );
    // The previous config keeps serving: the event goes where it said.
    let id = send_accepted(&host, body, &format!("msg_{}", ulid::Ulid::new())).await;
    host.wait_for_status(&id, "succeeded").await;
    let paths: Vec<String> = receiver.delivered().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/audit"]);

    // Fixed, it loads, and the next event takes both routes.
    let fixed = broken.replace("to = []", &format!("to = [\"{origin}/invoices\"]"));
    write_atomically(&path, &(dirs.base_config() + &connector(&origin, &fixed)));
    let report: Value = host.admin_post("/v1/reload").await.json().await.unwrap();
    assert_eq!(report["failed"], json!({}), "{report:#}");
    assert!(host.connector("router").await["last_error"].is_null());
    let id = send_accepted(&host, body, &format!("msg_{}", ulid::Ulid::new())).await;
    host.wait_for_status(&id, "succeeded").await;
    let mut paths: Vec<String> = receiver.delivered().into_iter().map(|r| r.path).collect();
    paths.sort();
    assert_eq!(paths, ["/audit", "/audit", "/invoices"]);
    host.stop().await;

    // A host that starts on the broken config does not serve the connector: the sender
    // is told 503 and retries; nothing is half-applied.
    write_atomically(&path, &(dirs.base_config() + &connector(&origin, &broken)));
    let host = Host::start_from_file(&path).await;
    let view = host.connector("router").await;
    assert!(
        view["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(expected)),
        "{view:#}"
    );
    let response = send(&host, body, &format!("msg_{}", ulid::Ulid::new())).await;
    assert_eq!(response.status(), 503);
    host.stop().await;
}

/// A connector built against WIT 0.1.0 (no `check-settings`) loads and runs in a host
/// that provides 0.1.1.
#[tokio::test]
async fn a_connector_built_against_wit_0_1_0_still_loads_and_delivers() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["legacy.wasm"]);
    let config = format!(
        r#"
[[connector]]
id = "legacy"
plugin = "legacy.wasm"
scheme = "none"
allowed_hosts = ["{origin}"]
[connector.settings]
forward_url = "{origin}/old"
"#,
        origin = receiver.origin()
    );
    let host = Host::start(&(dirs.base_config() + &config)).await;
    let view = host.connector("legacy").await;
    assert!(view["last_error"].is_null(), "{view:#}");
    assert_eq!(view["name"], "legacy");
    let body = br#"{"id":"legacy-1"}"#;
    let response = host.post_hook("legacy", &[], body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    host.wait_for_status(answer["id"].as_str().unwrap(), "succeeded")
        .await;
    let got = receiver.wait_delivered(1).await;
    assert_eq!(got[0].path, "/old");
    assert_eq!(got[0].header("x-wit"), Some("0.1.0"));
    // Its dedupe-key export works too: a repeat is a duplicate.
    let again: Value = host
        .post_hook("legacy", &[], body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["status"], "duplicate", "{again:#}");
    host.stop().await;
}

/// The three configurations of the README load in the host as they are written (the
/// connector's unit tests route a sample event through each).
#[test]
fn the_readme_configurations_load_in_the_host() {
    let readme =
        std::fs::read_to_string(repo_root().join("plugins/router/README.md")).expect("README");
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap())
        .filter(|block| block.contains("plugin = \"router.wasm\""))
        .collect();
    assert_eq!(blocks.len(), 3);
    let env: HashMap<String, String> = [
        "STRIPE_WEBHOOK_SECRET",
        "BILLING_API_TOKEN",
        "CONTACT_FORM_SECRET",
        "CRM_API_TOKEN",
        "CHAT_HOOK_TOKEN",
        "GITHUB_WEBHOOK_SECRET",
        "DEPLOY_TOKEN",
    ]
    .into_iter()
    .map(|var| (var.to_owned(), format!("value-of-{var}")))
    .collect();
    let dirs = Dirs::new(&[]);
    for block in blocks {
        let config = Config::from_toml_str(&(dirs.base_config() + block), &env)
            .unwrap_or_else(|e| panic!("{e}\n{block}"));
        let connector = &config.connectors[0];
        assert_eq!(connector.plugin, "router.wasm");
        let routes: Value = serde_json::from_str(&connector.settings["routes"]).unwrap();
        assert!(routes.as_array().is_some_and(|r| !r.is_empty()), "{routes}");
        // Token settings are resolved and treated as secrets (masked in the event log).
        for (key, value) in &connector.settings {
            if key.ends_with("_token") {
                assert!(value.starts_with("value-of-"), "{key}");
                assert!(connector.secret_settings.contains(key), "{key}");
            }
        }
    }
}
