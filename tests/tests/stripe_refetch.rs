//! Stripe "webhook + REST in tandem" end to end: with `settings.refetch = true` the real
//! `stripe.wasm` fetches the event's object from a fake Stripe API through the host's
//! `http.fetch` before forwarding, because Stripe does not guarantee event order.
//!
//! The fake API speaks Stripe's wire format (VENDORS.md): `GET /v1/{resource}/{id}` with
//! `Authorization: Bearer sk_…`, errors as `{"error":{"type","code","message"}}`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

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
