//! `switchyard-bench`: the benchmark harness behind `make bench` (see `BENCHMARKS.md`).
//!
//! # Layout
//! - [`events`]: unique, signed Stripe events, prepared before the clock starts;
//! - [`load`]: the load generator (`load`), fixed connections for a fixed time;
//! - [`baseline`]: the native server switchyard's ingress is compared with (`baseline`);
//! - [`floor`]: the native floors of ingress and of end to end (`floor`, issue 21);
//! - [`wrk`]: the second, independent load generator (`run --load-generator wrk`);
//! - [`receiver`]: the counting downstream of the end-to-end scenario (`receiver`);
//! - [`connector_cost`]: what a connector costs the host, Rust against JavaScript
//!   (`connector-cost`);
//! - [`rebuild`]: how long the store takes to rebuild its index from the inbox (`rebuild`);
//! - [`run`]: starts the real `switchyard` binary and the other two as child processes,
//!   runs every scenario, and [`report`] turns the runs into the table in `BENCHMARKS.md`.
//!
//! The criterion micro-benchmarks live in `benches/micro.rs`.

mod baseline;
mod connector_cost;
mod events;
mod floor;
mod load;
mod rebuild;
mod receiver;
mod report;
mod run;
mod wrk;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// The same allocator as the `switchyard` binary, so the baseline ratio compares the
/// pipelines and not two allocators (the load generator and receiver use it too).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The Stripe signing secret every scenario uses unless told otherwise.
pub const BENCH_SECRET: &str = "whsec_bench_only_secret";

#[derive(Parser)]
#[command(
    name = "switchyard-bench",
    about = "Benchmarks for switchyard",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive a fixed number of keep-alive connections with unique signed Stripe events.
    Load {
        /// e.g. http://127.0.0.1:8080/hooks/stripe
        #[arg(long)]
        url: http::Uri,
        /// Stripe signing secret (`whsec_…`) the server checks.
        #[arg(long, default_value = BENCH_SECRET)]
        secret: String,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Measured time, after the warmup.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        /// Time before measuring starts; its requests are not counted.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        warmup: Duration,
        /// Events to pre-sign (default: enough for 80,000 req/s over warmup + duration).
        #[arg(long)]
        events: Option<usize>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The native baseline: HMAC check + sled insert + group commit, no wasm.
    Baseline {
        #[command(flatten)]
        native: NativeArgs,
    },
    /// The native floors (issue 21): HMAC check + one append-only log file + group commit
    /// (the log floor); with --forward, then POST each accepted event there until a 2xx and
    /// log its completion (the forwarder floor).
    Floor {
        #[command(flatten)]
        native: NativeArgs,
        /// Forward each accepted event to this URL.
        #[arg(long)]
        forward: Option<String>,
        /// Tasks POSTing to --forward.
        #[arg(long, default_value_t = 64)]
        forwarders: usize,
    },
    /// A downstream that answers 200 to everything; `GET /count` tells how many it got.
    Receiver {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Fill a store with events, remove its index, and time the rebuild from the inbox.
    Rebuild {
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// The share of events settled (one succeeded delivery each) before the rebuild.
        #[arg(long, default_value_t = 0.9)]
        settled: f64,
        /// Where the store is made (on a real disk).
        #[arg(long, default_value = "target/bench-tmp")]
        tmp: PathBuf,
    },
    /// What a connector build costs the host (load, cached load, `handle`, memory), for
    /// the Mailchimp connector in Rust and in JavaScript by default; and whether the
    /// JavaScript one slows the Rust one.
    ConnectorCost {
        /// Builds of the Mailchimp connector (the first is timed again beside the last).
        #[arg(long = "plugin", default_values = ["dist/plugins/mailchimp.wasm", "dist/plugins/mailchimp-js.wasm"])]
        plugins: Vec<PathBuf>,
        /// `handle` calls per build.
        #[arg(long, default_value_t = 500)]
        calls: usize,
        /// Markdown file the results are appended to (else only printed).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run every scenario against the release binary and append the results to --out.
    Run {
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        warmup: Duration,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Markdown file the results section is appended to.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        /// The host binary (`cargo build --release -p switchyard`).
        #[arg(long, default_value = "target/release/switchyard")]
        switchyard: PathBuf,
        /// Folder holding stripe.wasm (`make plugins`).
        #[arg(long, default_value = "dist/plugins")]
        plugins: PathBuf,
        /// Where each run's fresh data dir is made. Keep it on a real disk, not a tmpfs,
        /// or fsync costs nothing.
        #[arg(long, default_value = "target/bench-tmp")]
        tmp: PathBuf,
        /// Only these scenarios (repeatable): ingress, ingress-no-flush, baseline, log-floor,
        /// end-to-end, forwarder-floor, hot-swap, nats-r1-ingress, nats-r1-end-to-end, nats-r3-ingress, nats-r3-end-to-end.
        #[arg(long = "scenario")]
        scenarios: Vec<run::Scenario>,
        /// `own` (switchyard-bench load, in this process) or `wrk` (Debian's wrk with a
        /// Lua script over pre-signed events, a second opinion).
        #[arg(long, value_enum, default_value_t = run::LoadGenerator::Own)]
        load_generator: run::LoadGenerator,
    },
}

/// What both native servers (`baseline`, `floor`) take.
#[derive(clap::Args)]
struct NativeArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Folder for the server's store (sled, or the log file).
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value = BENCH_SECRET)]
    secret: String,
}

fn parse_duration(text: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting tokio: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.command.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

impl Command {
    async fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Load {
                url,
                secret,
                connections,
                duration,
                warmup,
                events,
                json,
            } => {
                let report = load::run(&load::LoadOptions {
                    url,
                    secret,
                    connections,
                    duration,
                    warmup,
                    events,
                })
                .await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    println!("{}", report.summary());
                }
                Ok(())
            }
            Command::Baseline { native } => {
                baseline::serve(native.listen, native.data, native.secret).await
            }
            Command::Floor {
                native,
                forward,
                forwarders,
            } => {
                let forward = forward.map(|url| floor::Forward {
                    url,
                    tasks: forwarders,
                });
                floor::serve(native.listen, native.data, native.secret, forward).await
            }
            Command::Receiver { listen } => receiver::serve(listen).await,
            Command::ConnectorCost {
                plugins,
                calls,
                out,
            } => connector_cost::run(&plugins, calls, out.as_deref()).await,
            Command::Rebuild {
                events,
                settled,
                tmp,
            } => rebuild::run(&tmp, events, settled).await,
            Command::Run {
                runs,
                duration,
                warmup,
                connections,
                out,
                switchyard,
                plugins,
                tmp,
                scenarios,
                load_generator,
            } => {
                run::run(run::RunOptions {
                    load_generator,
                    runs,
                    duration,
                    warmup,
                    connections,
                    out,
                    switchyard,
                    plugins,
                    tmp,
                    scenarios,
                })
                .await
            }
        }
    }
}
