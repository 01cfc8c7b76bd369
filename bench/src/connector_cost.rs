//! What a connector costs the host, by language (issue 18): `switchyard-bench
//! connector-cost`, run on the Mailchimp connector in Rust and its JavaScript port, which
//! do the same work (the same deliveries for the same events, `mailchimp.rs`).
//!
//! For each build, in this process, through the host's own engine ([`Runtime`]) with the
//! default limits:
//! - its size, and the time to load it with an empty compile cache (wasmtime compiling
//!   it, then the manifest and `check-settings` calls), and again from the cache (what a
//!   restart pays);
//! - `calls` calls of `handle` on the same Mailchimp `subscribe` event, each in a fresh
//!   instance as the host makes them: the median and p99 time, and the linear memory an
//!   instance held (against `plugins.max_memory_bytes`);
//! - the process's resident memory after loading it and after its calls (the compiled
//!   code, and the pooling allocator's slots the instances dirtied and kept warm).
//!
//! Then whether a JavaScript connector makes a Rust one slower: the Rust build's calls are
//! timed again after the JavaScript build's have run (its slots dirtied, its code loaded),
//! and again while JavaScript calls run at the same time on another task.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use switchyard::plugin::bindings::Webhook;
use switchyard::plugin::{AllowedHosts, Grants, Limits, Plugin, Runtime};
use switchyard::store::sled::SledStore;

const CRM: &str = "http://127.0.0.1:9";

/// Mailchimp's documented `subscribe` example (literal brackets, as on the wire).
const SUBSCRIBE: &str = "type=subscribe&fired_at=2009-03-26+21%3A35%3A57\
    &data[id]=8a25ff1d98&data[list_id]=a6b5da1054&data[email]=Api%40MailChimp.com\
    &data[email_type]=html&data[merges][EMAIL]=Api%40MailChimp.com\
    &data[merges][FNAME]=Mailchimp&data[merges][LNAME]=API\
    &data[merges][INTERESTS]=Group1%2CGroup2&data[ip_opt]=10.20.10.30";

/// One build's figures.
#[derive(Debug)]
struct Cost {
    name: String,
    size: usize,
    cold_load: Duration,
    cached_load: Duration,
    handle_p50: Duration,
    handle_p99: Duration,
    memory_bytes: usize,
    rss_after_load_kb: u64,
    rss_after_calls_kb: u64,
}

pub async fn run(plugins: &[PathBuf], calls: usize, out: Option<&Path>) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let storage = Arc::new(SledStore::open(&work.path().join("store"), false)?);
    let grants = Arc::new(Grants {
        connector: "mailchimp".into(),
        settings: BTreeMap::from([
            ("crm_url".to_string(), format!("{CRM}/api")),
            ("crm_token".to_string(), "bench-token".to_string()),
        ]),
        secrets: Vec::new(),
        allowed_hosts: AllowedHosts::new(&[CRM]),
        kv: switchyard::store::Kv::new(storage, "mailchimp"),
        http: reqwest::Client::new(),
        fetch_timeout: Duration::from_secs(15),
    });
    let cache = work.path().join("compiled");
    let runtime = Runtime::new(Limits::default(), Some(&cache))?;
    let rss_start = rss_kb();

    let mut costs = Vec::new();
    let mut loaded: Vec<Arc<Plugin>> = Vec::new();
    for path in plugins {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        eprintln!(
            "{name}: loading ({} bytes) with an empty cache…",
            bytes.len()
        );
        let started = Instant::now();
        let plugin = runtime
            .load(&bytes, grants.clone())
            .await
            .with_context(|| format!("loading {}", path.display()))?;
        let cold_load = started.elapsed();
        let rss_after_load_kb = rss_kb();
        // A restart: a new engine on the same cache.
        let again = Runtime::new(Limits::default(), Some(&cache))?;
        let started = Instant::now();
        again.load(&bytes, grants.clone()).await?;
        let cached_load = started.elapsed();
        drop(again);

        let (times, memory_bytes) = handle_calls(&runtime, &plugin, &grants, calls).await?;
        costs.push(Cost {
            name,
            size: bytes.len(),
            cold_load,
            cached_load,
            handle_p50: percentile(&times, 0.5),
            handle_p99: percentile(&times, 0.99),
            memory_bytes,
            rss_after_load_kb,
            rss_after_calls_kb: rss_kb(),
        });
        loaded.push(Arc::new(plugin));
    }

    // Does a JavaScript connector slow a Rust one? The first build's calls again, after the
    // others' have run, then while the last one's run beside them.
    let mut beside = String::new();
    if loaded.len() >= 2 {
        let (first, last) = (&loaded[0], &loaded[loaded.len() - 1]);
        let (after, _) = handle_calls(&runtime, first, &grants, calls).await?;
        // The Rust calls go on until the other task has made `calls` calls of its own.
        use std::sync::atomic::{AtomicUsize, Ordering};
        let made = Arc::new(AtomicUsize::new(0));
        let background = {
            let (runtime, grants, made) = (runtime.clone(), grants.clone(), made.clone());
            let last = last.clone();
            tokio::spawn(async move {
                let webhook = webhook();
                while made.load(Ordering::Relaxed) < calls {
                    runtime.handle(&last, grants.clone(), &webhook).await;
                    made.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let mut during = Vec::new();
        while made.load(Ordering::Relaxed) < calls {
            during.extend(handle_calls(&runtime, first, &grants, calls).await?.0);
        }
        background.await?;
        let others = made.load(Ordering::Relaxed);
        beside = format!(
            "\n`{}` `handle` again, after `{}`'s calls: median {} (p99 {}); while `{}` calls ran \
             beside it on another task ({others} of them, against {} of its own): median {} \
             (p99 {}).\n",
            costs[0].name,
            costs[costs.len() - 1].name,
            ms(percentile(&after, 0.5)),
            ms(percentile(&after, 0.99)),
            costs[costs.len() - 1].name,
            during.len(),
            ms(percentile(&during, 0.5)),
            ms(percentile(&during, 0.99)),
        );
    }

    let mut table = String::from(
        "| connector | size | load, empty cache | load, cached | `handle` median | p99 | \
         instance memory | RSS after load | after calls |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for cost in &costs {
        table += &format!(
            "| `{}` | {:.2} MiB | {} | {} | {} | {} | {:.1} MiB | {} MiB | {} MiB |\n",
            cost.name,
            cost.size as f64 / 1048576.0,
            ms(cost.cold_load),
            ms(cost.cached_load),
            ms(cost.handle_p50),
            ms(cost.handle_p99),
            cost.memory_bytes as f64 / 1048576.0,
            cost.rss_after_load_kb / 1024,
            cost.rss_after_calls_kb / 1024,
        );
    }
    let section = format!(
        "\n### {} · connector costs ({calls} calls each; RSS {} MiB before any load)\n\n{table}{beside}",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        rss_start / 1024,
    );
    print!("{section}");
    if let Some(out) = out {
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .append(true)
            .open(out)
            .with_context(|| format!("appending to {}", out.display()))?
            .write_all(section.as_bytes())?;
    }
    Ok(())
}

fn webhook() -> Webhook {
    Webhook {
        id: ulid::Ulid::new().to_string(),
        connector: "mailchimp".into(),
        method: "POST".into(),
        path: "/hooks/mailchimp".into(),
        query: String::new(),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: SUBSCRIBE.as_bytes().to_vec(),
        received_at: switchyard::time::now_ms(),
        attempt: 1,
    }
}

/// `calls` calls of `handle`, each in a fresh instance: their times, and the most linear
/// memory an instance held. Every call must give the one delivery the event asks for.
async fn handle_calls(
    runtime: &Runtime,
    plugin: &Plugin,
    grants: &Arc<Grants>,
    calls: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let webhook = webhook();
    let mut times = Vec::with_capacity(calls);
    let mut memory = 0;
    for _ in 0..calls {
        let outcome = runtime.handle(plugin, grants.clone(), &webhook).await;
        let deliveries = match outcome.result {
            Ok(Ok(deliveries)) => deliveries,
            other => anyhow::bail!("handle did not deliver: {other:?}"),
        };
        anyhow::ensure!(deliveries.len() == 1, "one delivery, got {deliveries:?}");
        times.push(outcome.duration);
        memory = memory.max(outcome.memory_bytes);
    }
    Ok((times, memory))
}

fn percentile(times: &[Duration], q: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// This process's resident memory, kB (0 where `/proc` is not there).
fn rss_kb() -> u64 {
    crate::run::read_rss(std::process::id()).map_or(0, |rss| rss.current_kb)
}
