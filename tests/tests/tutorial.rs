//! The SDK tutorial (`sdk/README.md`) walked end to end, so it cannot rot: scaffold a
//! connector with the real `switchyard new connector`, run its generated tests, build it
//! for `wasm32-wasip2`, drop the `.wasm` into a running host's watched plugins folder, and
//! send it an event signed by `switchyard sign`.
//!
//! Slow-ish: it runs Cargo twice on the generated crate (once for `cargo test`, once for
//! the wasm build). Both share `target/tutorial/` in this repository, so after the first
//! run only the small generated crate is compiled again.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::*;

const NAME: &str = "tutorial-hello";
/// A Standard Webhooks secret (`whsec_` + base64 of random bytes), as the tutorial makes.
const SECRET: &str = "whsec_dHV0b3JpYWwtc2VjcmV0LWZvci10ZXN0cy1vbmx5";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Cargo in the generated crate, as a connector author runs it, with a shared target dir.
fn cargo(crate_dir: &Path, target_dir: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let out = Command::new(cargo)
        .args(args)
        .current_dir(crate_dir)
        .env("CARGO_TARGET_DIR", target_dir)
        // This test runs under an outer Cargo: do not inherit its jobserver.
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("running cargo");
    eprintln!("cargo {} took {:?}", args.join(" "), started.elapsed());
    out
}

/// `switchyard sign` output (`Name: value` lines) as header pairs.
fn sign(body_file: &Path, id: &str) -> Vec<(String, String)> {
    let out = check(
        "switchyard sign",
        Command::new(binary())
            .args(["sign", "--scheme", "standard-webhooks", "--secret", SECRET])
            .args(["--id", id])
            .arg(body_file)
            .output()
            .unwrap(),
    );
    text(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaffold_test_build_hot_load_and_handle_a_signed_event() {
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let target_dir = repo_root().join("target/tutorial");

    // 1. `switchyard new connector tutorial-hello`
    let out = check(
        "switchyard new connector",
        Command::new(binary())
            .args(["new", "connector", NAME, "--path"])
            .arg(work.path())
            .arg("--sdk-path")
            .arg(repo_root().join("sdk"))
            .output()
            .unwrap(),
    );
    let crate_dir = work.path().join(NAME);
    assert!(
        text(&out.stdout).contains(&crate_dir.display().to_string()),
        "{}",
        text(&out.stdout)
    );
    // Resolve dependencies to the versions this repository is tested with (what a new
    // crate would resolve to on its own can be newer than the SDK's rust-version allows).
    std::fs::copy(repo_root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();

    // 2. `cargo test`: the generated tests pass as generated.
    let out = check("cargo test", cargo(&crate_dir, &target_dir, &["test"]));
    let report = text(&out.stdout);
    assert!(report.contains("test result: ok. 4 passed"), "{report}");

    // 3. `cargo build --release --target wasm32-wasip2` (never a previous run's output).
    let wasm: PathBuf = target_dir.join("wasm32-wasip2/release/tutorial_hello.wasm");
    let _ = std::fs::remove_file(&wasm);
    check(
        "cargo build --release --target wasm32-wasip2 (is the target installed? \
         `rustup target add wasm32-wasip2`)",
        cargo(
            &crate_dir,
            &target_dir,
            &["build", "--release", "--target", "wasm32-wasip2"],
        ),
    );
    assert!(wasm.is_file(), "{} was not built", wasm.display());
    let built = started.elapsed();

    hot_load_and_handle(work.path(), NAME, &wasm, "tutorial_hello.wasm").await;
    eprintln!(
        "tutorial: built in {built:?}, whole walk {:?}",
        started.elapsed()
    );
}

/// npm in the generated project, as a connector author runs it.
fn npm(project: &Path, args: &[&str]) -> Output {
    let started = Instant::now();
    let out = Command::new("npm")
        .args(args)
        .current_dir(project)
        .output()
        .expect("running npm (Node.js and npm must be installed)");
    eprintln!("npm {} took {:?}", args.join(" "), started.elapsed());
    out
}

/// The JavaScript tutorial (`sdk-js/README.md`) walked the same way: `switchyard new
/// connector --lang js`, `npm install` (the SDK is a `file:` link to `sdk-js/`, whose own
/// build tools `make js-deps` installed, so nothing is downloaded), `npm test`, `npm run
/// build`, then the same hot load and signed event as the Rust one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_scaffold_test_build_hot_load_and_handle_a_signed_event() {
    const NAME: &str = "tutorial-js";
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();

    // 1. `switchyard new connector tutorial-js --lang js`
    let out = check(
        "switchyard new connector --lang js",
        Command::new(binary())
            .args(["new", "connector", NAME, "--lang", "js", "--path"])
            .arg(work.path())
            .arg("--sdk-path")
            .arg(repo_root().join("sdk-js"))
            .output()
            .unwrap(),
    );
    let project = work.path().join(NAME);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&project.display().to_string()) && stdout.contains("npm run build"),
        "{stdout}"
    );
    assert!(project.join("package.json").is_file());

    // 2. `npm install` and `npm test`: the generated tests pass as generated.
    check(
        "npm install",
        npm(
            &project,
            &["install", "--prefer-offline", "--no-audit", "--no-fund"],
        ),
    );
    let out = check("npm test", npm(&project, &["test"]));
    let report = text(&out.stdout);
    assert!(
        report.contains("# fail 0") && !report.contains("# pass 0"),
        "{report}"
    );

    // 3. `npm run build` writes tutorial-js.wasm in the project.
    check("npm run build", npm(&project, &["run", "build"]));
    let wasm = project.join("tutorial-js.wasm");
    assert!(wasm.is_file(), "{} was not built", wasm.display());
    let built = started.elapsed();

    hot_load_and_handle(work.path(), NAME, &wasm, "tutorial-js.wasm").await;
    eprintln!(
        "js tutorial: built in {built:?}, whole walk {:?}",
        started.elapsed()
    );
}

/// Steps 4 to 7 of the tutorial, the same for a Rust and a JavaScript connector: a running
/// host configured for connector `name` (plugin `file`) before the build is there, the
/// build `wasm` dropped in, a signed event forwarded, and its record read.
async fn hot_load_and_handle(work: &Path, name: &str, wasm: &Path, file: &str) {
    // 4. A running host, watching its plugins folder, configured for the connector
    //    before the .wasm is there.
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&[]);
    let config = dirs.root.path().join("switchyard.toml");
    std::fs::write(
        &config,
        dirs.base_config_with(&shared_compile_cache())
            .replace("watch = false", "watch = true")
            + &format!(
                r#"
[[connector]]
id = "{name}"
plugin = "{file}"
secret = "{SECRET}"
allowed_hosts = ["{origin}"]
[connector.settings]
forward_url = "{origin}/events"
"#,
                origin = receiver.origin()
            ),
    )
    .unwrap();
    let host = Host::start_from_file(&config).await;
    let info = host.connector(name).await;
    assert_eq!(info["digest"], Value::Null, "{info}");
    assert!(
        info["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(file)),
        "{info}"
    );
    let response = host.post_hook(name, &[], b"{}").await;
    assert_eq!(response.status(), 503, "no plugin yet");

    // 5. Drop the .wasm in atomically: it goes live without a restart.
    install(wasm, &dirs.plugins().join(file));
    let deadline = Instant::now() + Duration::from_secs(60);
    let info = loop {
        let info = host.connector(name).await;
        if info["digest"].is_string() {
            break info;
        }
        assert!(Instant::now() < deadline, "never loaded: {info}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(info["name"], name);
    assert_eq!(info["scheme"], "standard-webhooks", "the manifest's scheme");
    assert_eq!(info["last_error"], Value::Null, "{info}");

    // 6. A signed event: `switchyard sign … event.json`, then POST it.
    let body = json!({"type": "order.created", "data": {"id": 42}}).to_string();
    let body_file = work.join("event.json");
    std::fs::write(&body_file, &body).unwrap();
    let mut headers = sign(&body_file, "msg_tutorial_1");
    assert_eq!(headers.len(), 3, "{headers:?}");
    headers.push(("content-type".into(), "application/json".into()));
    let response = host.post_hook(name, &headers, body.as_bytes()).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "accepted", "{answer}");
    let event_id = answer["id"].as_str().unwrap().to_owned();

    // The connector forwarded it.
    let delivered = receiver.wait_delivered(1).await;
    assert_eq!(delivered[0].path, "/events");
    assert_eq!(delivered[0].body.as_ref(), body.as_bytes());
    assert_eq!(delivered[0].header("x-event-type"), Some("order.created"));
    assert!(delivered[0].header("idempotency-key").is_some());

    // 7. `GET /v1/events/{id}` tells the story.
    let record = host.wait_for_status(&event_id, "succeeded").await;
    assert_eq!(record["dedupe_key"], "msg_tutorial_1");
    let attempt = &record["attempts"][0];
    assert_eq!(attempt["outcome"], "deliveries");
    assert_eq!(attempt["plugin_digest"], info["digest"]);
    assert_eq!(attempt["logs"][0]["level"], "info");
    assert_eq!(
        attempt["logs"][0]["message"],
        format!("forwarding order.created event {event_id}")
    );

    // A sender's retry (same webhook-id) is a duplicate, not a second delivery.
    let response = host
        .post_hook(name, &sign(&body_file, "msg_tutorial_1"), body.as_bytes())
        .await;
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "duplicate", "{answer}");
    assert_eq!(answer["id"], event_id);

    // A wrong signature never reaches the connector.
    let mut forged = sign(&body_file, "msg_tutorial_2");
    for (name, value) in &mut forged {
        if name.eq_ignore_ascii_case("webhook-signature") {
            *value = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
        }
    }
    let response = host.post_hook(name, &forged, body.as_bytes()).await;
    assert_eq!(response.status(), 401);

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.received().len(), 1);
    host.stop().await;
}
