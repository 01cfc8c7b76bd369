//! Hot-loading: plugins and config change while the host serves, and no webhook notices.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::*;

/// A config file for the hostile connector `t` (scheme none), watched.
fn config_text(dirs: &Dirs, receiver: &Receiver, connector_extra: &str, more: &str) -> String {
    dirs.base_config().replace("watch = false", "watch = true")
        + &format!(
            r#"
[[connector]]
id = "t"
plugin = "t.wasm"
scheme = "none"
allowed_hosts = ["{origin}"]
{connector_extra}
[connector.retry]
initial_backoff = "20ms"
[connector.settings]
forward_url = "{origin}/in"
{more}
"#,
            origin = receiver.origin()
        )
}

fn setup(receiver: &Receiver, connector_extra: &str) -> (Dirs, std::path::PathBuf) {
    let dirs = Dirs::new(&[]);
    install(&plugin("hostile.wasm"), &dirs.plugins().join("t.wasm"));
    let path = dirs.root.path().join("switchyard.toml");
    std::fs::write(&path, config_text(&dirs, receiver, connector_extra, "")).unwrap();
    (dirs, path)
}

async fn wait_connector(
    host: &Host,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = host.connector(id).await;
        if check(&info) {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "connector {id} never {what}: {info}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_builds_under_load_loses_nothing() {
    let receiver = Receiver::start().await;
    let (dirs, path) = setup(&receiver, "");
    let host = Arc::new(Host::start_from_file(&path).await);
    let a_digest = host.connector("t").await["digest"].clone();

    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (host, stop, seq) = (host.clone(), stop.clone(), seq.clone());
        senders.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut failures = Vec::new();
            let mut latencies = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let n = seq.fetch_add(1, Ordering::SeqCst);
                let started = Instant::now();
                let response = host
                    .post_hook(
                        "t",
                        &[],
                        json!({"do": "ok", "seq": n}).to_string().as_bytes(),
                    )
                    .await;
                latencies.push((started, started.elapsed()));
                if response.status() == 200 {
                    accepted.push(n);
                } else {
                    failures.push((n, response.status().as_u16()));
                }
            }
            (accepted, failures, latencies)
        }));
    }

    // Steady state first, then swap a ⇄ b every 850 ms: about 10 s of load in all.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let swaps_started = Instant::now();
    for i in 0..10 {
        let build = if i % 2 == 0 {
            "hostile-b.wasm"
        } else {
            "hostile.wasm"
        };
        install(&plugin(build), &dirs.plugins().join("t.wasm"));
        tokio::time::sleep(Duration::from_millis(850)).await;
    }
    stop.store(true, Ordering::SeqCst);

    let mut accepted = Vec::new();
    let mut failures = Vec::new();
    let mut steady = Vec::new();
    let mut swapping = Vec::new();
    for sender in senders {
        let (a, f, l) = sender.await.unwrap();
        accepted.extend(a);
        failures.extend(f);
        for (at, took) in l {
            if at < swaps_started {
                steady.push(took)
            } else {
                swapping.push(took)
            }
        }
    }
    assert!(
        failures.is_empty(),
        "non-200 answers during swaps: {failures:?}"
    );
    assert!(accepted.len() > 100, "only {} events sent", accepted.len());

    // Every accepted event is delivered, by one build or the other.
    receiver.wait_delivered(accepted.len()).await;
    let mut builds = HashMap::<String, usize>::new();
    let mut seen = HashSet::new();
    for r in receiver.delivered() {
        *builds
            .entry(r.header("x-build").unwrap_or("?").to_string())
            .or_default() += 1;
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        seen.insert(body["seq"].as_u64().unwrap() as usize);
    }
    let lost: Vec<_> = accepted.iter().filter(|n| !seen.contains(n)).collect();
    assert!(lost.is_empty(), "lost events: {lost:?}");
    assert!(builds.get("a").copied().unwrap_or(0) > 0, "{builds:?}");
    assert!(builds.get("b").copied().unwrap_or(0) > 0, "{builds:?}");

    // Each attempt records the digest and version of the code that ran it: read the whole
    // log (the newest page alone can fall within one build's time).
    let mut events = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: Value = host
            .admin_get(&format!("/v1/events?limit=1000{cursor}"))
            .await
            .json()
            .await
            .unwrap();
        events.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(
        events.len(),
        accepted.len(),
        "every accepted event is in the log"
    );
    let mut digests = HashSet::new();
    let mut versions = HashSet::new();
    for event in &events {
        let attempt = &event["attempts"][0];
        digests.insert(
            attempt["plugin_digest"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        versions.insert(
            attempt["plugin_version"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert!(digests.contains(a_digest.as_str().unwrap()));
    assert_eq!(digests.len(), 2, "{digests:?}");
    assert_eq!(
        versions,
        HashSet::from(["0.1.0+a".to_string(), "0.1.0+b".to_string()])
    );

    steady.sort();
    swapping.sort();
    let p99 = |v: &Vec<Duration>| v[(v.len() * 99 / 100).min(v.len() - 1)];
    eprintln!(
        "hot swap: {} events, builds {:?}; p99 ingress steady {:?} ({} requests), during swaps {:?} ({} requests)",
        accepted.len(),
        builds,
        p99(&steady),
        steady.len(),
        p99(&swapping),
        swapping.len()
    );
    Arc::into_inner(host).unwrap().stop().await;
}

#[tokio::test]
async fn a_bad_new_version_is_refused_and_the_old_one_keeps_serving() {
    let receiver = Receiver::start().await;
    let (dirs, path) = setup(&receiver, "");
    let host = Host::start_from_file(&path).await;
    let good = host.connector("t").await["digest"].clone();
    let target = dirs.plugins().join("t.wasm");

    for (what, bytes, reason) in [
        (
            "garbage",
            b"definitely not wasm".to_vec(),
            "not a WebAssembly component",
        ),
        (
            "another world",
            std::fs::read(plugin("wrong-world.wasm")).unwrap(),
            "does not implement switchyard:connector",
        ),
    ] {
        std::fs::write(dirs.plugins().join("staging"), &bytes).unwrap();
        std::fs::rename(dirs.plugins().join("staging"), &target).unwrap();
        let info = wait_connector(&host, "t", "refused the new version", |i| {
            i["last_error"].as_str().is_some_and(|e| e.contains(reason))
        })
        .await;
        assert_eq!(info["digest"], good, "{what}: the old version still serves");
        let before = receiver.delivered().len();
        let response = host.post_hook("t", &[], br#"{"do":"ok"}"#).await;
        assert_eq!(response.status(), 200, "{what}");
        let delivered = receiver.wait_delivered(before + 1).await;
        assert_eq!(delivered.last().unwrap().header("x-build"), Some("a"));
    }

    // The good build again: the error clears.
    install(&plugin("hostile.wasm"), &target);
    wait_connector(&host, "t", "cleared its error", |i| {
        i["last_error"].is_null()
    })
    .await;

    // Removing the file unloads the connector: 503, never 200-and-drop.
    std::fs::remove_file(&target).unwrap();
    wait_connector(&host, "t", "unloaded", |i| i["digest"].is_null()).await;
    let response = host.post_hook("t", &[], br#"{"do":"ok"}"#).await;
    assert_eq!(response.status(), 503);
    host.stop().await;
}

#[tokio::test]
async fn a_first_load_failure_answers_503_until_a_good_version_arrives() {
    let receiver = Receiver::start().await;
    let (dirs, path) = setup(&receiver, "");
    std::fs::write(dirs.plugins().join("t.wasm"), b"junk").unwrap();
    let host = Host::start_from_file(&path).await;
    assert_eq!(
        host.post_hook("t", &[], br#"{"do":"ok"}"#).await.status(),
        503
    );
    install(&plugin("hostile.wasm"), &dirs.plugins().join("t.wasm"));
    wait_connector(&host, "t", "loaded", |i| i["digest"].is_string()).await;
    assert_eq!(
        host.post_hook("t", &[], br#"{"do":"ok"}"#).await.status(),
        200
    );
    receiver.wait_delivered(1).await;
    host.stop().await;
}

async fn count_events(host: &Host) -> usize {
    let page: Value = host
        .admin_get("/v1/events?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    page["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn enable_disable_pause_resume_through_the_config_file() {
    let receiver = Receiver::start().await;
    let (dirs, path) = setup(&receiver, "");
    let host = Host::start_from_file(&path).await;

    // Pause: accepted and stored, not dispatched.
    write_atomically(&path, &config_text(&dirs, &receiver, "paused = true", ""));
    wait_connector(&host, "t", "paused", |i| i["paused"] == true).await;
    let id = {
        let response = host.post_hook("t", &[], br#"{"do":"ok"}"#).await;
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.received().is_empty(), "paused: nothing dispatched");
    assert_eq!(host.event(&id).await["status"], "pending");

    // Resume: what waited goes out.
    write_atomically(&path, &config_text(&dirs, &receiver, "", ""));
    receiver.wait_delivered(1).await;
    host.wait_for_status(&id, "succeeded").await;

    // Disable: 404 and nothing stored.
    write_atomically(&path, &config_text(&dirs, &receiver, "enabled = false", ""));
    let listed = wait_connector_list(&host, |c| c["id"] == "t" && c["enabled"] == false).await;
    assert!(listed);
    let stored = count_events(&host).await;
    assert_eq!(
        host.post_hook("t", &[], br#"{"do":"ok"}"#).await.status(),
        404
    );
    assert_eq!(
        count_events(&host).await,
        stored,
        "a disabled connector stores nothing"
    );

    // Enable again.
    write_atomically(&path, &config_text(&dirs, &receiver, "", ""));
    wait_connector(&host, "t", "enabled", |i| i["digest"].is_string()).await;
    assert_eq!(
        host.post_hook("t", &[], br#"{"do":"ok"}"#).await.status(),
        200
    );
    receiver.wait_delivered(2).await;

    // A broken config is refused and the running one stays.
    write_atomically(&path, "[server]\nnot_a_key = 1\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list: Value = host.admin_get("/v1/connectors").await.json().await.unwrap();
        if list["config_error"]
            .as_str()
            .is_some_and(|e| e.contains("not_a_key"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "config error never reported: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        host.post_hook("t", &[], br#"{"do":"ok"}"#).await.status(),
        200
    );
    host.stop().await;
}

async fn wait_connector_list(host: &Host, check: impl Fn(&Value) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list: Value = host.admin_get("/v1/connectors").await.json().await.unwrap();
        if list["data"].as_array().unwrap().iter().any(&check) {
            return true;
        }
        assert!(Instant::now() < deadline, "never: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn pause_and_resume_through_the_api_and_reload_on_demand() {
    let receiver = Receiver::start().await;
    let (dirs, path) = setup(&receiver, "");
    let host = Host::start_from_file(&path).await;

    let paused: Value = host
        .admin_post("/v1/connectors/t/pause")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(paused["paused"], true);
    assert_eq!(
        host.post_hook("t", &[], br#"{"do":"ok"}"#).await.status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.received().is_empty());
    let resumed: Value = host
        .admin_post("/v1/connectors/t/resume")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resumed["paused"], false);
    receiver.wait_delivered(1).await;
    assert_eq!(
        host.admin_post("/v1/connectors/nope/pause").await.status(),
        404
    );

    // On-demand reload of one connector and of everything.
    std::fs::copy(plugin("hostile-b.wasm"), dirs.plugins().join("t.wasm")).unwrap();
    let reloaded: Value = host
        .admin_post("/v1/connectors/t/reload")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reloaded["version"], "0.1.0+b", "{reloaded}");
    let report: Value = host.admin_post("/v1/reload").await.json().await.unwrap();
    assert_eq!(report["unchanged"], json!(["t"]), "{report}");
    host.stop().await;
}

#[tokio::test]
async fn a_second_connector_added_through_the_config_file_serves() {
    let receiver = Receiver::start().await;
    let (dirs, path) = setup(&receiver, "");
    let host = Host::start_from_file(&path).await;
    assert_eq!(host.post_hook("second", &[], b"{}").await.status(), 404);

    install(
        &plugin("hostile-b.wasm"),
        &dirs.plugins().join("second.wasm"),
    );
    let second = format!(
        r#"
[[connector]]
id = "second"
plugin = "second.wasm"
scheme = "none"
allowed_hosts = ["{origin}"]
[connector.settings]
forward_url = "{origin}/second"
"#,
        origin = receiver.origin()
    );
    write_atomically(&path, &config_text(&dirs, &receiver, "", &second));
    wait_connector(&host, "second", "loaded", |i| i["digest"].is_string()).await;
    assert_eq!(
        host.post_hook("second", &[], br#"{"do":"ok"}"#)
            .await
            .status(),
        200
    );
    let delivered = receiver.wait_delivered(1).await;
    assert_eq!(delivered[0].path, "/second");
    assert_eq!(delivered[0].header("x-build"), Some("b"));
    host.stop().await;
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk_for_the_next_start() {
    let receiver = Receiver::start().await;
    let (dirs, path) = setup(&receiver, "");
    let cache = dirs.data().join("compiled");
    let files = |dir: &std::path::Path| -> usize {
        fn walk(dir: &std::path::Path) -> usize {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| {
                            let p = e.path();
                            if p.is_dir() { walk(&p) } else { 1 }
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        walk(dir)
    };
    let host = Host::start_from_file(&path).await;
    let digest = host.connector("t").await["digest"].clone();
    host.stop().await;
    // wasmtime writes cache entries from a background worker: give it a moment.
    let c = cache.clone();
    wait_for(
        "a compiled artifact in the cache",
        Duration::from_secs(10),
        move || {
            let c = c.clone();
            async move { files(&c) > 0 }
        },
    )
    .await;
    let host = Host::start_from_file(&path).await;
    assert_eq!(host.connector("t").await["digest"], digest);
    host.stop().await;
}

#[tokio::test]
async fn one_file_change_is_one_reload() {
    let receiver = Receiver::start().await;
    let (dirs, path) = setup(&receiver, "");
    let host = Host::start_from_file(&path).await;
    let reloads = |list: Value| list["reloads"].as_u64().unwrap();
    let before = reloads(host.admin_get("/v1/connectors").await.json().await.unwrap());
    install(&plugin("hostile-b.wasm"), &dirs.plugins().join("t.wasm"));
    wait_connector(&host, "t", "swapped", |i| i["version"] == "0.1.0+b").await;
    // The reload reads the plugin files; those reads must not trigger further reloads.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = reloads(host.admin_get("/v1/connectors").await.json().await.unwrap());
    assert!(
        after - before <= 2,
        "{} reloads for one change",
        after - before
    );
    host.stop().await;
}
