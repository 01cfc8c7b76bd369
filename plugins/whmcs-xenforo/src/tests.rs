//! End-to-end tests through the SDK's `TestHost`: a WHMCS event in, the XenForo calls and
//! log lines out. The fixtures marked `pub(crate)` also serve the modules' own tests.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use serde_json::{Value, json};
use switchyard_sdk::{FetchError, Level, Request, Response, TestHost};

const XF: &str = "http://xf.test";
const FIND: &str = "http://xf.test/api/users/find-email";
/// Ada's user: read when find-email omits the groups, and written.
const USER: &str = "http://xf.test/api/users/7/";
const EMAIL: &str = "ada@example.com";
/// `occurred_at` of `event(…)`.
pub(crate) const T1: &str = "2026-01-02T03:04:05.000001Z";
pub(crate) const T2: &str = "2026-01-02T03:04:05.000002Z";
pub(crate) const T3: &str = "2026-01-02T03:04:06Z";

/// Products 12 → group 5, 13 → group 6, 14 → group 7, 20 → no group.
pub(crate) fn host() -> TestHost {
    TestHost::new()
        .setting("xenforo_url", format!("{XF}/"))
        .setting("api_key", "xf_super_key")
        .setting("group_map", r#"{"12": 5, "13": 6, "14": 7, "20": 0}"#)
}

/// XenForo's user 7 (Ada) holding `groups`, as find-email and the user endpoints show it.
fn ada(groups: &BTreeSet<u64>) -> Value {
    json!({
        "user_id": 7, "username": "ada", "email": EMAIL, "user_group_id": 2,
        "secondary_group_ids": groups, "user_state": "valid", "is_admin": false,
    })
}

/// `host()` where find-email answers with user 7 holding `groups` and the write to
/// user 7 succeeds.
fn host_with_user(groups: &[u64]) -> TestHost {
    host()
        .fetch_response(
            "GET",
            FIND,
            Response::new(200).with_json(&json!({"user": ada(&groups.iter().copied().collect())})),
        )
        .fetch_response(
            "POST",
            USER,
            Response::new(200).with_json(&json!({"success": true})),
        )
}

/// A board that keeps Ada's groups: find-email shows them, a write replaces them
/// (PHP-style form) unless `fail_writes` says to answer 503 first.
struct Board {
    groups: BTreeSet<u64>,
    fail_writes: usize,
}

fn host_with_board(groups: &[u64]) -> (TestHost, Rc<RefCell<Board>>) {
    let board = Rc::new(RefCell::new(Board {
        groups: groups.iter().copied().collect(),
        fail_writes: 0,
    }));
    let state = board.clone();
    let host = host().on_fetch(move |request| {
        let mut board = state.borrow_mut();
        match request.method.as_str() {
            "GET" if request.url.starts_with(FIND) => {
                Ok(Response::new(200).with_json(&json!({"user": ada(&board.groups)})))
            }
            "POST" if request.url == USER => {
                if board.fail_writes > 0 {
                    board.fail_writes -= 1;
                    return Ok(Response::new(503).with_json(&json!({"errors": [{
                        "code": "service_unavailable", "message": "busy"
                    }]})));
                }
                let form: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(&request.body).unwrap();
                board.groups = form
                    .iter()
                    .filter(|(k, _)| k == "secondary_group_ids[]")
                    .map(|(_, v)| v.parse().unwrap())
                    .collect();
                Ok(Response::new(200)
                    .with_json(&json!({"success": true, "user": ada(&board.groups)})))
            }
            _ => Err(FetchError::Denied(request.url.clone())),
        }
    });
    (host, board)
}

fn groups_of(board: &Rc<RefCell<Board>>) -> Vec<u64> {
    board.borrow().groups.iter().copied().collect()
}

/// An event for service 42 (Ada), occurred at `T1`.
fn event(hook: &str, product: Value) -> Webhook {
    event_at(hook, product, json!(T1))
}

/// An event for service 42 (Ada) with this `occurred_at` (`null`: left out); the host's
/// event id is `evt_{hook}_{occurred_at}`.
pub(crate) fn event_at(hook: &str, product: Value, occurred_at: Value) -> Webhook {
    let mut body = json!({
        "event": hook, "service_id": 42, "client_id": 9, "email": EMAIL,
        "product_id": product, "status": "Active", "occurred_at": occurred_at,
    });
    if occurred_at.is_null() {
        body.as_object_mut().unwrap().remove("occurred_at");
    }
    Webhook::builder()
        .id(format!(
            "evt_{hook}_{}",
            occurred_at.as_str().unwrap_or("none")
        ))
        .connector("whmcs")
        .header("webhook-id", "whmcs_42_create_ab12")
        .json(&body)
        .build()
}

/// Handles `webhook` expecting success, which never returns a delivery.
fn handled(host: &TestHost, webhook: &Webhook) {
    assert_eq!(host.handle::<WhmcsXenforo>(webhook), Ok(vec![]));
}

/// The writes fetched so far.
fn writes(host: &TestHost) -> Vec<Request> {
    host.fetches()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}

/// The form pairs of the single write, after checking where it went and how.
fn written(host: &TestHost) -> Vec<(String, String)> {
    let writes = writes(host);
    assert_eq!(writes.len(), 1, "{writes:?}");
    let w = &writes[0];
    assert_eq!(w.url, USER);
    assert_eq!(w.header_value("xf-api-key"), Some("xf_super_key"));
    assert_eq!(w.header_value("xf-api-user"), Some("1"));
    assert_eq!(
        w.header_value("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    serde_urlencoded::from_bytes(&w.body).unwrap()
}

fn groups_sent(host: &TestHost) -> Vec<String> {
    written(host)
        .into_iter()
        .filter(|(k, _)| k == "secondary_group_ids[]")
        .map(|(_, v)| v)
        .collect()
}

/// What the service's history in kv says: `(occurred_at, event, event_id)`.
pub(crate) fn history(host: &TestHost) -> Option<(String, String, String)> {
    let raw = host.kv_value("service/42")?;
    let v: Value = serde_json::from_slice(&raw).unwrap();
    let field = |name: &str| v[name].as_str().unwrap().to_owned();
    Some((field("occurred_at"), field("event"), field("event_id")))
}

#[test]
fn manifest_describes_the_connector() {
    let m = WhmcsXenforo::manifest();
    assert_eq!(m.name, "whmcs-xenforo");
    assert_eq!(m.default_scheme, "standard-webhooks");
    let names: Vec<_> = m
        .settings
        .iter()
        .map(|s| (s.name.as_str(), s.required))
        .collect();
    assert_eq!(
        names,
        [
            ("xenforo_url", true),
            ("api_key", true),
            ("api_user", false),
            ("group_map", true)
        ]
    );
}

#[test]
fn dedupe_key_is_the_webhook_id() {
    let host = TestHost::new();
    let with = |name: &str, value: &str| Webhook::builder().header(name, value).build();
    assert_eq!(
        host.dedupe_key::<WhmcsXenforo>(&with("Webhook-Id", "msg_1"))
            .as_deref(),
        Some("msg_1")
    );
    assert_eq!(
        host.dedupe_key::<WhmcsXenforo>(&with("svix-id", "msg_2"))
            .as_deref(),
        Some("msg_2")
    );
    assert_eq!(
        host.dedupe_key::<WhmcsXenforo>(&with("webhook-id", " ")),
        None
    );
    assert_eq!(
        host.dedupe_key::<WhmcsXenforo>(&Webhook::builder().build()),
        None
    );
}

#[test]
fn create_reads_then_writes_in_the_same_call() {
    let host = host_with_user(&[3]);
    handled(&host, &event("AfterModuleCreate", json!(12)));
    assert_eq!(
        written(&host),
        [
            ("api_bypass_permissions".to_owned(), "1".to_owned()),
            ("secondary_group_ids[]".to_owned(), "3".to_owned()),
            ("secondary_group_ids[]".to_owned(), "5".to_owned()),
        ]
    );
    let fetches = host.fetches();
    let calls: Vec<_> = fetches
        .iter()
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    assert_eq!(
        calls,
        [
            "GET http://xf.test/api/users/find-email?email=ada%40example.com\
             &api_bypass_permissions=1",
            "POST http://xf.test/api/users/7/",
        ],
        "find-email carried the groups; the write follows at once"
    );
    for fetch in &fetches {
        assert_eq!(fetch.header_value("XF-Api-Key"), Some("xf_super_key"));
        assert_eq!(fetch.header_value("XF-Api-User"), Some("1"));
        assert_eq!(fetch.header_value("accept"), Some("application/json"));
    }
    assert_eq!(
        host.logs(),
        [(
            Level::Info,
            "AfterModuleCreate for service 42 (product 12): XenForo user 7 \
             (ada@example.com) secondary groups [3] → [3, 5]"
                .to_owned()
        )]
    );
    assert_eq!(
        history(&host),
        Some((
            T1.to_owned(),
            "AfterModuleCreate".to_owned(),
            format!("evt_AfterModuleCreate_{T1}")
        ))
    );
}

#[test]
fn unsuspend_adds_the_group() {
    let host = host_with_user(&[]);
    handled(&host, &event("AfterModuleUnsuspend", json!("13")));
    assert_eq!(groups_sent(&host), ["6"]);
}

#[test]
fn suspend_and_terminate_remove_the_group() {
    for hook in ["AfterModuleSuspend", "AfterModuleTerminate"] {
        let host = host_with_user(&[3, 5, 6]);
        handled(&host, &event(hook, json!(12)));
        assert_eq!(groups_sent(&host), ["3", "6"], "{hook}");
    }
}

#[test]
fn removing_the_last_group_sends_an_empty_set() {
    let host = host_with_user(&[5]);
    handled(&host, &event("AfterModuleTerminate", json!(12)));
    assert_eq!(
        written(&host),
        [
            ("api_bypass_permissions".to_owned(), "1".to_owned()),
            ("secondary_group_ids".to_owned(), String::new()),
        ]
    );
    assert_eq!(
        String::from_utf8(writes(&host)[0].body.clone()).unwrap(),
        "api_bypass_permissions=1&secondary_group_ids="
    );
}

#[test]
fn change_package_swaps_mapped_groups_only() {
    // 3 and 9 are not in group_map (granted by hand): kept. 5 and 7 are: removed.
    let host = host_with_user(&[3, 5, 7, 9]);
    handled(&host, &event("AfterModuleChangePackage", json!(13)));
    assert_eq!(groups_sent(&host), ["3", "6", "9"]);
}

#[test]
fn change_package_to_a_product_without_a_group_removes_the_mapped_ones() {
    let host = host_with_user(&[3, 5]);
    handled(&host, &event("AfterModuleChangePackage", json!(20)));
    assert_eq!(groups_sent(&host), ["3"]);
    // Other hooks for that product do nothing, without calling XenForo.
    let host = host_with_user(&[3, 5]);
    handled(&host, &event("AfterModuleCreate", json!(20)));
    assert!(host.fetches().is_empty());
    assert_eq!(history(&host), None, "a no-op is not recorded");
}

#[test]
fn unknown_product_does_nothing_with_a_log_line() {
    let host = host_with_user(&[5]);
    for hook in [
        "AfterModuleCreate",
        "AfterModuleChangePackage",
        "AfterModuleTerminate",
    ] {
        handled(&host, &event(hook, json!(99)));
    }
    assert!(host.fetches().is_empty());
    assert!(host.kv_snapshot().is_empty());
    assert_eq!(
        host.logs()[0],
        (
            Level::Info,
            "AfterModuleCreate for service 42: product 99 is not in group_map; nothing to do"
                .to_owned()
        )
    );
}

#[test]
fn unchanged_set_writes_nothing() {
    let cases: [(&str, Value, &[u64]); 4] = [
        ("AfterModuleCreate", json!(12), &[3, 5]),
        ("AfterModuleUnsuspend", json!(12), &[5]),
        ("AfterModuleSuspend", json!(12), &[3]),
        ("AfterModuleChangePackage", json!(13), &[3, 6]),
    ];
    for (hook, product, groups) in cases {
        let host = host_with_user(groups);
        handled(&host, &event(hook, product));
        assert!(writes(&host).is_empty(), "{hook}");
        let (level, line) = host.logs().pop().unwrap();
        assert_eq!(level, Level::Info);
        assert!(line.contains("nothing to write"), "{line}");
        // Applied all the same: an older event must not undo it.
        assert_eq!(history(&host).unwrap().1, hook);
    }
}

#[test]
fn groups_come_from_the_user_endpoint_when_find_email_omits_them() {
    let host = host()
        .fetch_response(
            "GET",
            FIND,
            Response::new(200).with_json(&json!({"user": {"user_id": 7, "username": "ada"}})),
        )
        .fetch_response(
            "GET",
            USER,
            Response::new(200).with_json(&json!({"user": {
                "user_id": 7, "user_group_id": 2, "secondary_group_ids": [4]
            }})),
        )
        .fetch_response("POST", USER, Response::new(200));
    handled(&host, &event("AfterModuleCreate", json!(14)));
    assert_eq!(groups_sent(&host), ["4", "7"]);
    let fetches = host.fetches();
    assert_eq!(fetches.len(), 3);
    assert_eq!(
        fetches[1].url,
        "http://xf.test/api/users/7/?api_bypass_permissions=1"
    );
    assert_eq!(fetches[1].header_value("XF-Api-Key"), Some("xf_super_key"));
    assert_eq!(
        (fetches[2].method.as_str(), fetches[2].url.as_str()),
        ("POST", USER)
    );
}

#[test]
fn unknown_user_is_rejected_clearly() {
    let host = host().fetch_response(
        "GET",
        FIND,
        Response::new(200).with_json(&json!({"user": null})),
    );
    assert_eq!(
        host.handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12))),
        Err(Failure::Reject(
            "no XenForo user with email ada@example.com".into()
        ))
    );
    assert_eq!(history(&host), None);
}

#[test]
fn email_is_query_encoded() {
    let host = host().on_fetch(|_| Ok(Response::new(200).with_json(&json!({"user": null}))));
    let mut webhook = event("AfterModuleCreate", json!(12));
    let mut body: Value = webhook.json().unwrap();
    body["email"] = json!("ada+forum&x=1@example.com");
    webhook.body = serde_json::to_vec(&body).unwrap();
    let _ = host.handle::<WhmcsXenforo>(&webhook);
    assert_eq!(
        host.fetches()[0].url,
        "http://xf.test/api/users/find-email?email=ada%2Bforum%26x%3D1%40example.com\
         &api_bypass_permissions=1"
    );
}

#[test]
fn xenforo_4xx_rejects_naming_the_code() {
    let denied = Response::new(401).with_json(&json!({"errors": [{
        "code": "api_key_not_found",
        "message": "API key provided in request was not found.",
        "params": {}
    }]}));
    let err = host()
        .fetch_response("GET", FIND, denied)
        .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
        .unwrap_err();
    assert_eq!(
        err,
        Failure::Reject(
            "looking up the XenForo user with email ada@example.com: XenForo answered \
             HTTP 401: api_key_not_found (API key provided in request was not found.)"
                .into()
        )
    );

    let forbidden = Response::new(403).with_json(&json!({"errors": [
        {"code": "no_permission", "message": "No."},
        {"code": "api_scope_missing"}
    ]}));
    let err = host()
        .fetch_response("GET", FIND, forbidden)
        .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
        .unwrap_err();
    assert!(
        matches!(&err, Failure::Reject(m) if m.ends_with("no_permission (No.); api_scope_missing")),
        "{err:?}"
    );

    let not_found = Response::new(404).with_body("<html>nope</html>");
    let err = host()
        .fetch_response("GET", FIND, not_found)
        .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
        .unwrap_err();
    assert!(
        matches!(&err, Failure::Reject(m) if m.ends_with("HTTP 404: <html>nope</html>")),
        "{err:?}"
    );
}

#[test]
fn xenforo_5xx_429_and_timeouts_retry() {
    for status in [500, 502, 503, 429] {
        let answer = Response::new(status).with_json(&json!({"errors": [{
            "code": "server_error", "message": "busy"
        }]}));
        let err = host()
            .fetch_response("GET", FIND, answer)
            .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Retry(m) if m.contains(&format!("HTTP {status}: server_error"))),
            "{err:?}"
        );
    }
    for error in [FetchError::Timeout, FetchError::Transport("reset".into())] {
        let err = host()
            .fetch_error("GET", FIND, error)
            .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
            .unwrap_err();
        assert!(err.is_retry(), "{err:?}");
    }
    // A proxy's HTML page with a 200, or an answer of another shape: retried too.
    for body in [
        "<html>",
        r#"{"ok": true}"#,
        r#"{"user": {"username": "x"}}"#,
    ] {
        let err = host()
            .fetch_response("GET", FIND, Response::new(200).with_body(body))
            .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
            .unwrap_err();
        assert!(err.is_retry(), "{body}: {err:?}");
    }
    // The second lookup is classified the same way.
    let err = host()
        .fetch_response(
            "GET",
            FIND,
            Response::new(200).with_json(&json!({"user": {"user_id": 7}})),
        )
        .fetch_response("GET", USER, Response::new(503))
        .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
        .unwrap_err();
    assert!(
        matches!(&err, Failure::Retry(m) if m.starts_with("reading XenForo user 7: XenForo answered HTTP 503")),
        "{err:?}"
    );
}

#[test]
fn write_failures_are_classified_like_the_lookups() {
    let with_write = |answer: Result<Response, FetchError>| {
        let host = host().fetch_response(
            "GET",
            FIND,
            Response::new(200).with_json(&json!({"user": ada(&BTreeSet::from([3]))})),
        );
        let host = match answer {
            Ok(response) => host.fetch_response("POST", USER, response),
            Err(error) => host.fetch_error("POST", USER, error),
        };
        let result = host.handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)));
        assert_eq!(writes(&host).len(), 1, "the write was attempted");
        assert_eq!(history(&host), None, "a failed write is not recorded");
        result.unwrap_err()
    };
    let busy = |status| {
        Response::new(status).with_json(&json!({"errors": [{
            "code": "service_unavailable", "message": "The board is busy."
        }]}))
    };
    assert_eq!(
        with_write(Ok(busy(503))),
        Failure::Retry(
            "writing the secondary groups of XenForo user 7: XenForo answered HTTP 503: \
             service_unavailable (The board is busy.)"
                .into()
        )
    );
    for status in [408, 429, 500, 502] {
        assert!(with_write(Ok(busy(status))).is_retry(), "{status}");
    }
    for error in [FetchError::Timeout, FetchError::Transport("reset".into())] {
        let err = with_write(Err(error));
        assert!(
            matches!(&err, Failure::Retry(m) if m.starts_with("writing the secondary groups of XenForo user 7: fetch")),
            "{err:?}"
        );
    }
    let invalid = Response::new(400).with_json(&json!({"errors": [{
        "code": "please_enter_valid_user_group",
        "message": "Please select a valid user group.",
        "params": {}
    }]}));
    assert_eq!(
        with_write(Ok(invalid)),
        Failure::Reject(
            "writing the secondary groups of XenForo user 7: XenForo answered HTTP 400: \
             please_enter_valid_user_group (Please select a valid user group.)"
                .into()
        )
    );
    let scope = Response::new(403).with_json(&json!({"errors": [{
        "code": "api_scope_missing", "message": "user:write"
    }]}));
    let err = with_write(Ok(scope));
    assert!(
        matches!(&err, Failure::Reject(m) if m.ends_with("HTTP 403: api_scope_missing (user:write)")),
        "{err:?}"
    );
    let err = with_write(Err(FetchError::Denied("not allowed".into())));
    assert!(
        matches!(&err, Failure::Reject(m) if m.contains("fetch denied")),
        "{err:?}"
    );
}

#[test]
fn a_retry_reads_the_groups_again_before_writing() {
    let (host, board) = host_with_board(&[3]);
    board.borrow_mut().fail_writes = 1;
    let create = event("AfterModuleCreate", json!(12));
    let err = host.handle::<WhmcsXenforo>(&create).unwrap_err();
    assert!(err.is_retry(), "{err:?}");
    assert_eq!(groups_of(&board), [3]);
    // Meanwhile someone grants group 6 by hand.
    board.borrow_mut().groups.insert(6);
    handled(&host, &create);
    assert_eq!(
        groups_of(&board),
        [3, 5, 6],
        "6 survives: the retry re-read"
    );
    let calls: Vec<_> = host.fetches().iter().map(|r| r.method.clone()).collect();
    assert_eq!(calls, ["GET", "POST", "GET", "POST"]);
    let first: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&writes(&host)[0].body).unwrap();
    let second: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&writes(&host)[1].body).unwrap();
    assert_eq!(first.len(), 3, "[3, 5] then: {first:?}");
    assert_eq!(second.len(), 4, "[3, 5, 6] now: {second:?}");
}

#[test]
fn a_saved_set_that_differs_is_logged() {
    // XenForo drops a group id it does not know, and says so only by its answer.
    let saved = json!({"success": true, "user": ada(&BTreeSet::from([3]))});
    let host = host()
        .fetch_response(
            "GET",
            FIND,
            Response::new(200).with_json(&json!({"user": ada(&BTreeSet::from([3]))})),
        )
        .fetch_response("POST", USER, Response::new(200).with_json(&saved));
    handled(&host, &event("AfterModuleCreate", json!(12)));
    assert_eq!(
        host.logs().last().unwrap(),
        &(
            Level::Warn,
            "writing the secondary groups of XenForo user 7: sent [3, 5], XenForo saved [3]"
                .to_owned()
        )
    );
}

#[test]
fn denied_fetch_is_rejected() {
    let err = host()
        .handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12)))
        .unwrap_err();
    assert!(
        matches!(&err, Failure::Reject(m) if m.contains("fetch denied")),
        "{err:?}"
    );
}

#[test]
fn api_user_and_api_root() {
    let host = host_with_user(&[])
        .setting("api_user", "14")
        .setting("xenforo_url", "http://xf.test/api/");
    handled(&host, &event("AfterModuleCreate", json!(12)));
    for fetch in host.fetches() {
        assert!(
            fetch.url.starts_with("http://xf.test/api/users/"),
            "{}",
            fetch.url
        );
        assert_eq!(fetch.header_value("XF-Api-User"), Some("14"));
    }
    assert_eq!(writes(&host)[0].url, USER);
}

#[test]
fn malformed_events_are_rejected() {
    let host = host_with_user(&[]);
    let cases = [
        ("{", "body is not valid JSON"),
        ("[]", "WHMCS event is not a JSON object"),
        (r#"{"product_id": 12}"#, "WHMCS event has no `event` field"),
        (
            r#"{"event": "AfterModuleUpgrade", "product_id": 12, "email": "a@b"}"#,
            "unsupported WHMCS event \"AfterModuleUpgrade\"",
        ),
        (
            r#"{"event": "AfterModuleCreate", "email": "a@b"}"#,
            "WHMCS event has no `product_id` field",
        ),
        (
            r#"{"event": "AfterModuleCreate", "product_id": "12a", "email": "a@b"}"#,
            "WHMCS event field `product_id` is \"12a\"",
        ),
        (
            r#"{"event": "AfterModuleCreate", "product_id": -1, "email": "a@b"}"#,
            "WHMCS event field `product_id` is empty or not a string/number",
        ),
        (
            r#"{"event": "AfterModuleCreate", "product_id": 12, "email": ""}"#,
            "WHMCS event field `email` is empty",
        ),
        (
            r#"{"event": "AfterModuleCreate", "product_id": 12, "email": "nobody"}"#,
            "WHMCS event field `email` is \"nobody\", not an email address",
        ),
        (
            r#"{"event": "AfterModuleCreate", "product_id": 12, "email": "a@b",
                "occurred_at": "yesterday"}"#,
            "WHMCS event field `occurred_at` is \"yesterday\", not an RFC 3339 time",
        ),
        (
            r#"{"event": "AfterModuleCreate", "product_id": 12, "email": "a@b",
                "occurred_at": 1767323045}"#,
            "WHMCS event field `occurred_at` is 1767323045, not an RFC 3339 time",
        ),
    ];
    for (body, expected) in cases {
        let webhook = Webhook::builder().body(body).build();
        match host.handle::<WhmcsXenforo>(&webhook) {
            Err(Failure::Reject(m)) => assert!(m.starts_with(expected), "{body}: {m}"),
            other => panic!("{body}: expected a rejection, got {other:?}"),
        }
    }
    assert!(host.fetches().is_empty());
}

#[test]
fn product_ids_match_as_numbers() {
    for product in [json!(12), json!("12"), json!(" 0012 ")] {
        let host = host_with_user(&[]).setting("group_map", r#"{"012": "5"}"#);
        handled(&host, &event("AfterModuleCreate", product.clone()));
        assert_eq!(groups_sent(&host), ["5"], "{product}");
    }
}

#[test]
fn bad_settings_are_rejected_by_name() {
    let cases = [
        (
            host().setting("group_map", "[5]"),
            "setting `group_map` must be a table",
        ),
        (
            host().setting("group_map", r#"{"gold": 5}"#),
            "setting `group_map`: key \"gold\" is not a WHMCS product id",
        ),
        (
            host().setting("group_map", r#"{"12": -5}"#),
            "setting `group_map`: product 12 maps to -5, not a XenForo user group id",
        ),
        (
            host().setting("group_map", r#"{"12": [5]}"#),
            "setting `group_map`: product 12 maps to [5]",
        ),
        (
            host().setting("api_user", "admin"),
            "setting `api_user` must be a XenForo user id",
        ),
        (
            host().setting("xenforo_url", "forum.example.com"),
            "setting `xenforo_url` must be an http(s) URL",
        ),
        (
            TestHost::new()
                .setting("xenforo_url", XF)
                .setting("group_map", "{}"),
            "setting `api_key` is not set",
        ),
        (
            TestHost::new().setting("api_key", "k"),
            "setting `xenforo_url` is not set",
        ),
        (
            TestHost::new()
                .setting("xenforo_url", XF)
                .setting("api_key", "k"),
            "setting `group_map` is not set",
        ),
    ];
    for (host, expected) in cases {
        match host.handle::<WhmcsXenforo>(&event("AfterModuleCreate", json!(12))) {
            Err(Failure::Reject(m)) => assert!(m.starts_with(expected), "{m}"),
            other => panic!("{expected}: expected a rejection, got {other:?}"),
        }
    }
}

// ---- ordering -------------------------------------------------------------------------

#[test]
fn an_older_event_is_skipped_after_a_newer_one_was_applied() {
    let (host, board) = host_with_board(&[3, 5]);
    handled(&host, &event_at("AfterModuleSuspend", json!(12), json!(T2)));
    assert_eq!(groups_of(&board), [3]);
    let fetched = host.fetches().len();

    // The create that happened before the suspend arrives (or is retried) only now.
    handled(&host, &event_at("AfterModuleCreate", json!(12), json!(T1)));
    assert_eq!(groups_of(&board), [3], "the suspend stands");
    assert_eq!(host.fetches().len(), fetched, "XenForo was not called");
    assert_eq!(
        host.logs().last().unwrap(),
        &(
            Level::Info,
            format!(
                "AfterModuleCreate for service 42 (occurred_at {T1}): skipped, older than \
                 AfterModuleSuspend (occurred_at {T2}, event evt_AfterModuleSuspend_{T2}) \
                 already applied to this service"
            )
        )
    );
    assert_eq!(history(&host).unwrap().0, T2);

    // A newer one applies.
    handled(
        &host,
        &event_at("AfterModuleUnsuspend", json!(12), json!(T3)),
    );
    assert_eq!(groups_of(&board), [3, 5]);
    assert_eq!(history(&host).unwrap().1, "AfterModuleUnsuspend");
}

#[test]
fn a_create_retried_after_a_newer_suspend_does_not_bring_the_group_back() {
    let (host, board) = host_with_board(&[3]);
    let create = event_at("AfterModuleCreate", json!(12), json!(T1));
    let suspend = event_at("AfterModuleSuspend", json!(12), json!(T2));

    // The create's write meets a 503: nothing written, nothing recorded, retry.
    board.borrow_mut().fail_writes = 1;
    assert!(host.handle::<WhmcsXenforo>(&create).unwrap_err().is_retry());
    assert_eq!(history(&host), None);

    // The suspend is handled before the create's retry: group 5 is not there, so
    // nothing to write, but it is the service's newest event now.
    handled(&host, &suspend);
    assert_eq!(groups_of(&board), [3]);
    assert_eq!(history(&host).unwrap().0, T2);

    // The create's retry: WHMCS suspended the service after creating it, so the group
    // stays off.
    let fetched = host.fetches().len();
    handled(&host, &create);
    assert_eq!(groups_of(&board), [3]);
    assert_eq!(host.fetches().len(), fetched);
}

#[test]
fn the_same_occurred_at_is_applied_again() {
    // A replay of the service's newest event re-applies it (a group removed by hand
    // comes back).
    let (host, board) = host_with_board(&[3]);
    let create = event_at("AfterModuleCreate", json!(12), json!(T1));
    handled(&host, &create);
    board.borrow_mut().groups.remove(&5);
    handled(&host, &create);
    assert_eq!(groups_of(&board), [3, 5]);
    // The same instant written another way is the same instant.
    let same = event_at(
        "AfterModuleSuspend",
        json!(12),
        json!("2026-01-02T05:04:05.000001+02:00"),
    );
    handled(&host, &same);
    assert_eq!(groups_of(&board), [3]);
}

#[test]
fn events_without_occurred_at_or_service_id_apply_in_arrival_order() {
    let (host, board) = host_with_board(&[3]);
    handled(&host, &event_at("AfterModuleSuspend", json!(12), json!(T3)));
    // No occurred_at: applied, with a warning, and the record is left alone.
    handled(
        &host,
        &event_at("AfterModuleCreate", json!(12), Value::Null),
    );
    assert_eq!(groups_of(&board), [3, 5]);
    assert!(
        host.logs().contains(&(
            Level::Warn,
            "AfterModuleCreate for service 42: no `occurred_at`; \
                applied in arrival order, without the ordering check"
                .to_owned()
        )),
        "{:?}",
        host.logs()
    );
    assert_eq!(history(&host).unwrap().0, T3);

    // Service id 0 (the hook's value when WHMCS gave none) or missing: no history.
    for service_id in [json!(0), Value::Null] {
        let mut webhook = event_at("AfterModuleTerminate", json!(12), json!(T1));
        let mut body: Value = webhook.json().unwrap();
        if service_id.is_null() {
            body.as_object_mut().unwrap().remove("service_id");
        } else {
            body["service_id"] = service_id.clone();
        }
        webhook.body = serde_json::to_vec(&body).unwrap();
        board.borrow_mut().groups.insert(5);
        handled(&host, &webhook);
        assert_eq!(groups_of(&board), [3], "{service_id}");
    }
    assert_eq!(
        host.kv_snapshot().keys().collect::<Vec<_>>(),
        ["service/42"]
    );
}

#[test]
fn history_is_kept_per_service() {
    let (host, board) = host_with_board(&[3, 5]);
    handled(&host, &event_at("AfterModuleSuspend", json!(12), json!(T3)));
    // Another service of Ada's, created earlier: its own history is empty.
    let mut webhook = event_at("AfterModuleCreate", json!(13), json!(T1));
    let mut body: Value = webhook.json().unwrap();
    body["service_id"] = json!("0043");
    webhook.body = serde_json::to_vec(&body).unwrap();
    handled(&host, &webhook);
    assert_eq!(groups_of(&board), [3, 6]);
    assert_eq!(
        host.kv_snapshot().keys().collect::<Vec<_>>(),
        ["service/42", "service/43"]
    );
}

#[test]
fn an_unreadable_record_is_ignored_with_a_warning() {
    let (host, board) = host_with_board(&[3]);
    let host = host.kv_entry("service/42", "garbage");
    handled(&host, &event_at("AfterModuleCreate", json!(12), json!(T1)));
    assert_eq!(groups_of(&board), [3, 5]);
    assert!(
        host.logs().contains(&(
            Level::Warn,
            "kv `service/42` holds \"garbage\", not a record of \
                an applied event; ignored"
                .to_owned()
        )),
        "{:?}",
        host.logs()
    );
    assert_eq!(history(&host).unwrap().0, T1, "replaced by a good record");
}
