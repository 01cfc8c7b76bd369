//! Retry maths, kept pure so it is tested without a clock or a network.

use std::time::{Duration, SystemTime};

use crate::config::RetryConfig;

/// What to do after one try of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done.
    Succeeded,
    /// Transient: try again, no sooner than the hint (`Retry-After`) if there is one.
    Retry { not_before: Option<Duration> },
    /// Permanent: never try again.
    Dead,
}

/// Classify a response status: 2xx succeeded; 408, 429 and 5xx retry; other statuses
/// (3xx included: redirects are not followed, as Standard Webhooks advises) are dead.
pub fn classify_status(status: u16, retry_after: Option<&str>, now: SystemTime) -> Verdict {
    match status {
        200..=299 => Verdict::Succeeded,
        408 | 429 | 500..=599 => Verdict::Retry {
            not_before: if status == 429 || status == 503 {
                retry_after.and_then(|value| parse_retry_after(value, now))
            } else {
                None
            },
        },
        _ => Verdict::Dead,
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The delay before try number `attempt + 1`, after `attempt` (≥ 1) failed tries:
/// `initial_backoff × 2^(attempt-1)`, capped at `max_backoff`, then spread by ±`jitter`
/// using `unit` ∈ [0, 1) as the random draw. A `Retry-After` hint raises the delay, but
/// never above `max_backoff`.
pub fn backoff(policy: &RetryConfig, attempt: u32, hint: Option<Duration>, unit: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(62);
    let base = policy
        .initial_backoff
        .checked_mul(1u32.checked_shl(exp.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(policy.max_backoff)
        .min(policy.max_backoff);
    let spread = (unit.clamp(0.0, 1.0) * 2.0 - 1.0) * policy.jitter.clamp(0.0, 1.0);
    let jittered = base
        .mul_f64((1.0 + spread).max(0.0))
        .min(policy.max_backoff);
    match hint {
        Some(hint) => jittered.max(hint.min(policy.max_backoff)),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryConfig {
        RetryConfig {
            max_attempts: 10,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(3600),
            jitter: 0.2,
            timeout: Duration::from_secs(15),
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = policy();
        // unit 0.5 means no jitter.
        assert_eq!(backoff(&p, 1, None, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(&p, 2, None, 0.5), Duration::from_secs(4));
        assert_eq!(backoff(&p, 5, None, 0.5), Duration::from_secs(32));
        assert_eq!(backoff(&p, 12, None, 0.5), Duration::from_secs(3600));
        assert_eq!(backoff(&p, 1000, None, 0.5), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = policy();
        assert_eq!(
            backoff(&p, 3, None, 0.0),
            Duration::from_secs(8).mul_f64(0.8)
        );
        let high = backoff(&p, 3, None, 0.999_999);
        assert!(high > Duration::from_secs(9) && high <= Duration::from_secs(8).mul_f64(1.2));
        // Jitter never pushes past the cap.
        assert_eq!(backoff(&p, 20, None, 0.999), Duration::from_secs(3600));
    }

    #[test]
    fn retry_after_raises_the_delay_within_the_cap() {
        let p = policy();
        assert_eq!(
            backoff(&p, 1, Some(Duration::from_secs(30)), 0.5),
            Duration::from_secs(30)
        );
        assert_eq!(
            backoff(&p, 1, Some(Duration::from_secs(86_400)), 0.5),
            Duration::from_secs(3600)
        );
        // A hint shorter than the backoff does not shorten it.
        assert_eq!(
            backoff(&p, 4, Some(Duration::from_secs(1)), 0.5),
            Duration::from_secs(16)
        );
    }

    #[test]
    fn statuses_are_classified() {
        let now = SystemTime::now();
        assert_eq!(classify_status(200, None, now), Verdict::Succeeded);
        assert_eq!(classify_status(204, None, now), Verdict::Succeeded);
        assert_eq!(
            classify_status(503, None, now),
            Verdict::Retry { not_before: None }
        );
        assert_eq!(
            classify_status(408, None, now),
            Verdict::Retry { not_before: None }
        );
        assert_eq!(
            classify_status(429, Some("7"), now),
            Verdict::Retry {
                not_before: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(classify_status(400, None, now), Verdict::Dead);
        assert_eq!(classify_status(404, None, now), Verdict::Dead);
        assert_eq!(classify_status(301, None, now), Verdict::Dead);
    }

    #[test]
    fn retry_after_accepts_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
