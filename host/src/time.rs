//! Wall-clock helpers (unix milliseconds everywhere in records).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Now, in unix seconds.
pub fn now_s() -> i64 {
    (now_ms() / 1000) as i64
}
