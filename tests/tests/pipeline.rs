//! The walking skeleton end to end: a Stripe-signed event through the real host, the real
//! `stripe.wasm`, a sled store in a temp dir, and a receiver on 127.0.0.1.

use std::time::Duration;

use serde_json::Value;
use switchyard_tests::*;

#[tokio::test]
async fn a_valid_event_is_stored_and_forwarded_once_with_an_idempotency_key() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let host = Host::start(&(dirs.base_config() + &stripe_connector(&receiver, ""))).await;

    let id = evt_id();
    let body = stripe_event(&id, "invoice.paid");
    let response = send_stripe(&host, &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "accepted");
    let event_id = answer["id"].as_str().unwrap().to_string();

    let delivered = receiver.wait_delivered(1).await;
    assert_eq!(delivered[0].path, "/billing");
    assert_eq!(
        delivered[0].body.as_ref(),
        body.as_slice(),
        "forwarded unchanged"
    );
    assert_eq!(delivered[0].header("x-stripe-event-id"), Some(id.as_str()));
    let key = delivered[0]
        .header("idempotency-key")
        .expect("Idempotency-Key");
    assert!(
        key.starts_with(&event_id),
        "key {key} derives from the event id"
    );

    let record = host.wait_for_status(&event_id, "succeeded").await;
    assert_eq!(record["connector"], "stripe");
    assert_eq!(record["dedupe_key"], id);
    assert_eq!(record["verification"]["verified"], true);
    assert_eq!(record["request"]["body"], String::from_utf8(body).unwrap());
    let attempt = &record["attempts"][0];
    assert_eq!(attempt["outcome"], "deliveries");
    assert!(
        attempt["plugin_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(record["deliveries"][0]["status"], "succeeded");
    assert_eq!(
        record["deliveries"][0]["attempts"][0]["response"]["status"],
        200
    );

    // Nothing else arrives later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);
    host.stop().await;
}

#[tokio::test]
async fn bad_signatures_get_401_and_nothing_is_forwarded() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let host = Host::start(&(dirs.base_config() + &stripe_connector(&receiver, ""))).await;
    let body = stripe_event(&evt_id(), "invoice.paid");

    type Headers = Vec<(String, String)>;
    let cases: Vec<(&str, Headers, &str)> = vec![
        (
            "wrong secret",
            stripe_headers("whsec_wrong", &body, now()),
            "signature_mismatch",
        ),
        (
            "stale timestamp",
            stripe_headers(STRIPE_SECRET, &body, now() - 3600),
            "timestamp_out_of_tolerance",
        ),
        ("missing header", vec![], "missing_signature"),
        (
            "no t",
            vec![("stripe-signature".into(), "v1=abcd".into())],
            "malformed_signature",
        ),
        (
            "no v1",
            vec![("stripe-signature".into(), format!("t={}", now()))],
            "malformed_signature",
        ),
        (
            "non-hex v1",
            vec![("stripe-signature".into(), format!("t={},v1=zzzz", now()))],
            "",
        ),
        (
            // Past the verifier's 8 KiB cap on a signature header, within the listener's
            // 16 KiB for the whole head (past that it is a 431: tests/tests/security.rs).
            "huge header",
            vec![(
                "stripe-signature".into(),
                format!("t={},v1={}", now(), "a".repeat(10_000)),
            )],
            "",
        ),
    ];
    for (what, headers, code) in cases {
        let response = host.post_hook("stripe", &headers, &body).await;
        assert_eq!(response.status(), 401, "{what}");
        let error: Value = response.json().await.unwrap();
        assert!(error["error"]["message"].is_string(), "{what}: {error}");
        if !code.is_empty() {
            assert_eq!(error["error"]["code"], code, "{what}");
        }
        let text = error.to_string();
        assert!(
            !text.contains(STRIPE_SECRET),
            "{what}: error leaks the secret"
        );
    }

    // A valid event afterwards is the only thing delivered.
    let ok = stripe_event(&evt_id(), "invoice.paid");
    assert_eq!(send_stripe(&host, &ok).await.status(), 200);
    let delivered = receiver.wait_delivered(1).await;
    assert_eq!(delivered[0].body.as_ref(), ok.as_slice());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "rejected requests were never dispatched"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_repeat_is_a_duplicate_and_not_forwarded_again() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let host = Host::start(&(dirs.base_config() + &stripe_connector(&receiver, ""))).await;
    let body = stripe_event(&evt_id(), "invoice.paid");

    let first: Value = send_stripe(&host, &body).await.json().await.unwrap();
    assert_eq!(first["status"], "accepted");
    // Stripe re-sends with a fresh timestamp and signature: still the same event.
    let again = send_stripe(&host, &body).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["status"], "duplicate");
    assert_eq!(
        again["id"], first["id"],
        "a duplicate names the first event"
    );

    receiver.wait_delivered(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);
    host.stop().await;
}

#[tokio::test]
async fn a_503_from_the_receiver_is_retried_until_delivered() {
    let receiver = Receiver::start().await;
    receiver.respond_with(&[503]);
    let dirs = Dirs::new(&["stripe.wasm"]);
    let host = Host::start(&(dirs.base_config() + &stripe_connector(&receiver, ""))).await;
    let body = stripe_event(&evt_id(), "customer.created");
    let answer: Value = send_stripe(&host, &body).await.json().await.unwrap();
    let event_id = answer["id"].as_str().unwrap();

    receiver.wait_delivered(1).await;
    let all = receiver.received();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].status, 503);
    assert_eq!(
        all[0].header("idempotency-key"),
        all[1].header("idempotency-key"),
        "the key is stable across retries"
    );
    let record = host.wait_for_status(event_id, "succeeded").await;
    let attempts = record["deliveries"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["response"]["status"], 503);
    assert_eq!(attempts[1]["response"]["status"], 200);
    host.stop().await;
}

#[tokio::test]
async fn a_restarted_host_keeps_its_records_and_finishes_pending_work() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);

    // First life: the connector is paused, so events are stored but not dispatched.
    let paused = dirs.base_config() + &stripe_connector(&receiver, "paused = true");
    let host = Host::start(&paused).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let answer: Value = send_stripe(&host, &stripe_event(&evt_id(), "invoice.paid"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["status"], "accepted");
        ids.push(answer["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.received().is_empty(), "paused: nothing dispatched");
    host.stop().await;

    // Second life, same data dir, resumed.
    let host = Host::start(&(dirs.base_config() + &stripe_connector(&receiver, ""))).await;
    receiver.wait_delivered(5).await;
    for id in &ids {
        let record = host.wait_for_status(id, "succeeded").await;
        assert_eq!(record["request"]["method"], "POST");
    }
    host.stop().await;
}

#[tokio::test]
async fn an_open_delivery_resumes_after_a_restart() {
    let receiver = Receiver::start().await;
    receiver.respond_with(&[503]);
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config = dirs.base_config()
        + &stripe_connector(&receiver, "").replace(
            "initial_backoff = \"50ms\"\nmax_backoff = \"200ms\"",
            "initial_backoff = \"1s\"\nmax_backoff = \"1s\"\njitter = 0.0",
        );
    let host = Host::start(&config).await;
    let answer: Value = send_stripe(&host, &stripe_event(&evt_id(), "invoice.paid"))
        .await
        .json()
        .await
        .unwrap();
    let event_id = answer["id"].as_str().unwrap().to_string();
    let r = receiver.clone();
    wait_for(
        "the first (failing) try",
        Duration::from_secs(10),
        move || {
            let r = r.clone();
            async move { !r.received().is_empty() }
        },
    )
    .await;
    host.wait_for_status(&event_id, "retrying").await;
    host.stop().await;

    let host = Host::start(&config).await;
    receiver.wait_delivered(1).await;
    let record = host.wait_for_status(&event_id, "succeeded").await;
    assert_eq!(
        record["deliveries"][0]["attempts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    host.stop().await;
}

#[tokio::test]
async fn routes_answer_with_the_documented_statuses() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config = dirs
        .base_config()
        .replace("[storage]", "max_body_bytes = 1024\n\n[storage]")
        + &stripe_connector(&receiver, "");
    let host = Host::start(&config).await;

    // Validation pings.
    let get = host
        .http
        .get(host.url("/hooks/stripe"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert!(get.bytes().await.unwrap().is_empty());
    let head = host
        .http
        .head(host.url("/hooks/stripe"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);

    // Unknown connector.
    let unknown = host.post_hook("nope", &[], b"{}").await;
    assert_eq!(unknown.status(), 404);
    let error: Value = unknown.json().await.unwrap();
    assert_eq!(error["error"]["code"], "not_found");

    // Too large, with and without a Content-Length.
    let big = vec![b'x'; 4096];
    let too_big = host
        .post_hook("stripe", &stripe_headers(STRIPE_SECRET, &big, now()), &big)
        .await;
    assert_eq!(too_big.status(), 413);
    let error: Value = too_big.json().await.unwrap();
    assert_eq!(error["error"]["code"], "body_too_large");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b'y'; 800]), Ok(vec![b'y'; 800])];
    let streamed = host
        .http
        .post(host.url("/hooks/stripe"))
        .body(reqwest::Body::wrap_stream(futures_stream(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);

    // The admin API's token: tests/tests/admin_api.rs.
    host.stop().await;
}

fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::iter(chunks)
}

#[tokio::test]
async fn malformed_and_non_utf8_bodies_are_kept_and_rejected_by_the_connector() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let host = Host::start(&(dirs.base_config() + &stripe_connector(&receiver, ""))).await;

    for body in [b"{not json".to_vec(), vec![0xff, 0xfe, 0x00, 0x80]] {
        let response = send_stripe(&host, &body).await;
        assert_eq!(
            response.status(),
            200,
            "signed and stored, even if unusable"
        );
        let answer: Value = response.json().await.unwrap();
        let record = host
            .wait_for_status(answer["id"].as_str().unwrap(), "dead")
            .await;
        assert_eq!(record["attempts"][0]["outcome"], "reject");
        assert!(
            record["attempts"][0]["message"]
                .as_str()
                .unwrap()
                .contains("JSON"),
            "clear message: {record:#}"
        );
        if body[0] == 0xff {
            assert!(
                record["request"]["body"]["base64"].is_string(),
                "raw bytes kept"
            );
        }
    }
    assert!(receiver.received().is_empty());
    host.stop().await;
}

#[tokio::test]
async fn a_missing_or_corrupt_plugin_fails_alone() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    std::fs::write(dirs.plugins().join("corrupt.wasm"), b"\0asm garbage").unwrap();
    let config = dirs.base_config()
        + &stripe_connector(&receiver, "")
        + &format!(
            r#"
[[connector]]
id = "broken"
plugin = "corrupt.wasm"
secret = "{STRIPE_SECRET}"
scheme = "stripe"

[[connector]]
id = "missing"
plugin = "missing.wasm"
secret = "{STRIPE_SECRET}"
scheme = "stripe"
"#
        );
    let host = Host::start(&config).await;

    for id in ["broken", "missing"] {
        let body = stripe_event(&evt_id(), "invoice.paid");
        let response = host
            .post_hook(id, &stripe_headers(STRIPE_SECRET, &body, now()), &body)
            .await;
        assert_eq!(response.status(), 503, "{id}: never 200-and-drop");
        let info: Value = host
            .admin_get(&format!("/v1/connectors/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert!(info["last_error"].is_string(), "{id}: {info}");
    }
    let info: Value = host
        .admin_get("/v1/connectors/missing")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        info["last_error"]
            .as_str()
            .unwrap()
            .contains("missing.wasm")
    );
    let info: Value = host
        .admin_get("/v1/connectors/broken")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        info["last_error"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly component")
    );

    // The healthy connector serves.
    assert_eq!(
        send_stripe(&host, &stripe_event(&evt_id(), "invoice.paid"))
            .await
            .status(),
        200
    );
    receiver.wait_delivered(1).await;
    host.stop().await;
}

/// The value of the sample `name{labels}` in a Prometheus text page (labels as rendered,
/// in the order given), or `None` when the page has no such sample.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
}

#[tokio::test]
async fn metrics_count_what_senders_connectors_and_deliveries_saw() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let host = Host::start(&(dirs.base_config() + &stripe_connector(&receiver, ""))).await;

    let body = stripe_event(&evt_id(), "invoice.paid");
    assert_eq!(send_stripe(&host, &body).await.status(), 200);
    assert_eq!(
        send_stripe(&host, &body).await.status(),
        200,
        "the duplicate"
    );
    let forged = host
        .post_hook(
            "stripe",
            &stripe_headers("whsec_wrong", &body, now()),
            &body,
        )
        .await;
    assert_eq!(forged.status(), 401);
    let unknown = host.post_hook("nope", &[], b"{}").await;
    assert_eq!(unknown.status(), 404);
    receiver.wait_delivered(1).await;

    // No token: a scraper reads it like /v1/health.
    let response = host.http.get(host.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let page = response.text().await.unwrap();
    let webhooks = |outcome: &str, connector: &str| {
        sample(
            &page,
            &format!(r#"switchyard_webhooks_total{{connector="{connector}",outcome="{outcome}"}}"#),
        )
    };
    assert_eq!(webhooks("accepted", "stripe"), Some(1.0), "{page}");
    assert_eq!(webhooks("duplicate", "stripe"), Some(1.0));
    assert_eq!(webhooks("rejected", "stripe"), Some(1.0));
    assert_eq!(
        webhooks("unknown_connector", ""),
        Some(1.0),
        "no id as a label"
    );
    assert!(
        !page.contains("nope"),
        "an unknown id never becomes a series"
    );
    assert_eq!(
        sample(
            &page,
            r#"switchyard_webhook_duration_seconds_count{connector="stripe"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &page,
            r#"switchyard_connector_calls_total{connector="stripe",outcome="deliveries"}"#
        ),
        Some(1.0)
    );
    // The delivery is counted once its attempt is recorded, just after the receiver saw it.
    let mut page = page;
    for _ in 0..100 {
        if sample(
            &page,
            r#"switchyard_delivery_attempts_total{connector="stripe",outcome="succeeded"}"#,
        ) == Some(1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        page = host
            .http
            .get(host.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    assert_eq!(
        sample(
            &page,
            r#"switchyard_delivery_attempts_total{connector="stripe",outcome="succeeded"}"#
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, r#"switchyard_connector_up{connector="stripe"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&page, r#"switchyard_connector_paused{connector="stripe"}"#),
        Some(0.0)
    );
    assert_eq!(sample(&page, "switchyard_dispatch_queue_depth"), Some(0.0));
    assert!(page.contains("# HELP switchyard_webhooks_total"), "{page}");
    if on_sled("metrics: the store's group commits") {
        // The accepted event, its duplicate and the forged one (recorded as `rejected`)
        // each waited for a commit: at least one commit, at most one per request.
        let commits = sample(&page, "switchyard_store_commits_total").expect("commits");
        let events = sample(&page, "switchyard_store_committed_events_total").expect("events");
        assert!((1.0..=3.0).contains(&commits), "{page}");
        assert_eq!(events, 3.0, "{page}");
        assert!(sample(&page, "switchyard_store_sync_microseconds_total").is_some());
        assert_eq!(
            sample(&page, r#"switchyard_connector_backlog{connector="stripe"}"#),
            Some(0.0),
            "{page}"
        );
    }
    host.stop().await;
}

/// "Did Stripe send us evt_X, and what did we do with it?": `?key=` (the dedupe key, from
/// an index), `?delivery_key=` (an `Idempotency-Key` a receiver logged) and `?q=` (payload
/// text) among thousands of events, before and after a restart.
#[tokio::test]
async fn events_are_found_by_vendor_id_idempotency_key_and_payload_text() {
    use futures::StreamExt as _;

    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    // Only the target's type is forwarded: the others are stored and settle without a
    // delivery, so the test waits on one receiver request, not thousands.
    let config = dirs.base_config() + &stripe_connector(&receiver, "") + "events = \"invoice.*\"\n";
    let host = Host::start(&config).await;
    let target = evt_id();
    let fillers: Vec<Vec<u8>> = (0..2_000)
        .map(|_| stripe_event(&evt_id(), "customer.updated"))
        .collect();
    let host_ref = &host;
    futures::stream::iter(fillers.iter().take(1_000))
        .for_each_concurrent(16, |body| async move {
            assert_eq!(send_stripe(host_ref, body).await.status(), 200);
        })
        .await;
    let first: Value = send_stripe(&host, &stripe_event(&target, "invoice.paid"))
        .await
        .json()
        .await
        .unwrap();
    let repeat: Value = send_stripe(&host, &stripe_event(&target, "invoice.paid"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(repeat["status"], "duplicate");
    futures::stream::iter(fillers.iter().skip(1_000))
        .for_each_concurrent(16, |body| async move {
            assert_eq!(send_stripe(host_ref, body).await.status(), 200);
        })
        .await;
    let first_id = first["id"].as_str().unwrap().to_string();
    let record = host.wait_for_status(&first_id, "succeeded").await;
    let idempotency_key = record["deliveries"][0]["idempotency_key"]
        .as_str()
        .expect("the target was delivered")
        .to_string();
    let repeat_id = {
        let all = host
            .admin_get(&format!("/v1/events?key={target}"))
            .await
            .json::<Value>()
            .await
            .unwrap();
        all["data"][0]["id"].as_str().unwrap().to_string()
    };

    let lookups = Lookups {
        target,
        first_id,
        repeat_id,
        idempotency_key,
    };
    assert_eq!(
        receiver.delivered()[0].header("idempotency-key"),
        Some(lookups.idempotency_key.as_str())
    );
    lookups.check(&host, "before a restart").await;
    host.stop().await;
    let host = Host::start(&config).await;
    lookups.check(&host, "after a restart").await;
    host.stop().await;
}

/// What `events_are_found_by_vendor_id_idempotency_key_and_payload_text` looks up.
struct Lookups {
    target: String,
    first_id: String,
    repeat_id: String,
    idempotency_key: String,
}

impl Lookups {
    async fn get(host: &Host, query: String, life: &str) -> Value {
        let response = host.admin_get(&format!("/v1/events?{query}")).await;
        assert_eq!(response.status(), 200, "{query} {life}");
        response.json::<Value>().await.unwrap()
    }

    fn ids(page: &Value) -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    }

    async fn check(&self, host: &Host, life: &str) {
        let Lookups {
            target,
            first_id,
            repeat_id,
            idempotency_key,
        } = self;
        let get = |query: String| Self::get(host, query, life);
        let ids = Self::ids;
        let both = [repeat_id.clone(), first_id.clone()];

        // The vendor's id: the event and its repeat, newest first, with the other filters.
        let by_key = get(format!("key={target}")).await;
        assert_eq!(ids(&by_key), both, "{life}");
        assert_eq!(by_key["data"][0]["duplicate_of"], first_id.as_str());
        assert_eq!(by_key["next_cursor"], Value::Null);
        let paged = get(format!("key={target}&limit=1")).await;
        assert_eq!(ids(&paged), std::slice::from_ref(repeat_id));
        let cursor = paged["next_cursor"].as_str().expect("a second page");
        let second = get(format!("key={target}&limit=1&cursor={cursor}")).await;
        assert_eq!(ids(&second), std::slice::from_ref(first_id));
        let succeeded = get(format!("key={target}&status=succeeded")).await;
        assert_eq!(ids(&succeeded), std::slice::from_ref(first_id));
        assert!(ids(&get(format!("key={target}&connector=other")).await).is_empty());
        assert!(
            ids(&get(format!("key={}", evt_id())).await).is_empty(),
            "not sent"
        );

        // The Idempotency-Key a receiver logged: the event that sent it.
        let by_delivery = get(format!("delivery_key={idempotency_key}")).await;
        assert_eq!(ids(&by_delivery), std::slice::from_ref(first_id), "{life}");
        for unknown in [
            format!("{first_id}-7"),
            "nothing".into(),
            format!("{}-0", ulid::Ulid::new()),
        ] {
            let page = get(format!("delivery_key={unknown}")).await;
            assert!(ids(&page).is_empty(), "{unknown}");
        }

        // Text inside the payloads: both copies of the target, among the 2,002.
        let by_text = get(format!("q={target}&limit=10")).await;
        assert_eq!(ids(&by_text), both, "{life}");
        let none = get(format!("q=no-such-text-{}", ulid::Ulid::new())).await;
        assert!(ids(&none).is_empty());
        // A bounded scan: past 2,000 events read, a cursor to go on from.
        let cursor = none["next_cursor"]
            .as_str()
            .expect("more of the log to search");
        let rest = get(format!("q=no-such-text&cursor={cursor}")).await;
        assert!(ids(&rest).is_empty());
        assert_eq!(
            rest["next_cursor"],
            Value::Null,
            "the rest in one more call"
        );
    }
}

/// `GET /v1/connectors[/{id}]`: each connector's events by status over the retention
/// window and the last 24 hours (kept as events move, and counted again after a restart),
/// and its latest failed delivery.
#[tokio::test]
async fn connectors_show_counts_by_status_and_the_last_delivery_error() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config = dirs.base_config() + &stripe_connector(&receiver, "");
    let host = Host::start(&config).await;

    let ok = stripe_event(&evt_id(), "invoice.paid");
    let answer: Value = send_stripe(&host, &ok).await.json().await.unwrap();
    let ok_id = answer["id"].as_str().unwrap().to_string();
    host.wait_for_status(&ok_id, "succeeded").await;
    // A downstream that refuses for good (400): dead at once.
    receiver.respond_with(&[400]);
    let refused: Value = send_stripe(&host, &stripe_event(&evt_id(), "invoice.paid"))
        .await
        .json()
        .await
        .unwrap();
    let refused_id = refused["id"].as_str().unwrap().to_string();
    host.wait_for_status(&refused_id, "dead").await;
    assert_eq!(send_stripe(&host, &ok).await.status(), 200, "a duplicate");
    let forged = host
        .post_hook("stripe", &stripe_headers("whsec_wrong", &ok, now()), &ok)
        .await;
    assert_eq!(forged.status(), 401);

    let expect = |connector: &Value, succeeded: u64, dead: u64, life: &str| {
        for window in ["retention", "last_24h"] {
            let counts = &connector["counts"][window];
            let want = [
                ("pending", 0),
                ("retrying", 0),
                ("succeeded", succeeded),
                ("dead", dead),
                ("duplicate", 1),
                ("rejected", 1),
            ];
            for (status, n) in want {
                assert_eq!(counts[status], n, "{window} {status} {life}: {connector:#}");
            }
        }
    };
    let stripe = host.connector("stripe").await;
    expect(&stripe, 1, 1, "first life");
    let error = &stripe["last_delivery_error"];
    assert_eq!(error["error"], "HTTP 400", "{stripe:#}");
    assert_eq!(error["event_id"], refused_id.as_str());
    assert_eq!(error["delivery"], 0);
    let list: Value = host.admin_get("/v1/connectors").await.json().await.unwrap();
    assert_eq!(list["data"][0]["counts"], stripe["counts"]);

    // Replayed once the downstream takes it: the dead one moves to succeeded.
    let replay = host
        .admin_post(&format!("/v1/events/{refused_id}/replay"))
        .await;
    assert_eq!(replay.status(), 202);
    receiver.wait_delivered(2).await;
    host.wait_for_status(&refused_id, "succeeded").await;
    expect(&host.connector("stripe").await, 2, 0, "after the replay");

    // Counted again from the log after a restart; the last error was this host's only.
    host.stop().await;
    let host = Host::start(&config).await;
    let stripe = host.connector("stripe").await;
    expect(&stripe, 2, 0, "after a restart");
    assert_eq!(stripe["last_delivery_error"], Value::Null);
    host.stop().await;
}
