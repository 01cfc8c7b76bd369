//! The `switchyard` command as a user runs it: `check` on good and broken configs, `sign`
//! against the published test vectors, and `new connector`. (The generated crate is built
//! and run in a host by `tests/tests/tutorial.rs`.)

use std::path::Path;
use std::process::{Command, Output};

fn switchyard(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("running switchyard")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

#[test]
fn check_names_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "bad.toml",
        "[server]\nlistn = \"127.0.0.1:1\"\n",
    );
    let out = switchyard(&["check", "--config", &config], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("listn"), "{err}");
    assert!(err.contains("[server]"), "{err}");
}

#[test]
fn check_names_a_missing_secret_variable_without_printing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.toml",
        r#"
[server]
admin_token = "super-secret-admin-token"

[[connector]]
id = "stripe"
plugin = "stripe.wasm"
secret = "env:SWITCHYARD_TEST_UNSET_SECRET"
"#,
    );
    let out = switchyard(&["check", "--config", &config], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("SWITCHYARD_TEST_UNSET_SECRET"), "{err}");
    assert!(err.contains("secret"), "{err}");
    assert!(!err.contains("super-secret-admin-token"), "{err}");
}

#[test]
fn check_reports_a_missing_plugin_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.toml",
        &format!(
            r#"
[plugins]
dir = "{}"

[[connector]]
id = "stripe"
plugin = "stripe.wasm"
secret = "whsec_x"
scheme = "stripe"
"#,
            dir.path().display()
        ),
    );
    let out = switchyard(&["check", "--config", &config], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("error stripe"), "{stdout}");
    assert!(stdout.contains("stripe.wasm"), "{stdout}");
}

#[test]
fn check_a_missing_config_file_is_a_clear_error() {
    let out = switchyard(&["check", "--config", "/nonexistent/switchyard.toml"], &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/nonexistent/switchyard.toml"));
}

#[test]
fn sign_prints_the_stripe_vector() {
    let dir = tempfile::tempdir().unwrap();
    let body = write(
        dir.path(),
        "event.json",
        r#"{"id":"evt_test_webhook","object":"event"}"#,
    );
    let out = switchyard(
        &[
            "sign",
            "--scheme",
            "stripe",
            "--secret",
            "whsec_test_secret",
            "--timestamp",
            "1700000000",
            &body,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "Stripe-Signature: t=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
    );
}

#[test]
fn sign_prints_the_standard_webhooks_vector_and_reads_secrets_from_env() {
    let dir = tempfile::tempdir().unwrap();
    let body = write(dir.path(), "body.json", r#"{"test": 2432232314}"#);
    let out = switchyard(
        &[
            "sign",
            "--scheme",
            "standard-webhooks",
            "--secret",
            "env:SY_TEST_SECRET",
            "--id",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "--timestamp",
            "1614265330",
            &body,
        ],
        &[("SY_TEST_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout).to_ascii_lowercase();
    assert!(
        stdout.contains("webhook-signature: v1,g0hm9sse+otpjtgt/tmiktsyzle3ufjelvlniolj1oe="),
        "{stdout}"
    );
    assert!(stdout.contains("webhook-id: msg_p5jxn8aqm9lwm0d4lokwxjek"));
    assert!(stdout.contains("webhook-timestamp: 1614265330"));
}

#[test]
fn sign_rejects_an_unknown_scheme() {
    let out = switchyard(&["sign", "--scheme", "rot13", "--secret", "x", "-"], &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unknown scheme"));
}

#[test]
fn new_connector_scaffolds_a_standalone_crate() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("connectors");
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    let out = switchyard(
        &[
            "new",
            "connector",
            "my-hook",
            "--path",
            parent.to_str().unwrap(),
            "--sdk-path",
            sdk.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let crate_dir = parent.join("my-hook");
    assert!(text(&out.stdout).contains(&crate_dir.display().to_string()));
    assert!(text(&out.stdout).contains("my_hook.wasm"));

    let cargo = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let sdk = sdk.canonicalize().unwrap();
    assert!(
        cargo.contains(&format!(
            "switchyard-sdk = {{ path = \"{}\" }}",
            sdk.display()
        )),
        "{cargo}"
    );
    assert!(cargo.contains("\n[workspace]\n"), "{cargo}");
    assert!(
        cargo.contains(r#"crate-type = ["cdylib", "rlib"]"#),
        "{cargo}"
    );
    let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("switchyard_sdk::export!(MyHook);"), "{lib}");
    assert!(crate_dir.join("README.md").is_file());
    assert!(crate_dir.join(".gitignore").is_file());
}

#[test]
fn new_connector_refuses_an_existing_dir() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("hello");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("keep.txt"), "mine").unwrap();
    let out = switchyard(
        &[
            "new",
            "connector",
            "hello",
            "--path",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert!(err.contains(&existing.display().to_string()), "{err}");
    assert_eq!(
        std::fs::read_dir(&existing).unwrap().count(),
        1,
        "nothing written into the existing folder"
    );
    assert_eq!(
        std::fs::read_to_string(existing.join("keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn new_connector_refuses_bad_names_and_a_wrong_sdk_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    for bad in ["Hello", "1st", "my_hook", "a--b", "fn", "../escape"] {
        let out = switchyard(&["new", "connector", bad, "--path", path], &[]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let err = text(&out.stderr);
        assert!(err.contains("invalid connector name"), "{bad}: {err}");
    }
    let out = switchyard(
        &["new", "connector", "ok", "--path", path, "--sdk-path", path],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--sdk-path"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );
}
