//! The `mailchimp` connector end to end: the built component in a real host, Mailchimp's
//! form-encoded webhooks with `?token=`, and a fake CRM that implements the REST contract of
//! `plugins/mailchimp/README.md` (run `make plugins` first).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::put;
use serde_json::{Value, json};
use switchyard_tests::*;
use tokio::net::TcpListener;

const TOKEN: &str = "mc-hook-token-0b1c2d3e4f";
const CRM_TOKEN: &str = "crm-api-token-9z8y";

/// Mailchimp's documented `subscribe` example as it arrives on the wire (literal brackets),
/// with a nested `GROUPINGS` merge and a mixed-case address.
const SUBSCRIBE: &str = "type=subscribe&fired_at=2009-03-26+21%3A35%3A57\
    &data[id]=8a25ff1d98&data[list_id]=a6b5da1054&data[email]=Api%40MailChimp.com\
    &data[email_type]=html&data[merges][EMAIL]=Api%40MailChimp.com\
    &data[merges][FNAME]=Mailchimp&data[merges][LNAME]=API\
    &data[merges][INTERESTS]=Group1%2CGroup2&data[merges][GROUPINGS][0][id]=1\
    &data[merges][GROUPINGS][0][name]=Interests&data[merges][GROUPINGS][0][groups]=Group1%2C+Group2\
    &data[ip_opt]=10.20.10.30&data[ip_signup]=10.20.10.30";

fn profile(first_name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("type", "profile".into()),
        ("fired_at", "2009-03-26 21:40:00".into()),
        ("data[id]", "8a25ff1d98".into()),
        ("data[list_id]", "a6b5da1054".into()),
        ("data[email]", "api@mailchimp.com".into()),
        ("data[email_type]", "text".into()),
        ("data[merges][EMAIL]", "api@mailchimp.com".into()),
        ("data[merges][FNAME]", first_name.into()),
        ("data[merges][INTERESTS]", "Group2".into()),
        ("data[ip_opt]", "10.20.10.30".into()),
    ]
}

const UPEMAIL: &[(&str, &str)] = &[
    ("type", "upemail"),
    ("fired_at", "2009-03-26 22:15:09"),
    ("data[list_id]", "a6b5da1054"),
    ("data[new_id]", "51da8c3259"),
    ("data[new_email]", "api+new@mailchimp.com"),
    ("data[old_email]", "api@mailchimp.com"),
];

const UNSUBSCRIBE: &[(&str, &str)] = &[
    ("type", "unsubscribe"),
    ("fired_at", "2009-03-26 22:40:57"),
    ("data[action]", "unsub"),
    ("data[reason]", "manual"),
    ("data[id]", "51da8c3259"),
    ("data[list_id]", "a6b5da1054"),
    ("data[email]", "api+new@mailchimp.com"),
    ("data[email_type]", "html"),
    ("data[merges][EMAIL]", "api+new@mailchimp.com"),
    ("data[ip_opt]", "10.20.10.30"),
    ("data[campaign_id]", "cb398d21d2"),
];

const CLEANED: &[(&str, &str)] = &[
    ("type", "cleaned"),
    ("fired_at", "2009-03-26 22:01:00"),
    ("data[list_id]", "a6b5da1054"),
    ("data[campaign_id]", "4fjk2ma9xd"),
    ("data[reason]", "hard"),
    ("data[email]", "api+cleaned@mailchimp.com"),
];

const CAMPAIGN: &[(&str, &str)] = &[
    ("type", "campaign"),
    ("fired_at", "2009-03-26 21:31:21"),
    ("data[id]", "5aa2102003"),
    ("data[subject]", "Test Campaign Subject"),
    ("data[status]", "sent"),
    ("data[reason]", ""),
    ("data[list_id]", "a6b5da1054"),
];

/// The connector's config: the CRM at `{origin}/api`, fast retries, more settings in
/// `settings_extra`.
fn config(dirs: &Dirs, origin: &str, settings_extra: &str) -> String {
    dirs.base_config()
        + &format!(
            r#"
[[connector]]
id = "mailchimp"
plugin = "mailchimp.wasm"
secret = "{TOKEN}"
allowed_hosts = ["{origin}"]
[connector.retry]
initial_backoff = "50ms"
max_backoff = "200ms"
[connector.settings]
crm_url = "{origin}/api"
{settings_extra}
"#
        )
}

/// POSTs a form body to `/hooks/mailchimp`, with `?token=` when given.
async fn post(host: &Host, token: Option<&str>, body: impl Into<String>) -> reqwest::Response {
    let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
    host.http
        .post(host.url(&format!("/hooks/mailchimp{query}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.into())
        .send()
        .await
        .expect("POST /hooks/mailchimp")
}

fn form<V: AsRef<str>>(pairs: &[(&str, V)]) -> String {
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    // reqwest form-encodes like Mailchimp (PHP's http_build_query): brackets as %5B %5D.
    reqwest::Client::new()
        .post("http://unused.invalid/")
        .form(&pairs)
        .build()
        .unwrap()
        .body()
        .and_then(|b| b.as_bytes())
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .unwrap()
}

/// Sends an event with the right token, expects it accepted, and returns its id.
async fn send(host: &Host, body: impl Into<String>) -> String {
    let response = post(host, Some(TOKEN), body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "accepted", "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn validation_pings_answer_200_without_a_token() {
    let crm = FakeCrm::start(None).await;
    let dirs = Dirs::new(&["mailchimp.wasm"]);
    let host = Host::start(&config(&dirs, &crm.origin(), "")).await;
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let response = host
            .http
            .request(method.clone(), host.url("/hooks/mailchimp"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method}");
        assert!(response.bytes().await.unwrap().is_empty(), "{method}");
    }
    let listed: Value = host
        .admin_get("/v1/events?connector=mailchimp")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"], json!([]), "pings are not events");
    assert!(crm.requests().is_empty());
    host.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401_and_reaches_nothing() {
    let crm = FakeCrm::start(None).await;
    let dirs = Dirs::new(&["mailchimp.wasm"]);
    let host = Host::start(&config(&dirs, &crm.origin(), "")).await;
    for (token, code) in [
        (None, "missing_signature"),
        (Some("mc-hook-token-WRONG"), "signature_mismatch"),
        (Some(""), "signature_mismatch"),
    ] {
        let response = post(&host, token, SUBSCRIBE).await;
        assert_eq!(response.status(), 401, "{token:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{token:?}: {error}");
    }
    // The rejected attempts are in the log, without the token that was offered.
    let listed: Value = host
        .admin_get("/v1/events?connector=mailchimp&status=rejected")
        .await
        .json()
        .await
        .unwrap();
    let rejected = listed["data"].as_array().unwrap();
    assert_eq!(rejected.len(), 3, "{listed:#}");
    for entry in rejected {
        let record = host.event(entry["id"].as_str().unwrap()).await;
        let query = record["request"]["query"].as_str().unwrap();
        assert!(query.is_empty() || query == "token=****", "{query}");
        assert!(!record.to_string().contains("WRONG"), "{record:#}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(crm.requests().is_empty(), "nothing reached the CRM");
    host.stop().await;
}

#[tokio::test]
async fn a_contact_lifecycle_reaches_the_crm() {
    let crm = FakeCrm::start(Some(CRM_TOKEN)).await;
    let dirs = Dirs::new(&["mailchimp.wasm"]);
    let host = Host::start(&config(
        &dirs,
        &crm.origin(),
        &format!("crm_token = \"{CRM_TOKEN}\""),
    ))
    .await;

    // subscribe → the contact is created with every merge field.
    let subscribe = send(&host, SUBSCRIBE).await;
    let record = host.wait_for_status(&subscribe, "succeeded").await;
    assert_eq!(
        record["dedupe_key"],
        "subscribe|2009-03-26 21:35:57|a6b5da1054|api@mailchimp.com"
    );
    assert_eq!(
        record["request"]["query"], "token=****",
        "the stored request never holds the token"
    );
    assert!(!record.to_string().contains(TOKEN), "{record:#}");
    assert!(!record.to_string().contains(CRM_TOKEN), "{record:#}");
    let delivery = &record["deliveries"][0];
    assert_eq!(delivery["request"]["method"], "PUT");
    assert_eq!(
        delivery["request"]["url"],
        format!("{}/api/contacts/api%40mailchimp.com", crm.origin())
    );
    let created = crm.contact("api@mailchimp.com").expect("contact created");
    assert_eq!(
        created,
        json!({
            "email": "Api@MailChimp.com",
            "first_name": "Mailchimp",
            "last_name": "API",
            "merge_fields": {
                "EMAIL": "Api@MailChimp.com",
                "FNAME": "Mailchimp",
                "LNAME": "API",
                "INTERESTS": "Group1,Group2",
                "GROUPINGS": {"0": {"id": "1", "name": "Interests", "groups": "Group1, Group2"}},
            },
            "list_id": "a6b5da1054",
            "mailchimp_id": "8a25ff1d98",
            "email_type": "html",
            "ip_opt": "10.20.10.30",
            "ip_signup": "10.20.10.30",
            "status": "subscribed",
            "source": "mailchimp",
            "event": "subscribe",
            "fired_at": "2009-03-26T21:35:57Z",
        })
    );
    let first = &crm.requests()[0];
    assert_eq!(first.status, 201);
    assert_eq!(first.method, "PUT");
    assert_eq!(first.path, "/api/contacts/api%40mailchimp.com");
    assert_eq!(first.idempotency_key, format!("{subscribe}-0"));
    assert_eq!(first.mailchimp_event, "subscribe");

    // profile → merged in; the subscription status is untouched.
    let id = send(&host, form(&profile("Ada"))).await;
    host.wait_for_status(&id, "succeeded").await;
    let updated = crm.contact("api@mailchimp.com").unwrap();
    assert_eq!(updated["first_name"], "Ada");
    assert_eq!(updated["last_name"], "API", "a merge not sent is kept");
    assert_eq!(updated["merge_fields"]["INTERESTS"], "Group2");
    assert_eq!(updated["merge_fields"]["LNAME"], "API");
    assert_eq!(updated["email_type"], "text");
    assert_eq!(updated["status"], "subscribed");
    assert_eq!(updated["ip_signup"], "10.20.10.30");

    // upemail → the contact moves to its new address, data and all.
    let id = send(&host, form(UPEMAIL)).await;
    host.wait_for_status(&id, "succeeded").await;
    assert_eq!(crm.contact("api@mailchimp.com"), None);
    let moved = crm.contact("api+new@mailchimp.com").expect("moved");
    assert_eq!(moved["email"], "api+new@mailchimp.com");
    assert_eq!(moved["first_name"], "Ada");
    assert_eq!(moved["mailchimp_id"], "51da8c3259");
    assert_eq!(moved["status"], "subscribed");
    assert_eq!(
        crm.requests().last().unwrap().path,
        "/api/contacts/api%2Bnew%40mailchimp.com"
    );

    // unsubscribe → marked, with the reason.
    let id = send(&host, form(UNSUBSCRIBE)).await;
    host.wait_for_status(&id, "succeeded").await;
    let unsubscribed = crm.contact("api+new@mailchimp.com").unwrap();
    assert_eq!(unsubscribed["status"], "unsubscribed");
    assert_eq!(
        unsubscribed["subscription"],
        json!({
            "email": "api+new@mailchimp.com",
            "status": "unsubscribed",
            "reason": "manual",
            "action": "unsub",
            "list_id": "a6b5da1054",
            "campaign_id": "cb398d21d2",
            "mailchimp_id": "51da8c3259",
            "source": "mailchimp",
            "event": "unsubscribe",
            "fired_at": "2009-03-26T22:40:57Z",
        })
    );
    assert_eq!(
        unsubscribed["first_name"], "Ada",
        "the contact itself is kept"
    );

    // cleaned, for an address the CRM never saw → created, marked cleaned.
    let id = send(&host, form(CLEANED)).await;
    host.wait_for_status(&id, "succeeded").await;
    let cleaned = crm.contact("api+cleaned@mailchimp.com").unwrap();
    assert_eq!(cleaned["status"], "cleaned");
    assert_eq!(cleaned["subscription"]["reason"], "hard");
    assert_eq!(cleaned["subscription"]["campaign_id"], "4fjk2ma9xd");

    // campaign → succeeded with nothing delivered, and a log line saying so.
    let before = crm.requests().len();
    let id = send(&host, form(CAMPAIGN)).await;
    let record = host.wait_for_status(&id, "succeeded").await;
    assert_eq!(record["deliveries"], json!([]));
    let attempt = &record["attempts"][0];
    assert_eq!(attempt["deliveries"], 0);
    assert!(
        attempt["logs"].to_string().contains(
            "campaign 5aa2102003 (\\\"Test Campaign Subject\\\") sent on list a6b5da1054"
        ),
        "{attempt:#}"
    );
    assert_eq!(
        record["dedupe_key"],
        "campaign|2009-03-26 21:31:21|a6b5da1054|5aa2102003"
    );

    // Every CRM request followed the contract.
    let requests = crm.requests();
    assert_eq!(requests.len(), before, "the campaign sent nothing");
    assert_eq!(requests.len(), 5);
    for request in &requests {
        assert_eq!(request.method, "PUT");
        assert_eq!(request.status / 100, 2, "{request:?}");
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {CRM_TOKEN}").as_str())
        );
        assert_eq!(request.content_type.as_deref(), Some("application/json"));
        assert!(request.idempotency_key.ends_with("-0"), "{request:?}");
    }
    // The admin view masks the CRM token in the stored deliveries.
    let record = host.event(&subscribe).await;
    let headers = record["deliveries"][0]["request"]["headers"].to_string();
    assert!(
        headers.contains("****") && !headers.contains(CRM_TOKEN),
        "{headers}"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_repeat_is_a_duplicate_and_delivered_once() {
    let crm = FakeCrm::start(None).await;
    let dirs = Dirs::new(&["mailchimp.wasm"]);
    let host = Host::start(&config(&dirs, &crm.origin(), "")).await;
    let id = send(&host, SUBSCRIBE).await;
    host.wait_for_status(&id, "succeeded").await;

    // Mailchimp retrying: the same type, fired_at and address (here in another case and
    // encoding) is the same event.
    let repeats = [
        SUBSCRIBE.to_owned(),
        form(&[
            ("data[email]", "API@mailchimp.COM"),
            ("data[list_id]", "a6b5da1054"),
            ("fired_at", "2009-03-26 21:35:57"),
            ("type", "subscribe"),
        ]),
    ];
    for body in repeats {
        let response = post(&host, Some(TOKEN), body).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer, json!({"id": id, "status": "duplicate"}));
    }
    // Another second is another event.
    let later = SUBSCRIBE.replace("21%3A35%3A57", "21%3A35%3A58");
    let next = send(&host, later).await;
    assert_ne!(next, id);
    host.wait_for_status(&next, "succeeded").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(crm.requests().len(), 2, "the repeats were not delivered");
    host.stop().await;
}

#[tokio::test]
async fn a_crm_500_is_retried_then_delivered() {
    let crm = Receiver::start().await;
    crm.respond_with(&[500]);
    let dirs = Dirs::new(&["mailchimp.wasm"]);
    let host = Host::start(&config(&dirs, &crm.origin(), "")).await;
    let id = send(&host, form(CLEANED)).await;
    let record = host.wait_for_status(&id, "succeeded").await;
    let received = crm.received();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(request.method, "PUT");
        assert_eq!(
            request.path,
            "/api/contacts/api%2Bcleaned%40mailchimp.com/subscription"
        );
        assert_eq!(
            request.header("idempotency-key"),
            Some(format!("{id}-0").as_str())
        );
        assert_eq!(request.header("authorization"), None, "no crm_token set");
    }
    let sent: Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(sent["status"], "cleaned");
    let statuses: Vec<_> = record["deliveries"][0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["response"]["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(500), json!(200)]);
    assert_eq!(record["attempts"].as_array().unwrap().len(), 1, "ran once");
    host.stop().await;
}

#[tokio::test]
async fn a_crm_400_is_dead() {
    let crm = Receiver::start().await;
    crm.respond_with(&[400]);
    let dirs = Dirs::new(&["mailchimp.wasm"]);
    let host = Host::start(&config(&dirs, &crm.origin(), "")).await;
    let id = send(&host, SUBSCRIBE).await;
    let record = host.wait_for_status(&id, "dead").await;
    assert_eq!(record["deliveries"][0]["status"], "dead");
    let attempts = record["deliveries"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["response"]["status"], 400);
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("failed permanently"),
        "{record:#}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(crm.received().len(), 1, "not retried");
    host.stop().await;
}

#[tokio::test]
async fn bodies_that_are_not_events_are_answered_200_then_dead_saying_why() {
    let crm = FakeCrm::start(None).await;
    let dirs = Dirs::new(&["mailchimp.wasm"]);
    let host = Host::start(&config(&dirs, &crm.origin(), "")).await;
    let cases = [
        (
            String::new(),
            "empty body: no Mailchimp event (`type` is missing)",
        ),
        (
            "mandrill_events=%5B%5D".to_owned(),
            "this is a Mailchimp Transactional (Mandrill) webhook",
        ),
        (
            form(&[("type", "bounce"), ("fired_at", "2009-03-26 21:35:57")]),
            "unknown Mailchimp event type \\\"bounce\\\"",
        ),
        (
            form(&[
                ("type", "upemail"),
                ("fired_at", "2009-03-26 22:15:09"),
                ("data[old_email]", "a@example.com"),
            ]),
            "`upemail` event has no `data[new_email]`",
        ),
    ];
    for (body, expected) in cases {
        // Mailchimp gets its 200 once the request is stored, whatever it holds.
        let id = send(&host, body.clone()).await;
        let record = host.wait_for_status(&id, "dead").await;
        assert_eq!(record["dedupe_key"], Value::Null, "{body}");
        assert_eq!(record["attempts"][0]["outcome"], "reject", "{body}");
        let error = serde_json::to_string(&record["error"]).unwrap();
        assert!(
            error.starts_with("\"rejected by the connector: ") && error.contains(expected),
            "{body}: {error}"
        );
    }
    assert!(crm.requests().is_empty());
    host.stop().await;
}

/// The JavaScript port (`plugins/mailchimp-js`, built with `@switchyard/sdk`) and the Rust
/// connector, side by side in one host, get the same events: they must send the CRM the same
/// requests (method, path, every header the connector sets, body bytes), dedupe on the same
/// keys, and refuse what is not an event with the same words.
#[tokio::test]
async fn the_js_port_sends_the_same_requests_as_the_rust_connector() {
    let crm = Receiver::start().await;
    let dirs = Dirs::new(&["mailchimp.wasm", "mailchimp-js.wasm"]);
    let origin = crm.origin();
    let connector = |id: &str, plugin: &str| {
        format!(
            r#"
[[connector]]
id = "{id}"
plugin = "{plugin}"
secret = "{TOKEN}"
allowed_hosts = ["{origin}"]
[connector.retry]
initial_backoff = "50ms"
max_backoff = "200ms"
max_attempts = 2
[connector.settings]
crm_url = "{origin}/{id}/api"
crm_token = "{CRM_TOKEN}"
"#
        )
    };
    let host = Host::start(
        &(dirs.base_config_with(&shared_compile_cache())
            + &connector("rust", "mailchimp.wasm")
            + &connector("js", "mailchimp-js.wasm")),
    )
    .await;
    let js = host.connector("js").await;
    assert_eq!(js["name"], "mailchimp-js", "{js}");
    assert_eq!(
        js["scheme"], "token",
        "the JS manifest's default scheme: {js}"
    );

    let send_to = |id: &'static str, body: String| {
        let host = &host;
        async move {
            let response = host
                .http
                .post(host.url(&format!("/hooks/{id}?token={TOKEN}")))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{id}");
            let answer: Value = response.json().await.unwrap();
            answer["id"].as_str().unwrap().to_owned()
        }
    };
    let mut events: Vec<String> = vec![
        SUBSCRIBE.to_owned(),
        form(&profile("Maria")),
        form(UPEMAIL),
        form(UNSUBSCRIBE),
        form(CLEANED),
        form(CAMPAIGN),
        // What is not an event: each refused, saying why.
        String::new(),
        "mandrill_events=%5B%5D".to_owned(),
        form(&[("type", "bounce"), ("fired_at", "2009-03-26 21:35:57")]),
        form(&[
            ("type", "upemail"),
            ("fired_at", "2009-03-26 22:15:09"),
            ("data[old_email]", "a@example.com"),
        ]),
    ];
    // A repeat: a duplicate of the first for both.
    events.push(SUBSCRIBE.to_owned());
    for body in events {
        let (rust, js) = (
            send_to("rust", body.clone()).await,
            send_to("js", body.clone()).await,
        );
        let settled = |id: String| {
            let host = &host;
            async move {
                let mut record = host.event(&id).await;
                for _ in 0..200 {
                    if ["succeeded", "dead", "duplicate"]
                        .contains(&record["status"].as_str().unwrap_or(""))
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    record = host.event(&id).await;
                }
                record
            }
        };
        let (rust, js) = (settled(rust).await, settled(js).await);
        for field in ["status", "dedupe_key", "error"] {
            assert_eq!(
                rust[field], js[field],
                "{field} of {body:?}: {rust:#} {js:#}"
            );
        }
        assert!(
            ["succeeded", "dead", "duplicate"].contains(&rust["status"].as_str().unwrap()),
            "{rust:#}"
        );
    }

    // What the CRM got from each, in order, the host's own headers aside.
    /// Method, path under the connector's prefix, headers (sorted), body.
    type Seen = (String, String, Vec<(String, String)>, Bytes);
    let seen = |id: &str| -> Vec<Seen> {
        let prefix = format!("/{id}/");
        crm.received()
            .into_iter()
            .filter_map(|r| {
                let path = r.path.strip_prefix(&prefix)?.to_owned();
                let mut headers: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .filter(|(name, _)| !["idempotency-key", "host"].contains(&name.as_str()))
                    .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
                    .collect();
                headers.sort();
                Some((r.method, path, headers, r.body))
            })
            .collect()
    };
    let (rust, js) = (seen("rust"), seen("js"));
    assert_eq!(
        rust.len(),
        5,
        "one request per contact event, none for the campaign: {rust:#?}"
    );
    assert_eq!(rust, js);
    assert!(
        rust.iter().all(|(_, _, headers, _)| headers
            .contains(&("authorization".into(), format!("Bearer {CRM_TOKEN}")))),
        "{rust:#?}"
    );
    host.stop().await;
}

// ---------------------------------------------------------------------------------------
// A fake CRM implementing the REST contract of plugins/mailchimp/README.md, in memory.

/// One request the fake CRM got.
#[derive(Debug, Clone)]
struct CrmRequest {
    method: String,
    /// The path as sent (percent-encoded).
    path: String,
    idempotency_key: String,
    authorization: Option<String>,
    content_type: Option<String>,
    mailchimp_event: String,
    status: u16,
}

#[derive(Default)]
struct CrmState {
    /// Contacts by lowercase address.
    contacts: BTreeMap<String, Value>,
    requests: Vec<CrmRequest>,
    /// The bearer token every request must carry, if any.
    token: Option<String>,
}

#[derive(Clone)]
struct FakeCrm {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<CrmState>>,
}

type Shared = Arc<Mutex<CrmState>>;

impl FakeCrm {
    async fn start(token: Option<&str>) -> FakeCrm {
        let state = Arc::new(Mutex::new(CrmState {
            token: token.map(str::to_owned),
            ..CrmState::default()
        }));
        let app = axum::Router::new()
            .route("/api/contacts/{email}", put(upsert_contact))
            .route("/api/contacts/{email}/subscription", put(set_subscription))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeCrm { addr, state }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn contact(&self, email: &str) -> Option<Value> {
        self.state.lock().unwrap().contacts.get(email).cloned()
    }

    fn requests(&self) -> Vec<CrmRequest> {
        self.state.lock().unwrap().requests.clone()
    }
}

/// Records the request and checks what every request of the contract must have: the
/// bearer token, a JSON body whose `email` is the path's address. `Err` is the answer.
fn admit(
    state: &mut CrmState,
    method: &Method,
    uri: &Uri,
    email: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, (StatusCode, Json<Value>)> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut request = CrmRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        idempotency_key: header("idempotency-key").unwrap_or_default(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        mailchimp_event: header("x-mailchimp-event").unwrap_or_default(),
        status: 0,
    };
    let fail = |status: StatusCode, message: &str| (status, Json(json!({ "error": message })));
    let verdict = if state
        .token
        .as_ref()
        .is_some_and(|t| request.authorization.as_deref() != Some(&format!("Bearer {t}")))
    {
        Err(fail(StatusCode::UNAUTHORIZED, "bad token"))
    } else if request.content_type.as_deref() != Some("application/json") {
        Err(fail(StatusCode::UNSUPPORTED_MEDIA_TYPE, "JSON only"))
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(body) if body["email"].as_str().map(str::to_lowercase).as_deref() == Some(email) => {
                Ok(body)
            }
            _ => Err(fail(StatusCode::BAD_REQUEST, "body email ≠ path")),
        }
    };
    request.status = match &verdict {
        Ok(_) => 200,
        Err((status, _)) => status.as_u16(),
    };
    state.requests.push(request);
    verdict
}

/// Sets `update`'s fields on `contact`, `merge_fields` tag by tag.
fn merge_into(contact: &mut Value, update: &Value) {
    let (Some(contact), Some(update)) = (contact.as_object_mut(), update.as_object()) else {
        return;
    };
    for (key, value) in update {
        match (contact.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(fields)) if key == "merge_fields" => {
                existing.extend(fields.clone());
            }
            _ => {
                contact.insert(key.clone(), value.clone());
            }
        }
    }
}

async fn upsert_contact(
    State(state): State<Shared>,
    Path(email): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let mut state = state.lock().unwrap();
    let mut update = match admit(&mut state, &method, &uri, &email, &headers, &body) {
        Ok(update) => update,
        Err(answer) => return answer,
    };
    // upemail: move the contact at `old_email` (merging into one at the new address).
    if let Some(old) = update
        .as_object_mut()
        .and_then(|u| u.remove("old_email"))
        .and_then(|old| old.as_str().map(str::to_lowercase))
        && old != email
        && let Some(previous) = state.contacts.remove(&old)
    {
        match state.contacts.get_mut(&email) {
            Some(existing) => {
                let mut merged = previous;
                merge_into(&mut merged, existing);
                *existing = merged;
            }
            None => {
                state.contacts.insert(email.clone(), previous);
            }
        }
    }
    let created = !state.contacts.contains_key(&email);
    let contact = state.contacts.entry(email).or_insert_with(|| json!({}));
    merge_into(contact, &update);
    let answer = contact.clone();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    state.requests.last_mut().unwrap().status = status.as_u16();
    (status, Json(answer))
}

async fn set_subscription(
    State(state): State<Shared>,
    Path(email): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let mut state = state.lock().unwrap();
    let subscription = match admit(&mut state, &method, &uri, &email, &headers, &body) {
        Ok(subscription) => subscription,
        Err(answer) => return answer,
    };
    let contact = state
        .contacts
        .entry(email)
        .or_insert_with(|| json!({ "email": subscription["email"] }));
    contact["status"] = subscription["status"].clone();
    contact["subscription"] = subscription;
    (StatusCode::OK, Json(contact.clone()))
}
