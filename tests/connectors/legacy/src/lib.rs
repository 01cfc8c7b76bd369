//! A connector built against WIT 0.1.0 directly (not the SDK, which builds 0.1.1): it has
//! no `check-settings`, and a host that provides 0.1.1 must load and run it unchanged.
//! Each event's body is delivered as it came to `settings.forward_url`, with the header
//! `x-wit: 0.1.0`; the dedupe key is the body's `"id"` field when it has one.

// The generated glue of `http.fetch`'s lowering takes many arguments.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    path: "../../../wit/0.1.0",
    world: "connector",
});

use switchyard::connector::settings;

struct Legacy;

impl Guest for Legacy {
    fn manifest() -> Manifest {
        Manifest {
            name: "legacy".into(),
            version: "0.1.0".into(),
            description: "built against switchyard:connector@0.1.0".into(),
            default_scheme: "none".into(),
            settings: Vec::new(),
        }
    }

    fn dedupe_key(webhook: Webhook) -> Option<String> {
        let body = String::from_utf8(webhook.body).ok()?;
        let (_, rest) = body.split_once("\"id\":\"")?;
        rest.split_once('"').map(|(id, _)| id.to_owned())
    }

    fn handle(webhook: Webhook) -> Result<Vec<Delivery>, Failure> {
        let Some(url) = settings::get("forward_url") else {
            return Err(Failure::Retry("setting forward_url is not set".into()));
        };
        Ok(vec![Delivery {
            method: "POST".into(),
            url,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-wit".into(), "0.1.0".into()),
            ],
            body: webhook.body,
        }])
    }
}

export!(Legacy);
