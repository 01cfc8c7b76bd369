//! The second load generator (issue 21): `wrk` (Debian's package) with a Lua script over
//! events signed before the run, so the figures do not hang on our own generator's cost.
//! `switchyard-bench run --load-generator wrk` measures every scenario with it.
//!
//! wrk has no warmup: its whole run (warmup + duration) is measured. Like ours it keeps
//! its connections open and each waits for an answer before the next request (a closed
//! loop), so its latencies are per answered request, as ours are.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;

use crate::events::EventSource;
use crate::load::{LoadOptions, LoadReport};

/// The script, written next to the events file for each run.
const SCRIPT: &str = include_str!("../wrk/presigned.lua");
/// Events signed per second of the run: above any figure this machine reaches (the log
/// floor answered 67,000/s under wrk on 2026-12-07).
const SIZED_FOR_RPS: f64 = 100_000.0;
/// wrk's threads: one per core of this machine (the servers share them).
const THREADS: usize = 2;

/// What the script's `done` prints after `WRK `.
#[derive(Deserialize)]
struct Summary {
    requests: u64,
    duration_us: u64,
    non_2xx: u64,
    errors: u64,
    unsigned: u64,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    max_us: u64,
}

/// Run wrk against `options.url` for warmup + duration; `tmp` holds the events file.
pub async fn run(options: &LoadOptions, tmp: &Path) -> anyhow::Result<LoadReport> {
    let secs = (options.duration + options.warmup).as_secs_f64();
    let count = options
        .events
        .unwrap_or((secs * SIZED_FOR_RPS).ceil() as usize);
    let secret = options.secret.clone();
    let dir = tempfile::Builder::new()
        .prefix("wrk-")
        .tempdir_in(tmp)
        .context("creating the wrk dir")?;
    let events = dir.path().join("events");
    let script = dir.path().join("presigned.lua");
    std::fs::write(&script, SCRIPT).context("writing the wrk script")?;
    let path = events.clone();
    tokio::task::spawn_blocking(move || write_events(&path, &secret, count))
        .await
        .context("the signing task panicked")??;

    let started_at_ms = switchyard::time::now_ms();
    let output = tokio::process::Command::new("wrk")
        .arg(format!("-t{THREADS}"))
        .arg(format!("-c{}", options.connections.max(THREADS)))
        .arg(format!("-d{}s", secs.ceil() as u64))
        .arg("--timeout")
        .arg("10s")
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(options.url.to_string())
        .arg("--")
        .arg(&events)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs_f64(secs + 60.0), output)
        .await
        .context("wrk did not end")?
        .context("running wrk (Debian's package `wrk`; `make bench-wrk` installs it)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let summary: Summary = stdout
        .lines()
        .find_map(|line| line.strip_prefix("WRK "))
        .ok_or_else(|| anyhow!("wrk printed no summary: {stdout}"))
        .and_then(|json| serde_json::from_str(json).context("reading wrk's summary"))?;
    let measured_secs = summary.duration_us as f64 / 1e6;
    let ok = summary.requests.saturating_sub(summary.non_2xx);
    Ok(LoadReport {
        connections: options.connections,
        started_at_ms,
        measured_secs,
        requests: summary.requests,
        rps: ok as f64 / measured_secs.max(f64::EPSILON),
        p50_us: summary.p50_us,
        p90_us: summary.p90_us,
        p99_us: summary.p99_us,
        max_us: summary.max_us,
        total_ok: ok,
        non_2xx: summary.non_2xx,
        errors: summary.errors,
        first_failure: (summary.non_2xx + summary.errors > 0).then(|| {
            format!(
                "wrk: {} non-2xx ({} unsigned after the events ran out), {} socket errors",
                summary.non_2xx, summary.unsigned, summary.errors
            )
        }),
        presigned: count,
        signed_late: summary.unsigned,
    })
}

/// `count` events dealt round-robin into `{prefix}.1` … `{prefix}.{THREADS}`, one file per
/// wrk thread; one event per line: the `Stripe-Signature` value, a tab, the body (compact
/// JSON, so no tab or newline inside).
fn write_events(prefix: &Path, secret: &str, count: usize) -> anyhow::Result<()> {
    let source = EventSource::new(secret, count)?;
    let mut files = (1..=THREADS)
        .map(|n| {
            let path = format!("{}.{n}", prefix.display());
            let file = std::fs::File::create(&path).with_context(|| format!("creating {path}"))?;
            Ok(std::io::BufWriter::new(file))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for i in 0..count {
        let event = source.next_event()?;
        if event.body.contains(&b'\n') || event.body.contains(&b'\t') {
            bail!("an event body holds a tab or newline; the events file cannot carry it");
        }
        let out = &mut files[i % THREADS];
        out.write_all(event.signature.as_bytes())?;
        out.write_all(b"\t")?;
        out.write_all(&event.body)?;
        out.write_all(b"\n")?;
    }
    for mut out in files {
        out.flush()?;
    }
    Ok(())
}
