//! `GET /v1/openapi.json`: the admin API's OpenAPI 3.1 document, generated from the code.
//! Every operation it documents is called on a real host, in its success and its error
//! cases; each answer's status must be one the document lists for that operation, and
//! its body must match the schema the document gives that status.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use switchyard_tests::*;

/// One call: method, path (as sent), token or not, JSON body or raw bytes.
struct Call {
    method: &'static str,
    /// The documented path template this call exercises.
    template: &'static str,
    path: String,
    token: bool,
    body: Option<Vec<u8>>,
    json: bool,
}

fn call(method: &'static str, template: &'static str, path: impl Into<String>) -> Call {
    Call {
        method,
        template,
        path: path.into(),
        token: true,
        body: None,
        json: false,
    }
}

impl Call {
    fn without_token(mut self) -> Self {
        self.token = false;
        self
    }
    fn json(mut self, body: Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self.json = true;
        self
    }
    fn bytes(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }
}

#[tokio::test]
async fn every_documented_answer_matches_the_document() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config = dirs.root.path().join("switchyard.toml");
    std::fs::write(
        &config,
        dirs.base_config()
            + &stripe_connector(&receiver, "")
            + &format!(
                "\n[[destination]]\nid = \"billing\"\nurl = \"{}/billing\"\n",
                receiver.origin()
            ),
    )
    .unwrap();
    let host = Host::start_from_file(&config).await;

    let document: Value = host
        .http
        .get(host.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .expect("the document is JSON, and needs no token");
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );

    // Something in the log: a delivered event, and a forged one (rejected).
    let evt = evt_id();
    let answer: Value = send_stripe(&host, &stripe_event(&evt, "invoice.paid"))
        .await
        .json()
        .await
        .unwrap();
    let id = answer["id"].as_str().unwrap().to_string();
    host.wait_for_status(&id, "succeeded").await;
    let forged = host
        .post_hook(
            "stripe",
            &stripe_headers("whsec_wrong", b"{}", now()),
            b"{}",
        )
        .await;
    assert_eq!(forged.status(), 401);
    let rejected: Value = host
        .admin_get("/v1/events?status=rejected")
        .await
        .json()
        .await
        .unwrap();
    let rejected = rejected["data"][0]["id"].as_str().unwrap().to_string();
    let stripe_wasm = std::fs::read(plugin("stripe.wasm")).unwrap();

    let calls = [
        call("get", "/v1/health", "/v1/health").without_token(),
        call("get", "/v1/openapi.json", "/v1/openapi.json").without_token(),
        call("get", "/v1/connectors", "/v1/connectors"),
        call("get", "/v1/connectors", "/v1/connectors").without_token(),
        call("get", "/v1/connectors/{id}", "/v1/connectors/stripe"),
        call("get", "/v1/connectors/{id}", "/v1/connectors/nosuch"),
        call(
            "post",
            "/v1/connectors/{id}/pause",
            "/v1/connectors/stripe/pause",
        ),
        call(
            "post",
            "/v1/connectors/{id}/resume",
            "/v1/connectors/stripe/resume",
        ),
        call(
            "post",
            "/v1/connectors/{id}/resume",
            "/v1/connectors/nosuch/resume",
        ),
        call(
            "post",
            "/v1/connectors/{id}/reload",
            "/v1/connectors/stripe/reload",
        ),
        call(
            "post",
            "/v1/connectors/{id}/reload",
            "/v1/connectors/nosuch/reload",
        ),
        call("post", "/v1/reload", "/v1/reload"),
        call("get", "/v1/destinations", "/v1/destinations"),
        call("get", "/v1/destinations/{id}", "/v1/destinations/billing"),
        call("get", "/v1/destinations/{id}", "/v1/destinations/nosuch"),
        call(
            "post",
            "/v1/destinations/{id}/disable",
            "/v1/destinations/billing/disable",
        ),
        call(
            "post",
            "/v1/destinations/{id}/enable",
            "/v1/destinations/billing/enable",
        ),
        call(
            "post",
            "/v1/destinations/{id}/enable",
            "/v1/destinations/nosuch/enable",
        ),
        call("get", "/v1/events", "/v1/events"),
        call("get", "/v1/events", format!("/v1/events?key={evt}&limit=5")),
        call("get", "/v1/events", "/v1/events?status=bogus"),
        call("get", "/v1/events", "/v1/events?limit=many"),
        call("get", "/v1/activity", "/v1/activity"),
        call("get", "/v1/activity", "/v1/activity?window=24h"),
        call("get", "/v1/activity", "/v1/activity?window=1y"),
        call("get", "/v1/activity", "/v1/activity").without_token(),
        call("get", "/v1/session", "/v1/session"),
        call("get", "/v1/session", "/v1/session").without_token(),
        call("get", "/v1/events/{id}", format!("/v1/events/{id}")),
        call("get", "/v1/events/{id}", format!("/v1/events/{rejected}")),
        call("get", "/v1/events/{id}", "/v1/events/01NOSUCHEVENT"),
        call(
            "post",
            "/v1/events/{id}/replay",
            format!("/v1/events/{id}/replay"),
        ),
        call(
            "post",
            "/v1/events/{id}/replay",
            format!("/v1/events/{id}/replay"),
        )
        .json(json!({ "new_keys": "yes" })),
        call(
            "post",
            "/v1/events/{id}/replay",
            format!("/v1/events/{rejected}/replay"),
        ),
        call(
            "post",
            "/v1/events/{id}/replay",
            "/v1/events/01NOSUCHEVENT/replay",
        ),
        call("post", "/v1/replay", "/v1/replay")
            .json(json!({ "connector": "stripe", "status": "succeeded" })),
        call("post", "/v1/replay", "/v1/replay").json(json!({ "bogus": 1 })),
        call("post", "/v1/replay", "/v1/replay").bytes(b"{}".to_vec()),
        call("post", "/v1/plugins/{name}", "/v1/plugins/stripe.wasm").bytes(stripe_wasm),
        call("post", "/v1/plugins/{name}", "/v1/plugins/not%20a%20name").bytes(vec![0; 8]),
        call("post", "/v1/plugins/{name}", "/v1/plugins/broken.wasm").bytes(vec![0; 64]),
    ];

    // Every documented operation is called here, and nothing undocumented.
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let called: BTreeSet<(String, String)> = calls
        .iter()
        .map(|c| (c.method.to_string(), c.template.to_string()))
        .collect();
    assert_eq!(documented, called, "the operations the document lists");

    let mut validated = 0;
    for c in &calls {
        let mut request = match c.method {
            "get" => host.http.get(host.url(&c.path)),
            _ => host.http.post(host.url(&c.path)),
        };
        if c.token {
            request = request.bearer_auth(ADMIN_TOKEN);
        }
        if let Some(body) = &c.body {
            request = request.body(body.clone());
        }
        if c.json {
            request = request.header("content-type", "application/json");
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16().to_string();
        let operation = &document["paths"][c.template][c.method];
        let documented = &operation["responses"][&status];
        let text = response.text().await.unwrap();
        assert!(
            documented.is_object(),
            "{} {} answered {status}, which the document does not list for it: {text}",
            c.method,
            c.path
        );
        let Some(schema) = documented["content"]["application/json"]["schema"].as_object() else {
            continue;
        };
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("{} {}: not JSON ({err}): {text}", c.method, c.path));
        // The document is the root, so `#/components/schemas/…` resolves; the answer's
        // schema applies through `allOf` (the document's other keys are not keywords).
        let mut root = document.clone();
        root["allOf"] = json!([Value::Object(schema.clone())]);
        let validator = jsonschema::draft202012::new(&root)
            .unwrap_or_else(|err| panic!("the schema of {} {status}: {err}", c.template));
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} {} {status} does not match its schema:\n{}\n{body:#}",
            c.method,
            c.path,
            errors.join("\n")
        );
        validated += 1;
    }
    // Every JSON answer had a schema to match (the document itself has none of its own).
    assert_eq!(
        validated,
        calls.len() - 1,
        "answers checked against a schema"
    );
    host.stop().await;
}
