//! The listener: what a client on the internet may cost the host before a route runs.
//!
//! `axum::serve` has no knobs for the request head, so connections are accepted here and
//! served with hyper's HTTP/1 builder (HTTP/2 is not offered: webhook senders use
//! HTTP/1.1, and it would bring stream limits of its own to defend):
//!
//! - **Request head** (request line and headers together) larger than
//!   `server.max_header_bytes`, or more than `server.max_headers` header lines → `431`, the
//!   connection closed. hyper stops reading at the limit, so nothing past it is buffered.
//! - **Slow or idle clients**: a head must arrive within `server.header_timeout` of the
//!   connection opening or of the previous answer, so a slowloris client and an idle
//!   keep-alive connection are both closed after it.
//! - **Open connections** beyond `server.max_connections` are answered `503` with
//!   `Retry-After: 1` and closed at once (load shedding), instead of running the process
//!   out of file descriptors; senders retry, and nothing is lost.
//!
//! The body's limits are the ingress route's: it reads the body as a stream, stops at
//! `server.max_body_bytes` (`413`) and waits for it at most `server.body_timeout` (`408`).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::config::ServerConfig;

/// The answer to a connection over `server.max_connections`.
const SHED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 82\r\n\
\r\n\
{\"error\":{\"code\":\"overloaded\",\"message\":\"too many open connections; retry later\"}}";

/// The header count hyper's parser holds on the stack (`server.max_headers`' default).
const HYPER_MAX_HEADERS: usize = 100;

/// Shed connections being answered at once; past it, one is closed without an answer.
const MAX_SHEDDING: usize = 64;

/// How long a shed connection may take to send its request head and be told 503 (what it
/// sends after is read and dropped, so the close does not reset the answer away).
const SHED_LINGER: Duration = Duration::from_secs(1);

/// Serve `router` on `listener` until `shutdown` resolves, then let open requests finish.
/// Each request carries its peer's [`ConnectInfo<SocketAddr>`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    raise_file_limit(limits.max_connections);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes);
    // hyper parses up to 100 headers into a buffer on the stack; any other count moves it
    // to the heap, one allocation per request, so it is set only when it differs.
    if limits.max_headers != HYPER_MAX_HEADERS {
        http.max_headers(limits.max_headers);
    }
    let http = Arc::new(http);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let shedding = Arc::new(Semaphore::new(MAX_SHEDDING));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and the like: the process is out of something; wait, then
                    // go on (a connection already queued is not lost).
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            shed(stream, &shedding);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let Ok(response) = router.oneshot(request).await;
                Ok::<_, Infallible>(response)
            }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                // Timeouts, resets and oversized heads (already answered 431) end here.
                tracing::debug!(%peer, error = %err, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    // Idle connections close at once; requests in flight get the shutdown grace.
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still in flight after {:?}: closing their connections",
            limits.shutdown_timeout
        );
    }
    Ok(())
}

/// Open files the host needs besides its connections: the store's files, plugins, the
/// watcher, outbound connections.
const FILES_BESIDES_CONNECTIONS: u64 = 512;

/// Raise the soft limit on open files to the hard one (the default soft limit, often 1024,
/// is below what `server.max_connections` allows), and warn when even that leaves too
/// little room: then `accept` fails before the cap sheds load.
fn raise_file_limit(max_connections: usize) {
    let wanted = max_connections as u64 + FILES_BESIDES_CONNECTIONS;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit < wanted => tracing::warn!(
            open_files = limit,
            max_connections,
            "the open-file limit is low for server.max_connections: raise `ulimit -n` \
             (or LimitNOFILE) or lower max_connections"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "could not read or raise the open-file limit"),
    }
}

/// Answer 503 on a connection over the cap and close it, without holding a connection
/// slot; at most [`MAX_SHEDDING`] at once, beyond that it is closed unanswered.
fn shed(mut stream: TcpStream, shedding: &Arc<Semaphore>) {
    let Ok(permit) = shedding.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt as _;
        let answered = async {
            // The request head first: an HTTP client takes an answer that comes before its
            // request is sent for a broken connection, not for a 503.
            let mut head = Vec::with_capacity(1024);
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return std::io::Result::Ok(());
                }
                head.extend_from_slice(&buf[..n]);
            }
            stream.write_all(SHED_RESPONSE).await?;
            stream.shutdown().await?;
            // Read (and drop) the rest until the client closes, so the kernel does not
            // answer unread bytes with a reset that could discard our 503.
            while stream.read(&mut buf).await? != 0 {}
            Ok(())
        };
        let _ = tokio::time::timeout(SHED_LINGER, answered).await;
        drop(permit);
    });
}
