//! Crash safety: the real binary, several concurrent senders, `kill -9` midway, restart.
//! Every event that got a 200 must be delivered at least once afterwards.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use switchyard_tests::*;

const SENDERS: usize = 4;
const PER_SENDER: usize = 100;

/// The config file of a host with the Stripe connector forwarding to `origin`, with
/// `extra` among the connector's keys (keys, or subtables: before `[connector.settings]`,
/// either is valid TOML).
fn write_config(dirs: &Dirs, origin: &str, extra: &str) -> std::path::PathBuf {
    let path = dirs.root.path().join("switchyard.toml");
    let config = dirs.base_config()
        + &format!(
            r#"
[[connector]]
id = "stripe"
plugin = "stripe.wasm"
secret = "{STRIPE_SECRET}"
allowed_hosts = ["{origin}"]
{extra}
[connector.settings]
forward_url = "{origin}/billing"
"#
        );
    std::fs::write(&path, config).unwrap();
    path
}

/// sled is written behind the inbox: how many events that sled had not written when the
/// host died came back from the inbox at this start (the store logs it).
fn replayed(host: &ChildHost) -> String {
    host.log
        .lock()
        .unwrap()
        .lines()
        .find(|line| line.contains("applied acknowledged events again"))
        .and_then(|line| line.split_whitespace().find(|w| w.starts_with("count=")))
        .map_or("none".to_string(), str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_midway_loses_nothing_that_got_a_200() {
    let receiver = Receiver::start().await;
    // The downstream fails for a while, so retries are pending when the host dies.
    receiver.respond_with(&[503; 120]);
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config_path = write_config(
        &dirs,
        &receiver.origin(),
        "[connector.retry]\ninitial_backoff = \"50ms\"\nmax_backoff = \"500ms\"",
    );

    let host = ChildHost::start(&config_path);
    let base = host.url("/hooks/stripe");
    let acknowledged = Arc::new(std::sync::Mutex::new(HashMap::<String, String>::new()));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (client, base) = (client.clone(), base.clone());
        let (acknowledged, acked_count) = (acknowledged.clone(), acked_count.clone());
        senders.push(tokio::spawn(async move {
            let mut failures = 0;
            for _ in 0..PER_SENDER {
                let evt = evt_id();
                let body = stripe_event(&evt, "invoice.paid");
                let mut request = client.post(&base).body(body.clone());
                for (k, v) in stripe_headers(STRIPE_SECRET, &body, now()) {
                    request = request.header(k, v);
                }
                match request.send().await {
                    Ok(response) if response.status() == 200 => {
                        let answer: Value = response.json().await.unwrap();
                        assert_eq!(answer["status"], "accepted");
                        let id = answer["id"].as_str().unwrap().to_string();
                        acknowledged.lock().unwrap().insert(evt, id);
                        acked_count.fetch_add(1, Ordering::SeqCst);
                    }
                    // Refused or cut off by the kill: the sender would retry; not ours.
                    _ => failures += 1,
                }
            }
            failures
        }));
    }

    // Kill it hard once a good share has been acknowledged.
    let target = SENDERS * PER_SENDER * 2 / 5;
    let counter = acked_count.clone();
    wait_for("acknowledged events", Duration::from_secs(60), move || {
        let counter = counter.clone();
        async move { counter.load(Ordering::SeqCst) >= target }
    })
    .await;
    host.kill_9();
    let mut failed = 0;
    for sender in senders {
        failed += sender.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= target);
    assert!(
        failed > 0,
        "the kill happened while senders were still sending"
    );

    // Restart on the same data dir: everything acknowledged is delivered.
    let host = ChildHost::start(&config_path);
    let want: HashSet<String> = acknowledged.keys().cloned().collect();
    let missing = receiver
        .wait_for_stripe_events(&want, Duration::from_secs(90))
        .await;
    assert!(
        missing.is_empty(),
        "{} acknowledged events never delivered: {:?}\nhost log:\n{}",
        missing.len(),
        missing,
        host.log.lock().unwrap()
    );
    let delivered: Vec<String> = receiver
        .delivered()
        .iter()
        .filter_map(|d| d.header("x-stripe-event-id").map(str::to_string))
        .collect();
    let unique: HashSet<&String> = delivered.iter().collect();
    // And each has its record in the event log.
    for id in acknowledged.values().take(50) {
        let response = host.admin_get(&format!("/v1/events/{id}")).await;
        assert_eq!(response.status(), 200, "event {id} is in the log");
    }
    eprintln!(
        "crash test: {} acknowledged, {} refused or cut off, {} delivered ({} more than once), {} 503s, replayed from the inbox: {}",
        acknowledged.len(),
        failed,
        delivered.len(),
        delivered.len() - unique.len(),
        receiver
            .received()
            .iter()
            .filter(|r| r.status == 503)
            .count(),
        replayed(&host)
    );
    host.kill_9();
}

/// A write that fails (a full disk, simulated by a file-size limit on the real binary) is
/// answered 503, never 200; the host keeps serving; after a restart without the limit,
/// every event that got a 200 is in the log with its body intact, and the sender's retry of
/// a refused event is accepted, not taken for a duplicate of something never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_is_a_503_and_loses_nothing() {
    const LIMIT: u64 = 4 << 20;
    let dirs = Dirs::new(&["stripe.wasm"]);
    // Paused: the events stay in the log, nothing is delivered.
    let config_path = write_config(&dirs, "http://127.0.0.1:9", "paused = true");
    let client = reqwest::Client::new();
    // ~40 KB events: the inbox segment reaches the limit after about a hundred.
    let event = |evt: &str| {
        serde_json::to_vec(&serde_json::json!({
            "id": evt,
            "object": "event",
            "type": "invoice.paid",
            "data": { "object": { "id": "in_1", "object": "invoice", "description": "x".repeat(40_000) } },
        }))
        .unwrap()
    };
    let send = |base: String, body: Vec<u8>| {
        let client = client.clone();
        async move {
            let mut request = client.post(base).body(body.clone());
            for (k, v) in stripe_headers(STRIPE_SECRET, &body, now()) {
                request = request.header(k, v);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap();
            (status, answer)
        }
    };

    let mut host = ChildHost::start_with_file_size_limit(&config_path, LIMIT);
    let mut accepted = Vec::new(); // (evt, id, body)
    let mut refused = Vec::new(); // evt
    let mut accepted_after_refusal = 0;
    for _ in 0..400 {
        let evt = evt_id();
        let body = event(&evt);
        let (status, answer) = send(host.url("/hooks/stripe"), body.clone()).await;
        match status {
            200 => {
                assert_eq!(answer["status"], "accepted", "{answer}");
                accepted.push((evt, answer["id"].as_str().unwrap().to_string(), body));
                if !refused.is_empty() {
                    accepted_after_refusal += 1;
                }
            }
            503 => {
                assert_eq!(answer["error"]["code"], "unavailable", "{answer}");
                refused.push(evt);
            }
            other => panic!("unexpected {other}: {answer}"),
        }
        if accepted_after_refusal >= 10 {
            break;
        }
    }
    assert!(
        !refused.is_empty(),
        "no write failed under a {LIMIT}-byte file limit ({} accepted)",
        accepted.len()
    );
    assert!(host.is_running(), "the host survived the failed writes");
    assert_eq!(
        accepted_after_refusal,
        10,
        "the host kept accepting after a failed write; log:\n{}",
        host.log.lock().unwrap()
    );
    host.kill_9();

    let host = ChildHost::start(&config_path);
    for (_, id, body) in &accepted {
        let response = host.admin_get(&format!("/v1/events/{id}")).await;
        assert_eq!(
            response.status(),
            200,
            "event {id} is in the log; log:\n{}",
            host.log.lock().unwrap()
        );
        let event: Value = response.json().await.unwrap();
        assert_eq!(
            event["request"]["body"].as_str().unwrap().as_bytes(),
            body.as_slice(),
            "event {id} kept its body"
        );
    }
    for evt in &refused {
        let (status, answer) = send(host.url("/hooks/stripe"), event(evt)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], "accepted", "the retry of {evt}: {answer}");
    }
    eprintln!(
        "disk-full test: {} accepted, {} refused with 503, all accepted ones intact after a restart, replayed from the inbox: {}",
        accepted.len(),
        refused.len(),
        replayed(&host)
    );
    host.kill_9();
}

/// `make run` and the README use relative paths (`data`, `dist/plugins`): they are
/// relative to the working directory, and the compile cache under them must work too.
#[tokio::test]
async fn relative_paths_in_the_config_work() {
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[storage]
path = "data"
[plugins]
dir = "plugins"
[[connector]]
id = "stripe"
plugin = "stripe.wasm"
secret = "{STRIPE_SECRET}"
"#
    );
    std::fs::write(dirs.root.path().join("switchyard.toml"), config).unwrap();
    let host = ChildHost::start_in(dirs.root.path(), std::path::Path::new("switchyard.toml"));
    let body = stripe_event(&evt_id(), "invoice.paid");
    let mut request = reqwest::Client::new()
        .post(host.url("/hooks/stripe"))
        .body(body.clone());
    for (k, v) in stripe_headers(STRIPE_SECRET, &body, now()) {
        request = request.header(k, v);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    assert!(
        dirs.root
            .path()
            .join("data")
            .join("index")
            .join("db")
            .exists()
    );
    assert!(dirs.root.path().join("data").join("compiled").exists());
    host.kill_9();
}
