//! Stripe "webhook + REST in tandem" end to end: with `settings.refetch = true` the real
//! `stripe.wasm` fetches the event's object from a fake Stripe API through the host's
//! `http.fetch` before forwarding, because Stripe does not guarantee event order.
//!
//! The fake API speaks Stripe's wire format (docs/vendors.md): `GET /v1/{resource}/{id}` with
//! `Authorization: Bearer sk_…`, errors as `{"error":{"type","code","message"}}`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use switchyard_tests::*;

const API_KEY: &str = "sk_test_51SwitchyardRefetchKey";

/// One request the fake API got.
#[derive(Debug, Clone)]
struct ApiRequest {
    path: String,
    authorization: Option<String>,
    stripe_version: Option<String>,
}

#[derive(Default)]
struct ApiState {
    /// `/v1/invoices/in_1` → the object's current state.
    objects: HashMap<String, Value>,
    /// Statuses to answer for a path before serving it normally (500, 429…).
    script: HashMap<String, VecDeque<u16>>,
    requests: Vec<ApiRequest>,
}

/// A fake Stripe API: retrieve endpoints for the objects it is given.
#[derive(Clone)]
struct FakeStripe {
    addr: SocketAddr,
    state: Arc<Mutex<ApiState>>,
}

impl FakeStripe {
    async fn start() -> FakeStripe {
        let state = Arc::new(Mutex::new(ApiState::default()));
        let app = axum::Router::new()
            .route("/v1/{resource}/{id}", get(retrieve))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe { addr, state }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `object` at `/v1/{resource}/{object.id}`.
    fn put(&self, resource: &str, object: Value) {
        let path = format!("/v1/{resource}/{}", object["id"].as_str().unwrap());
        self.state.lock().unwrap().objects.insert(path, object);
    }

    /// Answers the next requests for `path` with these error statuses first.
    fn fail_first(&self, path: &str, statuses: &[u16]) {
        self.state
            .lock()
            .unwrap()
            .script
            .entry(path.to_owned())
            .or_default()
            .extend(statuses);
    }

    fn requests(&self) -> Vec<ApiRequest> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn stripe_error(
    status: StatusCode,
    kind: &str,
    code: &str,
    message: String,
) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"error": {"type": kind, "code": code, "message": message}})),
    )
}

async fn retrieve(
    State(state): State<Arc<Mutex<ApiState>>>,
    Path((resource, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let path = format!("/v1/{resource}/{id}");
    let mut state = state.lock().unwrap();
    state.requests.push(ApiRequest {
        path: path.clone(),
        authorization: header("authorization"),
        stripe_version: header("stripe-version"),
    });
    let given = header("authorization").unwrap_or_default();
    if given != format!("Bearer {API_KEY}") {
        // Stripe echoes only the key's last characters.
        let tail: String = given
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "api_key_invalid",
            format!("Invalid API Key provided: sk_test_****{tail}"),
        );
    }
    if let Some(status) = state.script.get_mut(&path).and_then(VecDeque::pop_front) {
        let status = StatusCode::from_u16(status).unwrap();
        return if status == StatusCode::TOO_MANY_REQUESTS {
            stripe_error(
                status,
                "invalid_request_error",
                "rate_limit",
                "Too many requests hit the API too quickly.".into(),
            )
        } else {
            stripe_error(
                status,
                "api_error",
                "api_error",
                "Something went wrong on Stripe's end.".into(),
            )
        };
    }
    match state.objects.get(&path) {
        Some(object) => (StatusCode::OK, Json(object.clone())),
        None => stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "resource_missing",
            format!("No such {}: '{id}'", resource.trim_end_matches('s')),
        ),
    }
}

/// An `invoice.paid` event whose `data.object` is a stale snapshot (`status: open`).
fn invoice_event(event_id: &str, invoice_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_700_000_000,
        "data": {"object": {"id": invoice_id, "object": "invoice", "status": "open", "amount_paid": 0}},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": "invoice.paid",
    }))
    .unwrap()
}

/// The invoice as the API has it now.
fn current_invoice(invoice_id: &str) -> Value {
    json!({"id": invoice_id, "object": "invoice", "status": "paid", "amount_paid": 2000,
           "currency": "usd", "customer": "cus_1"})
}

struct Setup {
    receiver: Receiver,
    api: FakeStripe,
    host: Host,
    _dirs: Dirs,
}

/// A host with the stripe connector in refetch mode against `api`; `allow_api` puts the
/// fake API's origin in `allowed_hosts`.
async fn setup(api_key: &str, allow_api: bool) -> Setup {
    let receiver = Receiver::start().await;
    let api = FakeStripe::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let allowed = if allow_api {
        format!(r#""{}", "{}""#, receiver.origin(), api.origin())
    } else {
        format!(r#""{}""#, receiver.origin())
    };
    let config = dirs.base_config()
        + &format!(
            r#"
[[connector]]
id = "stripe"
plugin = "stripe.wasm"
secret = "{STRIPE_SECRET}"
allowed_hosts = [{allowed}]
[connector.retry]
initial_backoff = "50ms"
max_backoff = "200ms"
max_attempts = 5
[connector.settings]
forward_url = "{origin}/billing"
refetch = true
api_base = "{api}"
api_key = "{api_key}"
"#,
            origin = receiver.origin(),
            api = api.origin(),
        );
    let host = Host::start(&config).await;
    Setup {
        receiver,
        api,
        host,
        _dirs: dirs,
    }
}

/// Sends a signed event; returns the host's event id.
async fn send(host: &Host, body: &[u8]) -> String {
    let response = host
        .post_hook("stripe", &stripe_headers(STRIPE_SECRET, body, now()), body)
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "accepted", "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn refetch_forwards_the_current_object_and_records_the_fetch_masked() {
    let Setup {
        receiver,
        api,
        host,
        _dirs,
    } = setup(API_KEY, true).await;
    api.put("invoices", current_invoice("in_fresh"));

    let stripe_id = evt_id();
    let event_id = send(&host, &invoice_event(&stripe_id, "in_fresh")).await;

    // The backend gets the event with the API's current object in place of the snapshot.
    let delivered = receiver.wait_delivered(1).await;
    let forwarded: Value = serde_json::from_slice(&delivered[0].body).unwrap();
    assert_eq!(forwarded["data"]["object"], current_invoice("in_fresh"));
    assert_eq!(forwarded["id"], stripe_id.as_str());
    assert_eq!(forwarded["type"], "invoice.paid");
    assert_eq!(forwarded["api_version"], "2024-06-20");
    assert_eq!(
        delivered[0].header("x-stripe-event-id"),
        Some(stripe_id.as_str())
    );

    // The API was asked once, with the key and the event's API version.
    let requests = api.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/v1/invoices/in_fresh");
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(requests[0].stripe_version.as_deref(), Some("2024-06-20"));

    // The attempt records the fetch, with the Authorization header masked, and the key
    // appears nowhere in the event's record.
    let record = host.wait_for_status(&event_id, "succeeded").await;
    let attempt = &record["attempts"][0];
    assert_eq!(attempt["outcome"], "deliveries");
    let fetches = attempt["fetches"].as_array().unwrap();
    assert_eq!(fetches.len(), 1, "{attempt:#}");
    assert_eq!(fetches[0]["status"], 200);
    assert_eq!(fetches[0]["request"]["method"], "GET");
    assert_eq!(
        fetches[0]["request"]["url"],
        format!("{}/v1/invoices/in_fresh", api.origin())
    );
    let headers = fetches[0]["request"]["headers"].as_array().unwrap();
    assert!(
        headers.contains(&json!(["authorization", "****"])),
        "{headers:?}"
    );
    assert!(
        !record.to_string().contains(API_KEY),
        "the API key leaked into the event record: {record:#}"
    );
    assert!(
        attempt["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "refetched invoice in_fresh"),
        "{attempt:#}"
    );
    host.stop().await;
}

#[tokio::test]
async fn an_object_stripe_does_not_know_is_dead_at_once() {
    let Setup {
        receiver,
        api,
        host,
        _dirs,
    } = setup(API_KEY, true).await;

    let event_id = send(&host, &invoice_event(&evt_id(), "in_missing")).await;

    let record = host.wait_for_status(&event_id, "dead").await;
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "a 404 is not retried: {record:#}");
    assert_eq!(attempts[0]["outcome"], "reject");
    let message = attempts[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("refetching invoice in_missing: HTTP 404"),
        "{message}"
    );
    assert!(message.contains("resource_missing"), "{message}");
    assert_eq!(attempts[0]["fetches"][0]["status"], 404);
    assert_eq!(api.requests().len(), 1);
    assert!(receiver.received().is_empty(), "nothing forwarded");
    host.stop().await;
}

#[tokio::test]
async fn a_wrong_api_key_is_dead_and_not_logged() {
    let wrong_key = "sk_test_51WrongKeyWrongKey9999";
    let Setup {
        receiver,
        api,
        host,
        _dirs,
    } = setup(wrong_key, true).await;
    api.put("invoices", current_invoice("in_fresh"));

    let event_id = send(&host, &invoice_event(&evt_id(), "in_fresh")).await;

    let record = host.wait_for_status(&event_id, "dead").await;
    assert_eq!(record["attempts"].as_array().unwrap().len(), 1);
    let message = record["attempts"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("refetching invoice in_fresh: HTTP 401"),
        "{message}"
    );
    assert!(message.contains("invalid_request_error"), "{message}");
    assert!(
        !record.to_string().contains(wrong_key),
        "the API key leaked into the event record: {record:#}"
    );
    assert!(receiver.received().is_empty());
    host.stop().await;
}

#[tokio::test]
async fn stripe_500_and_429_are_retried_then_the_event_is_forwarded() {
    let Setup {
        receiver,
        api,
        host,
        _dirs,
    } = setup(API_KEY, true).await;
    api.put("invoices", current_invoice("in_flaky"));
    api.fail_first("/v1/invoices/in_flaky", &[500, 429]);

    let event_id = send(&host, &invoice_event(&evt_id(), "in_flaky")).await;

    let record = host.wait_for_status(&event_id, "succeeded").await;
    let attempts = record["attempts"].as_array().unwrap();
    let outcomes: Vec<&str> = attempts
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "deliveries"], "{record:#}");
    assert!(
        attempts[0]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{record:#}"
    );
    assert!(
        attempts[1]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 429"),
        "{record:#}"
    );
    let statuses: Vec<&Value> = attempts
        .iter()
        .map(|a| &a["fetches"][0]["status"])
        .collect();
    assert_eq!(statuses, [&json!(500), &json!(429), &json!(200)]);
    assert_eq!(api.requests().len(), 3);

    let delivered = receiver.wait_delivered(1).await;
    let forwarded: Value = serde_json::from_slice(&delivered[0].body).unwrap();
    assert_eq!(forwarded["data"]["object"]["status"], "paid");
    assert_eq!(receiver.received().len(), 1, "forwarded once");
    host.stop().await;
}

#[tokio::test]
async fn an_api_base_outside_allowed_hosts_is_denied_and_dead() {
    let Setup {
        receiver,
        api,
        host,
        _dirs,
    } = setup(API_KEY, false).await;
    api.put("invoices", current_invoice("in_fresh"));

    let event_id = send(&host, &invoice_event(&evt_id(), "in_fresh")).await;

    let record = host.wait_for_status(&event_id, "dead").await;
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        1,
        "a denied fetch is not retried: {record:#}"
    );
    assert_eq!(attempts[0]["outcome"], "reject");
    let message = attempts[0]["message"].as_str().unwrap();
    assert!(message.contains("fetch denied"), "{message}");
    assert!(message.contains("allowed_hosts"), "{message}");
    let fetch = &attempts[0]["fetches"][0];
    assert_eq!(fetch["status"], Value::Null);
    assert!(
        fetch["error"].as_str().unwrap().contains(&api.origin()),
        "{fetch}"
    );
    assert!(api.requests().is_empty(), "the API was never reached");
    assert!(receiver.received().is_empty());
    host.stop().await;
}

/// No secret shows anywhere an operator or a sender can look: the host's own log (at
/// `debug`), the event log through the API and the CLI, error bodies, `/metrics`,
/// `switchyard check`. The scenario uses every secret: the webhook secret (a good and a bad
/// signature), the Stripe API key (sent as `Authorization` by `http.fetch`), the outbound
/// signing secret (deliveries signed with Standard Webhooks) and the admin token.
#[tokio::test]
async fn no_secret_appears_in_any_output() {
    const OUTBOUND_SECRET: &str = "whsec_TGVha0NhbmFyeU91dGJvdW5kU2VjcmV0MTIz";
    let secrets = [
        STRIPE_SECRET,
        API_KEY,
        OUTBOUND_SECRET,
        "TGVha0NhbmFyeU91dGJvdW5kU2VjcmV0MTIz",
        "LeakCanaryOutboundSecret123",
        ADMIN_TOKEN,
    ];
    let receiver = Receiver::start().await;
    let api = FakeStripe::start().await;
    api.put("invoices", current_invoice("in_leak"));
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config = dirs.base_config()
        + &format!(
            r#"
[[connector]]
id = "stripe"
plugin = "stripe.wasm"
secret = "{STRIPE_SECRET}"
outbound_secret = "{OUTBOUND_SECRET}"
allowed_hosts = ["{origin}", "{api}"]
[connector.retry]
initial_backoff = "50ms"
max_backoff = "200ms"
max_attempts = 3
[connector.settings]
forward_url = "{origin}/billing"
refetch = true
api_base = "{api}"
api_key = "{API_KEY}"
"#,
            origin = receiver.origin(),
            api = api.origin(),
        );
    let path = dirs.root.path().join("switchyard.toml");
    std::fs::write(&path, &config).unwrap();
    let host = ChildHost::start_logging(
        &path,
        "debug,cranelift=info,wasmtime=info,wasmtime_cranelift=info,sled=info",
    );
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>, headers: Vec<(String, String)>| {
        let mut request = http.post(host.url("/hooks/stripe")).body(body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        request.send()
    };

    let mut outputs: Vec<(String, String)> = Vec::new();
    // A good event (fetched with the API key, delivered signed), and one whose object the
    // API refuses (an error message in the attempt).
    let good = invoice_event(&evt_id(), "in_leak");
    let accepted: Value = post(good.clone(), stripe_headers(STRIPE_SECRET, &good, now()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let good_id = accepted["id"].as_str().unwrap().to_string();
    let missing = invoice_event(&evt_id(), "in_nowhere");
    let answer = post(
        missing.clone(),
        stripe_headers(STRIPE_SECRET, &missing, now()),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    outputs.push(("a 200".into(), answer.text().await.unwrap()));
    // A forged signature, a stale one, an unknown route.
    for (what, headers) in [
        (
            "forged",
            stripe_headers("whsec_not_the_secret", &good, now()),
        ),
        ("stale", stripe_headers(STRIPE_SECRET, &good, now() - 3600)),
    ] {
        let answer = post(good.clone(), headers).await.unwrap();
        assert_eq!(answer.status(), 401, "{what}");
        outputs.push((
            format!("the 401 for a {what} signature"),
            answer.text().await.unwrap(),
        ));
    }
    let unknown = http
        .post(host.url("/hooks/nope"))
        .body("{}")
        .send()
        .await
        .unwrap();
    outputs.push(("a 404".into(), unknown.text().await.unwrap()));

    let delivered = receiver.wait_delivered(1).await;
    assert!(delivered[0].header("webhook-signature").is_some(), "signed");
    let host_ref = &host;
    wait_for(
        "every event to settle",
        Duration::from_secs(30),
        || async move {
            let list: Value = host_ref.admin_get("/v1/events").await.json().await.unwrap();
            list["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["status"] != "pending" && e["status"] != "retrying")
        },
    )
    .await;

    let list = host.admin_get("/v1/events").await.text().await.unwrap();
    let ids: Vec<String> = serde_json::from_str::<Value>(&list).unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 4, "{list}");
    outputs.push(("GET /v1/events".into(), list));
    for id in &ids {
        let event = host
            .admin_get(&format!("/v1/events/{id}"))
            .await
            .text()
            .await
            .unwrap();
        outputs.push((format!("GET /v1/events/{id}"), event));
    }
    let good_event = host
        .admin_get(&format!("/v1/events/{good_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        good_event.contains("****"),
        "the fetch's Authorization is kept masked: {good_event}"
    );
    for route in ["/v1/connectors", "/v1/connectors/stripe"] {
        outputs.push((
            route.into(),
            host.admin_get(route).await.text().await.unwrap(),
        ));
    }
    let metrics = http.get(host.url("/metrics")).send().await.unwrap();
    outputs.push(("/metrics".into(), metrics.text().await.unwrap()));

    let cli = |args: &[&str]| {
        let output = std::process::Command::new(binary())
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)
    };
    let config_arg = path.display().to_string();
    outputs.push((
        "switchyard check".into(),
        cli(&["check", "--config", &config_arg]),
    ));
    let url = host.url("");
    for id in &ids {
        outputs.push((
            format!("switchyard events show {id}"),
            cli(&["events", "show", id, "--url", &url, "--token", ADMIN_TOKEN]),
        ));
    }
    outputs.push((
        "switchyard events list".into(),
        cli(&["events", "list", "--url", &url, "--token", ADMIN_TOKEN]),
    ));
    outputs.push(("the host's log".into(), host.log.lock().unwrap().clone()));

    for (what, text) in &outputs {
        assert!(!text.is_empty(), "{what} said nothing");
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{what} shows the secret {secret:?}:\n{text}"
            );
        }
    }
    assert!(
        !outputs.last().unwrap().1.contains("panicked"),
        "the host panicked"
    );
}
