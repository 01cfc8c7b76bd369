//! Outbound HTTP: deliveries the host performs after `handle`, and requests a connector
//! makes during `handle` through [`Ctx::fetch`](crate::Ctx::fetch).

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Failure;
use crate::webhook::find_header;

/// An outbound HTTP request the host performs after `handle` returns, with its own retries,
/// an `Idempotency-Key` that stays the same across them, and optional signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `POST`, `PUT`, …
    pub method: String,
    /// The absolute URL; its host must be in the connector's `allowed_hosts`.
    pub url: String,
    /// Headers to send, in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// An HTTP request performed at once by [`Ctx::fetch`](crate::Ctx::fetch) (for reading
/// detail before acting). Same builder as [`Delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The absolute URL; its host must be in the connector's `allowed_hosts`.
    pub url: String,
    /// Headers to send, in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// Generates the shared builder of [`Delivery`] and [`Request`].
macro_rules! request_builder {
    ($ty:ident) => {
        impl $ty {
            /// A request with any method and an empty body.
            pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
                $ty {
                    method: method.into(),
                    url: url.into(),
                    headers: Vec::new(),
                    body: Vec::new(),
                }
            }

            /// A `GET`.
            pub fn get(url: impl Into<String>) -> Self {
                Self::new("GET", url)
            }

            /// A `POST`.
            pub fn post(url: impl Into<String>) -> Self {
                Self::new("POST", url)
            }

            /// A `PUT`.
            pub fn put(url: impl Into<String>) -> Self {
                Self::new("PUT", url)
            }

            /// A `PATCH`.
            pub fn patch(url: impl Into<String>) -> Self {
                Self::new("PATCH", url)
            }

            /// A `DELETE`.
            pub fn delete(url: impl Into<String>) -> Self {
                Self::new("DELETE", url)
            }

            /// Appends a header (repeat it for a multi-valued header).
            pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
                self.headers.push((name.into(), value.into()));
                self
            }

            /// Sets `authorization: Bearer {token}`.
            pub fn bearer_auth(self, token: impl fmt::Display) -> Self {
                self.replace_header("authorization", format!("Bearer {token}"))
            }

            /// Sets the body to `value` as JSON and `content-type: application/json`.
            ///
            /// # Panics
            /// If `value` cannot be serialized, which derived `Serialize` types never do
            /// (only maps with non-string keys and failing custom impls); use
            /// [`try_json`](Self::try_json) for those.
            pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Self {
                self.try_json(value)
                    .unwrap_or_else(|failure| panic!("{}", failure.message()))
            }

            /// Like [`json`](Self::json), rejecting the event when `value` does not
            /// serialize.
            pub fn try_json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, Failure> {
                self.body = serde_json::to_vec(value).map_err(|e| {
                    Failure::reject(format!("request body does not serialize to JSON: {e}"))
                })?;
                Ok(self.replace_header("content-type", "application/json"))
            }

            /// Sets the body to `pairs` form-encoded (`&[("a", "1"), ("ids[]", "2")]`, a
            /// `Vec` of pairs or a flat struct) and
            /// `content-type: application/x-www-form-urlencoded`.
            ///
            /// # Panics
            /// If `pairs` is not a flat sequence of pairs or a flat struct; use
            /// [`try_form`](Self::try_form) for values built at run time.
            pub fn form<T: Serialize + ?Sized>(self, pairs: &T) -> Self {
                self.try_form(pairs)
                    .unwrap_or_else(|failure| panic!("{}", failure.message()))
            }

            /// Like [`form`](Self::form), rejecting the event when `pairs` does not
            /// form-encode.
            pub fn try_form<T: Serialize + ?Sized>(mut self, pairs: &T) -> Result<Self, Failure> {
                self.body = serde_urlencoded::to_string(pairs)
                    .map_err(|e| {
                        Failure::reject(format!("request body does not form-encode: {e}"))
                    })?
                    .into_bytes();
                Ok(self.replace_header("content-type", "application/x-www-form-urlencoded"))
            }

            /// Sets the raw body (set a `content-type` header yourself).
            pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
                self.body = body.into();
                self
            }

            /// The first header named `name` (case-insensitive), for assertions in tests.
            pub fn header_value(&self, name: &str) -> Option<&str> {
                find_header(&self.headers, name)
            }

            fn replace_header(mut self, name: &str, value: impl Into<String>) -> Self {
                self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                self.headers.push((name.to_owned(), value.into()));
                self
            }
        }
    };
}

request_builder!(Delivery);
request_builder!(Request);

/// The answer to a [`Ctx::fetch`](crate::Ctx::fetch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// Response headers in order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with no headers and an empty body (for [`TestHost`](crate::TestHost)).
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Appends a header (the name is lowercased, as the host delivers them).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the raw body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON and `content-type: application/json`.
    ///
    /// # Panics
    /// If `value` cannot be serialized.
    pub fn with_json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        let body = serde_json::to_vec(value).expect("test response body serializes to JSON");
        self.with_header("content-type", "application/json")
            .with_body(body)
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as UTF-8 text. Invalid UTF-8 is treated as a transient upstream problem
    /// ([`Failure::Retry`]).
    pub fn text(&self) -> Result<&str, Failure> {
        std::str::from_utf8(&self.body).map_err(|e| {
            Failure::retry(format!(
                "HTTP {} response body is not valid UTF-8: {e}",
                self.status
            ))
        })
    }

    /// Parses the body as JSON. A body that does not parse into `T` is treated as a
    /// transient upstream problem ([`Failure::Retry`]: proxies answer with HTML error
    /// pages); map it to a rejection yourself where a retry cannot help.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Failure::retry(format!(
                "HTTP {} response body is not the expected JSON: {e}",
                self.status
            ))
        })
    }

    /// `Ok(self)` for a 2xx status, else the [`Failure`] the status calls for: a retry for
    /// 408, 425, 429 and 5xx (the upstream may recover), a rejection for any other status
    /// (404, 401, 422…: asking again will not help). The message carries the status and
    /// the start of the body.
    pub fn error_for_status(self) -> Result<Self, Failure> {
        if self.is_success() {
            return Ok(self);
        }
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        let message = match text.char_indices().nth(200) {
            _ if text.is_empty() => format!("HTTP {}", self.status),
            None => format!("HTTP {}: {text}", self.status),
            Some((cut, _)) => format!("HTTP {}: {}…", self.status, &text[..cut]),
        };
        Err(match self.status {
            408 | 425 | 429 | 500..=599 => Failure::Retry(message),
            _ => Failure::Reject(message),
        })
    }
}

/// Why a [`Ctx::fetch`](crate::Ctx::fetch) got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The URL is not in the connector's `allowed_hosts` (or is not a valid URL).
    Denied(String),
    /// No answer within the host's timeout.
    Timeout,
    /// Connection, TLS or protocol failure.
    Transport(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Denied(m) => write!(f, "fetch denied: {m}"),
            FetchError::Timeout => f.write_str("fetch timed out"),
            FetchError::Transport(m) => write!(f, "fetch failed: {m}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// So `ctx.fetch(request)?` works in `handle`: a denied URL is a configuration problem
/// (rejected; fix `allowed_hosts` and replay), timeouts and transport errors are retried.
impl From<FetchError> for Failure {
    fn from(error: FetchError) -> Self {
        match error {
            FetchError::Denied(_) => Failure::Reject(error.to_string()),
            FetchError::Timeout | FetchError::Transport(_) => Failure::Retry(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn delivery_builder() {
        let d = Delivery::post("http://x/y")
            .header("Content-Type", "text/plain")
            .header("x-a", "1")
            .json(&json!({"a": 1}));
        assert_eq!(d.method, "POST");
        assert_eq!(d.body, br#"{"a":1}"#);
        assert_eq!(d.header_value("content-type"), Some("application/json"));
        assert_eq!(
            d.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .count(),
            1,
            "json() replaces an earlier content-type"
        );
        assert_eq!(Delivery::put("u").method, "PUT");
        assert_eq!(Delivery::get("u").method, "GET");
        assert_eq!(Delivery::new("PATCH", "u").body("raw").body, b"raw");
    }

    #[test]
    fn request_form_and_auth() {
        let r = Request::post("http://x/api/users/1/")
            .bearer_auth("sk_test")
            .form(&[
                ("user_group_id", "2"),
                ("secondary_group_ids[]", "3"),
                ("secondary_group_ids[]", "4"),
            ]);
        assert_eq!(r.header_value("authorization"), Some("Bearer sk_test"));
        assert_eq!(
            r.header_value("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            "user_group_id=2&secondary_group_ids%5B%5D=3&secondary_group_ids%5B%5D=4"
        );
        let nested = json!({"a": {"b": 1}});
        assert!(matches!(
            Request::post("u").try_form(&nested),
            Err(Failure::Reject(_))
        ));
    }

    #[test]
    fn response_helpers() {
        let r = Response::new(200)
            .with_header("X-Request-Id", "req_1")
            .with_json(&json!({"id": "in_1"}));
        assert!(r.is_success());
        assert_eq!(r.header("x-request-id"), Some("req_1"));
        assert_eq!(r.json::<serde_json::Value>().unwrap()["id"], "in_1");
        assert_eq!(r.text().unwrap(), r#"{"id":"in_1"}"#);
        let html = Response::new(200).with_body("<html>");
        assert!(matches!(
            html.json::<serde_json::Value>(),
            Err(Failure::Retry(_))
        ));
    }

    #[test]
    fn error_for_status_classifies() {
        assert!(Response::new(204).error_for_status().is_ok());
        for status in [408, 425, 429, 500, 502, 503] {
            assert!(
                Response::new(status)
                    .error_for_status()
                    .unwrap_err()
                    .is_retry(),
                "{status}"
            );
        }
        for status in [301, 400, 401, 404, 410, 422] {
            assert!(
                !Response::new(status)
                    .error_for_status()
                    .unwrap_err()
                    .is_retry(),
                "{status}"
            );
        }
        let err = Response::new(404)
            .with_body(r#"{"error":{"code":"resource_missing"}}"#)
            .error_for_status()
            .unwrap_err();
        assert_eq!(
            err.message(),
            r#"HTTP 404: {"error":{"code":"resource_missing"}}"#
        );
        let long = Response::new(500)
            .with_body("x".repeat(300))
            .error_for_status()
            .unwrap_err();
        assert!(long.message().ends_with('…'));
    }

    #[test]
    fn fetch_errors_map_to_failures() {
        assert!(!Failure::from(FetchError::Denied("h".into())).is_retry());
        assert!(Failure::from(FetchError::Timeout).is_retry());
        assert!(Failure::from(FetchError::Transport("reset".into())).is_retry());
    }
}
