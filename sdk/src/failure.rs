//! Why `handle` did not produce deliveries.

use std::fmt;

/// Why [`Connector::handle`](crate::Connector::handle) did not produce deliveries.
///
/// The message ends up in the event's attempt record: say what went wrong and with which
/// id, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A transient problem (an upstream 503, a timeout): the host calls `handle` again
    /// later, with backoff.
    Retry(String),
    /// The event can never be handled (malformed body, missing setting): it is marked dead
    /// at once. An operator can fix the cause and replay it.
    Reject(String),
}

impl Failure {
    /// A transient failure: the host retries the event later.
    pub fn retry(message: impl Into<String>) -> Self {
        Failure::Retry(message.into())
    }

    /// A permanent failure: the event is marked dead.
    pub fn reject(message: impl Into<String>) -> Self {
        Failure::Reject(message.into())
    }

    /// Whether the host will retry.
    pub fn is_retry(&self) -> bool {
        matches!(self, Failure::Retry(_))
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Failure::Retry(m) | Failure::Reject(m) => m,
        }
    }

    /// Prefixes the message with `context` (`"refetching in_1: HTTP 404 …"`), keeping the
    /// kind.
    pub fn context(self, context: impl fmt::Display) -> Self {
        match self {
            Failure::Retry(m) => Failure::Retry(format!("{context}: {m}")),
            Failure::Reject(m) => Failure::Reject(format!("{context}: {m}")),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Retry(m) => write!(f, "retry: {m}"),
            Failure::Reject(m) => write!(f, "reject: {m}"),
        }
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_and_context() {
        let f = Failure::retry("HTTP 503").context("refetching in_1");
        assert_eq!(f, Failure::Retry("refetching in_1: HTTP 503".into()));
        assert!(f.is_retry());
        assert_eq!(f.to_string(), "retry: refetching in_1: HTTP 503");
        let f = Failure::reject("bad");
        assert!(!f.is_retry());
        assert_eq!(f.message(), "bad");
    }
}
