//! The admin API's own answers (auth, errors, rate limits, ETags), through the host's
//! router without a socket ([`Api`]): nothing here needs the listener or an event to be
//! delivered. The answers a real listener gives are in `pipeline.rs` and `security.rs`.

use axum::http::Method;
use serde_json::Value;
use switchyard_tests::*;

/// The admin API needs the token; health does not.
#[tokio::test]
async fn admin_routes_need_the_token_and_health_does_not() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let api = Api::start(&(dirs.base_config() + &stripe_connector(&receiver, ""))).await;

    assert_eq!(api.get("/v1/health").await.status, 200);
    let no_token = api.get("/v1/events/x").await;
    assert_eq!(no_token.status, 401);
    let wrong = api
        .call(Method::GET, "/v1/events/x")
        .bearer_auth("nope")
        .send()
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(api.admin_get("/v1/events/x").await.status, 404);
    api.stop().await;
}

#[tokio::test]
async fn admin_answers_carry_rate_limits_and_etags() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config = (dirs.base_config() + &stripe_connector(&receiver, "")).replacen(
        "[server]\n",
        "[server]\nadmin_rate_limit = 6\n",
        1,
    );
    // Six a minute: one request comes back every 10 s, far longer than this test's
    // requests take, so each answer's `remaining` is one less than the one before.
    let api = Api::start(&config).await;
    let header = |answer: &Answer, name: &str| -> String { answer.header(name).to_string() };
    let now = now() as u64;

    // Start from what the first answer says.
    let first = api.admin_get("/v1/connectors/stripe").await;
    assert_eq!(first.status, 200);
    assert_eq!(header(&first, "x-ratelimit-limit"), "6");
    let mut remaining: u32 = header(&first, "x-ratelimit-remaining").parse().unwrap();
    let reset: u64 = header(&first, "x-ratelimit-reset").parse().unwrap();
    assert!(reset > now && reset <= now + 61, "reset {reset}, now {now}");
    let etag = header(&first, "etag");
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");

    let if_none_match = |etag: String| {
        api.call(Method::GET, "/v1/connectors/stripe")
            .bearer_auth(ADMIN_TOKEN)
            .header("if-none-match", etag)
            .send()
    };

    // Unchanged: 304, no body, the same tag.
    let again = if_none_match(etag.clone()).await;
    assert_eq!(again.status, 304);
    assert_eq!(header(&again, "etag"), etag);
    remaining -= 1;
    assert_eq!(
        header(&again, "x-ratelimit-remaining"),
        remaining.to_string()
    );
    assert!(again.body.is_empty());

    // Changed: the old tag no longer matches.
    assert_eq!(
        api.admin_post("/v1/connectors/stripe/pause").await.status,
        200
    );
    remaining -= 1;
    let changed = if_none_match(etag.clone()).await;
    assert_eq!(changed.status, 200);
    assert_ne!(header(&changed, "etag"), etag);
    remaining -= 1;
    let body: Value = changed.json();
    assert_eq!(body["paused"], true);

    // Use up the window; then even a request with a wrong token is refused before its
    // token is looked at.
    for _ in 0..remaining {
        assert_eq!(api.admin_get("/v1/health").await.status, 200);
    }
    let refused = api
        .call(Method::GET, "/v1/connectors")
        .bearer_auth("wrong")
        .send()
        .await;
    assert_eq!(refused.status, 429);
    assert_eq!(header(&refused, "x-ratelimit-remaining"), "0");
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let error: Value = refused.json();
    assert_eq!(error["error"]["code"], "rate_limited");
    // Webhooks are not the admin API: never limited by it.
    let body = stripe_event(&evt_id(), "invoice.paid");
    let signed = stripe_headers(STRIPE_SECRET, &body, switchyard_tests::now());
    assert_eq!(api.post_hook("stripe", &signed, &body).await.status, 200);
    api.stop().await;
}

/// Every error of the admin API is `{"error":{"code","message"}}` with its status: a query
/// string that does not parse, a body that is not JSON, an unknown route, a wrong method.
#[tokio::test]
async fn admin_errors_are_json_with_the_right_status() {
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let api = Api::start(&(dirs.base_config() + &stripe_connector(&receiver, ""))).await;
    let send = |method: Method, path: &str, body: Option<(&str, &str)>| {
        let mut request = api.call(method, path).bearer_auth(ADMIN_TOKEN);
        if let Some((content_type, text)) = body {
            request = request
                .header("content-type", content_type)
                .body(text.to_string());
        }
        request.send()
    };
    let cases = [
        (
            Method::GET,
            "/v1/events?limit=many",
            None,
            400,
            "invalid_query",
        ),
        (
            Method::GET,
            "/v1/events?bogus=1",
            None,
            400,
            "invalid_query",
        ),
        (
            Method::POST,
            "/v1/replay",
            Some(("application/json", "{not json")),
            400,
            "invalid_body",
        ),
        (
            Method::POST,
            "/v1/replay",
            Some(("text/plain", "{}")),
            415,
            "invalid_body",
        ),
        (Method::GET, "/v1/nope", None, 404, "not_found"),
        (Method::GET, "/nope", None, 404, "not_found"),
        (
            Method::DELETE,
            "/v1/events",
            None,
            405,
            "method_not_allowed",
        ),
        (
            Method::PUT,
            "/hooks/stripe",
            None,
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let what = format!("{method} {path}");
        let response = send(method, path, body).await;
        assert_eq!(response.status, status, "{what}");
        let error: Value = serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        assert_eq!(error["error"]["code"], code, "{what}: {error}");
        assert!(error["error"]["message"].is_string(), "{what}: {error}");
    }
    api.stop().await;
}
