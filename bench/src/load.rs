//! The load generator: exactly `connections` keep-alive HTTP/1.1 connections, each a task
//! that sends one signed event, waits for the whole answer, and sends the next (closed
//! loop), for `warmup + duration`.
//!
//! Each task owns one hyper `http1` connection rather than a pooled client, so the number
//! of connections the server sees is exactly the number asked for; a connection that
//! fails is counted as an error and replaced.
//!
//! Counting: throughput and latencies cover the answers that arrive inside the measured
//! window (after the warmup, before the end); non-2xx answers and errors are counted over
//! the whole run, warmup included, because any of them is a finding.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::events::{EventSource, SIGNATURE_HEADER};

/// Throughput the default event supply is sized for (events per second of run).
pub const SIZED_FOR_RPS: u64 = 80_000;

/// Longest latency the histogram holds, in µs; longer ones are clamped to it.
const MAX_LATENCY_US: u64 = 60_000_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `http://host:port/hooks/stripe`
    pub url: Uri,
    pub secret: String,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Events to pre-sign; `None`: enough for [`SIZED_FOR_RPS`] over the whole run.
    pub events: Option<usize>,
}

impl LoadOptions {
    fn event_count(&self) -> usize {
        self.events.unwrap_or_else(|| {
            let secs = (self.duration + self.warmup).as_secs_f64();
            (secs * SIZED_FOR_RPS as f64).ceil() as usize
        })
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub connections: usize,
    /// When the first request was sent (warmup included), unix ms.
    pub started_at_ms: u64,
    /// Length of the measured window, seconds.
    pub measured_secs: f64,
    /// Answers inside the measured window (any status).
    pub requests: u64,
    /// 2xx answers per second inside the measured window.
    pub rps: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// 2xx answers over the whole run, warmup and the last in-flight requests included
    /// (what a downstream should eventually receive).
    pub total_ok: u64,
    /// Non-2xx answers over the whole run.
    pub non_2xx: u64,
    /// Connection and protocol errors over the whole run.
    pub errors: u64,
    /// The first non-2xx answer or error, for the report.
    pub first_failure: Option<String>,
    pub presigned: usize,
    /// Events signed during the run because the pre-signed supply ran out.
    pub signed_late: u64,
}

/// One connection's tally.
struct Tally {
    latencies: Histogram<u64>,
    requests: u64,
    ok_in_window: u64,
    total_ok: u64,
    non_2xx: u64,
    errors: u64,
    first_failure: Option<String>,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Tally {
            latencies: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .context("creating a histogram")?,
            requests: 0,
            ok_in_window: 0,
            total_ok: 0,
            non_2xx: 0,
            errors: 0,
            first_failure: None,
        })
    }

    fn failure(&mut self, what: String) {
        self.first_failure.get_or_insert(what);
    }

    fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.latencies
            .add(&other.latencies)
            .context("merging histograms")?;
        self.requests += other.requests;
        self.ok_in_window += other.ok_in_window;
        self.total_ok += other.total_ok;
        self.non_2xx += other.non_2xx;
        self.errors += other.errors;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
        Ok(())
    }
}

/// Where and how to send.
struct Target {
    addr: SocketAddr,
    authority: String,
    path: String,
    /// The measured window.
    measure_from: Instant,
    end: Instant,
}

/// Sign the events, run the load, and tally it.
pub async fn run(options: &LoadOptions) -> anyhow::Result<LoadReport> {
    if options.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if options.url.scheme_str() != Some("http") {
        bail!("only http:// URLs are supported, got {}", options.url);
    }
    let authority = options
        .url
        .authority()
        .ok_or_else(|| anyhow!("{} has no host", options.url))?
        .to_string();
    let host_port = if options.url.port().is_some() {
        authority.clone()
    } else {
        format!("{authority}:80")
    };
    let addr = tokio::net::lookup_host(&host_port)
        .await
        .with_context(|| format!("resolving {host_port}"))?
        .next()
        .ok_or_else(|| anyhow!("{host_port} resolves to nothing"))?;
    let path = options
        .url
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());

    let count = options.event_count();
    let secret = options.secret.clone();
    let source = tokio::task::spawn_blocking(move || EventSource::new(&secret, count))
        .await
        .context("signing thread")??;
    let source = Arc::new(source);

    let started_at_ms = switchyard::time::now_ms();
    let start = Instant::now();
    let target = Arc::new(Target {
        addr,
        authority,
        path,
        measure_from: start + options.warmup,
        end: start + options.warmup + options.duration,
    });
    let tasks: Vec<_> = (0..options.connections)
        .map(|_| tokio::spawn(connection(target.clone(), source.clone())))
        .collect();
    let mut tally = Tally::new()?;
    for task in tasks {
        tally.merge(task.await.context("a connection task panicked")??)?;
    }

    let measured_secs = options.duration.as_secs_f64();
    let hist = &tally.latencies;
    let quantile = |q: f64| {
        if hist.is_empty() {
            0
        } else {
            hist.value_at_quantile(q)
        }
    };
    Ok(LoadReport {
        connections: options.connections,
        started_at_ms,
        measured_secs,
        requests: tally.requests,
        rps: tally.ok_in_window as f64 / measured_secs,
        p50_us: quantile(0.50),
        p90_us: quantile(0.90),
        p99_us: quantile(0.99),
        max_us: hist.max(),
        total_ok: tally.total_ok,
        non_2xx: tally.non_2xx,
        errors: tally.errors,
        first_failure: tally.first_failure,
        presigned: source.presigned(),
        signed_late: source.signed_late(),
    })
}

/// One connection's closed loop, reconnecting after an error, until the end of the run.
async fn connection(target: Arc<Target>, source: Arc<EventSource>) -> anyhow::Result<Tally> {
    let mut tally = Tally::new()?;
    while Instant::now() < target.end {
        let mut sender = match connect(target.addr).await {
            Ok(sender) => sender,
            Err(err) => {
                tally.errors += 1;
                tally.failure(format!("connect: {err:#}"));
                // Do not spin on a server that refuses connections.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while Instant::now() < target.end {
            let event = source.next_event()?;
            let request = Request::post(target.path.as_str())
                .header(header::HOST, target.authority.as_str())
                .header(header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, event.signature)
                .body(Full::new(event.body))
                .context("building a request")?;
            let sent = Instant::now();
            let answer = async {
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                anyhow::Ok((status, body))
            }
            .await;
            let done = Instant::now();
            let (status, body) = match answer {
                Ok(answer) => answer,
                Err(err) => {
                    tally.errors += 1;
                    tally.failure(format!("request: {err:#}"));
                    break; // reconnect
                }
            };
            let in_window = done >= target.measure_from && done <= target.end;
            if status.is_success() {
                tally.total_ok += 1;
                if in_window {
                    tally.ok_in_window += 1;
                }
            } else {
                tally.non_2xx += 1;
                tally.failure(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ));
            }
            if in_window {
                tally.requests += 1;
                let micros = done.duration_since(sent).as_micros();
                tally
                    .latencies
                    .saturating_record(u64::try_from(micros).unwrap_or(u64::MAX).max(1));
            }
        }
    }
    Ok(tally)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A fresh keep-alive connection; its I/O is driven by a task of its own.
async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Its end shows up as an error on the next request.
        let _ = conn.await;
    });
    Ok(sender)
}

impl LoadReport {
    /// A human-readable summary.
    pub fn summary(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        let mut text = format!(
            "{:.0} req/s (2xx) over {:.1}s with {} connections\n\
             latency p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n\
             2xx total {}  non-2xx {}  errors {}",
            self.rps,
            self.measured_secs,
            self.connections,
            ms(self.p50_us),
            ms(self.p90_us),
            ms(self.p99_us),
            ms(self.max_us),
            self.total_ok,
            self.non_2xx,
            self.errors,
        );
        if self.signed_late > 0 {
            text.push_str(&format!(
                "\n{} events were signed during the run (raise --events above {})",
                self.signed_late, self.presigned
            ));
        }
        if let Some(failure) = &self.first_failure {
            text.push_str(&format!("\nfirst failure: {failure}"));
        }
        text
    }
}
