//! The native floors (issue 21): the least a program must do to give the guarantees
//! switchyard gives, written the plainest way, so the ratios to them say what the
//! sandbox, the pipeline and the event log cost.
//!
//! - **log floor** (`switchyard-bench floor`): `POST /hooks/stripe` checks the
//!   `Stripe-Signature` (the [`baseline`](crate::baseline)'s check), appends one
//!   length-prefixed record to one file, waits for the group commit and answers `200`. One
//!   writer thread takes every record queued since its last round, writes them with one
//!   `write`, `fdatasync`s once and answers every waiter of that round: no database.
//! - **forwarder floor** (`… floor --forward URL`): the log floor, then a pool of
//!   `--forwarders` tasks (64) POSTs each accepted event to `URL` with its
//!   `Idempotency-Key`, retrying until a 2xx, and appends a completion record to the same
//!   log — the at-least-once delivery switchyard gives, minus the connector, the event
//!   log's structure and its index.
//!
//! Completion records ride the next round's `fdatasync` and are not waited for, as
//! switchyard's delivery progress is not synced before it goes on (a crash may re-send).
//! Records: `u32` length (little endian) of what follows, a kind byte (`1` accepted, `2`
//! delivered), the 16 bytes of the event's ULID, then (accepted only) the body.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::baseline::{error, listen_and_serve, signed};

const ACCEPTED: u8 = 1;
const DELIVERED: u8 = 2;
/// The first retry's wait; doubled per try up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

type Waiter = oneshot::Sender<Result<(), String>>;

/// One record for the writer; `waiter` is answered after the `fdatasync` that covers it.
struct Append {
    record: Vec<u8>,
    waiter: Option<Waiter>,
}

struct Floor {
    secret: Vec<u8>,
    log: std_mpsc::Sender<Append>,
    /// Accepted events for the forwarders, when there are any.
    forward: Option<mpsc::UnboundedSender<(ulid::Ulid, Bytes)>>,
}

/// Where to forward accepted events, and with how many tasks.
pub struct Forward {
    pub url: String,
    pub tasks: usize,
}

/// Serve on `listen` with the log in `data/log` until killed.
pub async fn serve(
    listen: SocketAddr,
    data: PathBuf,
    secret: String,
    forward: Option<Forward>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let path = data.join("log");
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let log = spawn_writer(file)?;
    let forward = forward.map(|forward| spawn_forwarders(forward, log.clone()));
    let state = Arc::new(Floor {
        secret: secret.into_bytes(),
        log,
        forward,
    });
    let app = Router::new()
        .route("/hooks/stripe", post(receive))
        .with_state(state);
    listen_and_serve("floor", listen, app).await
}

fn record(kind: u8, id: ulid::Ulid, body: &[u8]) -> Vec<u8> {
    let len = 1 + 16 + body.len();
    let mut record = Vec::with_capacity(4 + len);
    record.extend_from_slice(&(len as u32).to_le_bytes());
    record.push(kind);
    record.extend_from_slice(&id.to_bytes());
    record.extend_from_slice(body);
    record
}

/// The one writer: each round writes what is queued with one `write`, then one
/// `fdatasync` if anyone waits for it, then answers them all.
fn spawn_writer(mut file: File) -> anyhow::Result<std_mpsc::Sender<Append>> {
    let (tx, rx) = std_mpsc::channel::<Append>();
    std::thread::Builder::new()
        .name("floor-writer".into())
        .spawn(move || {
            let mut buffer = Vec::with_capacity(1 << 20);
            let mut waiters = Vec::new();
            while let Ok(first) = rx.recv() {
                buffer.clear();
                for append in std::iter::once(first).chain(rx.try_iter()) {
                    buffer.extend_from_slice(&append.record);
                    waiters.extend(append.waiter);
                }
                let mut result = file
                    .write_all(&buffer)
                    .map_err(|err| format!("write: {err}"));
                if result.is_ok() && !waiters.is_empty() {
                    result = file.sync_data().map_err(|err| format!("fdatasync: {err}"));
                }
                for waiter in waiters.drain(..) {
                    let _ = waiter.send(result.clone());
                }
            }
        })
        .context("spawning the writer")?;
    Ok(tx)
}

fn spawn_forwarders(
    forward: Forward,
    log: std_mpsc::Sender<Append>,
) -> mpsc::UnboundedSender<(ulid::Ulid, Bytes)> {
    let (tx, rx) = mpsc::unbounded_channel::<(ulid::Ulid, Bytes)>();
    let queue = Arc::new(Mutex::new(rx));
    let http = reqwest::Client::new();
    let url = Arc::new(forward.url);
    for _ in 0..forward.tasks.max(1) {
        let (queue, http, url, log) = (queue.clone(), http.clone(), url.clone(), log.clone());
        tokio::spawn(async move {
            loop {
                let next = queue.lock().await.recv().await;
                let Some((id, body)) = next else { return };
                deliver(&http, &url, id, body).await;
                let done = Append {
                    record: record(DELIVERED, id, &[]),
                    waiter: None,
                };
                if log.send(done).is_err() {
                    return;
                }
            }
        });
    }
    tx
}

/// POST until a 2xx, backing off between tries.
async fn deliver(http: &reqwest::Client, url: &str, id: ulid::Ulid, body: Bytes) {
    let key = id.to_string();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let sent = http
            .post(url)
            .header("content-type", "application/json")
            .header("idempotency-key", &key)
            .body(body.clone())
            .send()
            .await;
        if let Ok(response) = sent {
            let ok = response.status().is_success();
            // Read the answer to its end so the connection goes back to the pool.
            let _ = response.bytes().await;
            if ok {
                return;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn receive(State(state): State<Arc<Floor>>, headers: HeaderMap, body: Bytes) -> Response {
    if !signed(&state.secret, &headers, &body) {
        return error(StatusCode::UNAUTHORIZED, "signature_mismatch");
    }
    let id = ulid::Ulid::new();
    let (tx, rx) = oneshot::channel();
    let append = Append {
        record: record(ACCEPTED, id, &body),
        waiter: Some(tx),
    };
    if state.log.send(append).is_err() || !matches!(rx.await, Ok(Ok(()))) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable");
    }
    if let Some(forward) = &state.forward {
        let _ = forward.send((id, body));
    }
    axum::Json(json!({ "id": id.to_string(), "status": "accepted" })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_its_length_kind_id_and_body() {
        let id = ulid::Ulid::new();
        let r = record(ACCEPTED, id, b"{}");
        assert_eq!(
            u32::from_le_bytes(r[..4].try_into().unwrap()) as usize,
            r.len() - 4
        );
        assert_eq!(r[4], ACCEPTED);
        assert_eq!(&r[5..21], &id.to_bytes());
        assert_eq!(&r[21..], b"{}");
    }
}
