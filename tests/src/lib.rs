//! Helpers for the integration tests: a running host on `127.0.0.1:0` over a temp data
//! dir, the host's router driven without a socket ([`Api`]), a [`Receiver`] that records
//! what was delivered and answers with a programmable status, signing helpers, and bounded
//! polling instead of sleeps.

pub mod nats;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::any;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use switchyard::Config;
use switchyard::secret::Secret;
use switchyard::verify::{self, Scheme};

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const STRIPE_SECRET: &str = "whsec_test_secret";

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A built connector from `dist/plugins/` or `dist/test-plugins/` (`make plugins` and
/// `make test-plugins` build them; `make test` runs both first).
pub fn plugin(name: &str) -> PathBuf {
    let shipped = repo_root().join("dist/plugins").join(name);
    let path = if shipped.exists() {
        shipped
    } else {
        repo_root().join("dist/test-plugins").join(name)
    };
    assert!(
        path.exists(),
        "{} is missing: run `make plugins test-plugins` (or `make test`) first",
        path.display()
    );
    path
}

/// A plugins dir and a data dir for one host, removed at the end of the test.
pub struct Dirs {
    pub root: tempfile::TempDir,
}

impl Dirs {
    /// Fresh dirs; `plugins` are copied from `dist/plugins/` into the plugins dir.
    pub fn new(plugins: &[&str]) -> Dirs {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("plugins")).unwrap();
        for name in plugins {
            std::fs::copy(plugin(name), root.path().join("plugins").join(name)).unwrap();
        }
        Dirs { root }
    }
    pub fn plugins(&self) -> PathBuf {
        self.root.path().join("plugins")
    }
    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }
    /// A NATS deployment prefix of these dirs' own (the same for every config of them, so a
    /// restarted host finds what the first one stored).
    pub fn nats_prefix(&self) -> String {
        let name = self
            .root
            .path()
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let name: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
        format!("t{name}")
    }

    /// The `[server]`, `[storage]` and `[plugins]` sections pointing at these dirs.
    pub fn base_config(&self) -> String {
        self.base_config_with("")
    }

    /// [`Dirs::base_config`] with more keys in `[plugins]` (e.g. `deadline = "300ms"`).
    ///
    /// With `SWITCHYARD_TEST_BACKEND=nats` the store is on NATS JetStream instead of sled:
    /// a server of this test process's own (started once), with a deployment prefix of
    /// these dirs' own, so the behaviour tests run against the NATS engine too.
    pub fn base_config_with(&self, plugins_extra: &str) -> String {
        let backend = match std::env::var("SWITCHYARD_TEST_BACKEND").as_deref() {
            Ok("nats") => format!(
                "backend = \"nats\"\nnats_url = \"{}\"\nnats_prefix = \"{}\"\n",
                nats::shared_server_url(),
                self.nats_prefix()
            ),
            _ => String::new(),
        };
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_token = "{ADMIN_TOKEN}"

[storage]
{backend}path = "{}"

[plugins]
dir = "{}"
watch = false
{plugins_extra}
"#,
            self.data().display(),
            self.plugins().display()
        )
    }
}

/// A `[plugins]` `cache_dir` line shared by every test that asks for it (under `target/`),
/// for the JavaScript connectors: compiling one (about 12 MB of wasm, most of it the JS
/// engine) takes seconds, and wasmtime's cache is safe to share between processes.
pub fn shared_compile_cache() -> String {
    format!(
        "cache_dir = {:?}\n",
        repo_root()
            .join("target/test-compiled")
            .display()
            .to_string()
    )
}

/// Whether the tests run on the sled engine (the default) and not on NATS
/// (`SWITCHYARD_TEST_BACKEND=nats`). A test of the sled engine's own files says so and
/// returns on NATS: it has run on sled in the same `make test`.
pub fn on_sled(test: &str) -> bool {
    let sled = std::env::var("SWITCHYARD_TEST_BACKEND").as_deref() != Ok("nats");
    if !sled {
        eprintln!("{test}: about the sled engine's files; it ran on sled");
    }
    sled
}

/// A host running in this process.
pub struct Host {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Host {
    /// Start a host with this config (TOML text) on a free port; waits until it answers.
    pub async fn start(config_toml: &str) -> Host {
        let config = Config::from_toml_str(config_toml, &std::collections::HashMap::new())
            .unwrap_or_else(|err| panic!("test config is invalid: {err}"));
        Host::start_with(config).await
    }

    /// Start a host from a config file, as `switchyard serve --config FILE` does (so the
    /// file is watched and reloaded).
    pub async fn start_from_file(path: &Path) -> Host {
        let config =
            Config::load(path).unwrap_or_else(|err| panic!("test config is invalid: {err}"));
        Host::start_with(config).await
    }

    pub async fn start_with(config: Config) -> Host {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(switchyard::run(config, listener, async move {
            let _ = stopped.await;
        }));
        let host = Host {
            addr,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        };
        let url = host.url("/v1/health");
        let client = host.http.clone();
        wait_for(
            "the host to answer /v1/health",
            Duration::from_secs(60),
            || {
                let client = client.clone();
                let url = url.clone();
                async move { client.get(&url).send().await.is_ok() }
            },
        )
        .await;
        host
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POST a body with extra headers to `/hooks/{connector}`.
    pub async fn post_hook(
        &self,
        connector: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url(&format!("/hooks/{connector}")))
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send().await.expect("POST /hooks")
    }

    /// GET an admin route with the admin token.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin GET")
    }

    /// The whole record of one event.
    pub async fn event(&self, id: &str) -> serde_json::Value {
        let response = self.admin_get(&format!("/v1/events/{id}")).await;
        assert_eq!(response.status(), 200, "GET /v1/events/{id}");
        response.json().await.unwrap()
    }

    /// POST an admin route with the admin token.
    pub async fn admin_post(&self, path: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin POST")
    }

    /// `GET /v1/connectors/{id}`.
    pub async fn connector(&self, id: &str) -> serde_json::Value {
        self.admin_get(&format!("/v1/connectors/{id}"))
            .await
            .json()
            .await
            .unwrap()
    }

    /// Wait until event `id` has `status`; returns the record.
    pub async fn wait_for_status(&self, id: &str, status: &str) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        for _ in 0..600 {
            last = self.event(id).await;
            if last["status"] == status {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("event {id} never reached status {status}; last record: {last:#}");
    }

    /// Stop the host and wait until it has released its store.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("host task").expect("host run");
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The host's router driven in this process without a socket (`tower`'s `oneshot`), for
/// tests of the API's own answers: auth, errors, validation, ETags, rate limits, reading
/// and pausing connectors, listing events taken through it. Only [`switchyard::App::start`]
/// runs (storage, engine, connectors): no dispatcher, deliverer or watcher, so an event
/// taken stays `pending`. Tests of the listener, or of events flowing through a connector
/// to a receiver, use [`Host`].
pub struct Api {
    pub app: Arc<switchyard::App>,
    router: axum::Router,
}

/// What every request through [`Api`] comes from, as the listener's `ConnectInfo` would
/// say (the admin rate limit counts per client address).
pub const API_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);

impl Api {
    /// Start the app with this config (TOML text).
    pub async fn start(config_toml: &str) -> Api {
        let config = Config::from_toml_str(config_toml, &std::collections::HashMap::new())
            .unwrap_or_else(|err| panic!("test config is invalid: {err}"));
        Api::start_with(config).await
    }

    pub async fn start_with(config: Config) -> Api {
        let app = switchyard::App::start(config)
            .await
            .unwrap_or_else(|err| panic!("the app did not start: {err:#}"));
        let router = switchyard::router(app.clone());
        Api { app, router }
    }

    /// Send `request` through the router, from [`API_PEER`].
    pub async fn request(&self, mut request: axum::http::Request<axum::body::Body>) -> Answer {
        use tower::ServiceExt as _;
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(API_PEER));
        let Ok(response) = self.router.clone().oneshot(request).await;
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("reading the answer's body");
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// A request to build (headers, token, body) and [`Call::send`].
    pub fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            api: self,
            request: axum::http::Request::builder().method(method).uri(path),
            body: axum::body::Body::empty(),
        }
    }

    /// `GET path` without a token.
    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path).send().await
    }

    /// `GET path` with the admin token.
    pub async fn admin_get(&self, path: &str) -> Answer {
        self.call(Method::GET, path)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
    }

    /// `POST path` with the admin token and no body.
    pub async fn admin_post(&self, path: &str) -> Answer {
        self.call(Method::POST, path)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
    }

    /// `POST path` with the admin token and a JSON body.
    pub async fn admin_post_json(&self, path: &str, body: &serde_json::Value) -> Answer {
        self.call(Method::POST, path)
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
    }

    /// `GET /v1/connectors/{id}`.
    pub async fn connector(&self, id: &str) -> serde_json::Value {
        self.admin_get(&format!("/v1/connectors/{id}")).await.json()
    }

    /// POST a body with extra headers to `/hooks/{connector}` (stored, never dispatched).
    pub async fn post_hook(
        &self,
        connector: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Answer {
        let mut call = self
            .call(Method::POST, &format!("/hooks/{connector}"))
            .body(body.to_vec());
        for (name, value) in headers {
            call = call.header(name, value);
        }
        call.send().await
    }

    /// Stop the app's background work and wait until it has released its store (so the
    /// next start on the same data dir opens it).
    pub async fn stop(mut self) {
        // The router holds the app too.
        self.router = axum::Router::new();
        self.app.shutdown.cancel();
        self.app.tasks.close();
        if tokio::time::timeout(Duration::from_secs(30), self.app.tasks.wait())
            .await
            .is_err()
        {
            panic!("the app's background work did not stop within 30 s");
        }
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.app.shutdown.cancel();
    }
}

/// A request being built for [`Api`], in the manner of `reqwest::RequestBuilder`.
pub struct Call<'a> {
    api: &'a Api,
    request: axum::http::request::Builder,
    body: axum::body::Body,
}

impl Call<'_> {
    pub fn header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        self.request = self.request.header(name, value.as_ref());
        self
    }

    pub fn bearer_auth(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    pub fn body(mut self, body: impl Into<axum::body::Body>) -> Self {
        self.body = body.into();
        self
    }

    pub async fn send(self) -> Answer {
        let request = self.request.body(self.body).expect("a valid request");
        self.api.request(request).await
    }
}

/// The router's answer to one [`Api`] request, its body read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "{}: not JSON ({err}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header's value as text; panics when it is missing.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub status: u16,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    /// Answers to give, in order; when empty, [`ReceiverState::otherwise`] at once.
    script: VecDeque<Reply>,
    /// The status when nothing is scripted (`None`: 200).
    otherwise: Option<u16>,
}

/// One scripted answer.
#[derive(Debug, Clone, Default)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    delay: Duration,
}

/// A downstream that records every request and answers as scripted.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let app = axum::Router::new()
            .fallback(any(receive))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, state }
    }

    /// `http://127.0.0.1:PORT`
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer the next requests with these statuses (then 200 again).
    pub fn respond_with(&self, statuses: &[u16]) {
        let mut state = self.state.lock().unwrap();
        state.script.extend(statuses.iter().map(|s| Reply {
            status: *s,
            ..Reply::default()
        }));
    }

    /// Answer every request that nothing is scripted for with `status` from now on (a
    /// downstream that is down: 503), or with 200 again (`None`).
    pub fn otherwise(&self, status: Option<u16>) {
        self.state.lock().unwrap().otherwise = status;
    }

    /// Answer the next request with 200, but only after `delay`.
    pub fn respond_slowly(&self, delay: Duration) {
        self.state.lock().unwrap().script.push_back(Reply {
            status: 200,
            delay,
            ..Reply::default()
        });
    }

    /// Answer the next request with a status and headers (e.g. `Retry-After`).
    pub fn respond_once(&self, status: u16, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.state.lock().unwrap().script.push_back(Reply {
            status,
            headers,
            delay: Duration::ZERO,
        });
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Requests answered with a 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// The Stripe event ids (`X-Stripe-Event-Id`, set by the Stripe connector) of the
    /// requests that got a 2xx.
    pub fn delivered_stripe_events(&self) -> std::collections::HashSet<String> {
        self.delivered()
            .iter()
            .filter_map(|d| d.header("x-stripe-event-id").map(str::to_string))
            .collect()
    }

    /// Wait until every Stripe event in `want` got a 2xx, for at most `limit`; returns the
    /// ones still missing then.
    pub async fn wait_for_stripe_events(
        &self,
        want: &std::collections::HashSet<String>,
        limit: Duration,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let got = self.delivered_stripe_events();
            if want.is_subset(&got) || tokio::time::Instant::now() >= deadline {
                let mut missing: Vec<String> = want.difference(&got).cloned().collect();
                missing.sort();
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until at least `n` requests got a 2xx.
    pub async fn wait_delivered(&self, n: usize) -> Vec<Received> {
        let this = self.clone();
        wait_for(
            &format!("{n} deliveries"),
            Duration::from_secs(30),
            move || {
                let this = this.clone();
                async move { this.delivered().len() >= n }
            },
        )
        .await;
        self.delivered()
    }
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let reply = {
        let mut state = state.lock().unwrap();
        let otherwise = state.otherwise.unwrap_or(200);
        let reply = state.script.pop_front().unwrap_or(Reply {
            status: otherwise,
            ..Reply::default()
        });
        state.received.push(Received {
            method: method.to_string(),
            path: uri.path().to_string(),
            headers,
            body,
            status: reply.status,
            at: std::time::Instant::now(),
        });
        reply
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut out = HeaderMap::new();
    for (k, v) in reply.headers {
        out.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    (StatusCode::from_u16(reply.status).unwrap(), out, "")
}

/// Poll `check` every 20 ms until it is true; panic with `what` after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// A Stripe event as Stripe sends it (trimmed to the fields connectors use).
pub fn stripe_event(id: &str, kind: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_700_000_000,
        "data": { "object": { "id": "in_123", "object": "invoice", "amount_paid": 2000 } },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    }))
    .unwrap()
}

/// A `[[connector]]` for `stripe.wasm` at `/hooks/stripe`, forwarding to the receiver's
/// `/billing` with quick retries; `extra` goes in the connector's table.
pub fn stripe_connector(receiver: &Receiver, extra: &str) -> String {
    format!(
        r#"
[[connector]]
id = "stripe"
plugin = "stripe.wasm"
secret = "{STRIPE_SECRET}"
allowed_hosts = ["{origin}"]
{extra}
[connector.retry]
initial_backoff = "50ms"
max_backoff = "200ms"
max_attempts = 5
[connector.settings]
forward_url = "{origin}/billing"
"#,
        origin = receiver.origin()
    )
}

/// A `[[connector]]` for the `hostile` test connector at `/hooks/{id}` (scheme `none`),
/// granted `allowed` and forwarding to `forward_url`. `table` goes in the connector's own
/// table (keys, and sub-tables such as `[connector.retry]`), `settings` in its settings.
pub fn hostile_connector(
    id: &str,
    allowed: &[String],
    forward_url: &str,
    table: &str,
    settings: &str,
) -> String {
    let allowed: Vec<String> = allowed.iter().map(|origin| format!("{origin:?}")).collect();
    format!(
        "\n[[connector]]\nid = {id:?}\nplugin = \"hostile.wasm\"\nscheme = \"none\"\n\
         allowed_hosts = [{}]\n{table}\n[connector.settings]\nforward_url = {forward_url:?}\n{settings}\n",
        allowed.join(", ")
    )
}

/// POST `body` (an instruction for the test connector, `{"do": …}`) to `/hooks/hostile`;
/// it must be taken (200). Returns the event id.
pub async fn send_hostile(host: &Host, body: serde_json::Value) -> String {
    let response = host
        .post_hook("hostile", &[], body.to_string().as_bytes())
        .await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    answer["id"].as_str().unwrap().to_string()
}

/// The hostile connector at `/hooks/hostile` (Rust or JavaScript, retried up to 3 attempts)
/// asked to trap, to fail with `retry` and with `reject`: the trap and the retry are tried
/// 3 times then dead, the reject is dead at once, saying why. Returns the trapped event's
/// record, for what a test checks beyond that.
pub async fn assert_trap_retry_and_reject(host: &Host) -> serde_json::Value {
    let trap = send_hostile(host, serde_json::json!({"do": "trap"})).await;
    let retry = send_hostile(
        host,
        serde_json::json!({"do": "retry", "message": "backend busy"}),
    )
    .await;
    let reject = send_hostile(
        host,
        serde_json::json!({"do": "reject", "message": "unknown customer"}),
    )
    .await;

    let trapped = host.wait_for_status(&trap, "dead").await;
    assert_eq!(
        trapped["attempts"].as_array().unwrap().len(),
        3,
        "{trapped:#}"
    );
    assert_eq!(trapped["attempts"][0]["outcome"], "trap", "{trapped:#}");
    assert!(
        trapped["attempts"][0]["message"]
            .as_str()
            .unwrap()
            .contains("trapped"),
        "{trapped:#}"
    );

    let record = host.wait_for_status(&retry, "dead").await;
    assert_eq!(record["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(record["attempts"][2]["outcome"], "retry");
    assert_eq!(record["attempts"][2]["message"], "backend busy");

    let record = host.wait_for_status(&reject, "dead").await;
    assert_eq!(record["attempts"].as_array().unwrap().len(), 1);
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("unknown customer"),
        "{record:#}"
    );
    trapped
}

/// POST `body` to `/hooks/stripe`, signed with [`STRIPE_SECRET`] now.
pub async fn send_stripe(host: &Host, body: &[u8]) -> reqwest::Response {
    host.post_hook("stripe", &stripe_headers(STRIPE_SECRET, body, now()), body)
        .await
}

/// Headers that sign `body` for the Stripe scheme at `timestamp`.
pub fn stripe_headers(secret: &str, body: &[u8], timestamp: i64) -> Vec<(String, String)> {
    let mut headers =
        verify::sign(&Scheme::Stripe, &Secret::new(secret), body, timestamp, "").expect("sign");
    headers.push(("content-type".into(), "application/json".into()));
    headers
}

/// Standard Webhooks headers (`webhook-id` = `msg_id`, signed now) and a JSON content type.
pub fn standard_webhooks_headers(secret: &str, body: &[u8], msg_id: &str) -> Vec<(String, String)> {
    let mut headers = verify::sign(
        &Scheme::StandardWebhooks,
        &Secret::new(secret),
        body,
        now(),
        msg_id,
    )
    .expect("sign");
    headers.push(("content-type".into(), "application/json".into()));
    headers
}

/// Now, unix seconds.
pub fn now() -> i64 {
    switchyard::time::now_s()
}

/// A unique Stripe event id.
pub fn evt_id() -> String {
    format!("evt_{}", ulid::Ulid::new())
}

/// The `switchyard` binary built by `cargo build -p switchyard` (`make test` builds it).
pub fn binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = target.join("debug").join("switchyard");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p switchyard` (or `make test`)",
        path.display()
    );
    path
}

/// Where a host's log line says it listens, in text (`… switchyard listening addr=…`) or
/// in JSON (`server.log_format = "json"`).
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    if line.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(line).ok()?;
        if json["fields"]["message"] != "switchyard listening" {
            return None;
        }
        return json["fields"]["addr"].as_str()?.parse().ok();
    }
    line.split("addr=")
        .nth(1)
        .filter(|_| line.contains("switchyard listening"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse::<SocketAddr>().ok())
}

/// The real binary running `serve` as a child process, for crash tests.
pub struct ChildHost {
    pub addr: SocketAddr,
    child: std::process::Child,
    /// Everything it wrote to stderr, for failure messages.
    pub log: Arc<Mutex<String>>,
}

impl ChildHost {
    /// Start `switchyard serve --config <config>` (which should listen on 127.0.0.1:0) and
    /// wait for it to say where it listens.
    pub fn start(config: &Path) -> ChildHost {
        ChildHost::start_in(Path::new(env!("CARGO_MANIFEST_DIR")), config)
    }

    /// [`ChildHost::start`] with `dir` as the working directory (relative paths in the
    /// config are relative to it).
    pub fn start_in(dir: &Path, config: &Path) -> ChildHost {
        let mut command = std::process::Command::new(binary());
        command
            .current_dir(dir)
            .args(["serve", "--config"])
            .arg(config);
        ChildHost::spawn(command)
    }

    /// [`ChildHost::start`] logging at `filter` (`RUST_LOG` syntax) instead of `info`.
    pub fn start_logging(config: &Path, filter: &str) -> ChildHost {
        let mut command = std::process::Command::new(binary());
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", filter);
        ChildHost::spawn(command)
    }

    /// [`ChildHost::start`] with these environment variables set.
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> ChildHost {
        let mut command = std::process::Command::new(binary());
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["serve", "--config"])
            .arg(config)
            .envs(env.iter().copied());
        ChildHost::spawn(command)
    }

    /// [`ChildHost::start`] with every file the host writes limited to `bytes`
    /// (`RLIMIT_FSIZE`, set by `prlimit`): a write past it fails with `EFBIG`, the way a
    /// full disk fails one. `SIGXFSZ`, which would end the process instead, is ignored
    /// (an ignored signal stays ignored across `exec`).
    pub fn start_with_file_size_limit(config: &Path, bytes: u64) -> ChildHost {
        let mut command = std::process::Command::new("sh");
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("-c")
            .arg(format!(
                r#"trap '' XFSZ; exec prlimit --fsize={bytes} -- "$@""#
            ))
            .arg("sh")
            .arg(binary())
            .args(["serve", "--config"])
            .arg(config);
        ChildHost::spawn(command)
    }

    fn spawn(mut command: std::process::Command) -> ChildHost {
        use std::io::BufRead as _;
        if !command.get_envs().any(|(name, _)| name == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        let mut child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawning switchyard");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(addr) = listening_addr(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
                let mut sink = sink.lock().unwrap();
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "switchyard did not start; its log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        ChildHost { addr, child, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `GET path` on the admin API, with the admin token.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin request")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no shutdown, no flush, nothing.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaping the child");
    }
}

impl Drop for ChildHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replace `dest` with `src` atomically (copy to a temporary name, then rename), as the
/// docs recommend for deploying a plugin.
pub fn install(src: &Path, dest: &Path) {
    let tmp = dest.with_extension("wasm.tmp");
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

/// Replace a file's text atomically.
pub fn write_atomically(dest: &Path, text: &str) {
    let tmp = dest.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}
