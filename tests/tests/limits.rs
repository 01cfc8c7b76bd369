//! What a connector cannot do: run past its deadline, grow past its memory cap, take the
//! host down by trapping, reach hosts it was not granted, or skip the host's retry rules.
//! Uses the `hostile` test connector, which misbehaves on request.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::*;

fn config(dirs: &Dirs, receiver: &Receiver, extra: &str) -> String {
    dirs.base_config_with("deadline = \"300ms\"\nmax_memory_bytes = 33554432")
        + &hostile_connector(
            "hostile",
            &[receiver.origin()],
            &format!("{}/in", receiver.origin()),
            &format!(
                "{extra}\n[connector.retry]\ninitial_backoff = \"20ms\"\nmax_backoff = \"50ms\"\nmax_attempts = 3"
            ),
            "",
        )
}

#[tokio::test]
async fn a_spinning_connector_hits_its_deadline_and_the_host_keeps_serving() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver, "")).await;

    let spinning = send_hostile(&host, json!({"do": "spin"})).await;
    let fine = send_hostile(&host, json!({"do": "ok", "n": 1})).await;
    receiver.wait_delivered(1).await;
    host.wait_for_status(&fine, "succeeded").await;

    let record = host.wait_for_status(&spinning, "dead").await;
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "retried up to max_attempts: {record:#}");
    for attempt in attempts {
        assert_eq!(attempt["outcome"], "deadline");
    }
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 attempts")
    );
    host.stop().await;
}

#[tokio::test]
async fn a_connector_that_eats_memory_traps_at_the_cap() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver, "")).await;
    let id = send_hostile(&host, json!({"do": "alloc"})).await;
    let record = host.wait_for_status(&id, "dead").await;
    assert_eq!(record["attempts"][0]["outcome"], "trap", "{record:#}");
    let message = record["attempts"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("growing memory"),
        "the memory cap stopped it: {message}"
    );
    // The host is fine afterwards.
    send_hostile(&host, json!({"do": "ok"})).await;
    receiver.wait_delivered(1).await;
    host.stop().await;
}

#[tokio::test]
async fn traps_and_retries_are_retried_then_dead_and_reject_is_dead_at_once() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver, "")).await;

    assert_trap_retry_and_reject(&host).await;
    assert!(receiver.received().is_empty());
    host.stop().await;
}

#[tokio::test]
async fn fetch_and_deliveries_reach_only_allowed_hosts() {
    let receiver = Receiver::start().await;
    let elsewhere = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver, "")).await;

    // http.fetch to a host that is not granted: denied, and the target never sees it.
    send_hostile(
        &host,
        json!({"do": "fetch", "url": format!("{}/secret", elsewhere.origin())}),
    )
    .await;
    // Allowed fetch works.
    send_hostile(
        &host,
        json!({"do": "fetch", "url": format!("{}/ok", receiver.origin())}),
    )
    .await;
    let delivered = receiver.wait_delivered(3).await;
    let outcomes: Vec<Value> = delivered
        .iter()
        .filter(|r| r.path == "/in")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert!(
        outcomes.iter().any(|o| o["error"]
            .as_str()
            .is_some_and(|e| e.contains("allowed_hosts"))),
        "{outcomes:?}"
    );
    assert!(outcomes.iter().any(|o| o["status"] == 200), "{outcomes:?}");

    // A delivery to a host that is not granted is dead, and never sent.
    let id = send_hostile(
        &host,
        json!({"do": "ok", "url": format!("{}/steal", elsewhere.origin())}),
    )
    .await;
    let record = host.wait_for_status(&id, "dead").await;
    assert!(
        record["deliveries"][0]["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("allowed_hosts"),
        "{record:#}"
    );
    assert!(elsewhere.received().is_empty());
    host.stop().await;
}

#[tokio::test]
async fn a_spinning_dedupe_key_cannot_hang_ingress() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver, "")).await;
    // The dedupe-key export loops: the deadline stops it and the event is stored without
    // dedupe rather than lost.
    let id = send_hostile(&host, json!({"do": "ok", "dedupe": "spin"})).await;
    receiver.wait_delivered(1).await;
    let record = host.wait_for_status(&id, "succeeded").await;
    assert!(record.get("dedupe_key").is_none());
    host.stop().await;
}

#[tokio::test]
async fn kv_state_persists_across_events_and_restarts() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let config = config(&dirs, &receiver, "");
    let host = Host::start(&config).await;
    send_hostile(&host, json!({"do": "count"})).await;
    receiver.wait_delivered(1).await;
    send_hostile(&host, json!({"do": "count"})).await;
    receiver.wait_delivered(2).await;
    host.stop().await;
    let host = Host::start(&config).await;
    send_hostile(&host, json!({"do": "count"})).await;
    let delivered = receiver.wait_delivered(3).await;
    let counts: Vec<u64> = delivered
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["count"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(counts, vec![1, 2, 3]);
    host.stop().await;
}

#[tokio::test]
async fn a_plugin_declaring_no_scheme_needs_the_operator_to_say_none() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver, "").replace("scheme = \"none\"\n", "")).await;
    let response = host.post_hook("hostile", &[], b"{}").await;
    assert_eq!(response.status(), 503);
    let info: Value = host
        .admin_get("/v1/connectors/hostile")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        info["last_error"]
            .as_str()
            .unwrap()
            .contains("scheme = \"none\""),
        "{info}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.received().is_empty());
    host.stop().await;
}

/// `dedupe-key` runs in warm, reused instances (the ingress hot path); anything that could
/// carry a broken state along ends the reuse: a trap, and a change of the connector's grants.
#[tokio::test]
async fn dedupe_key_instances_are_reused_until_a_trap_or_new_grants() {
    use std::sync::Arc;
    use switchyard::plugin::bindings::Webhook;
    use switchyard::plugin::{AllowedHosts, CallError, Grants, Limits, Runtime};
    use switchyard::store::sled::SledStore;

    let data = tempfile::tempdir().unwrap();
    let storage = Arc::new(SledStore::open(data.path(), false).unwrap());
    let grants = || {
        Arc::new(Grants {
            connector: "hostile".into(),
            settings: Default::default(),
            secrets: Vec::new(),
            allowed_hosts: AllowedHosts::default(),
            kv: switchyard::store::Kv::new(storage.clone(), "hostile"),
            http: reqwest::Client::new(),
            fetch_timeout: Duration::from_secs(1),
        })
    };
    let limits = Limits {
        deadline: Duration::from_millis(300),
        ..Limits::default()
    };
    let runtime = Runtime::new(limits, None).unwrap();
    let bytes = std::fs::read(plugin("hostile.wasm")).unwrap();
    let first_grants = grants();
    let plugin = runtime.load(&bytes, first_grants.clone()).await.unwrap();
    let hook = |dedupe: &str| Webhook {
        id: "evt".into(),
        connector: "hostile".into(),
        method: "POST".into(),
        path: "/hooks/hostile".into(),
        query: String::new(),
        headers: Vec::new(),
        body: json!({ "dedupe": dedupe }).to_string().into_bytes(),
        received_at: 0,
        attempt: 0,
    };
    let key = |grants: &Arc<Grants>, dedupe: &'static str| {
        let (runtime, plugin, grants) = (&runtime, &plugin, grants.clone());
        let hook = hook(dedupe);
        async move { runtime.dedupe_key(plugin, grants, &hook).await }
    };

    // The guest counts the calls its instance served: one instance serves all three.
    for n in 1..=3 {
        assert_eq!(
            key(&first_grants, "count").await.unwrap(),
            Some(format!("count-{n}"))
        );
    }
    assert_eq!(plugin.warm_instances(), 1);

    // A trap is reported, and the instance it broke is not used again.
    let err = key(&first_grants, "trap").await.unwrap_err();
    assert!(matches!(err, CallError::Trap(_)), "{err:?}");
    assert_eq!(plugin.warm_instances(), 0);
    assert_eq!(
        key(&first_grants, "count").await.unwrap(),
        Some("count-1".into())
    );

    // New grants (settings changed, same bytes): a fresh instance, never the old one.
    let second_grants = grants();
    assert_eq!(
        key(&second_grants, "count").await.unwrap(),
        Some("count-1".into())
    );
    assert_eq!(
        key(&second_grants, "count").await.unwrap(),
        Some("count-2".into())
    );

    // A spinning call is stopped by the deadline in a warm instance too.
    let err = key(&second_grants, "spin").await.unwrap_err();
    assert!(matches!(err, CallError::Deadline(_)), "{err:?}");
    assert_eq!(
        key(&second_grants, "count").await.unwrap(),
        Some("count-1".into())
    );
}

/// What one `handle` may return is bounded (`[plugins]` `max_deliveries`,
/// `max_delivery_bytes`, `max_result_bytes`): past a bound the attempt says which one, the
/// event is dead at once (a retry would return the same), and nothing of the result is
/// stored or sent. Within the bounds the same connector delivers.
#[tokio::test]
async fn a_result_past_the_bounds_is_refused_whole() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let config = dirs
        .base_config_with("deadline = \"2s\"\nmax_delivery_bytes = 1000\nmax_result_bytes = 4000")
        + &hostile_connector(
            "hostile",
            &[receiver.origin()],
            &format!("{}/in", receiver.origin()),
            "",
            "",
        );
    let host = Host::start(&config).await;

    let too_many = send_hostile(&host, json!({"do": "many", "n": 101})).await;
    let too_big = send_hostile(&host, json!({"do": "ok", "pad": "x".repeat(1500)})).await;
    let too_much = send_hostile(&host, json!({"do": "many", "n": 100})).await;
    for (id, bound) in [
        (
            &too_many,
            "101 deliveries returned; plugins.max_deliveries is 100",
        ),
        (&too_big, "plugins.max_delivery_bytes is 1000"),
        (&too_much, "plugins.max_result_bytes is 4000"),
    ] {
        let record = host.wait_for_status(id, "dead").await;
        let attempts = record["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "dead at once: {record:#}");
        assert_eq!(attempts[0]["outcome"], "oversized");
        assert!(
            attempts[0]["message"].as_str().unwrap().contains(bound),
            "{record:#}"
        );
        assert_eq!(record["deliveries"].as_array().map_or(0, Vec::len), 0);
    }

    let fine = send_hostile(&host, json!({"do": "many", "n": 3})).await;
    host.wait_for_status(&fine, "succeeded").await;
    assert_eq!(
        receiver.received().len(),
        3,
        "only the result within the bounds was sent"
    );
    host.stop().await;
}

/// A connector that is always slow (here: each call waits on a slow `http.fetch`) holds its
/// own share of the workers (`max_concurrency`, by default half of `server.workers`),
/// never all of them: another connector's events are delivered while every call of the
/// slow one is still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_connector_cannot_hold_every_worker() {
    const SLOW: Duration = Duration::from_secs(4);
    let receiver = Receiver::start().await;
    let slow_api = Receiver::start().await;
    for _ in 0..6 {
        slow_api.respond_slowly(SLOW);
    }
    let dirs = Dirs::new(&["hostile.wasm"]);
    let connector = |id: &str| {
        hostile_connector(
            id,
            &[receiver.origin(), slow_api.origin()],
            &format!("{}/{id}", receiver.origin()),
            "[connector.retry]\nmax_attempts = 1\ntimeout = \"10s\"",
            "",
        )
    };
    let config = dirs.base_config_with("deadline = \"8s\"").replacen(
        "[server]\n",
        "[server]\nworkers = 4\n",
        1,
    ) + &connector("slow")
        + &connector("fast");
    let host = Host::start(&config).await;

    let mut slow = Vec::new();
    for _ in 0..6 {
        let body = json!({"do": "fetch", "url": format!("{}/slow", slow_api.origin())});
        let response = host
            .post_hook("slow", &[], body.to_string().as_bytes())
            .await;
        let answer: Value = response.json().await.unwrap();
        slow.push(answer["id"].as_str().unwrap().to_string());
    }
    // The slow connector has taken all it may: its share, 2 of the 4 workers.
    let api = slow_api.clone();
    wait_for(
        "the slow calls to start",
        Duration::from_secs(10),
        move || {
            let api = api.clone();
            async move { api.received().len() >= 2 }
        },
    )
    .await;

    let started = std::time::Instant::now();
    for n in 0..5 {
        let body = json!({"do": "ok", "n": n});
        let response = host
            .post_hook("fast", &[], body.to_string().as_bytes())
            .await;
        assert_eq!(response.status(), 200);
    }
    let delivered = receiver.wait_delivered(5).await;
    eprintln!(
        "5 events of the fast connector delivered {:?} after the first was sent, while the slow one held its share",
        started.elapsed()
    );
    assert!(delivered.iter().all(|r| r.path == "/fast"));

    // No call of the slow connector has ended yet: the fast events did not wait for one.
    for id in &slow {
        let record = host.event(id).await;
        assert_eq!(
            record["attempts"].as_array().map_or(0, Vec::len),
            0,
            "a slow call ended before the fast events were through: {record:#}"
        );
    }
    assert_eq!(
        slow_api.received().len(),
        2,
        "the slow connector ran only its share of calls at once"
    );
    host.stop().await;
}
