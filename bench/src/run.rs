//! `switchyard-bench run`: every scenario against the real release binary, `--runs` times,
//! each run on a fresh data dir, servers as child processes (so they never share the load
//! generator's runtime), then the report.
//!
//! Runs are interleaved (run 1 of every scenario, then run 2…) so a slow minute on a shared
//! machine hits every scenario alike rather than one of them.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

use crate::BENCH_SECRET;
use crate::load::{self, LoadOptions, LoadReport};
use crate::receiver::Count;
use crate::report::{self, Outcome};

/// How long a server may take to say where it listens (switchyard compiles the connector).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the end-to-end scenario waits for deliveries to catch up after the load.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two scenarios, so the previous one's teardown (kill, dir removal, page
/// cache writeback) does not land in the next one's measurement.
const SETTLE: Duration = Duration::from_secs(2);
/// The log lines of a child kept for error messages.
const LOG_LINES: usize = 40;
/// How often the hot-swap scenario installs the other build of the connector.
const SWAP_EVERY: Duration = Duration::from_millis(850);
/// The admin token of the generated config.
const ADMIN_TOKEN: &str = "bench-admin-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// Connector paused: verify + durable store + 200.
    Ingress,
    /// The same without the fsync before 200 (`storage.durable = false`).
    IngressNoFlush,
    /// The native baseline.
    Baseline,
    /// The native log floor: HMAC + one append-only file + group commit, no database.
    LogFloor,
    /// Connector active, forwarding every event to the receiver.
    EndToEnd,
    /// The native forwarder floor: the log floor, then 64 tasks POST each accepted event
    /// to the receiver and log its completion.
    ForwarderFloor,
    /// End to end, with a new build of the connector installed every [`SWAP_EVERY`]
    /// throughout the load: two builds that differ only in a custom section, so every
    /// install is a new digest that the host compiles, swaps in and drains the old one of.
    HotSwap,
    /// [`Scenario::EndToEnd`] with the host killed (`SIGKILL`) halfway through the load and
    /// started again on the same data once it ends: every acknowledged event must still be
    /// delivered, and the receiver counts what was sent more than once (by
    /// `Idempotency-Key`).
    KillNine,
    /// [`Scenario::Ingress`] with the store on one nats-server (`sync_interval: always`,
    /// one replica): a 200 waits for a `PubAck` of a synced write.
    NatsIngress,
    /// [`Scenario::EndToEnd`] on the same single server.
    NatsEndToEnd,
    /// [`Scenario::Ingress`] on a 3-node cluster on this machine, 3 replicas (a quorum
    /// write before every 200).
    NatsClusterIngress,
    /// [`Scenario::EndToEnd`] on the same cluster.
    NatsClusterEndToEnd,
}

impl Scenario {
    pub const ALL: [Scenario; 12] = [
        Scenario::Ingress,
        Scenario::IngressNoFlush,
        Scenario::Baseline,
        Scenario::LogFloor,
        Scenario::EndToEnd,
        Scenario::ForwarderFloor,
        Scenario::HotSwap,
        Scenario::KillNine,
        Scenario::NatsIngress,
        Scenario::NatsEndToEnd,
        Scenario::NatsClusterIngress,
        Scenario::NatsClusterEndToEnd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Ingress => "ingress",
            Scenario::IngressNoFlush => "ingress-no-flush",
            Scenario::Baseline => "baseline",
            Scenario::LogFloor => "log-floor",
            Scenario::EndToEnd => "end-to-end",
            Scenario::ForwarderFloor => "forwarder-floor",
            Scenario::HotSwap => "hot-swap",
            Scenario::KillNine => "kill-9",
            Scenario::NatsIngress => "nats-r1-ingress",
            Scenario::NatsEndToEnd => "nats-r1-end-to-end",
            Scenario::NatsClusterIngress => "nats-r3-ingress",
            Scenario::NatsClusterEndToEnd => "nats-r3-end-to-end",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                format!("unknown scenario `{text}`: {}", known.join(", "))
            })
    }
}

/// Which program drives the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadGenerator {
    /// `switchyard-bench load`, in the runner's own process.
    Own,
    /// Debian's `wrk` with `bench/wrk/presigned.lua`.
    Wrk,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub load_generator: LoadGenerator,
    pub runs: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub connections: usize,
    pub out: PathBuf,
    pub switchyard: PathBuf,
    pub plugins: PathBuf,
    pub tmp: PathBuf,
    pub scenarios: Vec<Scenario>,
}

/// Resident memory of a server process at the end of the load, in kB.
#[derive(Debug, Clone, Copy)]
pub struct Rss {
    /// VmRSS: resident now.
    pub current_kb: u64,
    /// VmHWM: the peak so far.
    pub peak_kb: u64,
}

/// How the downstream kept up in the end-to-end scenario.
#[derive(Debug, Clone, Copy)]
pub struct Delivered {
    pub count: u64,
    /// Distinct `Idempotency-Key`s among them: `count - distinct` were sent again.
    pub distinct: u64,
    /// `count` ÷ (last delivery − load start).
    pub per_sec: f64,
    /// Whether `count` reached the accepted total within [`CATCH_UP_TIMEOUT`].
    pub caught_up: bool,
    /// From the end of the load until the last delivery.
    pub lag: Duration,
}

/// What the hot-swap scenario did to the connector during the load.
#[derive(Debug, Clone, Copy)]
pub struct Swaps {
    /// Builds written to the plugins folder.
    pub installed: u32,
    /// Changes of the serving digest that the admin API showed (polled before each install).
    pub seen: u32,
}

/// One run of one scenario.
#[derive(Debug, Clone)]
pub struct Measured {
    pub load: LoadReport,
    pub rss: Option<Rss>,
    pub delivered: Option<Delivered>,
    pub swaps: Option<Swaps>,
    /// Share of the machine's CPU time used during the load by processes other than the
    /// benchmark and its servers (a build running beside it), in percent.
    pub others_cpu_pct: Option<f64>,
}

pub async fn run(options: RunOptions) -> anyhow::Result<()> {
    if options.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let switchyard = std::fs::canonicalize(&options.switchyard).with_context(|| {
        format!(
            "{} is missing: run `cargo build --release -p switchyard` (or `make bench`)",
            options.switchyard.display()
        )
    })?;
    let plugins = std::fs::canonicalize(&options.plugins)
        .ok()
        .filter(|dir| dir.join("stripe.wasm").exists())
        .ok_or_else(|| {
            anyhow!(
                "{}/stripe.wasm is missing: run `make plugins`",
                options.plugins.display()
            )
        })?;
    std::fs::create_dir_all(&options.tmp)
        .with_context(|| format!("creating {}", options.tmp.display()))?;
    let scenarios = if options.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        let mut chosen = options.scenarios.clone();
        chosen.sort();
        chosen.dedup();
        chosen
    };
    let env = Env {
        load_generator: options.load_generator,
        switchyard,
        plugins,
        bench: std::env::current_exe().context("finding switchyard-bench itself")?,
        tmp: options.tmp.clone(),
        load: LoadOptions {
            url: http::Uri::from_static("http://127.0.0.1/"),
            secret: BENCH_SECRET.to_string(),
            connections: options.connections,
            duration: options.duration,
            warmup: options.warmup,
            events: None,
        },
    };

    let context = report::Context::capture();
    let mut outcomes: Vec<Outcome> = scenarios
        .iter()
        .map(|&scenario| Outcome {
            scenario,
            runs: Vec::new(),
            failures: Vec::new(),
        })
        .collect();
    settle().await;
    for run in 1..=options.runs {
        for outcome in &mut outcomes {
            let scenario = outcome.scenario;
            eprintln!("run {run}/{}: {scenario}…", options.runs);
            match env.measure(scenario).await {
                Ok(measured) => {
                    eprintln!("{}", indent(&measured.load.summary()));
                    if let Some(rss) = measured.rss {
                        eprintln!(
                            "  RSS {:.1} MB (peak {:.1} MB)",
                            rss.current_kb as f64 / 1024.0,
                            rss.peak_kb as f64 / 1024.0
                        );
                    }
                    if let Some(d) = measured.delivered {
                        eprintln!(
                            "  delivered {} ({:.0}/s), caught up: {}, lag {:.1}s",
                            d.count,
                            d.per_sec,
                            d.caught_up,
                            d.lag.as_secs_f64()
                        );
                    }
                    outcome.runs.push(measured);
                }
                Err(err) => {
                    eprintln!("  FAILED: {err:#}");
                    outcome.failures.push(format!("run {run}: {err:#}"));
                }
            }
            settle().await;
        }
    }

    let section = report::section(&context, &options, &outcomes);
    println!("{section}");
    append(&options.out, &section)?;
    eprintln!("appended to {}", options.out.display());
    Ok(())
}

/// Before a measurement: write back what earlier work left dirty (a release build just
/// before a `make bench` leaves gigabytes, and the first ingress run measured ~35 % slower
/// while the disk wrote them out beside its fsyncs), then let the previous teardown end.
async fn settle() {
    let synced = tokio::process::Command::new("sync").status().await;
    if let Err(err) = synced {
        eprintln!("  (sync failed: {err}; measuring anyway)");
    }
    tokio::time::sleep(SETTLE).await;
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn append(path: &Path, section: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    write!(file, "\n{section}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// What every scenario needs.
struct Env {
    load_generator: LoadGenerator,
    switchyard: PathBuf,
    plugins: PathBuf,
    bench: PathBuf,
    tmp: PathBuf,
    /// The load, with a placeholder URL.
    load: LoadOptions,
}

impl Env {
    async fn measure(&self, scenario: Scenario) -> anyhow::Result<Measured> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{scenario}-"))
            .tempdir_in(&self.tmp)
            .context("creating a data dir")?;
        let sled = |durable| Store::Sled { durable };
        match scenario {
            Scenario::Ingress => self.ingress(dir.path(), &sled(true)).await,
            Scenario::IngressNoFlush => self.ingress(dir.path(), &sled(false)).await,
            Scenario::Baseline => self.native(dir.path(), Native::Baseline).await,
            Scenario::LogFloor => self.native(dir.path(), Native::LogFloor).await,
            Scenario::EndToEnd => self.end_to_end(dir.path(), &sled(true), false).await,
            Scenario::ForwarderFloor => self.forwarder_floor(dir.path()).await,
            Scenario::HotSwap => self.end_to_end(dir.path(), &sled(true), true).await,
            Scenario::KillNine => self.kill_nine(dir.path()).await,
            Scenario::NatsIngress
            | Scenario::NatsEndToEnd
            | Scenario::NatsClusterIngress
            | Scenario::NatsClusterEndToEnd => {
                let cluster = matches!(
                    scenario,
                    Scenario::NatsClusterIngress | Scenario::NatsClusterEndToEnd
                );
                let nats = Nats::start(if cluster { 3 } else { 1 }).await?;
                let store = nats.store(scenario);
                if matches!(
                    scenario,
                    Scenario::NatsIngress | Scenario::NatsClusterIngress
                ) {
                    self.ingress(dir.path(), &store).await
                } else {
                    self.end_to_end(dir.path(), &store, false).await
                }
            }
        }
        // Children are killed (on drop) before `dir` is removed, the host before its
        // nats-servers.
    }

    async fn ingress(&self, dir: &Path, store: &Store) -> anyhow::Result<Measured> {
        // A downstream that is never called: the connector is paused.
        let config = self.config(dir, store, true, "http://127.0.0.1:9", None)?;
        let mut host = self.switchyard(&config).await?;
        let servers: Vec<u32> = [host.pid()]
            .into_iter()
            .chain(store.pids().iter().copied())
            .collect();
        let (load, others_cpu_pct) = self.load(host.addr, &servers).await?;
        let rss = read_rss(host.pid());
        host.alive()?;
        Ok(Measured {
            load,
            rss,
            delivered: None,
            swaps: None,
            others_cpu_pct,
        })
    }

    /// The counting downstream (`switchyard-bench receiver`) of the end-to-end scenarios.
    async fn receiver(&self) -> anyhow::Result<Child> {
        let mut command = Command::new(&self.bench);
        command.args(["receiver", "--listen", "127.0.0.1:0"]);
        Child::start("receiver", command).await
    }

    /// A native server of this harness (`switchyard-bench baseline|floor`) on `dir`.
    fn native_command(&self, dir: &Path, native: Native) -> Command {
        let mut command = Command::new(&self.bench);
        command
            .arg(native.command())
            .args(["--listen", "127.0.0.1:0", "--secret", BENCH_SECRET])
            .arg("--data")
            .arg(dir.join("data"));
        command
    }

    async fn native(&self, dir: &Path, native: Native) -> anyhow::Result<Measured> {
        let command = self.native_command(dir, native);
        let mut server = Child::start(native.command(), command).await?;
        let (load, others_cpu_pct) = self.load(server.addr, &[server.pid()]).await?;
        let rss = read_rss(server.pid());
        server.alive()?;
        Ok(Measured {
            load,
            rss,
            delivered: None,
            swaps: None,
            others_cpu_pct,
        })
    }

    /// End to end; with `swap`, from a plugins folder of its own that the host watches and
    /// the other build is installed in every [`SWAP_EVERY`] during the load.
    async fn end_to_end(&self, dir: &Path, store: &Store, swap: bool) -> anyhow::Result<Measured> {
        let mut receiver = self.receiver().await?;
        let origin = format!("http://{}", receiver.addr);
        let builds = if swap {
            let a =
                std::fs::read(self.plugins.join("stripe.wasm")).context("reading stripe.wasm")?;
            let b = with_custom_section(&a, "switchyard-bench-build", b"b");
            let dir = dir.join("plugins");
            std::fs::create_dir_all(&dir).context("creating the plugins folder")?;
            install(&dir, &a)?;
            Some((dir, [b, a]))
        } else {
            None
        };
        let config = self.config(
            dir,
            store,
            false,
            &origin,
            builds.as_ref().map(|(dir, _)| dir.as_path()),
        )?;
        let mut host = self.switchyard(&config).await?;
        let http = reqwest::Client::new();
        let swapper = builds.map(|(dir, builds)| {
            let stop = Arc::new(AtomicBool::new(false));
            let task = tokio::spawn(swap_builds(
                http.clone(),
                format!("http://{}/v1/connectors/stripe", host.addr),
                dir,
                builds,
                stop.clone(),
            ));
            (stop, task)
        });
        let servers: Vec<u32> = [host.pid(), receiver.pid()]
            .into_iter()
            .chain(store.pids().iter().copied())
            .collect();
        let (load, others_cpu_pct) = self.load(host.addr, &servers).await?;
        let rss = read_rss(host.pid());
        let load_ended = Instant::now();
        let swaps = match swapper {
            Some((stop, task)) => {
                stop.store(true, Ordering::SeqCst);
                Some(task.await.context("the swapper panicked")??)
            }
            None => None,
        };

        let delivered = self
            .catch_up(&load, load_ended, &mut host, &mut receiver)
            .await?;
        Ok(Measured {
            load,
            rss,
            delivered: Some(delivered),
            swaps,
            others_cpu_pct,
        })
    }

    /// End to end on sled, the host killed with `SIGKILL` halfway through the measured load
    /// and started again on the same data once the load ends (the load generator's requests
    /// in between fail and are not acknowledged, as a sender's would).
    async fn kill_nine(&self, dir: &Path) -> anyhow::Result<Measured> {
        let receiver = self.receiver().await?;
        let origin = format!("http://{}", receiver.addr);
        let store = Store::Sled { durable: true };
        let config = self.config(dir, &store, false, &origin, None)?;
        let mut host = self.switchyard(&config).await?;
        let servers = [host.pid(), receiver.pid()];
        let addr = host.addr;
        let kill_at = self.load.warmup + self.load.duration / 2;
        let killer = async {
            tokio::time::sleep(kill_at).await;
            // `Child::kill` is SIGKILL on Unix: no shutdown, no flush.
            host.process.kill().context("kill -9 of the host")?;
            host.process.wait().context("reaping the killed host")
        };
        let (loaded, killed) = tokio::join!(self.load(addr, &servers), killer);
        let (load, others_cpu_pct) = loaded?;
        killed?;
        let load_ended = Instant::now();
        let host = self.switchyard(&config).await?;
        self.delivered(load, others_cpu_pct, load_ended, host, receiver)
            .await
    }

    /// The forwarder floor (`switchyard-bench floor --forward`) to a receiver, measured as
    /// [`Env::end_to_end`] measures switchyard.
    async fn forwarder_floor(&self, dir: &Path) -> anyhow::Result<Measured> {
        let receiver = self.receiver().await?;
        let mut command = self.native_command(dir, Native::LogFloor);
        command
            .arg("--forward")
            .arg(format!("http://{}/billing", receiver.addr));
        let server = Child::start(Native::LogFloor.command(), command).await?;
        let (load, others_cpu_pct) = self
            .load(server.addr, &[server.pid(), receiver.pid()])
            .await?;
        let load_ended = Instant::now();
        self.delivered(load, others_cpu_pct, load_ended, server, receiver)
            .await
    }

    /// The run of a forwarding scenario once its load ended: the server's RSS now, then
    /// [`Env::catch_up`].
    async fn delivered(
        &self,
        load: LoadReport,
        others_cpu_pct: Option<f64>,
        load_ended: Instant,
        mut server: Child,
        mut receiver: Child,
    ) -> anyhow::Result<Measured> {
        let rss = read_rss(server.pid());
        let delivered = self
            .catch_up(&load, load_ended, &mut server, &mut receiver)
            .await?;
        Ok(Measured {
            load,
            rss,
            delivered: Some(delivered),
            swaps: None,
            others_cpu_pct,
        })
    }

    /// After an end-to-end load: wait (up to [`CATCH_UP_TIMEOUT`]) for the receiver to count
    /// every accepted event, and say how fast they were delivered.
    async fn catch_up(
        &self,
        load: &LoadReport,
        load_ended: Instant,
        server: &mut Child,
        receiver: &mut Child,
    ) -> anyhow::Result<Delivered> {
        let http = reqwest::Client::new();
        let origin = format!("http://{}", receiver.addr);
        let deadline = load_ended + CATCH_UP_TIMEOUT;
        let count = loop {
            server.alive()?;
            receiver.alive()?;
            let count = fetch_count(&http, &origin).await?;
            // Distinct keys: after a crash, a delivery sent twice must not stand in for one
            // never sent.
            if count.distinct >= load.total_ok || Instant::now() >= deadline {
                break count;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let span_ms = count.last_ms.saturating_sub(load.started_at_ms).max(1);
        let end_of_load_ms = load.started_at_ms
            + (load.measured_secs * 1000.0) as u64
            + self.load.warmup.as_millis() as u64;
        Ok(Delivered {
            count: count.count,
            distinct: count.distinct,
            per_sec: count.count as f64 / (span_ms as f64 / 1000.0),
            caught_up: count.distinct >= load.total_ok,
            lag: Duration::from_millis(count.last_ms.saturating_sub(end_of_load_ms)),
        })
    }

    /// Run the load against `addr`; also returns how busy the rest of the machine was
    /// meanwhile (everything but this process and `servers`).
    async fn load(
        &self,
        addr: SocketAddr,
        servers: &[u32],
    ) -> anyhow::Result<(LoadReport, Option<f64>)> {
        let url = format!("http://{addr}/hooks/stripe")
            .parse()
            .context("building the URL")?;
        let before = CpuSample::take(servers);
        let options = LoadOptions {
            url,
            ..self.load.clone()
        };
        let report = match self.load_generator {
            LoadGenerator::Own => load::run(&options).await?,
            LoadGenerator::Wrk => crate::wrk::run(&options, &self.tmp).await?,
        };
        let others = before
            .zip(CpuSample::take(servers))
            .and_then(|(before, after)| after.others_pct_since(&before));
        Ok((report, others))
    }

    async fn switchyard(&self, config: &Path) -> anyhow::Result<Child> {
        let mut command = Command::new(&self.switchyard);
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            // Switchyard's default filter, whatever the caller's environment says.
            .env("RUST_LOG", "info,cranelift=warn,wasmtime=warn");
        // SWITCHYARD_* variables would override the generated config.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SWITCHYARD_") {
                command.env_remove(name);
            }
        }
        Child::start("switchyard", command).await
    }

    /// A config with the Stripe connector forwarding to `origin`; with `watched`, plugins
    /// come from that folder and the host watches it.
    fn config(
        &self,
        dir: &Path,
        store: &Store,
        paused: bool,
        origin: &str,
        watched: Option<&Path>,
    ) -> anyhow::Result<PathBuf> {
        let text = format!(
            r#"[server]
listen = "127.0.0.1:0"
admin_token = {admin_token:?}

[storage]
path = {data:?}
{storage}
[plugins]
dir = {plugins:?}
watch = {watch}

[[connector]]
id = "stripe"
plugin = "stripe.wasm"
secret = {secret:?}
paused = {paused}
allowed_hosts = [{origin:?}]

[connector.settings]
forward_url = "{origin}/billing"
"#,
            data = dir.join("data").display().to_string(),
            storage = store.toml(),
            admin_token = ADMIN_TOKEN,
            plugins = watched.unwrap_or(&self.plugins).display().to_string(),
            watch = watched.is_some(),
            secret = BENCH_SECRET,
        );
        let path = dir.join("switchyard.toml");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// The harness's own servers, against which switchyard is measured.
#[derive(Debug, Clone, Copy)]
enum Native {
    /// HMAC + sled + group commit (`baseline`).
    Baseline,
    /// HMAC + one log file + group commit (`floor`).
    LogFloor,
}

impl Native {
    fn command(self) -> &'static str {
        match self {
            Native::Baseline => "baseline",
            Native::LogFloor => "floor",
        }
    }
}

/// Where a scenario's host keeps its events.
enum Store {
    /// The embedded store under the data dir; `durable = false` skips the fsync before 200.
    Sled { durable: bool },
    /// NATS JetStream at `urls`, `replicas` copies of everything, a deployment prefix of
    /// the run's own.
    Nats {
        urls: Vec<String>,
        replicas: usize,
        prefix: String,
        /// The nats-server processes: their CPU is the scenario's, not "other processes'".
        pids: Vec<u32>,
    },
}

impl Store {
    /// Processes besides the host that serve the scenario.
    fn pids(&self) -> &[u32] {
        match self {
            Store::Sled { .. } => &[],
            Store::Nats { pids, .. } => pids,
        }
    }

    /// The `[storage]` keys besides `path`.
    fn toml(&self) -> String {
        match self {
            Store::Sled { durable } => format!("durable = {durable}\n"),
            Store::Nats {
                urls,
                replicas,
                prefix,
                ..
            } => format!(
                "backend = \"nats\"\nnats_url = {urls:?}\nreplicas = {replicas}\nnats_prefix = {prefix:?}\n"
            ),
        }
    }
}

/// The nats-servers of one NATS scenario run: one, or a 3-node cluster, each
/// `sync_interval: always` with a temp store (`make nats-server` installs the binary; the
/// machine's shared server is never used). Killed when dropped.
enum Nats {
    Single(switchyard_tests::nats::NatsServer),
    Cluster(switchyard_tests::nats::NatsCluster),
}

impl Nats {
    async fn start(nodes: usize) -> anyhow::Result<Nats> {
        use switchyard_tests::nats::{NatsCluster, NatsServer};
        let nats = tokio::task::spawn_blocking(move || {
            if nodes == 1 {
                Nats::Single(NatsServer::start())
            } else {
                Nats::Cluster(NatsCluster::start(nodes))
            }
        })
        .await
        .context("starting nats-server (is it installed? `make nats-server`)")?;
        // A new cluster elects its JetStream leader before it takes streams.
        switchyard_tests::nats::wait_jetstream_ready(&nats.urls()).await;
        Ok(nats)
    }

    fn urls(&self) -> Vec<String> {
        match self {
            Nats::Single(server) => vec![server.url()],
            Nats::Cluster(cluster) => cluster.urls(),
        }
    }

    fn store(&self, scenario: Scenario) -> Store {
        let urls = self.urls();
        let pids = match self {
            Nats::Single(server) => server.pid().into_iter().collect(),
            Nats::Cluster(cluster) => cluster.nodes.iter().filter_map(|n| n.pid()).collect(),
        };
        Store::Nats {
            replicas: urls.len(),
            urls,
            prefix: format!("bench_{}", scenario.name().replace('-', "_")),
            pids,
        }
    }
}

/// Write `wasm` as `stripe.wasm` in `dir` the way operators should: a temporary name in the
/// same folder, then a rename, so the watcher never sees half a file.
fn install(dir: &Path, wasm: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(".stripe.wasm.tmp");
    std::fs::write(&tmp, wasm).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("stripe.wasm")).context("installing stripe.wasm")
}

/// `wasm` with a custom section appended (a name and bytes the runtime ignores): the same
/// connector with another digest.
fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    use wasm_encoder::ComponentSection as _;
    let mut out = wasm.to_vec();
    wasm_encoder::CustomSection {
        name: name.into(),
        data: payload.into(),
    }
    .append_to_component(&mut out);
    out
}

/// Install `builds` in turn every [`SWAP_EVERY`] until `stop`; before each install, ask the
/// admin API which digest is serving, to count the swaps that took effect.
async fn swap_builds(
    http: reqwest::Client,
    connector_url: String,
    dir: PathBuf,
    builds: [Vec<u8>; 2],
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Swaps> {
    let digest = || async {
        let response = http
            .get(&connector_url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?
            .error_for_status()?;
        let body: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
        anyhow::Ok(body["digest"].as_str().unwrap_or_default().to_string())
    };
    let mut swaps = Swaps {
        installed: 0,
        seen: 0,
    };
    let mut serving = digest().await.context("asking for the serving digest")?;
    loop {
        tokio::time::sleep(SWAP_EVERY).await;
        let now = digest().await.context("asking for the serving digest")?;
        if now != serving {
            swaps.seen += 1;
            serving = now;
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(swaps);
        }
        let dir = dir.clone();
        let build = builds[swaps.installed as usize % 2].clone();
        tokio::task::spawn_blocking(move || install(&dir, &build))
            .await
            .context("the install task panicked")??;
        swaps.installed += 1;
    }
}

async fn fetch_count(http: &reqwest::Client, origin: &str) -> anyhow::Result<Count> {
    let text = http
        .get(format!("{origin}/count"))
        .send()
        .await
        .context("GET /count")?
        .text()
        .await
        .context("GET /count body")?;
    serde_json::from_str(&text).with_context(|| format!("GET /count answered {text:?}"))
}

/// VmRSS and VmHWM from `/proc/PID/status` (Linux only; `None` elsewhere).
pub(crate) fn read_rss(pid: u32) -> Option<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(Rss {
        current_kb: field("VmRSS:")?,
        peak_kb: field("VmHWM:")?,
    })
}

/// CPU time from `/proc`, in clock ticks (USER_HZ): the machine's, and that of every
/// user-space process that is not the benchmark or one of its servers.
///
/// Kernel threads are left out (their work here is mostly our own fsyncs and loopback
/// traffic). A process that exits during the load is still counted: its time moves into
/// its parent's `cutime`/`cstime` when it is reaped (cargo reaps each rustc).
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    /// Busy and idle time of every CPU.
    total: u64,
    /// User + system time of the other processes, their reaped children included.
    others: u64,
}

/// `PF_KTHREAD` in `/proc/PID/stat`'s flags.
const PF_KTHREAD: u64 = 0x0020_0000;

impl CpuSample {
    fn take(servers: &[u32]) -> Option<CpuSample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let total = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .filter_map(|f| f.parse::<u64>().ok())
            .sum();
        let ours: Vec<u32> = servers
            .iter()
            .copied()
            .chain([std::process::id()])
            .collect();
        let others = std::fs::read_dir("/proc")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| !ours.contains(pid))
            .filter_map(process_ticks)
            .sum();
        Some(CpuSample { total, others })
    }

    fn others_pct_since(&self, before: &CpuSample) -> Option<f64> {
        let total = self.total.checked_sub(before.total).filter(|t| *t > 0)?;
        let others = self.others.saturating_sub(before.others);
        Some(100.0 * others as f64 / total as f64)
    }
}

/// utime + stime + cutime + cstime of a user-space process, from `/proc/PID/stat`;
/// `None` for kernel threads and processes that are gone.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), starting at field 3 (state).
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3)?.parse::<u64>().ok();
    if field(9)? & PF_KTHREAD != 0 {
        return None;
    }
    Some(field(14)? + field(15)? + field(16)? + field(17)?)
}

/// A server running as a child process; killed when dropped, whatever happened.
struct Child {
    name: &'static str,
    process: std::process::Child,
    addr: SocketAddr,
    /// The last lines of its stderr, for error messages.
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Child {
    /// Start it and wait for its `{name} listening addr=…` line.
    async fn start(name: &'static str, mut command: Command) -> anyhow::Result<Child> {
        use std::io::BufRead as _;
        let mut process = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stderr = process.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = std_mpsc::channel();
        let marker = format!("{name} listening");
        let sink = log.clone();
        // Drains stderr for the child's whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains(&marker)
                    && let Some(addr) = line
                        .split("addr=")
                        .nth(1)
                        .and_then(|rest| rest.split_whitespace().next())
                        .and_then(|addr| addr.parse::<SocketAddr>().ok())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
                let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
                if sink.len() == LOG_LINES {
                    sink.pop_front();
                }
                sink.push_back(line);
            }
        });
        let mut child = Child {
            name,
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let started = Instant::now();
        loop {
            match rx.try_recv() {
                Ok(addr) => {
                    child.addr = addr;
                    return Ok(child);
                }
                Err(std_mpsc::TryRecvError::Empty) if started.elapsed() < START_TIMEOUT => {
                    child.alive()?;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(_) => {
                    child.alive()?;
                    bail!(
                        "{name} did not say where it listens within {START_TIMEOUT:?}; its log:\n{}",
                        child.log_tail()
                    );
                }
            }
        }
    }

    fn pid(&self) -> u32 {
        self.process.id()
    }

    /// An error (with its log) if it has exited.
    fn alive(&mut self) -> anyhow::Result<()> {
        match self.process.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(anyhow!(
                "{} exited ({status}); its log:\n{}",
                self.name,
                self.log_tail()
            )),
            Err(err) => Err(anyhow!("{}: {err}", self.name)),
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_section_is_appended_whole() {
        let module = b"\0asm\x01\0\0\0";
        let out = with_custom_section(module, "build", b"b");
        // id 0, size 7 = name length (1) + "build" (5) + payload (1).
        assert_eq!(&out[..8], module);
        assert_eq!(&out[8..], b"\x00\x07\x05buildb");

        let long = with_custom_section(module, "n", &[7; 200]);
        // 1 + 1 + 200 = 202 bytes: a two-byte size.
        assert_eq!(&long[8..12], &[0x00, 0xca, 0x01, 0x01]);
        assert_eq!(long.len(), 8 + 3 + 202);
    }
}
