//! The native baseline: what switchyard's ingress does, minus the wasm and the pipeline,
//! written the plainest way. `POST /hooks/stripe` checks the `Stripe-Signature` (HMAC-SHA256,
//! constant-time), inserts the body into sled under a fresh key, waits for a group commit
//! (sled flush + `fdatasync`), and answers `200 {"id","status":"accepted"}`.
//!
//! The ratio switchyard/baseline is the headline figure because both run on the same
//! machine in the same minute, so drift in absolute numbers cancels out.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

/// How far a signed timestamp may be from now, either way (Stripe's libraries: 5 min).
const TOLERANCE_S: i64 = 300;
/// At most this many `v1=` signatures are looked at.
const MAX_SIGNATURES: usize = 16;

type Waiter = oneshot::Sender<Result<(), String>>;

struct Baseline {
    secret: Vec<u8>,
    db: sled::Db,
    /// Requests waiting for the next group commit.
    commits: std_mpsc::Sender<Waiter>,
}

/// Serve on `listen` with the store in `data` until killed.
pub async fn serve(listen: SocketAddr, data: PathBuf, secret: String) -> anyhow::Result<()> {
    let db = sled::Config::new()
        .path(&data)
        .cache_capacity(256 << 20)
        .flush_every_ms(Some(500))
        .open()
        .with_context(|| format!("opening sled at {}", data.display()))?;
    let commits = spawn_flusher(db.clone(), &data)?;
    let state = Arc::new(Baseline {
        secret: secret.into_bytes(),
        db,
        commits,
    });
    let app = Router::new()
        .route("/hooks/stripe", post(receive))
        .with_state(state);
    listen_and_serve("baseline", listen, app).await
}

/// Bind `listen`, say where (`{name} listening addr=…`, which the runner waits for) and
/// serve `app` until killed.
pub(crate) async fn listen_and_serve(
    name: &str,
    listen: SocketAddr,
    app: Router,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    eprintln!("{name} listening addr={}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Exactly one thread flushes: concurrent `flush_async` calls hang sled 0.34
/// (spacejam/sled#1308), and sled's flush ends in `sync_file_range`, so an `fdatasync` of
/// the log follows it. Each round releases every waiter that registered before it began.
fn spawn_flusher(db: sled::Db, data: &Path) -> anyhow::Result<std_mpsc::Sender<Waiter>> {
    let log = File::open(data.join("db")).context("opening the sled log file")?;
    let (tx, rx) = std_mpsc::channel::<Waiter>();
    std::thread::Builder::new()
        .name("baseline-flush".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut waiters = vec![first];
                waiters.extend(rx.try_iter());
                let result = db
                    .flush()
                    .map_err(|err| err.to_string())
                    .and_then(|_| log.sync_data().map_err(|err| format!("fdatasync: {err}")));
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
        })
        .context("spawning the flusher")?;
    Ok(tx)
}

async fn receive(State(state): State<Arc<Baseline>>, headers: HeaderMap, body: Bytes) -> Response {
    if !signed(&state.secret, &headers, &body) {
        return error(StatusCode::UNAUTHORIZED, "signature_mismatch");
    }
    let id = ulid::Ulid::new().to_string();
    if state.db.insert(id.as_bytes(), body.as_ref()).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable");
    }
    let (tx, rx) = oneshot::channel();
    if state.commits.send(tx).is_err() || !matches!(rx.await, Ok(Ok(()))) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable");
    }
    axum::Json(json!({ "id": id, "status": "accepted" })).into_response()
}

pub(crate) fn error(status: StatusCode, code: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": code } })),
    )
        .into_response()
}

/// Whether the request carries a valid `Stripe-Signature` for `body`, now.
pub(crate) fn signed(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| verify(secret, value, body, switchyard::time::now_s()))
}

/// `t=…,v1=…[,v1=…]`: HMAC-SHA256 hex of `"{t}.{body}"`, any `v1` may match, compared in
/// constant time; the timestamp is checked once a signature matched.
fn verify(secret: &[u8], header: &str, body: &[u8], now: i64) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t),
            Some(("v1", sig)) if signatures.len() < MAX_SIGNATURES => {
                if let Ok(sig) = hex::decode(sig) {
                    signatures.push(sig);
                }
            }
            _ => {}
        }
    }
    let Some((t_text, t)) = timestamp.and_then(|t| Some((t, t.parse::<i64>().ok()?))) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(t_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let matched = signatures.iter().fold(subtle::Choice::from(0), |any, sig| {
        any | expected.as_slice().ct_eq(sig.as_slice())
    });
    bool::from(matched) && (now - t).abs() <= TOLERANCE_S
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::secret::Secret;
    use switchyard::verify::{Scheme, sign};

    #[test]
    fn accepts_what_switchyard_signs_and_nothing_else() {
        let body = br#"{"id":"evt_1"}"#;
        let headers = sign(&Scheme::Stripe, &Secret::new("whsec_x"), body, 1_000, "").unwrap();
        let value = &headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("stripe-signature"))
            .unwrap()
            .1;
        assert!(verify(b"whsec_x", value, body, 1_010));
        assert!(!verify(b"whsec_y", value, body, 1_010));
        assert!(!verify(b"whsec_x", value, b"{}", 1_010));
        assert!(!verify(b"whsec_x", value, body, 1_000 + TOLERANCE_S + 1));
    }
}
