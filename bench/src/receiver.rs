//! The downstream of the end-to-end scenario: answers 200 to everything and counts it.
//! `GET /count` returns `{"count": N, "distinct": D, "last_ms": T}` (D: distinct
//! `Idempotency-Key`s among them, so `N - D` were sent more than once; T: unix ms of the
//! last request, 0 before the first) and is not counted itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use serde::{Deserialize, Serialize};

/// What `GET /count` answers.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Count {
    pub count: u64,
    #[serde(default)]
    pub distinct: u64,
    pub last_ms: u64,
}

#[derive(Default)]
struct Counter {
    count: AtomicU64,
    last_ms: AtomicU64,
    /// The `Idempotency-Key`s seen (a request without one counts as distinct).
    keys: std::sync::Mutex<std::collections::HashSet<Box<str>>>,
    unkeyed: AtomicU64,
}

/// Serve on `listen` until killed.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/count", get(count))
        .fallback(receive)
        .with_state(Arc::new(Counter::default()));
    crate::baseline::listen_and_serve("receiver", listen, app).await
}

// The body is read (and dropped) so the connection stays reusable.
async fn receive(State(counter): State<Arc<Counter>>, headers: HeaderMap, _body: Bytes) {
    match headers
        .get("idempotency-key")
        .and_then(|key| key.to_str().ok())
    {
        Some(key) => {
            counter
                .keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.into());
        }
        None => {
            counter.unkeyed.fetch_add(1, Ordering::Relaxed);
        }
    }
    counter
        .last_ms
        .fetch_max(switchyard::time::now_ms(), Ordering::Relaxed);
    counter.count.fetch_add(1, Ordering::Relaxed);
}

async fn count(State(counter): State<Arc<Counter>>) -> axum::Json<Count> {
    let keys = counter.keys.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
    axum::Json(Count {
        count: counter.count.load(Ordering::Relaxed),
        distinct: keys + counter.unkeyed.load(Ordering::Relaxed),
        last_ms: counter.last_ms.load(Ordering::Relaxed),
    })
}
