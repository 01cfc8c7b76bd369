//! A native stand-in for the Switchyard host, for unit tests of a connector's logic.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::ctx::HostApi;
use crate::{Connector, Ctx, Delivery, Failure, FetchError, Level, Request, Response, Webhook};

type FetchHandler = Box<dyn Fn(&Request) -> Result<Response, FetchError>>;

/// The real host's kv limits (`host/src/plugin/imports/mod.rs`), enforced here too so a
/// test fails the way production would.
const MAX_KV_KEY_BYTES: usize = 512;
const MAX_KV_VALUE_BYTES: usize = 64 * 1024;

/// Runs a [`Connector`] natively with mocked settings, fetches, key-value state and clock,
/// and records what it fetched and logged.
///
/// ```
/// use switchyard_sdk::{Connector, Ctx, Delivery, Failure, Manifest, Request, Response,
///                      TestHost, Webhook};
///
/// struct Lookup;
/// impl Connector for Lookup {
///     fn manifest() -> Manifest { Manifest::new("lookup", "0.1.0") }
///     fn handle(ctx: &Ctx, _: &Webhook) -> Result<Vec<Delivery>, Failure> {
///         let api = ctx.require_setting("api")?;
///         let user = ctx.fetch(Request::get(format!("{api}/users/1")))?.error_for_status()?;
///         Ok(vec![Delivery::post("http://crm/contacts").body(user.body)])
///     }
/// }
///
/// let host = TestHost::new()
///     .setting("api", "http://api")
///     .fetch_response("GET", "http://api/users/", Response::new(200).with_body("{}"));
/// let deliveries = host.handle::<Lookup>(&Webhook::builder().build()).unwrap();
/// assert_eq!(deliveries[0].body, b"{}");
/// assert_eq!(host.fetches()[0].url, "http://api/users/1");
/// ```
///
/// A fetch that matches no configured route answers [`FetchError::Denied`], as the real
/// host does for a URL outside `allowed_hosts`.
pub struct TestHost {
    settings: HashMap<String, String>,
    routes: Vec<Route>,
    on_fetch: Option<FetchHandler>,
    kv: RefCell<BTreeMap<String, Vec<u8>>>,
    now: u64,
    fetches: RefCell<Vec<Request>>,
    logs: RefCell<Vec<(Level, String)>>,
}

/// A canned answer: `method` (or `*`) and a URL, matched exactly or as a prefix.
struct Route {
    method: String,
    url: String,
    answer: Result<Response, FetchError>,
}

impl Default for TestHost {
    fn default() -> Self {
        TestHost::new()
    }
}

impl fmt::Debug for TestHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestHost")
            .field("settings", &self.settings)
            .field("routes", &self.routes.len())
            .field("kv", &self.kv.borrow())
            .field("now", &self.now)
            .field("fetches", &self.fetches.borrow())
            .field("logs", &self.logs.borrow())
            .finish_non_exhaustive()
    }
}

impl TestHost {
    /// A host with no settings, no routes (every fetch denied), an empty kv and the clock
    /// at 1 700 000 000 000 ms (2023-11-14).
    pub fn new() -> Self {
        TestHost {
            settings: HashMap::new(),
            routes: Vec::new(),
            on_fetch: None,
            kv: RefCell::new(BTreeMap::new()),
            now: 1_700_000_000_000,
            fetches: RefCell::new(Vec::new()),
            logs: RefCell::new(Vec::new()),
        }
    }

    /// Sets a connector setting (as the operator's `[connector.settings]` would; give
    /// non-string values as JSON text, e.g. `"true"` or `r#"["invoice.*"]"#`).
    pub fn setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.insert(key.into(), value.into());
        self
    }

    /// Answers fetches of `method` (`"*"` for any) to `url` with `response`. `url` matches
    /// exactly or as a prefix; an exact match wins, then the longest prefix.
    pub fn fetch_response(
        self,
        method: impl Into<String>,
        url: impl Into<String>,
        response: Response,
    ) -> Self {
        self.route(method, url, Ok(response))
    }

    /// Answers fetches of `method` (`"*"` for any) to `url` with `error` (e.g.
    /// [`FetchError::Timeout`]); matched like [`fetch_response`](TestHost::fetch_response).
    pub fn fetch_error(
        self,
        method: impl Into<String>,
        url: impl Into<String>,
        error: FetchError,
    ) -> Self {
        self.route(method, url, Err(error))
    }

    /// Answers every fetch no route matches with `handler`.
    pub fn on_fetch(
        mut self,
        handler: impl Fn(&Request) -> Result<Response, FetchError> + 'static,
    ) -> Self {
        self.on_fetch = Some(Box::new(handler));
        self
    }

    /// Pre-seeds the key-value state.
    pub fn kv_entry(self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.kv.borrow_mut().insert(key.into(), value.into());
        self
    }

    /// Sets the clock (unix milliseconds).
    pub fn now(mut self, ms: u64) -> Self {
        self.now = ms;
        self
    }

    /// Calls `C::handle` with a [`Ctx`] backed by this host.
    pub fn handle<C: Connector>(&self, webhook: &Webhook) -> Result<Vec<Delivery>, Failure> {
        C::handle(&self.ctx(), webhook)
    }

    /// What `C::check_settings` says of this host's settings, as the real host asks it at
    /// load.
    pub fn check_settings<C: Connector>(&self) -> Result<(), String> {
        C::check_settings(&self.ctx())
    }

    /// Calls `C::dedupe_key`.
    pub fn dedupe_key<C: Connector>(&self, webhook: &Webhook) -> Option<String> {
        C::dedupe_key(webhook)
    }

    /// A [`Ctx`] backed by this host, for testing helper functions directly.
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx::new(self)
    }

    /// Every request fetched so far, in order.
    pub fn fetches(&self) -> Vec<Request> {
        self.fetches.borrow().clone()
    }

    /// Every log line so far, in order.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }

    /// The value stored under `key` now.
    pub fn kv_value(&self, key: &str) -> Option<Vec<u8>> {
        self.kv.borrow().get(key).cloned()
    }

    /// The whole key-value state now.
    pub fn kv_snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.kv.borrow().clone()
    }

    fn route(
        mut self,
        method: impl Into<String>,
        url: impl Into<String>,
        answer: Result<Response, FetchError>,
    ) -> Self {
        self.routes.push(Route {
            method: method.into(),
            url: url.into(),
            answer,
        });
        self
    }

    fn find_route(&self, request: &Request) -> Option<&Route> {
        let candidates = self.routes.iter().filter(|r| {
            (r.method == "*" || r.method.eq_ignore_ascii_case(&request.method))
                && request.url.starts_with(&r.url)
        });
        // Exact beats prefix; among prefixes the longest wins; among equals the first.
        candidates.fold(None, |best: Option<&Route>, r| match best {
            Some(b) if b.url == request.url || b.url.len() >= r.url.len() => Some(b),
            _ => Some(r),
        })
    }
}

impl HostApi for TestHost {
    fn setting(&self, key: &str) -> Option<String> {
        self.settings.get(key).cloned()
    }

    fn fetch(&self, request: &Request) -> Result<Response, FetchError> {
        self.fetches.borrow_mut().push(request.clone());
        if let Some(route) = self.find_route(request) {
            return route.answer.clone();
        }
        match &self.on_fetch {
            Some(handler) => handler(request),
            None => Err(FetchError::Denied(format!(
                "{} {} is not configured on the TestHost",
                request.method, request.url
            ))),
        }
    }

    fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.kv.borrow().get(key).cloned()
    }

    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        if key.len() > MAX_KV_KEY_BYTES {
            return Err(format!("kv key longer than {MAX_KV_KEY_BYTES} bytes"));
        }
        if value.len() > MAX_KV_VALUE_BYTES {
            return Err(format!("kv value larger than {MAX_KV_VALUE_BYTES} bytes"));
        }
        self.kv.borrow_mut().insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn kv_delete(&self, key: &str) {
        self.kv.borrow_mut().remove(key);
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }

    fn now(&self) -> u64 {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Manifest;

    /// Exercises every capability: counts events in kv, fetches a user, logs.
    struct Probe;

    impl Connector for Probe {
        fn manifest() -> Manifest {
            Manifest::new("probe", "0.0.0")
        }

        fn dedupe_key(webhook: &Webhook) -> Option<String> {
            webhook.header("x-id").map(str::to_owned)
        }

        fn handle(ctx: &Ctx, webhook: &Webhook) -> Result<Vec<Delivery>, Failure> {
            let target = ctx.require_setting("target")?;
            let count = ctx
                .kv()
                .get("count")
                .map(|v| String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0))
                .unwrap_or(0);
            ctx.kv().set("count", (count + 1).to_string())?;
            ctx.kv().delete("scratch");
            let user = ctx
                .fetch(Request::get("http://api/users/1").bearer_auth("k"))?
                .error_for_status()?;
            ctx.info(format!("event {} at {}", webhook.id, ctx.now()));
            Ok(vec![Delivery::post(target).body(user.body)])
        }
    }

    fn webhook() -> Webhook {
        Webhook::builder().id("evt").header("X-Id", "abc").build()
    }

    #[test]
    fn settings_kv_fetch_and_logs() {
        let host = TestHost::new()
            .setting("target", "http://backend/in")
            .kv_entry("count", "41")
            .kv_entry("scratch", "x")
            .now(5)
            .fetch_response(
                "GET",
                "http://api/users/",
                Response::new(200).with_body("{\"u\":1}"),
            );
        let out = host.handle::<Probe>(&webhook()).unwrap();
        assert_eq!(
            out,
            vec![Delivery::post("http://backend/in").body("{\"u\":1}")]
        );
        assert_eq!(host.kv_value("count").unwrap(), b"42");
        assert_eq!(host.kv_value("scratch"), None);
        assert_eq!(host.kv_snapshot().len(), 1);
        let fetches = host.fetches();
        assert_eq!(fetches.len(), 1);
        assert_eq!(fetches[0].header_value("Authorization"), Some("Bearer k"));
        assert_eq!(
            host.logs(),
            vec![(Level::Info, "event evt at 5".to_owned())]
        );
        assert_eq!(host.dedupe_key::<Probe>(&webhook()).as_deref(), Some("abc"));
    }

    #[test]
    fn missing_setting_is_rejected_by_name() {
        let host = TestHost::new();
        assert_eq!(
            host.handle::<Probe>(&webhook()),
            Err(Failure::Reject("setting `target` is not set".into()))
        );
        let host = TestHost::new().setting("target", " ");
        assert_eq!(
            host.handle::<Probe>(&webhook()),
            Err(Failure::Reject("setting `target` is empty".into()))
        );
    }

    #[test]
    fn unconfigured_fetch_is_denied() {
        let host = TestHost::new().setting("target", "http://backend/in");
        let err = host.handle::<Probe>(&webhook()).unwrap_err();
        assert!(
            matches!(&err, Failure::Reject(m) if m.starts_with("fetch denied")),
            "{err:?}"
        );
        assert_eq!(host.fetches().len(), 1, "denied fetches are recorded too");
    }

    #[test]
    fn upstream_errors_map_to_retry() {
        let host = TestHost::new().setting("target", "t").fetch_error(
            "GET",
            "http://api/",
            FetchError::Timeout,
        );
        assert!(host.handle::<Probe>(&webhook()).unwrap_err().is_retry());
        let host = TestHost::new().setting("target", "t").fetch_response(
            "*",
            "http://api/",
            Response::new(503),
        );
        assert_eq!(
            host.handle::<Probe>(&webhook()),
            Err(Failure::Retry("HTTP 503".into()))
        );
    }

    #[test]
    fn routes_prefer_exact_then_longest_prefix_then_closure() {
        let host = TestHost::new()
            .fetch_response("GET", "http://a/", Response::new(201))
            .fetch_response("GET", "http://a/x/", Response::new(202))
            .fetch_response("GET", "http://a/x/1", Response::new(203))
            .fetch_response("POST", "http://a/x/2", Response::new(204))
            .on_fetch(|req| Ok(Response::new(299).with_body(req.url.clone())));
        let ctx = host.ctx();
        let status = |r: Request| ctx.fetch(r).unwrap().status;
        assert_eq!(status(Request::get("http://a/x/1")), 203);
        assert_eq!(
            status(Request::get("http://a/x/10")),
            203,
            "prefix of the exact route"
        );
        assert_eq!(
            status(Request::get("http://a/x/2")),
            202,
            "method must match"
        );
        assert_eq!(status(Request::post("http://a/x/2")), 204);
        assert_eq!(status(Request::get("http://a/y")), 201);
        assert_eq!(status(Request::get("http://b/")), 299);
        assert_eq!(host.fetches().len(), 6);
    }

    #[test]
    fn kv_limits_match_the_host() {
        let host = TestHost::new();
        let kv = host.ctx().kv();
        kv.set(&"k".repeat(512), vec![0; 64 * 1024]).unwrap();
        let err = kv.set(&"k".repeat(513), "v").unwrap_err();
        assert_eq!(
            err.to_string(),
            "kv set failed: kv key longer than 512 bytes"
        );
        let err = kv.set("k", vec![0; 64 * 1024 + 1]).unwrap_err();
        assert!(!Failure::from(err).is_retry());
        assert_eq!(host.kv_snapshot().len(), 1);
    }

    #[test]
    fn setting_helpers() {
        let host = TestHost::new()
            .setting("flag", "true")
            .setting("off", "0")
            .setting("bad", "maybe")
            .setting("list", r#"["a","b"]"#);
        let ctx = host.ctx();
        assert!(ctx.setting_bool("flag").unwrap());
        assert!(!ctx.setting_bool("off").unwrap());
        assert!(!ctx.setting_bool("absent").unwrap());
        assert!(matches!(ctx.setting_bool("bad"), Err(Failure::Reject(m)) if m.contains("`bad`")));
        assert_eq!(
            ctx.setting_json::<Vec<String>>("list").unwrap().unwrap(),
            ["a", "b"]
        );
        assert_eq!(ctx.setting_json::<Vec<String>>("absent").unwrap(), None);
        assert!(ctx.setting_json::<Vec<String>>("bad").is_err());
        assert_eq!(ctx.setting_or("absent", "d"), "d");
        assert_eq!(ctx.setting_or("flag", "d"), "true");
        ctx.warn("w");
        ctx.error("e");
        ctx.debug("d");
        ctx.trace("t");
        let levels: Vec<Level> = host.logs().into_iter().map(|(l, _)| l).collect();
        assert_eq!(
            levels,
            [Level::Warn, Level::Error, Level::Debug, Level::Trace]
        );
    }
}
