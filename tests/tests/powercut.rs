//! Power cuts: a 200 survives the machine losing power, not only a `kill -9`.
//!
//! The real binary runs with `storage.path` on the power-cut file system of
//! `tests/powercut` (FUSE, in this process), which keeps every write that was not fsynced
//! in memory only. A cut kills the host (`kill -9`) and then keeps only what was durable,
//! plus, by the case, a random share of the rest in any order or in the order written; with
//! strict directories, directory entries not made durable by an fsync of their directory
//! are undone. The host is started again on what is left, and every event that got a 200
//! must be in the log and delivered.
//!
//! The downstream is down (503) until after the cut, so the deliveries a restarted host
//! makes are the proof, not ones made before the cut.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use switchyard_powercut::{Cut, Options, PowerCut};
use switchyard_tests::*;

/// A power-cut mount, a receiver and a plugins dir, for one or several hosts in turn.
struct Rig {
    dirs: Dirs,
    fs: PowerCut,
    receiver: Receiver,
    /// One rig at a time: a host under load, its senders and the file system are enough
    /// for two cores, and a cut should come when the test says, not when the machine
    /// gets to it.
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Rig {
    async fn new(options: Options) -> Rig {
        let one_at_a_time = ONE_AT_A_TIME.lock().await;
        let dirs = Dirs::new(&["stripe.wasm"]);
        let mount = dirs.root.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let fs = PowerCut::mount(&mount, options).unwrap_or_else(|err| panic!("{err}"));
        Rig {
            dirs,
            fs,
            receiver: Receiver::start().await,
            _one_at_a_time: one_at_a_time,
        }
    }

    /// The config file of a host whose store is `name` on the mount.
    fn config(&self, name: &str) -> PathBuf {
        write_config(&self.dirs, name, &self.fs.path().join(name), &self.receiver)
    }
}

/// The config file `{name}.toml` of a host with its store at `data`, forwarding Stripe
/// events to `receiver` and retrying quickly, for as long as the test takes. Compiled
/// components are cached outside the store (that cache is not what is tested, and
/// wasmtime maps its files, which the power-cut file system does not offer).
fn write_config(dirs: &Dirs, name: &str, data: &Path, receiver: &Receiver) -> PathBuf {
    let path = dirs.root.path().join(format!("{name}.toml"));
    let origin = receiver.origin();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_token = "{ADMIN_TOKEN}"
[storage]
path = "{data}"
[plugins]
dir = "{plugins}"
cache_dir = "{cache}"
watch = false
[[connector]]
id = "stripe"
plugin = "stripe.wasm"
secret = "{STRIPE_SECRET}"
allowed_hosts = ["{origin}"]
[connector.retry]
initial_backoff = "20ms"
max_backoff = "200ms"
max_attempts = 1000
[connector.settings]
forward_url = "{origin}/billing"
"#,
        data = data.display(),
        plugins = dirs.plugins().display(),
        cache = dirs.root.path().join("cache").display(),
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// Send unique Stripe events from `senders` concurrent senders until `stop` is set or
/// `limit` events were sent; the acknowledged ones (Stripe id → event id) go in `acked`.
fn start_load(
    url: String,
    senders: usize,
    limit: usize,
    acked: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    (0..senders)
        .map(|_| {
            let (client, url, acked, stop, sent) = (
                client.clone(),
                url.clone(),
                acked.clone(),
                stop.clone(),
                sent.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) && sent.fetch_add(1, Ordering::SeqCst) < limit {
                    let evt = evt_id();
                    let body = stripe_event(&evt, "invoice.paid");
                    let mut request = client.post(&url).body(body.clone());
                    for (k, v) in stripe_headers(STRIPE_SECRET, &body, now()) {
                        request = request.header(k, v);
                    }
                    match request.send().await {
                        Ok(response) if response.status() == 200 => {
                            let answer: Value = response.json().await.unwrap();
                            assert_eq!(answer["status"], "accepted", "{answer}");
                            let id = answer["id"].as_str().unwrap().to_string();
                            acked.lock().unwrap().push((evt, id));
                        }
                        // Cut off by the kill: the sender would retry; not acknowledged.
                        _ => {
                            if stop.load(Ordering::SeqCst) {
                                return;
                            }
                        }
                    }
                }
            })
        })
        .collect()
}

/// What a run ends with.
struct Outcome {
    acked: usize,
    delivered_again: usize,
    rebuilt: bool,
    log: String,
}

/// One host on store `name`: load it with `senders` senders; once `kill_after` events are
/// acknowledged (with the load still running, or after it stopped when `idle` is set, plus
/// `idle` of quiet), kill it and cut the power with `cut`. Then start it again and check
/// that every acknowledged event is in the log and delivered.
async fn cut_and_recover(
    rig: &mut Rig,
    name: &str,
    cut: Cut,
    kill_after: usize,
    idle: Option<Duration>,
) -> Outcome {
    let config = rig.config(name);
    rig.receiver.otherwise(Some(503));
    let host = ChildHost::start(&config);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let limit = if idle.is_some() {
        kill_after
    } else {
        usize::MAX
    };
    let senders = start_load(
        host.url("/hooks/stripe"),
        8,
        limit,
        acked.clone(),
        stop.clone(),
    );
    let count = acked.clone();
    wait_for("acknowledged events", Duration::from_secs(120), move || {
        let count = count.clone();
        async move { count.lock().unwrap().len() >= kill_after }
    })
    .await;
    if let Some(quiet) = idle {
        for sender in senders {
            sender.await.unwrap();
        }
        // Idle for ingress, while deliveries are being retried (each try is a write to
        // sled): the cut comes between checkpoints, not after the last write of all.
        let tries = rig.receiver.received().len();
        let receiver = rig.receiver.clone();
        wait_for("delivery retries", Duration::from_secs(60), move || {
            let receiver = receiver.clone();
            async move { receiver.received().len() >= tries + 100 }
        })
        .await;
        tokio::time::sleep(quiet).await;
        host.kill_9();
    } else {
        host.kill_9();
        stop.store(true, Ordering::SeqCst);
        for sender in senders {
            sender.await.unwrap();
        }
    }
    let report = rig.fs.cut(cut).unwrap();
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "{name}: {} acknowledged; the cut ({cut:?}) changed {} files, lost {} bytes, undid {} \
         directory entries",
        acked.len(),
        report.files_changed,
        report.bytes_lost,
        report.entries_undone
    );
    assert!(
        report.bytes_lost > 0 || report.entries_undone > 0,
        "the cut took nothing: this run proves nothing"
    );

    // The machine is back: the host starts on what is left, and the downstream is up.
    let already = rig.receiver.received().len();
    rig.receiver.otherwise(None);
    let host = ChildHost::start(&config);
    let want: HashSet<String> = acked.iter().map(|(evt, _)| evt.clone()).collect();
    let missing = rig
        .receiver
        .wait_for_stripe_events(&want, Duration::from_secs(120))
        .await;
    let log = host.log.lock().unwrap().clone();
    assert!(
        missing.is_empty(),
        "{name}: {} of {} acknowledged events never delivered after the cut: {missing:?}\nhost log:\n{log}",
        missing.len(),
        want.len()
    );
    for (evt, id) in &acked {
        let response = host.admin_get(&format!("/v1/events/{id}")).await;
        assert_eq!(
            response.status(),
            200,
            "{name}: event {id} ({evt}) is in the log after the cut"
        );
        let record: Value = response.json().await.unwrap();
        assert_eq!(record["dedupe_key"], evt.as_str(), "{record}");
    }
    host.kill_9();
    if let Some(reason) = log.lines().find(|l| l.contains("cannot be trusted")) {
        eprintln!("{name}: {}", reason.trim());
    }
    Outcome {
        acked: acked.len(),
        delivered_again: rig.receiver.received().len() - already,
        rebuilt: log.contains("rebuilt the index from the inbox"),
        log,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_under_load_loses_no_acknowledged_event() {
    let mut rig = Rig::new(Options::default()).await;
    let outcome = cut_and_recover(&mut rig, "load", Cut::DropUnsynced, 300, None).await;
    eprintln!(
        "under load: {} acknowledged, all delivered ({} deliveries after the restart), index rebuilt: {}",
        outcome.acked, outcome.delivered_again, outcome.rebuilt
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_while_idle_between_checkpoints_loses_nothing() {
    let mut rig = Rig::new(Options::default()).await;
    // The load stops, and the cut comes 0.6 s later: after the last answer's fsync and
    // between two of sled's checkpoints (one a second), with retries still being written.
    let outcome = cut_and_recover(
        &mut rig,
        "idle",
        Cut::RandomPages { seed: 7 },
        500,
        Some(Duration::from_millis(600)),
    )
    .await;
    assert_eq!(outcome.acked, 500);
    eprintln!(
        "idle: all 500 delivered, index rebuilt: {}",
        outcome.rebuilt
    );
}

/// A drive cache that wrote back part of what was pending: 10 seeds with pages in any
/// order, 10 with writes in the order made (ext4 `data=ordered`), each cut under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_write_back_in_any_order_or_in_order_loses_nothing() {
    let mut rig = Rig::new(Options::default()).await;
    let mut rebuilt = 0;
    for seed in 1..=20u64 {
        let cut = if seed % 2 == 1 {
            Cut::RandomPages { seed }
        } else {
            Cut::OrderedPrefix { seed }
        };
        let outcome = cut_and_recover(&mut rig, &format!("seed-{seed}"), cut, 150, None).await;
        rebuilt += usize::from(outcome.rebuilt);
    }
    eprintln!("partial write-back: 20 seeds, nothing lost, the index rebuilt in {rebuilt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_directory_metadata_loses_nothing() {
    // A new store: every file and directory the host creates is undone at the cut unless
    // the host fsynced the directory that holds it.
    let mut rig = Rig::new(Options { strict_dirs: true }).await;
    let outcome =
        cut_and_recover(&mut rig, "strict", Cut::RandomPages { seed: 3 }, 200, None).await;
    assert!(
        !outcome.log.contains("it is missing"),
        "the index's directory survived: the host fsynced storage.path\n{}",
        outcome.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_index_is_moved_aside_and_rebuilt_from_the_inbox() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let receiver = Receiver::start().await;
    receiver.otherwise(Some(503));
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config = write_config(&dirs, "garbage", &dirs.data(), &receiver);
    let host = ChildHost::start(&config);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    for sender in start_load(host.url("/hooks/stripe"), 4, 200, acked.clone(), stop) {
        sender.await.unwrap();
    }
    host.kill_9();
    let index = dirs.data().join("index");
    garble(&index);

    receiver.otherwise(None);
    let host = ChildHost::start(&config);
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 200);
    let evts: Vec<String> = acked.iter().map(|(evt, _)| evt.clone()).collect();
    let want: HashSet<String> = evts.into_iter().collect();
    let missing = receiver
        .wait_for_stripe_events(&want, Duration::from_secs(60))
        .await;
    assert!(
        missing.is_empty(),
        "never delivered after the rebuild: {missing:?}"
    );
    let log = host.log.lock().unwrap().clone();
    assert!(log.contains("rebuilt the index from the inbox"), "{log}");
    let kept: Vec<_> = std::fs::read_dir(dirs.data())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("index.broken-"))
        .collect();
    assert_eq!(
        kept.len(),
        1,
        "the garbage index is kept for forensics: {kept:?}"
    );
    host.kill_9();
}

/// Overwrite every file of sled's with bytes that are no sled log.
fn garble(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let len = std::fs::metadata(&path).unwrap().len().max(4096) as usize;
            let garbage: Vec<u8> = (0..len).map(|i| (i * 7 + 13) as u8).collect();
            std::fs::write(&path, garbage).unwrap();
        }
    }
}
