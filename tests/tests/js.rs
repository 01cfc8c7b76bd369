//! A connector written in JavaScript (`@switchyard/sdk`, built by componentize-js) is held
//! exactly as a Rust one: past its deadline it is stopped, past its memory cap it traps, an
//! uncaught exception is a trap, `retry`/`reject` mean what they mean for Rust, and the host
//! (and the Rust connector beside it) keeps serving. Uses `tests/connectors/hostile-js`,
//! which misbehaves on request like the Rust `hostile` one (`make js-plugins` builds it).
//!
//! The tutorial's JS path is walked in `tutorial.rs`; the JS port of a shipped connector
//! against the Rust one in `mailchimp.rs`.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::*;

/// `hostile-js` at `/hooks/hostile` (so [`send_hostile`] reaches it) and the Rust `hostile`
/// at `/hooks/rust`, both forwarding to `receiver`, with a short deadline and quick retries.
fn config(dirs: &Dirs, receiver: &Receiver) -> String {
    let connector = |id: &str, plugin: &str| {
        hostile_connector(
            id,
            &[receiver.origin()],
            &format!("{}/{id}", receiver.origin()),
            "[connector.retry]\ninitial_backoff = \"20ms\"\nmax_backoff = \"50ms\"\nmax_attempts = 3",
            "",
        )
        .replace("plugin = \"hostile.wasm\"", &format!("plugin = {plugin:?}"))
    };
    dirs.base_config_with(&format!("deadline = \"500ms\"\n{}", shared_compile_cache()))
        + &connector("hostile", "hostile-js.wasm")
        + &connector("rust", "hostile.wasm")
}

async fn send_rust(host: &Host, n: u64) -> String {
    let response = host
        .post_hook(
            "rust",
            &[],
            json!({"do": "ok", "n": n}).to_string().as_bytes(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    answer["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_spinning_js_connector_hits_its_deadline_and_the_others_keep_flowing() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile-js.wasm", "hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver)).await;
    let info = host.connector("hostile").await;
    assert_eq!(info["name"], "hostile-js", "{info}");

    let spinning = send_hostile(&host, json!({"do": "spin"})).await;
    let fine = send_hostile(&host, json!({"do": "ok", "n": 1})).await;
    let rust = send_rust(&host, 2).await;
    let fine = host.wait_for_status(&fine, "succeeded").await;
    let rust = host.wait_for_status(&rust, "succeeded").await;
    // Each attempt says how much linear memory its instance held, against the cap.
    let js_memory = fine["attempts"][0]["memory_bytes"].as_u64().unwrap();
    let rust_memory = rust["attempts"][0]["memory_bytes"].as_u64().unwrap();
    assert!(
        rust_memory > 0 && rust_memory < js_memory && js_memory <= 64 << 20,
        "rust {rust_memory} B, js {js_memory} B"
    );

    let record = host.wait_for_status(&spinning, "dead").await;
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "retried up to max_attempts: {record:#}");
    for attempt in attempts {
        assert_eq!(attempt["outcome"], "deadline", "{record:#}");
    }
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    let body: Value = serde_json::from_slice(
        &delivered
            .iter()
            .find(|r| r.path == "/hostile")
            .expect("the JS connector's delivery")
            .body,
    )
    .unwrap();
    assert_eq!(body, json!({"do": "ok", "n": 1}));
    host.stop().await;
}

#[tokio::test]
async fn a_js_connector_that_eats_memory_traps_at_the_cap() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile-js.wasm", "hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver)).await;
    let id = send_hostile(&host, json!({"do": "alloc"})).await;
    let record = host.wait_for_status(&id, "dead").await;
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "a trap is retried: {record:#}");
    assert_eq!(attempts[0]["outcome"], "trap", "{record:#}");
    // The JS engine's heap cannot grow past the cap: the grow traps, as for Rust.
    let message = attempts[0]["message"].as_str().unwrap();
    assert!(message.contains("growing memory"), "{record:#}");
    let memory = attempts[0]["memory_bytes"].as_u64().unwrap();
    assert!(memory <= 64 << 20, "held within the cap: {record:#}");
    // The host is fine afterwards, and so is the next JS instance.
    let fine = send_hostile(&host, json!({"do": "ok"})).await;
    host.wait_for_status(&fine, "succeeded").await;
    host.stop().await;
}

#[tokio::test]
async fn js_exceptions_are_traps_and_retry_and_reject_mean_what_they_mean_in_rust() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile-js.wasm", "hostile.wasm"]);
    let host = Host::start(&config(&dirs, &receiver)).await;

    let record = assert_trap_retry_and_reject(&host).await;
    // The SDK logged the exception first, its stack pointing into the connector's source.
    let logs = record["attempts"][0]["logs"].to_string();
    assert!(
        logs.contains("uncaught exception in handle: Error: asked to trap")
            && logs.contains("src/index.js:"),
        "{record:#}"
    );

    assert!(receiver.received().is_empty());
    // A Rust connector beside it was never held up.
    let rust = send_rust(&host, 3).await;
    host.wait_for_status(&rust, "succeeded").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.received().len(), 1);
    host.stop().await;
}
