//! Outbound HTTP shared by `http.fetch` (during a connector call) and deliveries: the
//! allow-list check, header hygiene, size caps and a per-request timeout.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::store::Body;

/// Origins a connector may reach, from `allowed_hosts` (`"http://127.0.0.1:9000"`,
/// `"https://api.stripe.com"`; `"*"` allows any).
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    any: bool,
    origins: Vec<(String, String, u16)>,
}

impl AllowedHosts {
    /// Entries that do not parse as an origin are skipped here; config validation reports them.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Self {
        let mut hosts = AllowedHosts::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry == "*" {
                hosts.any = true;
            } else if let Some(origin) = origin_of(entry) {
                hosts.origins.push(origin);
            }
        }
        hosts
    }

    /// Whether `url` may be requested. Only `http`/`https` URLs ever pass.
    pub fn allows(&self, url: &str) -> bool {
        match origin_of(url) {
            Some(origin) => self.any || self.origins.contains(&origin),
            None => false,
        }
    }
}

/// (scheme, lowercase host, port with the scheme's default filled in).
fn origin_of(url: &str) -> Option<(String, String, u16)> {
    let url = reqwest::Url::parse(url).ok()?;
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    Some((scheme.to_string(), host, port))
}

/// A request as a connector describes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutboundRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// What came back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// Why a request got no response.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OutboundError {
    #[error("host not in allowed_hosts: {0}")]
    Denied(String),
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Transport(String),
}

/// Response bodies larger than this are cut (and the cut is visible in the log).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Perform one request. `extra_headers` are added after the connector's own (signing,
/// `Idempotency-Key`). Returns the response and how long it took.
pub async fn send(
    client: &reqwest::Client,
    allowed: &AllowedHosts,
    request: &OutboundRequest,
    extra_headers: &[(String, String)],
    timeout: Duration,
) -> (Result<OutboundResponse, OutboundError>, Duration) {
    let started = Instant::now();
    let result = send_inner(client, allowed, request, extra_headers, timeout).await;
    (result, started.elapsed())
}

async fn send_inner(
    client: &reqwest::Client,
    allowed: &AllowedHosts,
    request: &OutboundRequest,
    extra_headers: &[(String, String)],
    timeout: Duration,
) -> Result<OutboundResponse, OutboundError> {
    if !allowed.allows(&request.url) {
        return Err(OutboundError::Denied(request.url.clone()));
    }
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| OutboundError::Transport(format!("invalid method {:?}", request.method)))?;
    let mut builder = client.request(method, &request.url).timeout(timeout);
    for (name, value) in request.headers.iter().chain(extra_headers) {
        // Hop-by-hop and framing headers are the client's business, not the connector's.
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = builder
        .body(request.body.to_vec())
        .send()
        .await
        .map_err(|err| classify(err, timeout))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    let mut response = response;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_RESPONSE_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            Err(err) => return Err(classify(err, timeout)),
        }
    }
    Ok(OutboundResponse {
        status,
        headers,
        body: Body::from(body),
    })
}

fn classify(err: reqwest::Error, timeout: Duration) -> OutboundError {
    if err.is_timeout() {
        OutboundError::Timeout(timeout)
    } else {
        // The full chain says *why* (connection refused, TLS, reset) without any secret.
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        OutboundError::Transport(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_origin_exactly() {
        let hosts = AllowedHosts::new(&["http://127.0.0.1:9000", "https://api.stripe.com"]);
        assert!(hosts.allows("http://127.0.0.1:9000/billing"));
        assert!(hosts.allows("https://API.stripe.com/v1/invoices/in_1"));
        assert!(hosts.allows("https://api.stripe.com:443/v1"));
        assert!(!hosts.allows("http://127.0.0.1:9001/billing"));
        assert!(!hosts.allows("https://127.0.0.1:9000/"));
        assert!(!hosts.allows("http://api.stripe.com/"));
        assert!(!hosts.allows("https://api.stripe.com.evil.example/"));
        assert!(!hosts.allows("file:///etc/passwd"));
        assert!(!hosts.allows("not a url"));
    }

    #[test]
    fn wildcard_allows_any_http_but_nothing_else() {
        let hosts = AllowedHosts::new(&["*"]);
        assert!(hosts.allows("https://example.com/x"));
        assert!(!hosts.allows("ftp://example.com/x"));
    }

    #[test]
    fn empty_list_denies_everything() {
        let hosts = AllowedHosts::new::<&str>(&[]);
        assert!(!hosts.allows("http://127.0.0.1:9000/"));
    }
}
