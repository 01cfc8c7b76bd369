//! The received event and helpers to read its body.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Failure, Form};

/// One received webhook, exactly as the sender sent it (after the host verified it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The host's event id (`01J…`, time-ordered); stable across retries and replays.
    pub id: String,
    /// The connector id from the operator's config (the `{connector}` in `/hooks/{connector}`).
    pub connector: String,
    /// The HTTP method, `POST` for every dispatched event.
    pub method: String,
    /// The request path, e.g. `/hooks/stripe`.
    pub path: String,
    /// The raw query string without `?` (may be empty).
    pub query: String,
    /// Request headers in the order received, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The raw body bytes, exactly as signed.
    pub body: Vec<u8>,
    /// When the host received it, unix milliseconds.
    pub received_at: u64,
    /// 1 for the first call of `handle` for this event, 2 for the first retry, and so on.
    pub attempt: u32,
}

impl Webhook {
    /// Starts a webhook for tests (see [`WebhookBuilder`] for the defaults).
    pub fn builder() -> WebhookBuilder {
        WebhookBuilder::default()
    }

    /// The first header named `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every value of the headers named `name` (compared case-insensitively), in order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Parses the body as JSON; a body that does not parse into `T` is rejected (a retry
    /// would see the same bytes): `body is not valid JSON: …`, or
    /// `body JSON does not have the expected shape: …` for valid JSON that is not a `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_slice(&self.body).map_err(|e| {
            if e.is_data() {
                Failure::reject(format!("body JSON does not have the expected shape: {e}"))
            } else {
                Failure::reject(format!("body is not valid JSON: {e}"))
            }
        })
    }

    /// The body as UTF-8 text; rejected when it is not UTF-8.
    pub fn text(&self) -> Result<&str, Failure> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Failure::reject(format!("body is not valid UTF-8: {e}")))
    }

    /// Parses an `application/x-www-form-urlencoded` body, PHP-style brackets included
    /// (`data[merges][FNAME]=Ada`); see [`Form`].
    pub fn form(&self) -> Result<Form, Failure> {
        Form::parse(&self.body)
    }

    /// The first query-string parameter named `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded_pairs(self.query.as_bytes())
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// Builds a [`Webhook`] for tests.
///
/// Defaults: id `01TESTEVENT000000000000000`, connector `test`, method `POST`, path
/// `/hooks/{connector}`, empty query, headers and body, `received_at` 0, attempt 1.
#[derive(Debug, Clone)]
pub struct WebhookBuilder {
    id: String,
    connector: String,
    method: String,
    path: Option<String>,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    received_at: u64,
    attempt: u32,
}

impl Default for WebhookBuilder {
    fn default() -> Self {
        Self {
            id: "01TESTEVENT000000000000000".to_owned(),
            connector: "test".to_owned(),
            method: "POST".to_owned(),
            path: None,
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            received_at: 0,
            attempt: 1,
        }
    }
}

impl WebhookBuilder {
    /// Sets the host's event id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets the connector id (and the default path `/hooks/{connector}`).
    pub fn connector(mut self, connector: impl Into<String>) -> Self {
        self.connector = connector.into();
        self
    }

    /// Sets the HTTP method.
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = method.into();
        self
    }

    /// Sets the request path.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Sets the raw query string (without `?`).
    pub fn query(mut self, query: impl Into<String>) -> Self {
        self.query = query.into();
        self
    }

    /// Appends a header; the name is lowercased as the host does.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON and the `content-type` to `application/json`.
    ///
    /// # Panics
    /// If `value` cannot be serialized (e.g. a map with non-string keys).
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.body = serde_json::to_vec(value).expect("test webhook body serializes to JSON");
        self.set_content_type("application/json")
    }

    /// Sets the body to `pairs` form-encoded and the `content-type` to
    /// `application/x-www-form-urlencoded`.
    ///
    /// # Panics
    /// If `pairs` cannot be form-encoded (nested structures are not supported; write
    /// bracketed keys like `data[email]` instead).
    pub fn form<T: Serialize + ?Sized>(mut self, pairs: &T) -> Self {
        self.body = serde_urlencoded::to_string(pairs)
            .expect("test webhook body form-encodes")
            .into_bytes();
        self.set_content_type("application/x-www-form-urlencoded")
    }

    /// Sets when the host received it (unix milliseconds).
    pub fn received_at(mut self, ms: u64) -> Self {
        self.received_at = ms;
        self
    }

    /// Sets the attempt number (1 for the first call of `handle`).
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Finishes the webhook.
    pub fn build(self) -> Webhook {
        let path = self
            .path
            .unwrap_or_else(|| format!("/hooks/{}", self.connector));
        Webhook {
            id: self.id,
            connector: self.connector,
            method: self.method,
            path,
            query: self.query,
            headers: self.headers,
            body: self.body,
            received_at: self.received_at,
            attempt: self.attempt,
        }
    }

    fn set_content_type(mut self, value: &str) -> Self {
        self.headers.retain(|(k, _)| k != "content-type");
        self.headers
            .push(("content-type".to_owned(), value.to_owned()));
        self
    }
}

/// The first header named `name`, compared case-insensitively.
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Decodes `application/x-www-form-urlencoded` bytes into pairs, in order. Never fails:
/// invalid percent-escapes are kept literally and invalid UTF-8 is replaced, as browsers do.
pub(crate) fn form_urlencoded_pairs(input: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(input).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn headers_are_case_insensitive() {
        let w = Webhook::builder()
            .header("Stripe-Signature", "t=1,v1=ab")
            .header("X-Multi", "a")
            .header("x-multi", "b")
            .build();
        assert_eq!(w.header("stripe-signature"), Some("t=1,v1=ab"));
        assert_eq!(w.header("STRIPE-SIGNATURE"), Some("t=1,v1=ab"));
        assert_eq!(w.headers[0].0, "stripe-signature");
        assert_eq!(w.header("missing"), None);
        assert_eq!(w.header_all("X-MULTI").collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn json_body_parses_and_bad_json_is_rejected() {
        #[derive(Deserialize)]
        struct Event {
            id: String,
        }
        let w = Webhook::builder()
            .json(&serde_json::json!({"id": "evt_1"}))
            .build();
        assert_eq!(w.json::<Event>().unwrap().id, "evt_1");
        assert_eq!(w.header("content-type"), Some("application/json"));

        let bad = Webhook::builder().body("{not json").build();
        match bad.json::<serde_json::Value>() {
            Err(Failure::Reject(msg)) => {
                assert!(msg.starts_with("body is not valid JSON: "), "{msg}")
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        // Valid JSON of the wrong shape is rejected too, saying so.
        assert!(
            matches!(w.json::<Vec<u8>>(), Err(Failure::Reject(m)) if m.contains("expected shape"))
        );
    }

    #[test]
    fn text_rejects_invalid_utf8() {
        assert_eq!(Webhook::builder().body("hi").build().text().unwrap(), "hi");
        let bad = Webhook::builder().body(vec![0xff, 0xfe]).build();
        assert!(matches!(bad.text(), Err(Failure::Reject(m)) if m.contains("UTF-8")));
    }

    #[test]
    fn query_params_are_decoded() {
        let w = Webhook::builder()
            .query("token=a%2Bb&x=1&x=2&sp=a+b")
            .build();
        assert_eq!(w.query_param("token").as_deref(), Some("a+b"));
        assert_eq!(w.query_param("x").as_deref(), Some("1"));
        assert_eq!(w.query_param("sp").as_deref(), Some("a b"));
        assert_eq!(w.query_param("nope"), None);
    }

    #[test]
    fn builder_defaults() {
        let w = Webhook::builder().connector("stripe").build();
        assert_eq!(w.path, "/hooks/stripe");
        assert_eq!(w.method, "POST");
        assert_eq!(w.attempt, 1);
        let w = Webhook::builder()
            .path("/x")
            .attempt(3)
            .received_at(5)
            .build();
        assert_eq!((w.path.as_str(), w.attempt, w.received_at), ("/x", 3, 5));
    }
}
