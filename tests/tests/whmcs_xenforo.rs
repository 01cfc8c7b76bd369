//! The WHMCS → XenForo connector end to end: the real component in a real host, events
//! signed with Standard Webhooks (by the test, and by the shipped PHP hook file run under a
//! stub of WHMCS's `add_hook`), and a fake XenForo that speaks the documented REST API and
//! keeps its users in memory so the tests can assert the resulting groups.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, FromRequest, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};
use switchyard_tests::*;
use tokio::net::TcpListener;

/// The connector's Standard Webhooks secret (24 bytes after `whsec_`).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const API_KEY: &str = "xf-super-user-key-0123456789";
const EMAIL: &str = "ada@example.com";
/// Ada's XenForo user id in the fake.
const ADA: u64 = 7;
/// Products 12, 13, 14 → groups 5, 6, 7. Group 3 is granted by hand (not managed).
const GROUP_MAP: &str = r#"{ "12" = 5, "13" = 6, "14" = 7 }"#;
const HOOK_FILE: &str = "plugins/whmcs-xenforo/whmcs/switchyard.php";

// ---- a fake XenForo 2 REST API ------------------------------------------------------------

#[derive(Debug, Clone)]
struct XfUser {
    user_id: u64,
    username: String,
    email: String,
    user_group_id: u64,
    secondary_group_ids: BTreeSet<u64>,
    is_admin: bool,
}

impl XfUser {
    fn to_json(&self, with_groups: bool) -> Value {
        let mut user = json!({
            "user_id": self.user_id,
            "username": self.username,
            "user_state": "valid",
            "is_admin": self.is_admin,
            "view_url": format!("http://forum.invalid/members/{}/", self.user_id),
        });
        // XenForo shows these only to admins and permission-bypassing keys.
        if with_groups {
            user["email"] = json!(self.email);
            user["user_group_id"] = json!(self.user_group_id);
            user["secondary_group_ids"] = json!(self.secondary_group_ids);
        }
        user
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
struct XfRequest {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    api_key: Option<String>,
    api_user: Option<String>,
    form: Vec<(String, String)>,
}

#[derive(Default)]
struct XfState {
    users: BTreeMap<u64, XfUser>,
    requests: Vec<XfRequest>,
    /// The next matching request gets this status (once each).
    failures: Vec<ScriptedFailure>,
}

/// A failure the fake answers once.
struct ScriptedFailure {
    method: Method,
    path: String,
    status: u16,
    /// Ada's groups are set to these as the failure is answered: a change by someone else
    /// between the connector's attempts.
    then_ada_groups: Option<BTreeSet<u64>>,
}

/// A fake XenForo board: `GET /api/users/find-email`, `GET /api/users/{id}/` and
/// `POST /api/users/{id}/` (form-encoded), with `XF-Api-Key` checked and errors in
/// XenForo's `{"errors":[{"code","message","params"}]}` shape.
#[derive(Clone)]
struct FakeXenForo {
    addr: SocketAddr,
    state: Arc<Mutex<XfState>>,
    /// Whether find-email includes `secondary_group_ids` (off: the connector must read
    /// them from `GET /api/users/{id}/`).
    groups_in_find_email: Arc<AtomicBool>,
}

impl FakeXenForo {
    /// A board with the admin (user 1) and Ada (user 7, secondary group 3).
    async fn start() -> FakeXenForo {
        let state = Arc::new(Mutex::new(XfState::default()));
        {
            let mut s = state.lock().unwrap();
            for user in [
                XfUser {
                    user_id: 1,
                    username: "admin".into(),
                    email: "admin@example.com".into(),
                    user_group_id: 3,
                    secondary_group_ids: BTreeSet::new(),
                    is_admin: true,
                },
                XfUser {
                    user_id: ADA,
                    username: "ada".into(),
                    email: EMAIL.into(),
                    user_group_id: 2,
                    secondary_group_ids: BTreeSet::from([3]),
                    is_admin: false,
                },
            ] {
                s.users.insert(user.user_id, user);
            }
        }
        let fake = FakeXenForo {
            addr: "127.0.0.1:0".parse().unwrap(),
            state,
            groups_in_find_email: Arc::new(AtomicBool::new(true)),
        };
        let app = axum::Router::new()
            .fallback(any(xenforo))
            .with_state(fake.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeXenForo { addr, ..fake }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn groups(&self, user_id: u64) -> Vec<u64> {
        let state = self.state.lock().unwrap();
        state.users[&user_id]
            .secondary_group_ids
            .iter()
            .copied()
            .collect()
    }

    fn set_groups(&self, user_id: u64, groups: &[u64]) {
        let mut state = self.state.lock().unwrap();
        state.users.get_mut(&user_id).unwrap().secondary_group_ids =
            groups.iter().copied().collect();
    }

    fn fail_once(&self, method: Method, path: &str, status: u16) {
        self.script_failure(method, path, status, None);
    }

    /// Like [`fail_once`](Self::fail_once), and Ada's groups become `groups` right then.
    fn fail_once_then_set_groups(&self, method: Method, path: &str, status: u16, groups: &[u64]) {
        self.script_failure(method, path, status, Some(groups.iter().copied().collect()));
    }

    fn script_failure(
        &self,
        method: Method,
        path: &str,
        status: u16,
        then_ada_groups: Option<BTreeSet<u64>>,
    ) {
        self.state.lock().unwrap().failures.push(ScriptedFailure {
            method,
            path: path.to_owned(),
            status,
            then_ada_groups,
        });
    }

    fn requests(&self) -> Vec<XfRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    fn writes(&self) -> Vec<XfRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect()
    }
}

fn xf_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"errors": [{"code": code, "message": message, "params": {}}]})),
    )
        .into_response()
}

/// How PHP reads a form field that may be sent as `key[]=…` (a list) or `key=…` (a scalar).
enum PhpField {
    Absent,
    Scalar,
    List(Vec<String>),
}

async fn xenforo(State(fake): State<FakeXenForo>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = Query::<Vec<(String, String)>>::try_from_uri(request.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let header = |headers: &axum::http::HeaderMap, name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let api_key = header(request.headers(), "xf-api-key");
    let api_user = header(request.headers(), "xf-api-user");
    let form = if method == Method::POST {
        match Form::<Vec<(String, String)>>::from_request(request, &()).await {
            Ok(Form(pairs)) => pairs,
            Err(rejection) => {
                return xf_error(
                    StatusCode::BAD_REQUEST,
                    "request_body_not_form",
                    &rejection.body_text(),
                );
            }
        }
    } else {
        Vec::new()
    };
    respond(&fake, method, path, query, api_key, api_user, form)
}

/// The fake's answer (synchronous, so the state lock is never held across an await).
fn respond(
    fake: &FakeXenForo,
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    api_key: Option<String>,
    api_user: Option<String>,
    form: Vec<(String, String)>,
) -> Response {
    let mut state = fake.state.lock().unwrap();
    state.requests.push(XfRequest {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        api_key: api_key.clone(),
        api_user: api_user.clone(),
        form: form.clone(),
    });
    if let Some(i) = state
        .failures
        .iter()
        .position(|f| f.method == method && f.path == path)
    {
        let failure = state.failures.remove(i);
        if let Some(groups) = failure.then_ada_groups {
            state.users.get_mut(&ADA).unwrap().secondary_group_ids = groups;
        }
        return xf_error(
            StatusCode::from_u16(failure.status).unwrap(),
            "service_unavailable",
            "The board is busy.",
        );
    }
    if api_key.as_deref() != Some(API_KEY) {
        return xf_error(
            StatusCode::UNAUTHORIZED,
            "api_key_not_found",
            "API key provided in request was not found.",
        );
    }
    if api_user
        .as_deref()
        .and_then(|u| u.parse::<u64>().ok())
        .is_none_or(|u| !state.users.contains_key(&u))
    {
        return xf_error(
            StatusCode::UNAUTHORIZED,
            "api_user_not_found",
            "The XF-Api-User could not be found.",
        );
    }
    let with_groups = fake.groups_in_find_email.load(Ordering::SeqCst);

    let rest = path.strip_prefix("/api/users/");
    match (&method, rest) {
        (&Method::GET, Some("find-email")) => {
            let email = query
                .iter()
                .find(|(k, _)| k == "email")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let user = state
                .users
                .values()
                .find(|u| u.email.eq_ignore_ascii_case(&email))
                .map(|u| u.to_json(with_groups));
            axum::Json(json!({ "user": user })).into_response()
        }
        (_, Some(rest)) if rest.ends_with('/') => {
            let Some(user_id) = rest.strip_suffix('/').and_then(|id| id.parse::<u64>().ok()) else {
                return xf_error(
                    StatusCode::NOT_FOUND,
                    "endpoint_not_found",
                    "The requested API endpoint could not be found.",
                );
            };
            let Some(user) = state.users.get_mut(&user_id) else {
                return xf_error(
                    StatusCode::NOT_FOUND,
                    "requested_user_not_found",
                    "The requested user could not be found.",
                );
            };
            match method {
                Method::GET => axum::Json(json!({ "user": user.to_json(true) })).into_response(),
                Method::POST => {
                    // PHP semantics: `k[]=v` appends to a list, a later bare `k=` replaces
                    // it with a scalar (which XenForo's `?array-uint` filter reads as `[]`).
                    let mut field = PhpField::Absent;
                    for (key, value) in &form {
                        match key.as_str() {
                            "secondary_group_ids[]" => match &mut field {
                                PhpField::List(items) => items.push(value.clone()),
                                _ => field = PhpField::List(vec![value.clone()]),
                            },
                            "secondary_group_ids" => field = PhpField::Scalar,
                            _ => {}
                        }
                    }
                    match field {
                        PhpField::Absent => {}
                        PhpField::Scalar => user.secondary_group_ids.clear(),
                        PhpField::List(items) => {
                            // Stricter than XenForo, whose handling of `[]=` (the list
                            // `[0]`) is not documented: anything but group ids is an error.
                            let Ok(ids) = items
                                .iter()
                                .map(|v| v.parse::<u64>().ok().filter(|id| *id > 0).ok_or(v))
                                .collect::<Result<BTreeSet<u64>, _>>()
                            else {
                                return xf_error(
                                    StatusCode::BAD_REQUEST,
                                    "invalid_secondary_group_ids",
                                    "Please enter valid user group ids.",
                                );
                            };
                            user.secondary_group_ids = ids;
                        }
                    }
                    axum::Json(json!({ "success": true, "user": user.to_json(true) }))
                        .into_response()
                }
                _ => xf_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "endpoint_not_found",
                    "Method not allowed.",
                ),
            }
        }
        _ => xf_error(
            StatusCode::NOT_FOUND,
            "endpoint_not_found",
            "The requested API endpoint could not be found.",
        ),
    }
}

// ---- the host and events ------------------------------------------------------------------

/// A host with the connector `whmcs` pointed at `xf`, with `api_key` and quick retries.
async fn start_host(dirs: &Dirs, xf: &FakeXenForo, api_key: &str) -> Host {
    start_host_with_backoff(dirs, xf, api_key, "50ms").await
}

/// [`start_host`] whose first retry comes after `initial_backoff`.
async fn start_host_with_backoff(
    dirs: &Dirs,
    xf: &FakeXenForo,
    api_key: &str,
    initial_backoff: &str,
) -> Host {
    let config = dirs.base_config()
        + &format!(
            r#"
[[connector]]
id = "whmcs"
plugin = "whmcs-xenforo.wasm"
secret = "{SECRET}"
allowed_hosts = ["{origin}"]
[connector.retry]
initial_backoff = "{initial_backoff}"
max_backoff = "{initial_backoff}"
jitter = 0.0
max_attempts = 5
[connector.settings]
xenforo_url = "{origin}"
api_key = "{api_key}"
api_user = "1"
group_map = {GROUP_MAP}
"#,
            origin = xf.origin()
        );
    Host::start(&config).await
}

/// `occurred_at` of the next [`whmcs_event`]: one microsecond later each time, as when
/// WHMCS runs the hooks one after the other.
static CLOCK: AtomicU64 = AtomicU64::new(1);

/// A WHMCS event as the PHP hook sends it, occurred after every earlier one.
fn whmcs_event(hook: &str, product_id: u64, email: &str) -> Vec<u8> {
    let tick = CLOCK.fetch_add(1, Ordering::SeqCst);
    let occurred_at = format!("2026-01-02T03:04:05.{tick:06}Z");
    whmcs_event_at(hook, product_id, email, &occurred_at)
}

/// A WHMCS event for service 42 that occurred at `occurred_at`.
fn whmcs_event_at(hook: &str, product_id: u64, email: &str, occurred_at: &str) -> Vec<u8> {
    let status = match hook {
        "AfterModuleSuspend" => "Suspended",
        "AfterModuleTerminate" => "Terminated",
        _ => "Active",
    };
    serde_json::to_vec(&json!({
        "event": hook,
        "service_id": 42,
        "client_id": 9,
        "email": email,
        "product_id": product_id,
        "status": status,
        "occurred_at": occurred_at,
    }))
    .unwrap()
}

/// Signs and sends `body` with `msg_id`; returns the host's JSON answer.
async fn send_signed(host: &Host, body: &[u8], msg_id: &str) -> Value {
    let headers = standard_webhooks_headers(SECRET, body, msg_id);
    let response = host.post_hook("whmcs", &headers, body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Sends one hook event; returns its event id.
async fn send(host: &Host, hook: &str, product_id: u64, email: &str) -> String {
    send_body(host, hook, &whmcs_event(hook, product_id, email)).await
}

/// Sends one hook event for Ada that occurred at `occurred_at`; returns its event id.
async fn send_at(host: &Host, hook: &str, product_id: u64, occurred_at: &str) -> String {
    send_body(
        host,
        hook,
        &whmcs_event_at(hook, product_id, EMAIL, occurred_at),
    )
    .await
}

async fn send_body(host: &Host, hook: &str, body: &[u8]) -> String {
    let msg_id = format!("whmcs_42_{hook}_{}", ulid::Ulid::new());
    let answer = send_signed(host, body, &msg_id).await;
    assert_eq!(answer["status"], "accepted", "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

/// Sends one hook event and waits until it succeeded.
async fn apply(host: &Host, hook: &str, product_id: u64) -> Value {
    let id = send(host, hook, product_id, EMAIL).await;
    host.wait_for_status(&id, "succeeded").await
}

/// Waits until event `id` has `attempts` connector attempts and `status`.
async fn wait_for_attempts(host: &Host, id: &str, attempts: usize, status: &str) -> Value {
    for _ in 0..600 {
        let record = host.event(id).await;
        if record["attempts"].as_array().map_or(0, Vec::len) == attempts
            && record["status"] == status
        {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "event {id} never reached {attempts} attempts and {status}: {:#}",
        host.event(id).await
    );
}

fn last_attempt(record: &Value) -> &Value {
    record["attempts"].as_array().unwrap().last().unwrap()
}

/// An attempt's `ctx.fetch` calls as the host recorded them: `"GET /api/users/find-email
/// 200"` (path without the origin and the query, then the status or the error).
fn fetch_calls(attempt: &Value) -> Vec<String> {
    attempt["fetches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let url = f["request"]["url"].as_str().unwrap();
            let path = url
                .split("/api/")
                .nth(1)
                .unwrap()
                .split('?')
                .next()
                .unwrap();
            let outcome = match &f["status"] {
                Value::Number(status) => status.to_string(),
                _ => f["error"].to_string(),
            };
            format!(
                "{} /api/{path} {outcome}",
                f["request"]["method"].as_str().unwrap()
            )
        })
        .collect()
}

/// The fake's request log as `"GET /api/users/find-email"`.
fn xf_calls(xf: &FakeXenForo) -> Vec<String> {
    xf.requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

// ---- the connector against the fake ------------------------------------------------------

#[tokio::test]
async fn create_suspend_unsuspend_terminate_follow_the_service() {
    let xf = FakeXenForo::start().await;
    let dirs = Dirs::new(&["whmcs-xenforo.wasm"]);
    let host = start_host(&dirs, &xf, API_KEY).await;

    let record = apply(&host, "AfterModuleCreate", 12).await;
    assert_eq!(xf.groups(ADA), [3, 5], "create adds the group, keeps 3");
    assert_eq!(record["verification"]["scheme"], "standard-webhooks");
    assert!(
        record["dedupe_key"]
            .as_str()
            .unwrap()
            .starts_with("whmcs_42_AfterModuleCreate_")
    );
    let writes = xf.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].path, "/api/users/7/");
    assert_eq!(writes[0].api_key.as_deref(), Some(API_KEY));
    assert_eq!(writes[0].api_user.as_deref(), Some("1"));
    assert_eq!(
        writes[0].form,
        [
            ("api_bypass_permissions".to_owned(), "1".to_owned()),
            ("secondary_group_ids[]".to_owned(), "3".to_owned()),
            ("secondary_group_ids[]".to_owned(), "5".to_owned()),
        ]
    );
    let lookup = &xf.requests()[0];
    assert_eq!(
        (lookup.method.as_str(), lookup.path.as_str()),
        ("GET", "/api/users/find-email")
    );
    assert!(
        lookup
            .query
            .contains(&("email".to_owned(), EMAIL.to_owned()))
    );
    // The key reached XenForo but is not in the event log.
    assert!(
        !record.to_string().contains(API_KEY),
        "API key leaked into the event log"
    );
    // The write happened inside the connector's call: no delivery, and the attempt's
    // fetches show the lookup and the write, each with the key masked.
    assert_eq!(record["deliveries"], json!([]), "{record:#}");
    let attempt = last_attempt(&record);
    assert_eq!(attempt["outcome"], "deliveries");
    assert_eq!(attempt["deliveries"], 0);
    assert_eq!(
        fetch_calls(attempt),
        ["GET /api/users/find-email 200", "POST /api/users/7/ 200"]
    );
    for fetch in attempt["fetches"].as_array().unwrap() {
        let headers = &fetch["request"]["headers"];
        assert!(
            headers.as_array().unwrap().iter().any(|h| h[0]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case("xf-api-key")
                && h[1] == "****"),
            "{headers:#}"
        );
    }
    assert_eq!(
        attempt["fetches"][1]["request"]["body"],
        "api_bypass_permissions=1&secondary_group_ids%5B%5D=3&secondary_group_ids%5B%5D=5"
    );

    apply(&host, "AfterModuleSuspend", 12).await;
    assert_eq!(xf.groups(ADA), [3], "suspend removes it");
    apply(&host, "AfterModuleUnsuspend", 12).await;
    assert_eq!(xf.groups(ADA), [3, 5], "unsuspend re-adds it");
    apply(&host, "AfterModuleTerminate", 12).await;
    assert_eq!(xf.groups(ADA), [3], "terminate removes it");

    // Down to no secondary group at all: the empty set is written, not skipped.
    xf.set_groups(ADA, &[5]);
    apply(&host, "AfterModuleTerminate", 12).await;
    assert_eq!(xf.groups(ADA), Vec::<u64>::new());
    assert_eq!(
        xf.writes().last().unwrap().form,
        [
            ("api_bypass_permissions".to_owned(), "1".to_owned()),
            ("secondary_group_ids".to_owned(), String::new()),
        ]
    );
    host.stop().await;
}

#[tokio::test]
async fn change_package_swaps_groups() {
    let xf = FakeXenForo::start().await;
    xf.set_groups(ADA, &[3, 5]);
    // This time find-email does not show the groups: they come from GET /api/users/7/.
    xf.groups_in_find_email.store(false, Ordering::SeqCst);
    let dirs = Dirs::new(&["whmcs-xenforo.wasm"]);
    let host = start_host(&dirs, &xf, API_KEY).await;

    apply(&host, "AfterModuleChangePackage", 13).await;
    assert_eq!(
        xf.groups(ADA),
        [3, 6],
        "upgrade 12 → 13: 5 out, 6 in, 3 kept"
    );
    let paths: Vec<_> = xf
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        paths,
        [
            "GET /api/users/find-email",
            "GET /api/users/7/",
            "POST /api/users/7/"
        ]
    );

    apply(&host, "AfterModuleChangePackage", 12).await;
    assert_eq!(xf.groups(ADA), [3, 5], "downgrade 13 → 12");
    host.stop().await;
}

#[tokio::test]
async fn replaying_an_event_leaves_the_same_state() {
    let xf = FakeXenForo::start().await;
    let dirs = Dirs::new(&["whmcs-xenforo.wasm"]);
    let host = start_host(&dirs, &xf, API_KEY).await;

    let msg_id = format!("whmcs_42_AfterModuleCreate_{}", ulid::Ulid::new());
    let body = whmcs_event("AfterModuleCreate", 12, EMAIL);
    let answer = send_signed(&host, &body, &msg_id).await;
    let id = answer["id"].as_str().unwrap().to_owned();
    host.wait_for_status(&id, "succeeded").await;
    assert_eq!(xf.groups(ADA), [3, 5]);

    // The same webhook-id again is a duplicate, not a second run.
    let again = send_signed(&host, &body, &msg_id).await;
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["id"], id.as_str());

    // A replay runs the connector again: same state, nothing to write.
    let replay = |host: &Host, id: String| {
        let request = host
            .http
            .post(host.url(&format!("/v1/events/{id}/replay")))
            .bearer_auth(ADMIN_TOKEN);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(replay(&host, id.clone()).await, 202);
    let record = wait_for_attempts(&host, &id, 2, "succeeded").await;
    assert_eq!(xf.groups(ADA), [3, 5]);
    assert_eq!(xf.writes().len(), 1, "an unchanged set is not written");
    assert_eq!(last_attempt(&record)["deliveries"], 0);
    assert!(
        last_attempt(&record)["logs"]
            .to_string()
            .contains("nothing to write"),
        "{record:#}"
    );

    // After someone removed the group by hand, a replay restores what WHMCS says.
    xf.set_groups(ADA, &[3]);
    assert_eq!(replay(&host, id.clone()).await, 202);
    wait_for_attempts(&host, &id, 3, "succeeded").await;
    assert_eq!(xf.groups(ADA), [3, 5]);
    assert_eq!(xf.writes().len(), 2);

    // Once a newer event of the service is applied, replaying the older one is a no-op:
    // it would undo what WHMCS did later.
    apply(&host, "AfterModuleTerminate", 12).await;
    assert_eq!(xf.groups(ADA), [3]);
    assert_eq!(replay(&host, id.clone()).await, 202);
    let record = wait_for_attempts(&host, &id, 4, "succeeded").await;
    assert!(
        last_attempt(&record)["logs"]
            .to_string()
            .contains("skipped, older than AfterModuleTerminate"),
        "{record:#}"
    );
    assert_eq!(xf.groups(ADA), [3]);
    assert_eq!(xf.writes().len(), 3);
    host.stop().await;
}

#[tokio::test]
async fn unknown_email_is_dead_with_a_clear_message() {
    let xf = FakeXenForo::start().await;
    let dirs = Dirs::new(&["whmcs-xenforo.wasm"]);
    let host = start_host(&dirs, &xf, API_KEY).await;
    let id = send(&host, "AfterModuleCreate", 12, "nobody@example.com").await;
    let record = host.wait_for_status(&id, "dead").await;
    let attempt = last_attempt(&record);
    assert_eq!(attempt["outcome"], "reject");
    assert_eq!(
        attempt["message"],
        "no XenForo user with email nobody@example.com"
    );
    assert_eq!(
        record["attempts"].as_array().unwrap().len(),
        1,
        "not retried"
    );
    assert!(xf.writes().is_empty());
    host.stop().await;
}

#[tokio::test]
async fn wrong_api_key_is_dead_naming_the_code() {
    let xf = FakeXenForo::start().await;
    let dirs = Dirs::new(&["whmcs-xenforo.wasm"]);
    let host = start_host(&dirs, &xf, "not-the-key").await;
    let id = send(&host, "AfterModuleCreate", 12, EMAIL).await;
    let record = host.wait_for_status(&id, "dead").await;
    let attempt = last_attempt(&record);
    assert_eq!(attempt["outcome"], "reject");
    let message = attempt["message"].as_str().unwrap();
    assert!(
        message.contains("HTTP 401") && message.contains("api_key_not_found"),
        "{message}"
    );
    assert!(!record.to_string().contains("not-the-key"), "key leaked");
    assert!(xf.writes().is_empty());
    assert_eq!(xf.groups(ADA), [3]);
    host.stop().await;
}

#[tokio::test]
async fn unknown_product_succeeds_without_calling_xenforo() {
    let xf = FakeXenForo::start().await;
    let dirs = Dirs::new(&["whmcs-xenforo.wasm"]);
    let host = start_host(&dirs, &xf, API_KEY).await;
    let record = apply(&host, "AfterModuleCreate", 99).await;
    assert!(
        last_attempt(&record)["logs"]
            .to_string()
            .contains("product 99 is not in group_map"),
        "{record:#}"
    );
    assert!(xf.requests().is_empty());
    host.stop().await;
}

#[tokio::test]
async fn xenforo_503_on_the_lookup_is_retried_then_succeeds() {
    let xf = FakeXenForo::start().await;
    xf.fail_once(Method::GET, "/api/users/find-email", 503);
    let dirs = Dirs::new(&["whmcs-xenforo.wasm"]);
    let host = start_host(&dirs, &xf, API_KEY).await;
    let record = apply(&host, "AfterModuleCreate", 12).await;
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{record:#}");
    assert_eq!(attempts[0]["outcome"], "retry");
    let message = attempts[0]["message"].as_str().unwrap();
    assert!(
        message.contains("HTTP 503") && message.contains("service_unavailable"),
        "{message}"
    );
    assert_eq!(xf.groups(ADA), [3, 5]);
    host.stop().await;
}

#[tokio::test]
async fn xenforo_503_on_the_write_retries_the_whole_call() {
    let xf = FakeXenForo::start().await;
    xf.fail_once(Method::POST, "/api/users/7/", 503);
    let dirs = Dirs::new(&["whmcs-xenforo.wasm"]);
    let host = start_host(&dirs, &xf, API_KEY).await;
    let record = apply(&host, "AfterModuleCreate", 12).await;
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{record:#}");
    assert_eq!(attempts[0]["outcome"], "retry");
    assert_eq!(
        attempts[0]["message"],
        "writing the secondary groups of XenForo user 7: XenForo answered HTTP 503: \
         service_unavailable (The board is busy.)"
    );
    assert_eq!(
        fetch_calls(&attempts[0]),
        ["GET /api/users/find-email 200", "POST /api/users/7/ 503"]
    );
    // The retry is a new call of the connector: it looks the user up again, then writes.
    assert_eq!(attempts[1]["outcome"], "deliveries");
    assert_eq!(
        fetch_calls(&attempts[1]),
        ["GET /api/users/find-email 200", "POST /api/users/7/ 200"]
    );
    assert_eq!(record["deliveries"], json!([]));
    assert_eq!(
        xf_calls(&xf),
        [
            "GET /api/users/find-email",
            "POST /api/users/7/",
            "GET /api/users/find-email",
            "POST /api/users/7/"
        ]
    );
    assert_eq!(xf.groups(ADA), [3, 5]);
    host.stop().await;
}

#[tokio::test]
async fn a_retried_write_starts_from_the_groups_as_they_are_then() {
    let xf = FakeXenForo::start().await;
    // The write meets a 503; by the retry, a moderator has given Ada group 6 by hand.
    xf.fail_once_then_set_groups(Method::POST, "/api/users/7/", 503, &[3, 6]);
    let dirs = Dirs::new(&["whmcs-xenforo.wasm"]);
    let host = start_host(&dirs, &xf, API_KEY).await;
    let record = apply(&host, "AfterModuleCreate", 12).await;
    assert_eq!(
        record["attempts"].as_array().unwrap().len(),
        2,
        "{record:#}"
    );
    let writes = xf.writes();
    assert_eq!(writes.len(), 2);
    let groups = |form: &[(String, String)]| -> Vec<String> {
        form.iter()
            .filter(|(k, _)| k == "secondary_group_ids[]")
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(groups(&writes[0].form), ["3", "5"], "from the first read");
    assert_eq!(
        groups(&writes[1].form),
        ["3", "5", "6"],
        "from the second read"
    );
    assert_eq!(xf.groups(ADA), [3, 5, 6], "the hand-granted group survives");
    host.stop().await;
}

/// A create whose write meets a 503, then a suspend of the same service handled before
/// the create's retry. WHMCS created the service, then suspended it: the right end state
/// is "no group", whatever order the connector ran them in. The create's retry is skipped
/// because the suspend (newer `occurred_at`) was already applied to service 42.
#[tokio::test]
async fn a_create_retried_after_a_newer_suspend_does_not_bring_the_group_back() {
    let xf = FakeXenForo::start().await;
    xf.fail_once(Method::POST, "/api/users/7/", 503);
    let dirs = Dirs::new(&["whmcs-xenforo.wasm"]);
    // Room for the suspend to be handled before the create's first retry.
    let host = start_host_with_backoff(&dirs, &xf, API_KEY, "2s").await;

    let create = send_at(
        &host,
        "AfterModuleCreate",
        12,
        "2026-01-02T03:04:05.100000Z",
    )
    .await;
    let record = wait_for_attempts(&host, &create, 1, "retrying").await;
    assert_eq!(last_attempt(&record)["outcome"], "retry");
    assert_eq!(xf.groups(ADA), [3], "the create's write failed");

    let suspend = send_at(
        &host,
        "AfterModuleSuspend",
        12,
        "2026-01-02T03:04:05.200000Z",
    )
    .await;
    let record = host.wait_for_status(&suspend, "succeeded").await;
    assert!(
        last_attempt(&record)["logs"]
            .to_string()
            .contains("nothing to write"),
        "group 5 was never written: {record:#}"
    );
    assert_eq!(
        host.event(&create).await["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the test needs the suspend handled before the create's retry"
    );

    let record = wait_for_attempts(&host, &create, 2, "succeeded").await;
    let retry = last_attempt(&record);
    assert_eq!(
        retry["fetches"],
        json!([]),
        "skipped without calling XenForo"
    );
    let logs = retry["logs"].to_string();
    assert!(
        logs.contains(
            "skipped, older than AfterModuleSuspend (occurred_at 2026-01-02T03:04:05.200000Z"
        ),
        "{logs}"
    );
    assert_eq!(xf.groups(ADA), [3], "suspended: no group");
    assert_eq!(
        xf_calls(&xf),
        [
            "GET /api/users/find-email", // create: read [3]
            "POST /api/users/7/",        // create: [3, 5], 503
            "GET /api/users/find-email", // suspend: read [3], nothing to write
        ]
    );

    // The service's next event applies as usual.
    let unsuspend = send_at(&host, "AfterModuleUnsuspend", 12, "2026-01-02T03:04:06Z").await;
    host.wait_for_status(&unsuspend, "succeeded").await;
    assert_eq!(xf.groups(ADA), [3, 5]);
    host.stop().await;
}

#[tokio::test]
async fn events_arriving_out_of_whmcs_order_follow_occurred_at() {
    let xf = FakeXenForo::start().await;
    xf.set_groups(ADA, &[3, 5]);
    let dirs = Dirs::new(&["whmcs-xenforo.wasm"]);
    let host = start_host(&dirs, &xf, API_KEY).await;

    // WHMCS terminated the service at 03:10, after unsuspending it at 03:05; the
    // terminate reaches Switchyard first (the unsuspend was resent late).
    let terminate = send_at(&host, "AfterModuleTerminate", 12, "2026-01-02T03:10:00Z").await;
    host.wait_for_status(&terminate, "succeeded").await;
    assert_eq!(xf.groups(ADA), [3]);
    let before = xf.requests().len();
    let unsuspend = send_at(&host, "AfterModuleUnsuspend", 12, "2026-01-02T03:05:00Z").await;
    let record = host.wait_for_status(&unsuspend, "succeeded").await;
    assert_eq!(xf.groups(ADA), [3], "terminated stays terminated");
    assert_eq!(xf.requests().len(), before, "XenForo was not called");
    assert!(
        last_attempt(&record)["logs"].to_string().contains(&format!(
            "skipped, older than AfterModuleTerminate (occurred_at 2026-01-02T03:10:00Z, \
             event {terminate})"
        )),
        "{record:#}"
    );
    host.stop().await;
}

// ---- the shipped PHP hook -----------------------------------------------------------------

/// `php`, or `None` (with a note) when it is missing outside CI. In CI (`CI=true`) the
/// tests fail instead: `.ci/run` installs it.
fn php() -> Option<&'static str> {
    let works = std::process::Command::new("php")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some("php");
    }
    assert!(
        !in_ci(),
        "php is missing in CI: .ci/run installs php-cli and php-curl"
    );
    eprintln!(
        "SKIPPED: php is not installed (apt-get install php-cli php-curl); CI runs this test"
    );
    None
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn hook_file() -> PathBuf {
    repo_root().join(HOOK_FILE)
}

/// Stands in for WHMCS: collects `add_hook` callbacks, records `logActivity`, requires the
/// real hook file and fires one hook with the `$vars` given as JSON; prints what happened.
const DRIVER: &str = r#"<?php
define('WHMCS', true);
$GLOBALS['whmcs_hooks'] = [];
$GLOBALS['whmcs_activity_log'] = [];
function add_hook($hookPoint, $priority, $function) {
    $GLOBALS['whmcs_hooks'][$hookPoint][] = $function;
}
function logActivity($message, $userId = 0) {
    $GLOBALS['whmcs_activity_log'][] = $message;
}
require getenv('SWITCHYARD_HOOK_FILE');
$hook = $argv[1];
$vars = json_decode($argv[2], true);
$started = microtime(true);
foreach ($GLOBALS['whmcs_hooks'][$hook] ?? [] as $function) {
    $function($vars);
}
echo json_encode([
    'hooks' => array_keys($GLOBALS['whmcs_hooks']),
    'activity_log' => $GLOBALS['whmcs_activity_log'],
    'transport' => function_exists('curl_init') ? 'curl' : 'stream',
    'seconds' => microtime(true) - $started,
]);
"#;

/// `$vars` as WHMCS passes them to the AfterModule* hooks (trimmed).
fn module_vars(pid: u64) -> Value {
    json!({"params": {
        "accountid": 42, "serviceid": 42, "addonId": 0, "userid": 9, "pid": pid,
        "serverid": 1, "domain": "ada.example.com", "username": "ada", "password": "x",
        "producttype": "other", "moduletype": "xenforo", "moduleparams": [],
        "customfields": {"Forum name": "ada"}, "configoptions": {},
        "clientsdetails": {
            "userid": 9, "id": 9, "uuid": "6f1c1c64-6a3e-4bd5-a8a4-1f0e0a6a5a11",
            "firstname": "Ada", "lastname": "Lovelace", "fullname": "Ada Lovelace",
            "companyname": "", "email": EMAIL, "country": "GB", "status": "Active"
        }
    }})
}

/// Runs the driver: `php [-d disable_functions=curl_init] driver.php HOOK VARS`.
async fn run_hook(
    php: &str,
    dir: &Path,
    url: &str,
    secret: &str,
    hook: &str,
    vars: &Value,
    without_curl: bool,
) -> Value {
    let driver = dir.join("whmcs-driver.php");
    std::fs::write(&driver, DRIVER).unwrap();
    let mut command = tokio::process::Command::new(php);
    if without_curl {
        command.args(["-d", "disable_functions=curl_init"]);
    }
    let output = command
        .arg(&driver)
        .arg(hook)
        .arg(vars.to_string())
        .env("SWITCHYARD_HOOK_FILE", hook_file())
        .env("SWITCHYARD_WHMCS_URL", url)
        .env("SWITCHYARD_WHMCS_SECRET", secret)
        .output()
        .await
        .expect("running php");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "php failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("driver output {stdout:?}: {e}"))
}

/// The newest `whmcs` events, once there are `n`.
async fn events(host: &Host, n: usize) -> Vec<Value> {
    for _ in 0..600 {
        let listed: Value = host
            .admin_get("/v1/events?connector=whmcs")
            .await
            .json()
            .await
            .unwrap();
        let data = listed["data"].as_array().cloned().unwrap_or_default();
        if data.len() >= n {
            return data;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} whmcs events");
}

#[test]
fn php_hook_passes_php_lint() {
    let Some(php) = php() else { return };
    let output = std::process::Command::new(php)
        .arg("-l")
        .arg(hook_file())
        .output()
        .expect("php -l");
    assert!(
        output.status.success(),
        "php -l {HOOK_FILE}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn php_hook_events_are_verified_by_the_host_and_applied() {
    let Some(php) = php() else { return };
    let xf = FakeXenForo::start().await;
    let dirs = Dirs::new(&["whmcs-xenforo.wasm"]);
    let host = start_host(&dirs, &xf, API_KEY).await;
    let url = host.url("/hooks/whmcs");

    // AfterModuleCreate through curl, as in WHMCS.
    let out = run_hook(
        php,
        dirs.root.path(),
        &url,
        SECRET,
        "AfterModuleCreate",
        &module_vars(12),
        false,
    )
    .await;
    assert_eq!(
        out["hooks"],
        json!([
            "AfterModuleCreate",
            "AfterModuleChangePackage",
            "AfterModuleSuspend",
            "AfterModuleUnsuspend",
            "AfterModuleTerminate"
        ])
    );
    assert_eq!(out["activity_log"], json!([]), "the send failed: {out}");
    if out["transport"] != "curl" {
        assert!(!in_ci(), "php-curl is missing in CI: {out}");
        eprintln!("NOTE: php has no curl extension here; the stream fallback was used");
    }
    let created = &events(&host, 1).await[0];
    let id = created["id"].as_str().unwrap();
    let record = host.wait_for_status(id, "succeeded").await;
    assert_eq!(record["verification"]["verified"], true);
    assert_eq!(record["verification"]["scheme"], "standard-webhooks");
    let msg_id = record["dedupe_key"].as_str().unwrap();
    assert!(
        msg_id.starts_with("whmcs_42_AfterModuleCreate_"),
        "{msg_id}"
    );
    let sent: Value = serde_json::from_str(record["request"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["event"], "AfterModuleCreate");
    assert_eq!(sent["service_id"], 42);
    assert_eq!(sent["client_id"], 9);
    assert_eq!(sent["email"], EMAIL);
    assert_eq!(sent["product_id"], 12);
    assert_eq!(sent["status"], "Active");
    // RFC 3339 UTC with microseconds (`2026-01-02T03:04:05.123456Z`): the connector orders
    // a service's events by it.
    let occurred_at = sent["occurred_at"].as_str().unwrap();
    assert!(
        occurred_at.len() == 27
            && occurred_at.as_bytes()[10] == b'T'
            && occurred_at.as_bytes()[19] == b'.'
            && occurred_at[20..26].bytes().all(|b| b.is_ascii_digit())
            && occurred_at.ends_with('Z'),
        "{occurred_at}"
    );
    assert_eq!(xf.groups(ADA), [3, 5]);

    // AfterModuleTerminate through PHP's HTTP stream (no curl).
    let out = run_hook(
        php,
        dirs.root.path(),
        &url,
        SECRET,
        "AfterModuleTerminate",
        &module_vars(12),
        true,
    )
    .await;
    assert_eq!(out["transport"], "stream");
    assert_eq!(out["activity_log"], json!([]), "the send failed: {out}");
    let terminated = &events(&host, 2).await[0];
    let record = host
        .wait_for_status(terminated["id"].as_str().unwrap(), "succeeded")
        .await;
    assert_ne!(record["dedupe_key"].as_str().unwrap(), msg_id);
    assert_eq!(xf.groups(ADA), [3]);

    // A wrong secret: the host answers 401, the hook logs it and WHMCS carries on.
    for without_curl in [false, true] {
        let out = run_hook(
            php,
            dirs.root.path(),
            &url,
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "AfterModuleSuspend",
            &module_vars(12),
            without_curl,
        )
        .await;
        let log = out["activity_log"].to_string();
        assert!(
            log.contains("AfterModuleSuspend for service 42 not delivered")
                && log.contains("HTTP 401"),
            "{out}"
        );
    }
    // A secret that is not whsec_ + base64: nothing sent, logged.
    let out = run_hook(
        php,
        dirs.root.path(),
        &url,
        "not-a-secret",
        "AfterModuleSuspend",
        &module_vars(12),
        false,
    )
    .await;
    assert!(
        out["activity_log"].to_string().contains("not whsec_"),
        "{out}"
    );
    let rejected: Value = host
        .admin_get("/v1/events?connector=whmcs&status=rejected")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rejected["data"].as_array().unwrap().len(),
        2,
        "the two wrong signatures were recorded as rejected; the bad secret sent nothing"
    );
    assert_eq!(xf.groups(ADA), [3], "nothing rejected reached XenForo");
    host.stop().await;
}

#[tokio::test]
async fn php_hook_gives_up_after_3_seconds_without_throwing() {
    let Some(php) = php() else { return };
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            keep.lock().unwrap().push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    for without_curl in [false, true] {
        let started = Instant::now();
        let out = run_hook(
            php,
            dir.path(),
            &format!("http://{addr}/hooks/whmcs"),
            SECRET,
            "AfterModuleCreate",
            &module_vars(12),
            without_curl,
        )
        .await;
        let took = out["seconds"].as_f64().unwrap();
        assert!(
            (2.5..5.0).contains(&took),
            "the hook took {took} s (transport {})",
            out["transport"]
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            out["activity_log"]
                .to_string()
                .contains("AfterModuleCreate for service 42 not delivered"),
            "{out}"
        );
    }
}
