//! The `switchyard` command as a user runs it: `check` on good and broken configs, and
//! `sign` against the published test vectors.

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
