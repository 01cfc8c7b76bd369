//! The operator's commands that look at things: `switchyard plugin inspect` on real builds,
//! and `switchyard events list|show|find|replay` and `switchyard connectors …` against a
//! real host's admin API.

use std::path::Path;

use serde_json::Value;
use switchyard_tests::*;

/// Run the real binary; its exit success, stdout and stderr.
async fn switchyard(args: &[&str]) -> (bool, String, String) {
    switchyard_in(None, &[], args).await
}

/// [`switchyard`] in `dir` (if given) with these environment variables set.
async fn switchyard_in(
    dir: Option<&Path>,
    env: &[(&str, &str)],
    args: &[&str],
) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(binary());
    command
        .args(args)
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .env_remove("SWITCHYARD_URL")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command.output().await.expect("running switchyard");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn plugin_inspect_shows_the_manifest_and_refuses_what_the_host_would() {
    let stripe = plugin("stripe.wasm");
    let (ok, out, err) = switchyard(&["plugin", "inspect", stripe.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert!(out.contains("name         stripe"), "{out}");
    assert!(out.contains("scheme       stripe"), "{out}");
    assert!(
        out.contains("forward_url") && out.contains("required"),
        "{out}"
    );
    let digest = switchyard::plugin::engine::digest(&std::fs::read(&stripe).unwrap());
    assert!(out.contains(&digest), "the digest the host reports: {out}");

    let (ok, out, _) = switchyard(&["plugin", "inspect", "--json", stripe.to_str().unwrap()]).await;
    assert!(ok);
    let manifest: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(manifest["name"], "stripe");
    assert_eq!(manifest["digest"], digest);

    // A truncated build and one for another world: exit 1, and the reason.
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.wasm");
    std::fs::write(&truncated, &std::fs::read(&stripe).unwrap()[..200]).unwrap();
    let (ok, _, err) = switchyard(&["plugin", "inspect", truncated.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(
        err.contains("not a loadable connector") && err.contains("not a WebAssembly component"),
        "{err}"
    );
    let wrong = plugin("wrong-world.wasm");
    let (ok, _, err) = switchyard(&["plugin", "inspect", wrong.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(
        err.contains("does not implement switchyard:connector"),
        "{err}"
    );
    let (ok, _, err) = switchyard(&["plugin", "inspect", "/nonexistent.wasm"]).await;
    assert!(!ok);
    assert!(err.contains("reading /nonexistent.wasm"), "{err}");
}

#[tokio::test]
async fn events_list_show_and_replay_through_the_admin_api() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let host = Host::start(&(dirs.base_config() + &stripe_connector(&receiver, ""))).await;
    let evt = evt_id();
    let body = stripe_event(&evt, "invoice.paid");
    let answer: Value = send_stripe(&host, &body).await.json().await.unwrap();
    let id = answer["id"].as_str().unwrap().to_string();
    host.wait_for_status(&id, "succeeded").await;

    let url = format!("http://{}", host.addr);
    let remote = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--url".into(),
            url.clone(),
            "--token".into(),
            ADMIN_TOKEN.into(),
        ]);
        args.extend(["--config".into(), "/nonexistent/switchyard.toml".into()]);
        args
    };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        switchyard(&args).await
    };

    let (ok, out, err) = run(remote(&["events", "list"])).await;
    assert!(ok, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("stripe") && row.contains("succeeded") && row.ends_with(&evt),
        "{row}"
    );

    let (ok, out, _) = run(remote(&[
        "events",
        "list",
        "--json",
        "--status",
        "succeeded",
    ]))
    .await;
    assert!(ok);
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["data"][0]["id"], id.as_str());

    let (ok, out, _) = run(remote(&["events", "show", &id, "--json"])).await;
    assert!(ok);
    let event: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(event["dedupe_key"], evt.as_str());
    assert_eq!(event["deliveries"][0]["status"], "succeeded");

    // For a person: what came in, how it was verified, what the connector did, where it went.
    let (ok, out, err) = run(remote(&["events", "show", &id])).await;
    assert!(ok, "{err}");
    for expected in [
        format!("event        {id}"),
        "status       succeeded".into(),
        "verification verified (stripe)".into(),
        format!("dedupe key   {evt}"),
        "request      POST /hooks/stripe".into(),
        " deliveries (plugin ".into(),
        format!(
            "#0 POST {}/billing → 200 (succeeded, Idempotency-Key {id}-0)",
            receiver.origin()
        ),
    ] {
        assert!(out.contains(&expected), "{expected:?} in:\n{out}");
    }

    // One line that answers "did Stripe send us evt_X, and what did we do with it?", by the
    // vendor's id, by the Idempotency-Key the receiver logged, or by our id.
    for key in [evt.clone(), format!("{id}-0"), id.clone()] {
        let (ok, out, err) = run(remote(&["events", "find", &key])).await;
        assert!(ok, "{key}: {err}");
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.starts_with(&format!("{id} {evt}: received "))
                && out.contains("by stripe, verified (stripe), succeeded; deliveries: POST ")
                && out.trim_end().ends_with("/billing → 200"),
            "{key}: {out}"
        );
    }
    let (ok, _, err) = run(remote(&["events", "find", "evt_never_sent"])).await;
    assert!(!ok, "nothing found is exit 1");
    assert!(
        err.contains("nothing found for \"evt_never_sent\""),
        "{err}"
    );
    let (ok, out, _) = run(remote(&["events", "list", "--key", &evt, "--json"])).await;
    assert!(ok);
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["data"][0]["id"], id.as_str());

    // A replay sends the first run's key again; `--new-keys` a key no run has sent.
    let (ok, out, err) = run(remote(&["events", "replay", &id])).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("replaying {id}"));
    let delivered = receiver.wait_delivered(2).await;
    assert_eq!(
        delivered[1].header("idempotency-key"),
        delivered[0].header("idempotency-key")
    );
    let (ok, _, err) = run(remote(&["events", "replay", &id, "--new-keys"])).await;
    assert!(ok, "{err}");
    let delivered = receiver.wait_delivered(3).await;
    assert_eq!(
        delivered[2].header("idempotency-key"),
        Some(format!("{id}-2").as_str())
    );

    // Errors say what the host answered, and exit 1.
    let (ok, _, err) = run(remote(&["events", "show", "01NOSUCHEVENT"])).await;
    assert!(!ok);
    assert!(err.contains("404"), "{err}");
    let (ok, _, err) = run(vec![
        "events".into(),
        "list".into(),
        "--url".into(),
        url.clone(),
        "--token".into(),
        "wrong".into(),
    ])
    .await;
    assert!(!ok);
    assert!(
        err.contains("401") && err.contains("missing or wrong bearer token"),
        "{err}"
    );
    let (ok, _, err) = run(remote(&["events", "replay"])).await;
    assert!(!ok);
    assert!(err.contains("give an event id, or filters"), "{err}");

    // Without --url and --token: where the config says the host listens, with its token.
    let config = dirs.root.path().join("client.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{}\"\nadmin_token = \"{ADMIN_TOKEN}\"\n",
            host.addr
        ),
    )
    .unwrap();
    host.wait_for_status(&id, "succeeded").await;
    let (ok, out, err) = switchyard(&[
        "events",
        "replay",
        "--connector",
        "stripe",
        "--status",
        "succeeded",
        "--config",
        config.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "replaying 1 events");
    receiver.wait_delivered(3).await;
    assert!(Path::new(&config).exists());
    host.stop().await;
}

/// `switchyard connectors list|show|pause|resume|reload`, reaching the host through
/// `SWITCHYARD_URL` and `SWITCHYARD_ADMIN_TOKEN` alone.
#[tokio::test]
async fn connectors_commands_find_the_host_from_the_environment() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let host = Host::start(&(dirs.base_config() + &stripe_connector(&receiver, ""))).await;
    let url = format!("http://{}", host.addr);
    let env = [
        ("SWITCHYARD_URL", url.as_str()),
        ("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    // No switchyard.toml in that folder: the environment alone says where and how.
    let run = |args: &'static [&'static str]| switchyard_in(Some(dirs.root.path()), &env, args);
    let row = |out: &str| -> String {
        out.lines()
            .find(|l| l.starts_with("stripe "))
            .unwrap_or_else(|| panic!("no stripe row in:\n{out}"))
            .to_string()
    };

    let (ok, out, err) = run(&["connectors", "list"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("ID "), "{out}");
    let stripe = row(&out);
    let digest = switchyard::plugin::engine::digest(&std::fs::read(plugin("stripe.wasm")).unwrap());
    assert!(
        stripe.contains(" running ")
            && stripe.contains("stripe.wasm")
            && stripe.contains(" stripe "),
        "{stripe}"
    );
    assert!(
        stripe.contains(&digest[..19]),
        "{stripe} has the digest's start {digest}"
    );

    // Nothing received yet.
    assert!(out.contains("    last 24 h: no events"), "{out}");
    let body = stripe_event(&evt_id(), "invoice.paid");
    let answer: Value = send_stripe(&host, &body).await.json().await.unwrap();
    host.wait_for_status(answer["id"].as_str().unwrap(), "succeeded")
        .await;
    let (ok, out, _) = run(&["connectors", "show", "stripe"]).await;
    assert!(ok);
    assert!(out.contains("    last 24 h: 1 succeeded\n"), "{out}");
    assert!(out.contains("    retained: 1 succeeded\n"), "{out}");

    let (ok, out, err) = run(&["connectors", "pause", "stripe"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("stripe paused"), "{out}");
    assert_eq!(host.connector("stripe").await["paused"], true);
    let (ok, out, _) = run(&["connectors", "show", "stripe"]).await;
    assert!(ok);
    assert!(row(&out).contains(" paused "), "{out}");
    let (ok, out, err) = run(&["connectors", "resume", "stripe"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("stripe resumed"), "{out}");
    assert_eq!(host.connector("stripe").await["paused"], false);
    let (ok, out, err) = run(&["connectors", "reload", "stripe"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("stripe reloaded"), "{out}");

    let (ok, out, _) = run(&["connectors", "show", "stripe", "--json"]).await;
    assert!(ok);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["digest"], digest.as_str());
    let (ok, _, err) = run(&["connectors", "pause", "nosuch"]).await;
    assert!(!ok);
    assert!(err.contains("404"), "{err}");
    host.stop().await;
}

/// `switchyard destinations …` against a host whose Stripe connector forwards to
/// `destination:billing`.
#[tokio::test]
async fn destinations_commands_show_and_switch_a_destination() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config = format!(
        r#"
[[destination]]
id = "billing"
url = "{origin}/billing"

[[connector]]
id = "stripe"
plugin = "stripe.wasm"
secret = "{STRIPE_SECRET}"
allowed_hosts = ["destination:billing"]
[connector.settings]
forward_url = "destination:billing"
"#,
        origin = receiver.origin()
    );
    let host = Host::start(&(dirs.base_config() + &config)).await;
    let url = format!("http://{}", host.addr);
    let env = [
        ("SWITCHYARD_URL", url.as_str()),
        ("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let run = |args: &'static [&'static str]| switchyard_in(Some(dirs.root.path()), &env, args);

    let answer: Value = send_stripe(&host, &stripe_event(&evt_id(), "invoice.paid"))
        .await
        .json()
        .await
        .unwrap();
    host.wait_for_status(answer["id"].as_str().unwrap(), "succeeded")
        .await;
    assert_eq!(receiver.delivered()[0].path, "/billing");

    let (ok, out, err) = run(&["destinations", "list"]).await;
    assert!(ok, "{err}");
    let billing = out
        .lines()
        .find(|l| l.starts_with("billing "))
        .unwrap_or_else(|| panic!("no billing row in:\n{out}"));
    let columns: Vec<&str> = billing.split_whitespace().collect();
    assert_eq!(columns[..5], ["billing", "closed", "1", "0", "0"], "{out}");

    let (ok, out, err) = run(&["destinations", "disable", "billing"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("disabled (operator)"), "{out}");
    let (ok, out, _) = run(&["destinations", "show", "billing", "--json"]).await;
    assert!(ok);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (json["state"].as_str(), json["disabled"].as_str()),
        (Some("disabled"), Some("operator"))
    );
    let (ok, out, err) = run(&["destinations", "enable", "billing"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("billing           closed"), "{out}");
    let (ok, _, err) = run(&["destinations", "show", "nosuch"]).await;
    assert!(!ok);
    assert!(err.contains("404"), "{err}");
    host.stop().await;
}

/// `switchyard check` with `backend = "nats"`: connects as `serve` would, and says which
/// server it found and what a 200 survives, or why it cannot be used.
#[tokio::test]
async fn check_connects_to_nats_and_says_what_a_200_survives() {
    use switchyard_tests::nats::{NatsOptions, NatsServer, free_port};
    let dirs = Dirs::new(&["stripe.wasm"]);
    let check = |storage: String| {
        let path = dirs.root.path().join(format!("{}.toml", ulid::Ulid::new()));
        let config = format!(
            r#"
[storage]
backend = "nats"
{storage}
[plugins]
dir = "{}"
watch = false
[[connector]]
id = "stripe"
plugin = "stripe.wasm"
secret = "{STRIPE_SECRET}"
"#,
            dirs.plugins().display()
        );
        std::fs::write(&path, config).unwrap();
        async move { switchyard(&["check", "--config", path.to_str().unwrap()]).await }
    };

    let server = NatsServer::start();
    let (ok, out, err) = check(format!("nats_url = \"{}\"", server.url())).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("ok    nats: server n1 (nats-server 2.15.1), no cluster"),
        "{out}"
    );
    assert!(out.contains("ok    jetstream: on"), "{out}");
    assert!(
        out.contains("durability: a 200 waits for one server's acknowledgement")
            && out.contains("sync_interval: always"),
        "{out}"
    );
    assert!(
        out.contains("ok    stripe: stripe"),
        "the connectors are checked too: {out}"
    );

    // Three replicas need a cluster…
    let (ok, out, _) = check(format!("nats_url = \"{}\"\nreplicas = 3", server.url())).await;
    assert!(!ok);
    assert!(
        out.contains("error durability:") && out.contains("not part of a cluster"),
        "{out}"
    );
    // …and on one they are a quorum write.
    let cluster = switchyard_tests::nats::NatsCluster::start(3);
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let storage = format!("nats_url = [{}]\nreplicas = 3", urls.join(", "));
    let mut answer = check(storage.clone()).await;
    // A new cluster elects its JetStream leader first.
    for _ in 0..50 {
        if answer.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        answer = check(storage.clone()).await;
    }
    let (ok, out, err) = answer;
    assert!(ok, "{out}{err}");
    assert!(out.contains("cluster switchyard-test"), "{out}");
    assert!(
        out.contains("a 200 waits for a quorum write (2 of 3 replicas)"),
        "{out}"
    );
    drop(cluster);
    let (ok, out, _) = check(format!("nats_url = \"{}\"\nreplicas = 3", server.url())).await;
    assert!(!ok);
    assert!(
        out.contains("error durability:") && out.contains("not part of a cluster"),
        "{out}"
    );

    // JetStream off, nobody listening, credentials refused: exit 1 and why.
    let no_js = NatsServer::start_with(&NatsOptions {
        jetstream: false,
        ..NatsOptions::default()
    });
    let (ok, out, _) = check(format!("nats_url = \"{}\"", no_js.url())).await;
    assert!(!ok);
    assert!(out.contains("error nats: JetStream is off"), "{out}");
    let (ok, out, _) = check(format!("nats_url = \"nats://127.0.0.1:{}\"", free_port())).await;
    assert!(!ok);
    assert!(out.contains("error nats: NATS is unreachable at"), "{out}");
    let guarded = NatsServer::start_with(&NatsOptions {
        token: Some("right".into()),
        ..NatsOptions::default()
    });
    let (ok, out, _) = check(format!(
        "nats_url = \"{}\"\nnats_token = \"wrong\"",
        guarded.url()
    ))
    .await;
    assert!(!ok);
    assert!(out.contains("refused the credentials (a token)"), "{out}");
    let (ok, out, _) = check(format!(
        "nats_url = \"{}\"\nnats_token = \"right\"",
        guarded.url()
    ))
    .await;
    assert!(ok, "{out}");
}

/// `server.log_format = "json"`: every line the host writes is one JSON object (for log
/// shippers), with its time, level, message and fields; `RUST_LOG` still filters.
#[tokio::test]
async fn serve_writes_one_json_object_per_line_when_asked() {
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config = dirs.root.path().join("switchyard.toml");
    let receiver = Receiver::start().await;
    let text = dirs
        .base_config()
        .replace("[server]\n", "[server]\nlog_format = \"json\"\n")
        + &stripe_connector(&receiver, "");
    assert!(text.contains("log_format = \"json\""), "{text}");
    std::fs::write(&config, text).unwrap();
    let host = ChildHost::start_logging(&config, "debug,cranelift=warn,wasmtime=warn");
    // Something worth logging: a forged webhook, and an unknown connector.
    let client = reqwest::Client::new();
    let forged = client
        .post(host.url("/hooks/stripe"))
        .header("stripe-signature", "t=1,v1=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let log = host.log.clone();
    wait_for(
        "the 401 in the log",
        std::time::Duration::from_secs(10),
        || {
            let log = log.clone();
            async move {
                log.lock().unwrap().contains("stripe") && log.lock().unwrap().lines().count() > 3
            }
        },
    )
    .await;
    host.kill_9();
    let log = log.lock().unwrap().clone();
    let mut listening = 0;
    for line in log.lines() {
        let json: Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not one JSON object ({err}): {line}"));
        assert!(json["timestamp"].is_string(), "{line}");
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&json["level"].as_str().unwrap()),
            "{line}"
        );
        assert!(json["fields"]["message"].is_string(), "{line}");
        if json["fields"]["message"] == "switchyard listening" {
            listening += 1;
            assert!(
                json["fields"]["addr"]
                    .as_str()
                    .unwrap()
                    .starts_with("127.0.0.1:")
            );
        }
    }
    assert_eq!(listening, 1, "{log}");
}

/// `[telemetry] otlp_endpoint`: one webhook is one trace, from its arrival (a child of the
/// sender's `traceparent`) through the signature check, the store, the connector call and
/// the delivery, whose `traceparent` the receiver gets. The spans arrive at a collector of
/// the test's own, over OTLP/HTTP with JSON bodies.
#[tokio::test]
async fn one_webhook_is_one_trace_from_the_sender_to_the_receiver() {
    use std::sync::{Arc, Mutex};

    // The collector: every span it is sent.
    let spans: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let export: Value = serde_json::from_slice(&body).expect("OTLP JSON");
                let mut sink = sink.lock().unwrap();
                for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                    for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                        for span in scope["spans"].as_array().into_iter().flatten() {
                            let mut span = span.clone();
                            span["service"] = resource["resource"]["attributes"].clone();
                            sink.push(span);
                        }
                    }
                }
                axum::Json(serde_json::json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config = dirs.root.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[telemetry]\notlp_endpoint = \"http://{collector}/v1/traces\"\nservice_name = \"switchyard-test\"\n{}",
            dirs.base_config(),
            stripe_connector(&receiver, "")
        ),
    )
    .unwrap();
    let host = ChildHost::start_with_env(&config, &[("OTEL_BSP_SCHEDULE_DELAY", "200")]);

    // The sender's own trace.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let sender_span = "00f067aa0ba902b7";
    let body = stripe_event(&evt_id(), "invoice.paid");
    let mut request = reqwest::Client::new()
        .post(host.url("/hooks/stripe"))
        .header("traceparent", format!("00-{trace_id}-{sender_span}-01"))
        .body(body.clone());
    for (name, value) in stripe_headers(STRIPE_SECRET, &body, now()) {
        request = request.header(name, value);
    }
    let answer: Value = request.send().await.unwrap().json().await.unwrap();
    let id = answer["id"].as_str().expect("accepted").to_string();
    let delivered = receiver.wait_delivered(1).await;
    let traceparent = delivered[0]
        .header("traceparent")
        .expect("the delivery carries a traceparent")
        .to_string();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(
        parts[1], trace_id,
        "the delivery continues the sender's trace"
    );

    let names = ["webhook", "verify", "store", "connector_call", "delivery"];
    let found = spans.clone();
    wait_for(
        "every span at the collector",
        std::time::Duration::from_secs(30),
        || {
            let found = found.clone();
            async move {
                let spans = found.lock().unwrap();
                names.iter().all(|name| {
                    spans
                        .iter()
                        .any(|s| s["name"] == *name && s["traceId"] == trace_id)
                })
            }
        },
    )
    .await;
    let spans = spans.lock().unwrap().clone();
    let span = |name: &str| -> Value {
        spans
            .iter()
            .find(|s| s["name"] == name && s["traceId"] == trace_id)
            .unwrap_or_else(|| panic!("no {name} span in {spans:#?}"))
            .clone()
    };
    let webhook = span("webhook");
    assert_eq!(
        webhook["parentSpanId"], sender_span,
        "a child of the sender's span"
    );
    let attribute = |span: &Value, key: &str| -> Value {
        span["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == key)
            .map(|a| a["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(attribute(&webhook, "event_id")["stringValue"], id.as_str());
    for child in ["verify", "store"] {
        assert_eq!(
            span(child)["parentSpanId"],
            webhook["spanId"],
            "{child} in the webhook span"
        );
    }
    // Later, from the queue: children of the webhook span through the stored traceparent.
    assert_eq!(span("connector_call")["parentSpanId"], webhook["spanId"]);
    let delivery = span("delivery");
    assert_eq!(delivery["parentSpanId"], webhook["spanId"]);
    assert_eq!(
        parts[2], delivery["spanId"],
        "the receiver's parent is the delivery try"
    );
    let service = webhook["service"].to_string();
    assert!(service.contains("switchyard-test"), "{service}");
    host.kill_9();
}

/// `switchyard sign` takes its scheme and encoding from closed lists (what a connector's
/// config accepts) and signs so that the host's own verifier accepts it: with base64, the
/// hmac-sha256 check configured for base64 passes and the one for hex does not.
#[tokio::test]
async fn sign_signs_what_the_verifier_accepts_and_refuses_unknown_names() {
    use switchyard::verify::{Encoding, Request, Scheme, Verifier};
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("payload.json");
    std::fs::write(&payload, br#"{"id":"evt_1"}"#).unwrap();
    let (ok, stdout, stderr) = switchyard(&[
        "sign",
        "--scheme",
        "hmac-sha256",
        "--encoding",
        "base64",
        "--header",
        "X-Shop-Hmac",
        "--secret",
        "shpss_secret",
        payload.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{stderr}");
    let Some((name, value)) = stdout.trim().split_once(": ") else {
        panic!("one header line: {stdout}")
    };
    assert_eq!(name, "X-Shop-Hmac");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-shop-hmac", value.parse().unwrap());
    let request = Request {
        headers: &headers,
        query: "",
        body: br#"{"id":"evt_1"}"#,
    };
    let verifier = |encoding| {
        Verifier::new(
            Scheme::HmacSha256 {
                header: "X-Shop-Hmac".into(),
                encoding,
                prefix: String::new(),
            },
            vec![switchyard::secret::Secret::new("shpss_secret")],
            std::time::Duration::from_secs(300),
        )
    };
    assert!(verifier(Encoding::Base64).verify(&request, now()).is_ok());
    assert!(verifier(Encoding::Hex).verify(&request, now()).is_err());

    for (flag, value) in [
        ("--scheme", "md5"),
        ("--scheme", "none"),
        ("--encoding", "b64"),
    ] {
        let mut args = vec!["sign", "--secret", "s", flag, value];
        if flag != "--scheme" {
            args.extend(["--scheme", "hmac-sha256"]);
        }
        args.push(payload.to_str().unwrap());
        let (ok, _, stderr) = switchyard(&args).await;
        assert!(!ok, "{flag} {value} must be refused");
        assert!(
            stderr.contains(&format!("invalid value '{value}'")),
            "{stderr}"
        );
        let listed = if flag == "--scheme" {
            "unknown scheme"
        } else {
            "possible values: hex, base64"
        };
        assert!(stderr.contains(listed), "{stderr}");
    }
    let (_, _, stderr) = switchyard(&["sign", "--scheme", "md5", "--secret", "s"]).await;
    assert!(
        stderr.contains("stripe, standard-webhooks, github, hmac-sha256, mandrill, token"),
        "the scheme list is the config's, without none: {stderr}"
    );
}
