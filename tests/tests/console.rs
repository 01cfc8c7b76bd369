//! The web console at `/console/`, end to end in a real browser: Debian's `chromium`,
//! driven by npm's `playwright-core` (`tests/console/console.test.mjs`, installed by
//! `make console-deps`), against a host started here with the Stripe connector and a fake
//! backend. The browser signs in, watches a signed event arrive, opens it, replays it,
//! searches, pauses and resumes the connector, disables and enables a destination, reads
//! the chart and bulk-replays; this side
//! then checks what the backend received.
//!
//! Screenshots of each view are left in `target/console-screenshots/`.

use std::collections::HashMap;
use std::time::Duration;

use switchyard_tests::*;

const READ_TOKEN: &str = "test-read-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser() {
    let root = repo_root();
    let script = root.join("tests/console/console.test.mjs");
    assert!(
        root.join("tests/console/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is not installed: run `make console-deps` (npm ci in tests/console)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "no browser at {chromium}: `make console-deps` installs Debian's chromium"
    );

    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config = dirs.base_config().replace(
        &format!("admin_token = \"{ADMIN_TOKEN}\""),
        &format!("admin_token = \"{ADMIN_TOKEN}\"\nadmin_read_token = \"{READ_TOKEN}\""),
    ) + &stripe_connector(&receiver, "")
        + &format!(
            "\n[[destination]]\nid = \"audit\"\nurl = \"{}/audit\"\n",
            receiver.origin()
        );
    let host = Host::start(&config).await;

    let artifacts = root.join("target/console-screenshots");
    let output = tokio::process::Command::new("node")
        .arg("--test-reporter=spec")
        .arg(&script)
        .current_dir(root.join("tests/console"))
        .env("CONSOLE_URL", host.url(""))
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("READ_TOKEN", READ_TOKEN)
        .env("STRIPE_SECRET", STRIPE_SECRET)
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), output)
        .await
        .expect("the browser test finishes within 4 minutes")
        .expect("node runs (Node.js 20 or newer is on the PATH)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let summary: serde_json::Value = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("SUMMARY "))
        .map(|json| serde_json::from_str(json).expect("the summary is JSON"))
        .unwrap_or_else(|| panic!("no SUMMARY line in:\n{stdout}"));

    // What the browser did reached the backend: the first event three times (its run, the
    // replay from its page, the bulk replay), the paused one twice, each under one
    // Idempotency-Key throughout (replays keep keys unless asked for new ones).
    let replayed = summary["replayed"].as_str().unwrap().to_string();
    let waited = summary["waited"].as_str().unwrap().to_string();
    let want = HashMap::from([(replayed.clone(), 3), (waited.clone(), 2)]);
    let deliveries = |receiver: &Receiver| {
        let mut by_event: HashMap<String, Vec<String>> = HashMap::new();
        for d in receiver.delivered() {
            if let Some(evt) = d.header("x-stripe-event-id") {
                let key = d.header("idempotency-key").unwrap_or_default().to_string();
                by_event.entry(evt.to_string()).or_default().push(key);
            }
        }
        by_event
    };
    let check = receiver.clone();
    let want_now = want.clone();
    wait_for(
        "the replays to reach the backend",
        Duration::from_secs(30),
        move || {
            let got = deliveries(&check);
            let done = want_now
                .iter()
                .all(|(evt, n)| got.get(evt).is_some_and(|keys| keys.len() >= *n));
            async move { done }
        },
    )
    .await;
    let got = deliveries(&receiver);
    for (evt, n) in &want {
        let keys = &got[evt];
        assert_eq!(keys.len(), *n, "{evt} delivered {n} times: {keys:?}");
        assert!(
            keys.iter().all(|k| k == &keys[0] && !k.is_empty()),
            "{evt} kept one Idempotency-Key: {keys:?}"
        );
    }
    host.stop().await;
}
