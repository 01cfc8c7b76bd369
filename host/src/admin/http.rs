//! What every admin response carries: rate-limit headers (429 past the limit) and, on a
//! `GET`, an `ETag` that `If-None-Match` turns into a 304.
//!
//! **Rate limit.** A fixed window of one minute per client address, `server.admin_rate_limit`
//! requests in each (as GitHub's API counts): `X-RateLimit-Limit` is the limit,
//! `X-RateLimit-Remaining` what is left of it in this window, `X-RateLimit-Reset` the unix
//! time (seconds) the next window starts. Past the limit the answer is 429
//! `rate_limited` with `Retry-After` (seconds to the reset). It is counted before the token
//! is checked, so guessing tokens is limited too. Clients behind one proxy share its
//! address, and so its limit.
//!
//! **ETag.** A strong validator over the response body (SHA-256, first 16 bytes, hex) on
//! every successful `GET`; `If-None-Match` with it (or `*`) gets 304 and no body.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::error::ApiError;

/// The length of a rate-limit window, in seconds.
const WINDOW_SECS: u64 = 60;
/// Addresses tracked before the ones whose window has passed are forgotten.
const PRUNE_AT: usize = 10_000;
/// Largest admin response body an `ETag` is computed for (an event with a large request
/// and many deliveries); larger ones go out without one.
const ETAG_MAX_BYTES: usize = 64 << 20;

/// Requests counted per client address in the current window.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    /// Unix seconds the window began (a multiple of [`WINDOW_SECS`]).
    start: u64,
    used: u32,
}

/// What the limiter said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds the next window starts.
    pub reset: u64,
}

impl RateLimiter {
    /// Count one request from `client` at `now` (unix seconds).
    pub fn check(&self, client: IpAddr, limit: u32, now: u64) -> Verdict {
        let start = now - now % WINDOW_SECS;
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= PRUNE_AT {
            windows.retain(|_, w| w.start == start);
        }
        let window = windows.entry(client).or_insert(Window { start, used: 0 });
        if window.start != start {
            *window = Window { start, used: 0 };
        }
        let allowed = window.used < limit;
        if allowed {
            window.used += 1;
        }
        Verdict {
            allowed,
            limit,
            remaining: limit - window.used,
            reset: start + WINDOW_SECS,
        }
    }
}

/// The rate-limit middleware: headers on every answer, 429 past the limit.
pub async fn rate_limit(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    let now = crate::time::now_s().max(0) as u64;
    let verdict = app
        .admin_limiter
        .check(client, app.config.server.admin_rate_limit, now);
    let mut response = if verdict.allowed {
        next.run(request).await
    } else {
        let wait = verdict.reset.saturating_sub(now).max(1);
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than {} admin requests this minute; retry in {wait} s",
                verdict.limit
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        response
    };
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(verdict.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(verdict.remaining),
    );
    headers.insert("x-ratelimit-reset", HeaderValue::from(verdict.reset));
    response
}

/// The `ETag` middleware for `GET`s.
pub async fn etag(request: Request, next: Next) -> Response {
    if request.method() != Method::GET {
        return next.run(request).await;
    }
    let wanted = request.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, ETAG_MAX_BYTES).await {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::warn!("admin response not sent whole: {err}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let digest = Sha256::digest(&bytes);
    let tag = format!("\"{}\"", hex::encode(&digest[..16]));
    let tag = HeaderValue::from_str(&tag).expect("hex in quotes is a header value");
    if wanted.is_some_and(|wanted| matches(&wanted, &tag)) {
        let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
        copy_validators(&parts.headers, not_modified.headers_mut());
        not_modified.headers_mut().insert(header::ETAG, tag);
        return not_modified;
    }
    parts.headers.insert(header::ETAG, tag);
    Response::from_parts(parts, Body::from(bytes))
}

/// Whether an `If-None-Match` value names `tag` (a list, weak forms compared weakly, `*`).
fn matches(wanted: &HeaderValue, tag: &HeaderValue) -> bool {
    let Ok(wanted) = wanted.to_str() else {
        return false;
    };
    let tag = tag.to_str().unwrap_or_default();
    wanted
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
}

/// The headers a 304 keeps from the answer it stands for (RFC 9110 §15.4.5).
fn copy_validators(from: &HeaderMap, to: &mut HeaderMap) {
    for name in [header::CACHE_CONTROL, header::VARY] {
        if let Some(value) = from.get(&name) {
            to.insert(name, value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_the_limit_then_refuses_until_the_next() {
        let limiter = RateLimiter::default();
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let now = 1_800_000_030; // 30 s into a window
        for left in (0..3).rev() {
            let verdict = limiter.check(client, 3, now);
            assert!(verdict.allowed);
            assert_eq!(verdict.remaining, left);
            assert_eq!(verdict.reset, 1_800_000_060);
        }
        let refused = limiter.check(client, 3, now + 29);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert!(limiter.check(other, 3, now).allowed, "counted per address");
        let next = limiter.check(client, 3, now + 30);
        assert!(next.allowed, "a new window");
        assert_eq!((next.remaining, next.reset), (2, 1_800_000_120));
    }

    #[test]
    fn if_none_match_lists_and_weak_forms() {
        let tag = HeaderValue::from_static("\"abc\"");
        for (wanted, hit) in [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abd\"", false),
            ("abc", false),
        ] {
            assert_eq!(
                matches(&HeaderValue::from_str(wanted).unwrap(), &tag),
                hit,
                "{wanted}"
            );
        }
    }
}
