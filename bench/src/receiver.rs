//! The downstream of the end-to-end scenario: answers 200 to everything and counts it.
//! `GET /count` returns `{"count": N, "last_ms": T}` (T: unix ms of the last request, 0
//! before the first) and is not counted itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};

/// What `GET /count` answers.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Count {
    pub count: u64,
    pub last_ms: u64,
}

#[derive(Default)]
struct Counter {
    count: AtomicU64,
    last_ms: AtomicU64,
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
async fn receive(State(counter): State<Arc<Counter>>, _body: Bytes) {
    counter
        .last_ms
        .fetch_max(switchyard::time::now_ms(), Ordering::Relaxed);
    counter.count.fetch_add(1, Ordering::Relaxed);
}

async fn count(State(counter): State<Arc<Counter>>) -> axum::Json<Count> {
    axum::Json(Count {
        count: counter.count.load(Ordering::Relaxed),
        last_ms: counter.last_ms.load(Ordering::Relaxed),
    })
}
