//! Named destinations end to end (issue 17): the `router` connector (run `make plugins`
//! first) delivers to `destination:ID`, and the host resolves it to the `[[destination]]`'s
//! URL with its headers, signing, limits and circuit breaker.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard::{secret, verify};
use switchyard_tests::*;

/// One test at a time in this file: the first one measures latencies, which the others'
/// load on this machine's two cores would blur.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The sender's Standard Webhooks secret (`whsec_` + base64 of 24 bytes).
const SECRET: &str = "whsec_cm91dGVyLXRlc3Qtc2VjcmV0LTI0Ynl0ZXM=";

/// A `router` connector sending every event to each of `to` (delivery URLs), granted
/// `allowed` (`allowed_hosts` entries), with tries that never run out in a test.
fn router(to: &[&str], allowed: &[&str]) -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
[[connector]]
id = "router"
plugin = "router.wasm"
secret = "{SECRET}"
allowed_hosts = [{allowed}]
[connector.retry]
initial_backoff = "100ms"
max_backoff = "200ms"
max_attempts = 1000
[[connector.settings.routes]]
name = "all"
to = [{to}]
"#,
        allowed = list(allowed),
        to = list(to),
    )
}

/// Sends one signed event that must be accepted; returns its event id.
async fn send(host: &Host, n: usize) -> String {
    let body = format!(r#"{{"type":"order.created","data":{{"n":{n}}}}}"#);
    let msg_id = format!("msg_{}", ulid::Ulid::new());
    let headers = standard_webhooks_headers(SECRET, body.as_bytes(), &msg_id);
    let response = host.post_hook("router", &headers, body.as_bytes()).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    answer["id"].as_str().unwrap().to_owned()
}

/// The `Idempotency-Key`s `receiver` answered with a 2xx.
fn keys(receiver: &Receiver) -> HashSet<String> {
    receiver
        .delivered()
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(str::to_owned))
        .collect()
}

async fn destination(host: &Host, id: &str) -> Value {
    let response = host.admin_get(&format!("/v1/destinations/{id}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Sends `n` events one after the other and returns, for each, how long after its send
/// `receiver` got it (sorted).
async fn latencies(host: &Host, receiver: &Receiver, n: usize) -> Vec<Duration> {
    let mut sent = Vec::new();
    for i in 0..n {
        // One at a time, as a quiet sender would: each latency is the pipeline's own.
        let before = receiver.delivered().len();
        let at = Instant::now();
        let id = send(host, i).await;
        sent.push((id, at));
        receiver.wait_delivered(before + 1).await;
    }
    let delivered = receiver.delivered();
    let mut out: Vec<Duration> = sent
        .iter()
        .map(|(id, at)| {
            let got = delivered
                .iter()
                .find(|r| {
                    r.header("idempotency-key")
                        .is_some_and(|k| k.starts_with(id.as_str()))
                })
                .unwrap_or_else(|| panic!("event {id} not delivered"));
            got.at - *at
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_destination_failing_forever_opens_keeps_its_deliveries_and_does_not_slow_the_others() {
    let _serial = SERIAL.lock().await;
    const EVENTS: usize = 20;
    let (healthy, broken, alerts) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    broken.otherwise(Some(503));
    let destinations = format!(
        r#"
[[destination]]
id = "healthy"
url = "{healthy}/in"

[[destination]]
id = "broken"
url = "{broken}/in"
breaker_failures = 3
breaker_cooldown = "300ms"
disable_after = "2s"
[destination.retry]
initial_backoff = "100ms"
max_backoff = "200ms"

[alerts]
url = "{alerts}/alerts"
"#,
        healthy = healthy.origin(),
        broken = broken.origin(),
        alerts = alerts.origin(),
    );
    let dirs = Dirs::new(&["router.wasm"]);
    let grants = ["destination:healthy", "destination:broken"];

    // The same events to the healthy destination alone first: its latency without the
    // failing one.
    let alone = Host::start(
        &(dirs.base_config() + &destinations + &router(&["destination:healthy"], &grants)),
    )
    .await;
    let baseline = latencies(&alone, &healthy, EVENTS).await;
    alone.stop().await;

    let host = Host::start(
        &(dirs.base_config()
            + &destinations
            + &router(&["destination:healthy", "destination:broken"], &grants)),
    )
    .await;
    let before = healthy.delivered().len();
    let beside = latencies(&host, &healthy, EVENTS).await;
    assert_eq!(healthy.delivered().len(), before + EVENTS);
    let median = |l: &[Duration]| l[l.len() / 2];
    eprintln!(
        "healthy destination, median latency: {:?} alone, {:?} beside the failing one",
        median(&baseline),
        median(&beside)
    );
    // Within 2× of the run without the failing destination (plus 20 ms, this machine's
    // scheduling noise on a few-millisecond figure).
    assert!(
        median(&beside) <= median(&baseline) * 2 + Duration::from_millis(20),
        "healthy latency beside a failing destination: median {:?}, alone {:?}",
        median(&beside),
        median(&baseline)
    );

    // The breaker opened after three failures in a row: the failing downstream saw those
    // and a probe now and then, not a try of every delivery on every backoff.
    let state = destination(&host, "broken").await;
    assert!(
        matches!(
            state["state"].as_str(),
            Some("open" | "half_open" | "disabled")
        ),
        "{state:#}"
    );
    assert_eq!(state["last_error"]["error"], "HTTP 503", "{state:#}");

    // Open for disable_after: disabled, with an alert.
    wait_for("the breaker to disable it", Duration::from_secs(20), || {
        let host = &host;
        async move { destination(host, "broken").await["state"] == "disabled" }
    })
    .await;
    let state = destination(&host, "broken").await;
    assert_eq!(state["disabled"], "breaker", "{state:#}");
    let tries_while_failing = broken.received().len();
    eprintln!("{tries_while_failing} tries reached the failing destination");
    assert!(
        tries_while_failing < EVENTS,
        "{tries_while_failing} tries reached the failing destination for {EVENTS} deliveries"
    );
    alerts.wait_delivered(1).await;
    let alert: Value = serde_json::from_slice(&alerts.delivered()[0].body).unwrap();
    assert_eq!(alert["type"], "destination.disabled", "{alert:#}");
    assert_eq!(alert["destination"]["id"], "broken");
    assert_eq!(alert["destination"]["last_error"]["error"], "HTTP 503");
    let metrics = host.http.get(host.url("/metrics")).bearer_auth(ADMIN_TOKEN);
    let metrics = metrics.send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"switchyard_destination_state{destination="broken"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"switchyard_destination_disabled_total{destination="broken"} 1"#));

    // Kept: nothing is dead, and the deliveries wait.
    let page: Value = host
        .admin_get("/v1/events?status=dead")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().map(Vec::len), Some(0), "{page:#}");

    // The downstream recovers and the operator enables it: every kept delivery arrives.
    broken.otherwise(None);
    let enabled = host.admin_post("/v1/destinations/broken/enable").await;
    assert_eq!(enabled.status(), 200);
    let enabled: Value = enabled.json().await.unwrap();
    assert_eq!(
        (enabled["state"].as_str(), enabled["disabled"].as_str()),
        (Some("closed"), Some("no"))
    );
    wait_for(
        "every kept delivery at the recovered destination",
        Duration::from_secs(60),
        || {
            let broken = broken.clone();
            async move { keys(&broken).len() >= EVENTS }
        },
    )
    .await;
    // One delivery of each event: the second of its run (`{event}-1`; `-0` went to healthy).
    let healthy_events: HashSet<String> = keys(&healthy)
        .iter()
        .filter_map(|k| k.strip_suffix("-0").map(str::to_owned))
        .collect();
    let broken_events: HashSet<String> = keys(&broken)
        .iter()
        .map(|k| {
            k.strip_suffix("-1")
                .expect("the second delivery's key")
                .to_owned()
        })
        .collect();
    assert!(broken_events.is_subset(&healthy_events));
    assert_eq!(broken_events.len(), EVENTS);
    wait_for("the enable alert", Duration::from_secs(10), || {
        let alerts = alerts.clone();
        async move { alerts.delivered().len() >= 2 }
    })
    .await;
    let alert: Value = serde_json::from_slice(&alerts.delivered()[1].body).unwrap();
    assert_eq!(alert["type"], "destination.enabled");
    host.stop().await;
}

#[tokio::test]
async fn a_rate_limit_spaces_the_deliveries_at_the_receiver() {
    let _serial = SERIAL.lock().await;
    const EVENTS: usize = 25;
    let receiver = Receiver::start().await;
    let config = format!(
        r#"
[[destination]]
id = "crm"
url = "{origin}/contacts"
rate_limit = 10
"#,
        origin = receiver.origin()
    );
    let dirs = Dirs::new(&["router.wasm"]);
    let host = Host::start(
        &(dirs.base_config() + &config + &router(&["destination:crm"], &["destination:crm"])),
    )
    .await;
    for i in 0..EVENTS {
        send(&host, i).await;
    }
    let delivered = receiver.wait_delivered(EVENTS).await;
    let mut at: Vec<Instant> = delivered.iter().map(|r| r.at).collect();
    at.sort();
    // 10 per second, evenly spaced: any 11 in a row span a second (less a little for the
    // network's jitter between the host's turns and the receiver's clock).
    for window in at.windows(11) {
        let span = window[10] - window[0];
        assert!(
            span >= Duration::from_millis(900),
            "11 deliveries within {span:?} at rate_limit = 10"
        );
    }
    let state = destination(&host, "crm").await;
    assert_eq!(state["counts"]["succeeded"], EVENTS as u64, "{state:#}");
    host.stop().await;
}

#[tokio::test]
async fn the_operator_moves_a_destination_by_config_and_the_connector_does_not_change() {
    let _serial = SERIAL.lock().await;
    let (old, new) = (Receiver::start().await, Receiver::start().await);
    let dirs = Dirs::new(&["router.wasm"]);
    let path = dirs.data().with_extension("toml");
    let write = |destinations: &str| {
        // Granted by origin: both receivers are on 127.0.0.1, each named by its own origin.
        let grants = [old.origin(), new.origin()];
        let grants: Vec<&str> = grants.iter().map(String::as_str).collect();
        let config = dirs.base_config()
            + destinations
            + &router(&["destination:billing", "destination:nowhere"], &grants);
        std::fs::write(&path, config).unwrap();
    };
    let billing = |origin: &str| {
        format!(
            r#"
[[destination]]
id = "billing"
url = "{origin}/billing"
headers = {{ Authorization = "Bearer billing-token" }}
outbound_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"#
        )
    };
    write(&billing(&old.origin()));
    let host = Host::start_from_file(&path).await;

    let first = send(&host, 1).await;
    let got = old.wait_delivered(1).await;
    let got = &got[0];
    assert_eq!(got.path, "/billing");
    assert_eq!(got.header("authorization"), Some("Bearer billing-token"));
    // Signed with the destination's secret, over the body as sent.
    let key = got.header("idempotency-key").unwrap();
    assert!(key.starts_with(&first), "{key}");
    assert_eq!(got.header("webhook-id"), Some(key));
    let verifier = verify::Verifier::new(
        verify::Scheme::StandardWebhooks,
        vec![secret::Secret::new(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )],
        Duration::from_secs(300),
    );
    let request = verify::Request {
        headers: &got.headers,
        query: "",
        body: &got.body,
    };
    verifier
        .verify(&request, now())
        .expect("the delivery verifies with the destination's secret");

    // `destination:nowhere` names no [[destination]]: that delivery waits, and the
    // connector's last delivery error says why.
    let connector = host.connector("router").await;
    assert!(
        connector["last_delivery_error"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("no [[destination]] with id `nowhere`")),
        "{connector:#}"
    );
    let record = host.event(&first).await;
    assert_ne!(record["status"], "dead", "{record:#}");

    // The operator moves billing to a new backend and adds `nowhere`, in the config only.
    let nowhere = format!(
        "\n[[destination]]\nid = \"nowhere\"\nurl = \"{}/nowhere\"\n",
        new.origin()
    );
    write(&(billing(&new.origin()) + &nowhere));
    let reload = host.admin_post("/v1/reload").await;
    assert_eq!(reload.status(), 200);
    let second = send(&host, 2).await;
    wait_for(
        "the moved and the added destination",
        Duration::from_secs(30),
        || {
            let new = new.clone();
            async move {
                let paths: HashSet<String> =
                    new.delivered().iter().map(|r| r.path.clone()).collect();
                paths.contains("/billing") && paths.contains("/nowhere")
            }
        },
    )
    .await;
    assert_eq!(old.delivered().len(), 1, "nothing more to the old backend");
    host.wait_for_status(&first, "succeeded").await;
    host.wait_for_status(&second, "succeeded").await;
    host.stop().await;
}

#[tokio::test]
async fn a_destination_the_connector_is_not_granted_is_refused_and_the_api_knows_them_all() {
    let _serial = SERIAL.lock().await;
    let receiver = Receiver::start().await;
    let config = format!(
        r#"
[[destination]]
id = "ledger"
url = "{origin}/ledger"

[[destination]]
id = "audit"
url = "{origin}/audit"
"#,
        origin = receiver.origin()
    );
    let dirs = Dirs::new(&["router.wasm"]);
    let host = Host::start(
        &(dirs.base_config()
            + &config
            + &router(
                &["destination:audit", "destination:ledger"],
                &["destination:audit"],
            )),
    )
    .await;
    let id = send(&host, 1).await;
    let record = host.wait_for_status(&id, "dead").await;
    let deliveries = record["deliveries"].as_array().unwrap();
    let ledger = deliveries
        .iter()
        .find(|d| d["request"]["url"] == "destination:ledger")
        .unwrap_or_else(|| panic!("{record:#}"));
    assert_eq!(ledger["status"], "dead");
    assert!(
        ledger["attempts"][0]["error"].as_str().is_some_and(
            |e| e.contains("destination `ledger` is not in this connector's allowed_hosts")
        ),
        "{ledger:#}"
    );
    let paths: Vec<String> = receiver
        .delivered()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(paths, ["/audit"]);

    let list: Value = host
        .admin_get("/v1/destinations")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["audit", "ledger"]);
    assert_eq!(list["data"][0]["counts"]["succeeded"], 1);
    let missing = host.admin_get("/v1/destinations/nope").await;
    assert_eq!(missing.status(), 404);
    let disabled: Value = host
        .admin_post("/v1/destinations/audit/disable")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (disabled["state"].as_str(), disabled["disabled"].as_str()),
        (Some("disabled"), Some("operator"))
    );
    host.stop().await;
}
