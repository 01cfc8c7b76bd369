//! Delivery guarantees: the retry policy, dead events, replay, and the event log listing.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::*;

/// The hostile test connector (scheme none) forwarding to `receiver` (the one host it may
/// reach: `"*"` would not grant a loopback address), with a retry policy.
fn config(dirs: &Dirs, receiver: &Receiver, retry: &str) -> String {
    dirs.base_config()
        + &format!(
            r#"
[[connector]]
id = "t"
plugin = "hostile.wasm"
scheme = "none"
allowed_hosts = ["{origin}"]
[connector.retry]
{retry}
[connector.settings]
forward_url = "{origin}/in"
"#,
            origin = receiver.origin()
        )
}

async fn send(host: &Host, body: Value) -> String {
    let response = host.post_hook("t", &[], body.to_string().as_bytes()).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    answer["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn three_503s_then_200_is_delivered_with_one_key_and_growing_gaps() {
    let receiver = Receiver::start().await;
    receiver.respond_with(&[503, 503, 503]);
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(
        &dirs,
        &receiver,
        "initial_backoff = \"100ms\"\nmax_backoff = \"10s\"\njitter = 0.0\nmax_attempts = 10",
    ))
    .await;
    let id = send(&host, json!({"do": "ok"})).await;
    receiver.wait_delivered(1).await;
    let all = receiver.received();
    assert_eq!(all.len(), 4);
    let keys: Vec<_> = all
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    // Each gap is at least its backoff (100, 200, 400 ms): the sleeps guarantee the lower
    // bounds, so this cannot flake, and the bounds grow.
    for (i, want) in [100u64, 200, 400].iter().enumerate() {
        let gap = all[i + 1].at - all[i].at;
        assert!(gap >= Duration::from_millis(*want), "gap {i} was {gap:?}");
    }
    let record = host.wait_for_status(&id, "succeeded").await;
    let attempts = record["deliveries"][0]["attempts"].as_array().unwrap();
    let statuses: Vec<_> = attempts
        .iter()
        .map(|a| a["response"]["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        vec![json!(503), json!(503), json!(503), json!(200)]
    );
    assert_eq!(
        record["attempts"].as_array().unwrap().len(),
        1,
        "the connector ran once"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_400_is_dead_after_one_attempt() {
    let receiver = Receiver::start().await;
    receiver.respond_with(&[400]);
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver, "initial_backoff = \"10ms\"")).await;
    let id = send(&host, json!({"do": "ok"})).await;
    let record = host.wait_for_status(&id, "dead").await;
    assert_eq!(record["deliveries"][0]["status"], "dead");
    assert_eq!(
        record["deliveries"][0]["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("failed permanently")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.received().len(), 1);
    host.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let receiver = Receiver::start().await;
    receiver.respond_once(429, &[("retry-after", "1")]);
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(
        &dirs,
        &receiver,
        "initial_backoff = \"10ms\"\nmax_backoff = \"5s\"",
    ))
    .await;
    send(&host, json!({"do": "ok"})).await;
    receiver.wait_delivered(1).await;
    let all = receiver.received();
    assert_eq!(all.len(), 2);
    let gap = all[1].at - all[0].at;
    assert!(gap >= Duration::from_secs(1), "waited only {gap:?}");
    host.stop().await;
}

#[tokio::test]
async fn a_slow_downstream_times_out_and_is_retried() {
    let receiver = Receiver::start().await;
    receiver.respond_slowly(Duration::from_secs(2));
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(
        &dirs,
        &receiver,
        "initial_backoff = \"10ms\"\ntimeout = \"200ms\"",
    ))
    .await;
    let id = send(&host, json!({"do": "ok"})).await;
    let record = host.wait_for_status(&id, "succeeded").await;
    let attempts = record["deliveries"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{record:#}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("no response within")
    );
    assert_eq!(attempts[1]["response"]["status"], 200);
    host.stop().await;
}

#[tokio::test]
async fn each_delivery_is_retried_on_its_own() {
    let steady = Receiver::start().await;
    let flaky = Receiver::start().await;
    flaky.respond_with(&[503, 503]);
    let dirs = Dirs::new(&["hostile.wasm"]);
    let config = config(&dirs, &steady, "initial_backoff = \"20ms\"").replace(
        &format!("allowed_hosts = [\"{}\"]", steady.origin()),
        &format!(
            "allowed_hosts = [\"{}\", \"{}\"]",
            steady.origin(),
            flaky.origin()
        ),
    );
    let host = Host::start(&config).await;
    let id = send(
        &host,
        json!({"do": "many", "urls": [format!("{}/a", steady.origin()), format!("{}/b", flaky.origin())]}),
    )
    .await;
    flaky.wait_delivered(1).await;
    let record = host.wait_for_status(&id, "succeeded").await;
    assert_eq!(
        steady.received().len(),
        1,
        "the good delivery was not re-sent"
    );
    assert_eq!(flaky.received().len(), 3);
    assert_eq!(
        record["attempts"].as_array().unwrap().len(),
        1,
        "connector ran once"
    );
    let keys: Vec<_> = record["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["idempotency_key"].as_str().unwrap().to_string())
        .collect();
    assert_ne!(keys[0], keys[1], "each delivery has its own key");
    host.stop().await;
}

/// Deliveries of one event that finish together each settle the event; whichever settles
/// last must see all of them, so the event ends `succeeded`, not stuck `pending`.
#[tokio::test]
async fn many_deliveries_finishing_together_settle_the_event() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver, "")).await;
    let urls: Vec<String> = (0..24)
        .map(|i| format!("{}/d{i}", receiver.origin()))
        .collect();
    let ids = [
        send(&host, json!({"do": "many", "urls": urls})).await,
        send(&host, json!({"do": "many", "urls": urls, "n": 2})).await,
    ];
    receiver.wait_delivered(48).await;
    for id in &ids {
        let record = host.wait_for_status(id, "succeeded").await;
        assert_eq!(record["deliveries"].as_array().unwrap().len(), 24);
    }
    host.stop().await;
}

#[tokio::test]
async fn dead_events_are_listed_and_replayable() {
    let receiver = Receiver::start().await;
    receiver.respond_with(&[400]);
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver, "initial_backoff = \"10ms\"")).await;
    let id = send(&host, json!({"do": "ok"})).await;
    host.wait_for_status(&id, "dead").await;

    let listed: Value = host
        .admin_get("/v1/events?status=dead&connector=t")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<_> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(id)]);
    assert!(listed["next_cursor"].is_null());

    // A live or unknown event cannot be replayed; a dead one can.
    let replay = |path: String, body: &'static str| {
        let host = &host;
        async move {
            host.http
                .post(host.url(&path))
                .bearer_auth(ADMIN_TOKEN)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        replay("/v1/events/nope/replay".into(), "").await.status(),
        404
    );
    // A replay sends the keys the first run sent: a receiver that dedupes on them (the
    // effect may have happened before it failed) applies it once.
    let response = replay(format!("/v1/events/{id}/replay"), "").await;
    assert_eq!(response.status(), 202);
    let record = host.wait_for_status(&id, "succeeded").await;
    let deliveries = record["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "history kept, replay added a delivery");
    assert_eq!(deliveries[0]["status"], "dead");
    assert_eq!(deliveries[1]["status"], "succeeded");
    assert_eq!(
        deliveries[0]["idempotency_key"],
        deliveries[1]["idempotency_key"]
    );
    assert_eq!(record["attempts"].as_array().unwrap().len(), 2);
    let keys: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(keys, vec![format!("{id}-0"), format!("{id}-0")], "{keys:?}");

    // `new_keys` asks for a deliberate new effect: a key no run has sent.
    let response = replay(format!("/v1/events/{id}/replay"), r#"{"new_keys": true}"#).await;
    assert_eq!(response.status(), 202);
    receiver.wait_delivered(2).await;
    let record = host.wait_for_status(&id, "succeeded").await;
    let deliveries = record["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 3);
    assert_eq!(deliveries[2]["idempotency_key"], format!("{id}-2"));
    assert_eq!(
        receiver
            .received()
            .last()
            .unwrap()
            .header("idempotency-key"),
        Some(format!("{id}-2").as_str())
    );
    let bad = replay(format!("/v1/events/{id}/replay"), r#"{"new_keys": "yes"}"#).await;
    assert_eq!(bad.status(), 400);
    host.stop().await;
}

#[tokio::test]
async fn bulk_replay_replays_what_matches() {
    let receiver = Receiver::start().await;
    receiver.respond_with(&[400, 400, 400]);
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver, "initial_backoff = \"10ms\"")).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = send(&host, json!({"do": "ok"})).await;
        host.wait_for_status(&id, "dead").await;
        ids.push(id);
    }
    let response = host
        .http
        .post(host.url("/v1/replay"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"connector": "t", "status": "dead"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["replayed"], 3);
    assert_eq!(
        body["next_cursor"],
        Value::Null,
        "all in one call without `limit`"
    );
    for id in &ids {
        host.wait_for_status(id, "succeeded").await;
    }

    // With `limit`: a page per call, each saying where the next goes on from; the pages
    // together replay each match once.
    let (mut replayed, mut calls, mut cursor) = (0, 0, Value::Null);
    loop {
        let body: Value = host
            .http
            .post(host.url("/v1/replay"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"connector": "t", "status": "succeeded", "limit": 2, "cursor": cursor}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        calls += 1;
        replayed += body["replayed"].as_u64().unwrap();
        assert!(body["read"].as_u64().unwrap() <= 2, "{body}");
        cursor = body["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!((replayed, calls), (3, 2), "3 events, 2 per call");
    receiver.wait_delivered(6).await;
    host.stop().await;
}

/// Through the router without a socket ([`Api`]): the events are taken, not delivered.
#[tokio::test]
async fn the_event_log_pages_with_a_cursor() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let api = Api::start(&config(&dirs, &receiver, "")).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let body = json!({"do": "ok", "i": i}).to_string();
        let response = api.post_hook("t", &[], body.as_bytes()).await;
        assert_eq!(response.status, 200);
        sent.push(response.json()["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/events?limit=2&cursor={c}"),
            None => "/v1/events?limit=2".to_string(),
        };
        let page: Value = api.admin_get(&path).await.json();
        pages += 1;
        for event in page["data"].as_array().unwrap() {
            seen.push(event["id"].as_str().unwrap().to_string());
            assert!(event.get("request").is_none(), "listings carry no bodies");
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 10);
    }
    // Newest first is id order: ids are ULIDs, and two received in the same millisecond
    // (this harness posts that fast) order by their random part, not by arrival.
    assert!(
        seen.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first, each once: {seen:?}"
    );
    seen.sort();
    sent.sort();
    assert_eq!(seen, sent, "every event, each once");

    let bad = api.admin_get("/v1/events?status=bogus").await;
    assert_eq!(bad.status, 400);
    let future: Value = api
        .admin_get("/v1/events?since=2999-01-01T00:00:00Z")
        .await
        .json();
    assert!(future["data"].as_array().unwrap().is_empty());
    api.stop().await;
}

#[tokio::test]
async fn delivery_credentials_reach_the_downstream_but_not_the_log() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver, "")).await;
    let id = send(
        &host,
        json!({"do": "ok", "auth": "Bearer sk_live_topsecret"}),
    )
    .await;
    let delivered = receiver.wait_delivered(1).await;
    assert_eq!(
        delivered[0].header("authorization"),
        Some("Bearer sk_live_topsecret")
    );
    let record = host.wait_for_status(&id, "succeeded").await;
    let headers = &record["deliveries"][0]["request"]["headers"];
    assert!(headers.to_string().contains("****"), "{headers}");
    assert!(!headers.to_string().contains("topsecret"), "{headers}");
    host.stop().await;
}

/// An event whose stored request is no longer readable (its inbox entry torn, as a crash
/// tears an entry that was never acknowledged, or its segment removed) goes `dead` with
/// an error that says so at its first dispatch, instead of being retried forever, and the
/// other events are delivered.
#[tokio::test]
async fn an_event_whose_request_is_unreadable_is_dead_with_a_clear_error() {
    if !on_sled("an_event_whose_request_is_unreadable") {
        return;
    }
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let paused = config(&dirs, &receiver, "")
        .replace("scheme = \"none\"", "scheme = \"none\"\npaused = true");
    // First life: stored, not dispatched. Each life writes its own inbox segment.
    let host = Host::start(&paused).await;
    let lost = send(&host, json!({"do": "ok", "n": 1})).await;
    host.stop().await;
    let host = Host::start(&paused).await;
    let kept = send(&host, json!({"do": "ok", "n": 2})).await;
    host.stop().await;
    let inbox = dirs.data().join("inbox");
    let mut segments: Vec<_> = std::fs::read_dir(&inbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    segments.sort();
    assert_eq!(segments.len(), 2, "{segments:?}");
    // Flip the last byte of the first event's entry: its checksum no longer matches.
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&segments[0], bytes).unwrap();

    let host = Host::start(&config(&dirs, &receiver, "")).await;
    let record = host.wait_for_status(&lost, "dead").await;
    let error = record["error"].as_str().unwrap();
    assert!(error.contains("stored request is gone"), "{error}");
    assert_eq!(record["attempts"][0]["outcome"], "lost");
    host.wait_for_status(&kept, "succeeded").await;
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 1, "only the readable event is delivered");
    assert!(
        String::from_utf8_lossy(&delivered[0].body).contains("\"n\":2"),
        "{:?}",
        delivered[0].body
    );
    host.stop().await;
}
