//! Hostile senders and hostile connectors (SECURITY.md has one row per case): what a
//! client on the internet may cost the listener, and where a connector's requests may go.
//! Raw TCP where an HTTP client would refuse to misbehave.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A Stripe connector whose host has these `[server]` keys besides the base config's.
fn stripe_host_config(dirs: &Dirs, receiver: &Receiver, server: &str) -> String {
    dirs.base_config()
        .replacen("[server]\n", &format!("[server]\n{server}\n"), 1)
        + &stripe_connector(receiver, "")
}

/// Everything the host sends on `stream` until it closes it (or `limit` passes: then the
/// test fails, the connection having been kept open).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the host kept the connection open past {limit:?}; it sent {:?}",
        String::from_utf8_lossy(&answer)
    );
    String::from_utf8_lossy(&answer).into_owned()
}

async fn event_count(host: &Host) -> usize {
    let list: Value = host.admin_get("/v1/events").await.json().await.unwrap();
    list["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_request_head_over_the_limits_is_431_and_nothing_is_read_or_stored() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let host = Host::start(&stripe_host_config(&dirs, &receiver, "")).await;
    let body = stripe_event(&evt_id(), "invoice.paid");
    let signed: String = stripe_headers(STRIPE_SECRET, &body, now())
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();

    // One 64 KiB header value (the default limit is 16 KiB for the whole head).
    let huge = format!(
        "POST /hooks/stripe HTTP/1.1\r\nhost: x\r\n{signed}x-padding: {}\r\ncontent-length: {}\r\n\r\n",
        "a".repeat(64 * 1024),
        body.len()
    );
    // 150 small headers (the default limit is 100).
    let many = format!(
        "POST /hooks/stripe HTTP/1.1\r\nhost: x\r\n{signed}{}content-length: {}\r\n\r\n",
        (0..150)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>(),
        body.len()
    );
    // A request line of 20 KiB (it counts toward the head).
    let long_line = format!(
        "POST /hooks/stripe?{} HTTP/1.1\r\nhost: x\r\n{signed}content-length: {}\r\n\r\n",
        "q".repeat(20 * 1024),
        body.len()
    );
    for (what, head) in [
        ("huge header", huge),
        ("many headers", many),
        ("long request line", long_line),
    ] {
        let mut stream = TcpStream::connect(host.addr).await.unwrap();
        // The host may answer and close before it has read all of it.
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&body).await;
        let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
        assert!(
            answer.starts_with("HTTP/1.1 431"),
            "{what}: answered {answer:?}"
        );
    }
    assert_eq!(event_count(&host).await, 0, "nothing was stored");

    // Within the limits the same event is taken.
    let ok = send_stripe(&host, &body).await;
    assert_eq!(ok.status(), 200);
    host.stop().await;
}

#[tokio::test]
async fn slow_senders_and_idle_connections_are_cut_off() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let host = Host::start(&stripe_host_config(
        &dirs,
        &receiver,
        "header_timeout = \"500ms\"\nbody_timeout = \"500ms\"",
    ))
    .await;

    // Slowloris: a byte of the head every 100 ms would take minutes to finish it.
    let mut slow = TcpStream::connect(host.addr).await.unwrap();
    let trickle = async {
        for byte in b"POST /hooks/stripe HTTP/1.1\r\nhost: x\r\nx-slow: "
            .iter()
            .chain([b'a'; 2000].iter())
        {
            if slow.write_all(&[*byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    let cut_off = tokio::time::timeout(Duration::from_secs(30), trickle).await;
    assert_eq!(
        cut_off,
        Ok(true),
        "the host kept reading a head that took longer than header_timeout"
    );

    // An idle keep-alive connection: one request, then silence.
    let mut idle = TcpStream::connect(host.addr).await.unwrap();
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");

    // A head in time, then a body trickled in: 408 once body_timeout has passed, and
    // nothing is stored.
    let body = stripe_event(&evt_id(), "invoice.paid");
    let signed: String = stripe_headers(STRIPE_SECRET, &body, now())
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let mut trickled = TcpStream::connect(host.addr).await.unwrap();
    trickled
        .write_all(
            format!(
                "POST /hooks/stripe HTTP/1.1\r\nhost: x\r\n{signed}content-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    trickled.write_all(&body[..10]).await.unwrap();
    let answer = read_until_closed(&mut trickled, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("body_timeout"), "{answer:?}");
    assert_eq!(event_count(&host).await, 0, "nothing was stored");

    // The host still serves everyone else, the same event included.
    assert_eq!(send_stripe(&host, &body).await.status(), 200);
    host.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_get_503_and_the_host_serves_again_when_they_close() {
    const CAP: usize = 8;
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let host = Host::start(&stripe_host_config(
        &dirs,
        &receiver,
        &format!("max_connections = {CAP}\nheader_timeout = \"60s\""),
    ))
    .await;
    // Hold connections until the host refuses one: then the cap is full (the start-up
    // check's pooled connection may hold a slot too).
    let mut held = Vec::new();
    loop {
        let mut stream = TcpStream::connect(host.addr).await.unwrap();
        stream
            .write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        if answer.starts_with("HTTP/1.1 503") {
            break;
        }
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        held.push(stream);
        assert!(held.len() <= CAP, "more than {CAP} connections were taken");
    }
    assert!(held.len() >= CAP - 1, "the cap refused at {}", held.len());

    // Twice the cap more: every one is told 503 with Retry-After, and closed.
    let body = stripe_event(&evt_id(), "invoice.paid");
    // A client without pooled connections: each request is a new connection.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for _ in 0..2 * CAP {
        let refused = fresh
            .post(host.url("/hooks/stripe"))
            .headers(header_map(&stripe_headers(STRIPE_SECRET, &body, now())))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 503);
        assert_eq!(refused.headers()["retry-after"], "1");
        let error: Value = refused.json().await.unwrap();
        assert_eq!(error["error"]["code"], "overloaded");
    }

    // The held connections still work, and once they close everyone is served again.
    for stream in &mut held {
        stream
            .write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    drop(held);
    let client = fresh.clone();
    let url = host.url("/v1/health");
    wait_for("a connection slot", Duration::from_secs(10), || {
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    let accepted = send_stripe(&host, &body).await;
    assert_eq!(
        accepted.status(),
        200,
        "the refused event is taken on a retry"
    );
    let missing = receiver
        .wait_for_stripe_events(&[stripe_event_id(&body)].into(), Duration::from_secs(30))
        .await;
    assert!(missing.is_empty(), "not delivered: {missing:?}");
    host.stop().await;
}

fn header_map(headers: &[(String, String)]) -> reqwest::header::HeaderMap {
    headers
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
        .collect()
}

fn stripe_event_id(body: &[u8]) -> String {
    let event: Value = serde_json::from_slice(body).unwrap();
    event["id"].as_str().unwrap().to_string()
}

/// `allowed_hosts = ["*"]` (and a hostname entry) grant public hosts, never the host's own
/// admin API, loopback, cloud metadata or the private ranges; an entry naming the address
/// itself does. The check is on the address connected to: `localhost` stands in for a
/// name that resolves (or is rebound) to an internal address.
#[tokio::test]
async fn a_connector_reaches_internal_addresses_only_when_named() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let config = dirs.base_config()
        + &hostile_connector(
            "hostile",
            &[
                "*".into(),
                format!("http://localhost:{}", receiver.addr.port()),
                receiver.origin(),
            ],
            &format!("{}/in", receiver.origin()),
            "[connector.retry]\ninitial_backoff = \"20ms\"\nmax_backoff = \"50ms\"\nmax_attempts = 2",
            "",
        );
    let host = Host::start(&config).await;
    let admin = format!("http://127.0.0.1:{}/v1/connectors", host.addr.port());
    let named = format!("http://localhost:{}/named", receiver.addr.port());

    let mut expected = Vec::new();
    for url in [
        admin.as_str(),
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://[::1]:9/",
        named.as_str(),
    ] {
        send_hostile(&host, json!({"do": "fetch", "url": url})).await;
        expected.push(url.to_string());
    }
    let delivered = receiver.wait_delivered(expected.len()).await;
    let outcomes: Vec<Value> = delivered
        .iter()
        .filter(|r| r.path == "/in")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(outcomes.len(), expected.len(), "{outcomes:?}");
    for outcome in &outcomes {
        let error = outcome["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("internal address"),
            "an internal address was reached: {outcome}"
        );
    }

    assert!(
        receiver.received().iter().all(|r| r.path == "/in"),
        "only the connector's reports reached the receiver"
    );

    // A delivery to the admin API: dead at once, never sent.
    let url = format!("http://127.0.0.1:{}/v1/replay", host.addr.port());
    let id = send_hostile(&host, json!({"do": "ok", "url": url})).await;
    let record = host.wait_for_status(&id, "dead").await;
    assert!(
        record["deliveries"][0]["attempts"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("is an internal address"),
        "{record:#}"
    );

    // The receiver, named by its address, is reached.
    let url = format!("{}/ok", receiver.origin());
    send_hostile(&host, json!({"do": "fetch", "url": url})).await;
    receiver.wait_delivered(expected.len() + 2).await;
    let last: Value = serde_json::from_slice(&receiver.delivered().last().unwrap().body).unwrap();
    assert_eq!(last["status"], 200, "{last}");
    host.stop().await;
}

/// A connector is linked with WASI (Rust's `wasm32-wasip2` std imports it) but granted
/// none of it: no files, environment, arguments, sockets or name lookups, and WASI's
/// clocks stand still at the epoch (its time is `clock.now`, which the host controls).
#[tokio::test]
async fn a_connector_gets_nothing_from_wasi() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    let config = dirs.base_config()
        + &hostile_connector(
            "hostile",
            &[receiver.origin()],
            &format!("{}/in", receiver.origin()),
            "",
            "",
        );
    let host = Host::start(&config).await;
    // TCP to the host's own port: a socket would reach the admin API.
    send_hostile(&host, json!({"do": "wasi", "port": host.addr.port()})).await;
    let delivered = receiver.wait_delivered(1).await;
    let report: Value = serde_json::from_slice(&delivered[0].body).unwrap();
    for denied in ["file", "dir", "tcp", "udp", "dns"] {
        assert!(
            report[denied]["error"].is_string(),
            "{denied} was granted: {report:#}"
        );
    }
    assert_eq!(report["env"], json!([]), "{report:#}");
    assert!(
        report["args"].as_array().unwrap().len() <= 1,
        "no arguments beyond a program name: {report:#}"
    );
    assert_eq!(report["wall_clock_secs"], 0, "{report:#}");
    assert_eq!(report["monotonic_ns"], 0, "{report:#}");
    host.stop().await;
}

/// `wasi:http` is not linked: a component that imports it is refused at load (here
/// through the same check `switchyard plugin inspect` and the host use).
#[tokio::test]
async fn a_component_that_imports_wasi_http_does_not_load() {
    use wasm_encoder::{
        Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType,
    };
    let mut instance = InstanceType::new();
    instance
        .ty()
        .function()
        .params::<[(&str, wasm_encoder::ComponentValType); 0], _>([])
        .result(None);
    instance.export("handle", ComponentTypeRef::Func(0));
    let mut types = ComponentTypeSection::new();
    types.instance(&instance);
    let mut imports = ComponentImportSection::new();
    imports.import(
        "wasi:http/outgoing-handler@0.2.0",
        ComponentTypeRef::Instance(0),
    );
    let mut component = Component::new();
    component.section(&types).section(&imports);
    let bytes = component.finish();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wants-http.wasm");
    std::fs::write(&path, &bytes).unwrap();
    let output = std::process::Command::new(binary())
        .args(["plugin", "inspect"])
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "it loaded: {said}");
    assert!(said.contains("wasi:http"), "{said}");
}

/// The admin API: off without `admin_token` (401 everywhere but health and metrics); a
/// read-only token reads and is refused (403) everything that changes something; a wrong
/// token is 401. Through the router without a socket ([`Api`]): the listener is not the
/// point, and the event read needs only to be taken, not delivered.
#[tokio::test]
async fn the_admin_api_is_off_without_a_token_and_a_read_token_only_reads() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let without = dirs
        .base_config()
        .replace(&format!("admin_token = \"{ADMIN_TOKEN}\"\n"), "")
        + &stripe_connector(&receiver, "");
    let api = Api::start(&without).await;
    for path in ["/v1/connectors", "/v1/events"] {
        let response = api.admin_get(path).await;
        assert_eq!(response.status, 401, "{path}");
        let error: Value = response.json();
        assert_eq!(error["error"]["code"], "admin_disabled");
    }
    let health = api.get("/v1/health").await;
    assert_eq!(health.status, 200);
    let metrics = api.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    api.stop().await;

    const READER: &str = "read-only-dashboard-token";
    let with_reader = stripe_host_config(
        &dirs,
        &receiver,
        &format!("admin_read_token = \"{READER}\""),
    );
    let api = Api::start(&with_reader).await;
    let body = stripe_event(&evt_id(), "invoice.paid");
    let accepted: Value = api
        .post_hook(
            "stripe",
            &stripe_headers(STRIPE_SECRET, &body, now()),
            &body,
        )
        .await
        .json();
    let id = accepted["id"].as_str().unwrap().to_string();

    let as_reader =
        |method: reqwest::Method, path: &str| api.call(method, path).bearer_auth(READER).send();
    for path in ["/v1/connectors", "/v1/events", &format!("/v1/events/{id}")] {
        let response = as_reader(reqwest::Method::GET, path).await;
        assert_eq!(response.status, 200, "the reader reads {path}");
    }
    for path in [
        format!("/v1/events/{id}/replay"),
        "/v1/connectors/stripe/pause".to_string(),
        "/v1/connectors/stripe/reload".to_string(),
        "/v1/reload".to_string(),
        "/v1/replay".to_string(),
    ] {
        let response = as_reader(reqwest::Method::POST, &path).await;
        assert_eq!(response.status, 403, "the reader may not POST {path}");
        let error: Value = response.json();
        assert_eq!(error["error"]["code"], "read_only");
    }
    let connector = api.connector("stripe").await;
    assert_eq!(
        connector["paused"], false,
        "nothing the reader asked was done"
    );

    let wrong = api
        .call(reqwest::Method::GET, "/v1/events")
        .bearer_auth("not-the-token")
        .send()
        .await;
    assert_eq!(wrong.status, 401);
    // The admin token still does everything.
    assert_eq!(
        api.admin_post("/v1/connectors/stripe/pause").await.status,
        200
    );
    api.stop().await;
}

/// A setting given as an `env:`/`file:` reference is a secret: wherever the connector puts
/// it (a log line, a fetch, a delivery's URL and headers), the event log shows `****`; the
/// delivery itself is sent with it.
#[tokio::test]
async fn a_secret_setting_is_masked_wherever_the_connector_puts_it() {
    const KEY: &str = "xf_key_7a1c9e0d44b2";
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["hostile.wasm"]);
    std::fs::write(dirs.root.path().join("key.txt"), format!("{KEY}\n")).unwrap();
    let config = dirs.base_config()
        + &hostile_connector(
            "hostile",
            &[receiver.origin()],
            &format!("{}/in", receiver.origin()),
            "",
            &format!(
                "secret = \"file:{}\"",
                dirs.root.path().join("key.txt").display()
            ),
        );
    let host = Host::start(&config).await;
    let url = format!("{}/api", receiver.origin());
    let id = send_hostile(&host, json!({"do": "leak", "url": url})).await;
    let record = host.wait_for_status(&id, "succeeded").await;

    let delivered: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|r| r.path == "/in")
        .collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].header("x-token"),
        Some(KEY),
        "sent with the secret"
    );
    let text = record.to_string();
    assert!(
        !text.contains(KEY),
        "the event log shows the secret: {record:#}"
    );
    assert!(
        record["attempts"][0]["logs"][0]["message"]
            .as_str()
            .unwrap()
            .contains("****"),
        "{record:#}"
    );
    assert!(
        record["deliveries"][0]["request"]["url"]
            .as_str()
            .unwrap()
            .ends_with("key=****"),
        "{record:#}"
    );
    host.stop().await;
}
