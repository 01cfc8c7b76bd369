//! What every admin response carries: rate-limit headers (429 past the limit) and, on a
//! `GET`, an `ETag` that `If-None-Match` turns into a 304.
//!
//! **Rate limit.** `server.admin_rate_limit` requests per minute per client address, as a
//! token bucket (GCRA, by `governor`): a client may spend the whole minute's allowance at
//! once, and it comes back one request every `60 / limit` seconds, so no client ever gets
//! twice the limit across the edge of a window (what a fixed window allows).
//! `X-RateLimit-Limit` is the limit, `X-RateLimit-Remaining` the requests a client may make
//! now, `X-RateLimit-Reset` the unix time (seconds) its allowance is whole again. Past the
//! limit the answer is 429 `rate_limited` with `Retry-After` (seconds until one more
//! request is allowed). It is counted before the token is checked, so guessing tokens is
//! limited too. Clients behind one proxy share its address, and so its limit.
//!
//! **ETag.** A strong validator over the response body (SHA-256, first 16 bytes, hex) on
//! every successful `GET`; `If-None-Match` with it (or `*`) gets 304 and no body.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Addresses tracked before the ones whose allowance is whole again are forgotten.
const PRUNE_AT: usize = 10_000;
/// Largest admin response body an `ETag` is computed for (an event with a large request
/// and many deliveries); larger ones go out without one.
const ETAG_MAX_BYTES: usize = 64 << 20;

type Keyed<C> = governor::RateLimiter<
    IpAddr,
    governor::state::keyed::DefaultKeyedStateStore<IpAddr>,
    C,
    governor::middleware::StateInformationMiddleware,
>;

/// Requests allowed per client address (see the module's doc).
pub struct RateLimiter<C: governor::clock::Clock = governor::clock::DefaultClock> {
    limiter: Keyed<C>,
    limit: u32,
    clock: C,
}

impl<C: governor::clock::Clock> std::fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// What the limiter said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the client's allowance is whole again (the reset header adds now).
    pub whole_in: u64,
    /// Refused: seconds until one more request is allowed.
    pub retry_in: u64,
}

impl RateLimiter {
    /// `limit` requests per minute per address (at least 1).
    pub fn per_minute(limit: u32) -> Self {
        Self::with_clock(limit, governor::clock::DefaultClock::default())
    }
}

impl<C: governor::clock::Clock + Clone> RateLimiter<C> {
    fn with_clock(limit: u32, clock: C) -> Self {
        let limit = std::num::NonZeroU32::new(limit).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = governor::Quota::per_minute(limit);
        RateLimiter {
            limiter:
                governor::RateLimiter::<_, _, _, governor::middleware::NoOpMiddleware<_>>::new(
                    quota,
                    governor::state::keyed::DefaultKeyedStateStore::default(),
                    clock.clone(),
                )
                .with_middleware(),
            limit: limit.get(),
            clock,
        }
    }

    /// Count one request from `client`.
    pub fn check(&self, client: IpAddr) -> Verdict {
        if self.limiter.len() >= PRUNE_AT {
            self.limiter.retain_recent();
        }
        // One request's share of the minute, in nanoseconds.
        let per_request = 60_000_000_000 / u64::from(self.limit);
        let seconds = |nanos: u64| nanos.div_ceil(1_000_000_000);
        match self.limiter.check_key(&client) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Verdict {
                    allowed: true,
                    limit: self.limit,
                    remaining,
                    whole_in: seconds(u64::from(self.limit - remaining) * per_request),
                    retry_in: 0,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let retry_in = seconds(wait.as_nanos() as u64).max(1);
                Verdict {
                    allowed: false,
                    limit: self.limit,
                    remaining: 0,
                    whole_in: seconds(
                        wait.as_nanos() as u64 + (u64::from(self.limit) - 1) * per_request,
                    ),
                    retry_in,
                }
            }
        }
    }
}

/// The rate-limit middleware: headers on every answer, 429 past the limit.
pub async fn rate_limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    let now = crate::time::now_s().max(0) as u64;
    let verdict = limiter.check(client);
    let mut response = if verdict.allowed {
        next.run(request).await
    } else {
        let wait = verdict.retry_in;
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than {} admin requests a minute; retry in {wait} s",
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
    headers.insert(
        "x-ratelimit-reset",
        HeaderValue::from(now + verdict.whole_in),
    );
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
    fn the_limit_is_a_bucket_that_refills_one_request_at_a_time() {
        let clock = governor::clock::FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(3, clock.clone());
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        // The minute's allowance at once, each answer saying what is left and when the
        // allowance is whole again (20 s per request used).
        for (left, whole_in) in [(2, 20), (1, 40), (0, 60)] {
            let verdict = limiter.check(client);
            assert!(verdict.allowed);
            assert_eq!((verdict.remaining, verdict.whole_in), (left, whole_in));
        }
        let refused = limiter.check(client);
        assert!(!refused.allowed);
        assert_eq!((refused.remaining, refused.retry_in), (0, 20));
        assert!(limiter.check(other).allowed, "counted per address");
        // 19 s later: not yet one back.
        clock.advance(std::time::Duration::from_secs(19));
        let refused = limiter.check(client);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_in, 1);
        // 20 s after the burst: exactly one back, not a whole new window (a fixed window
        // would allow three more here, six within a few seconds across its edge).
        clock.advance(std::time::Duration::from_secs(1));
        let one = limiter.check(client);
        assert!(one.allowed);
        assert_eq!(one.remaining, 0);
        assert!(!limiter.check(client).allowed);
        // A minute of quiet: whole again.
        clock.advance(std::time::Duration::from_secs(60));
        let whole = limiter.check(client);
        assert_eq!((whole.allowed, whole.remaining), (true, 2));
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
