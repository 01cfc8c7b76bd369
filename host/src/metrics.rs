//! `GET /metrics`: what the host did, in the Prometheus text format.
//!
//! Each host (`App`) owns its recorder (several hosts run in one test process, and a library
//! should not take the process-wide one); the stages report through [`Metrics`] and the
//! gauges are read when scraped. The route needs no token: it is outside `/v1`, as
//! scrapers expect, and carries counts and connector ids only, never payloads or secrets.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `switchyard_webhooks_total` | `connector`, `outcome` | `POST /hooks/…` answers ([`WebhookOutcome`]): `accepted`, `duplicate`, `rejected` (401), `too_large` (413), `timeout` (408), `unavailable` (503), `error` (any other), `unknown_connector` (404, `connector=""`) |
//! | `switchyard_webhook_duration_seconds` | `connector` | histogram: from the request to its answer, for every answer but 404 |
//! | `switchyard_connector_calls_total` | `connector`, `outcome` | `handle` calls ([`CallOutcome`]): `deliveries`, `retry`, `reject`, `trap`, `deadline`, `unavailable`, `lost`, `oversized` |
//! | `switchyard_connector_call_duration_seconds` | `connector` | histogram of the calls |
//! | `switchyard_delivery_attempts_total` | `connector`, `outcome` | outbound attempts, by the delivery's status after it: `succeeded`, `retrying`, `dead` |
//! | `switchyard_delivery_duration_seconds` | `connector` | histogram of the attempts |
//! | `switchyard_dispatch_queue_depth` | | events waiting for a dispatch worker |
//! | `switchyard_connector_backlog` | `connector` | the same, by connector (sled; NATS counts it in the server, per consumer) |
//! | `switchyard_store_commits_total` | | group commits of the embedded store (one `fdatasync` each) |
//! | `switchyard_store_committed_events_total` | | requests those commits answered: divided by the commits, the group size |
//! | `switchyard_store_sync_microseconds_total` | | time in the commits' `fdatasync` (µs, an integer counter): divided by the commits, the sync time |
//! | `switchyard_connector_up` | `connector` | 1 while its plugin is loaded and serving |
//! | `switchyard_connector_paused` | `connector` | 1 while paused |
//! | `switchyard_reloads_total` | | reloads since start (file changes, API, `SIGHUP`) |
//! | `switchyard_build_info` | `version` | always 1 |

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::destination::{BreakerState, Destinations};
use crate::plugin::Registry;
use crate::store::Storage;

/// Histogram buckets, in seconds: from well under a millisecond (an ingress answer) to the
/// longest outbound timeout worth telling apart.
const BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histogram samples are folded into their buckets (the recorder keeps them
/// until then).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

pub use crate::store::CallOutcome;
use crate::store::DeliveryStatus;

pub use crate::activity::WebhookOutcome;

/// A closed set of outcomes a [`Family`] counts: each has its series registered up front,
/// and a count is an index, not a lookup by name.
pub trait Outcome: Copy + 'static {
    /// The labels, in index order.
    const NAMES: &'static [&'static str];
    fn index(self) -> usize;
}

/// The names of `all`, in order (for [`Outcome::NAMES`]).
macro_rules! names {
    ($all:expr, $n:expr) => {{
        let all = $all;
        let mut names = [""; $n];
        let mut i = 0;
        while i < $n {
            names[i] = all[i].as_str();
            i += 1;
        }
        names
    }};
}

impl Outcome for WebhookOutcome {
    const NAMES: &'static [&'static str] = &names!(WebhookOutcome::ALL, 7);
    fn index(self) -> usize {
        self as usize
    }
}

impl Outcome for CallOutcome {
    const NAMES: &'static [&'static str] = &names!(CallOutcome::ALL, 8);
    fn index(self) -> usize {
        self as usize
    }
}

/// A delivery attempt is counted by the status it left its delivery in: `succeeded`,
/// `retrying` (another try is due) or `dead`. A try never leaves one `pending`; it would
/// count as `retrying`.
impl Outcome for DeliveryStatus {
    const NAMES: &'static [&'static str] = &["succeeded", "retrying", "dead"];
    fn index(self) -> usize {
        match self {
            DeliveryStatus::Succeeded => 0,
            DeliveryStatus::Retrying | DeliveryStatus::Pending => 1,
            DeliveryStatus::Dead => 2,
        }
    }
}

/// A host's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    webhooks: Family<WebhookOutcome>,
    calls: Family<CallOutcome>,
    deliveries: Family<DeliveryStatus>,
    /// The last 24 hours by the minute, for the console's chart (`GET /v1/activity`).
    pub activity: crate::activity::Activity,
}

/// A counter by connector and outcome, and a histogram by connector. Each connector's
/// series are registered once and kept: building a label set and looking it up in the
/// registry on every webhook cost the ingress a few per cent (BENCHMARKS.md).
struct Family<O> {
    total: &'static str,
    duration: &'static str,
    by_connector: RwLock<HashMap<String, Arc<Series>>>,
    outcome: std::marker::PhantomData<O>,
}

struct Series {
    duration: Histogram,
    /// In the order of [`Outcome::NAMES`].
    outcomes: Vec<Counter>,
}

impl<O: Outcome> Family<O> {
    fn new(total: &'static str, duration: &'static str) -> Self {
        Family {
            total,
            duration,
            by_connector: RwLock::default(),
            outcome: std::marker::PhantomData,
        }
    }

    fn series(&self, recorder: &PrometheusRecorder, connector: &str) -> Arc<Series> {
        let known = self.by_connector.read().unwrap_or_else(|p| p.into_inner());
        if let Some(series) = known.get(connector) {
            return series.clone();
        }
        drop(known);
        let series = metrics::with_local_recorder(recorder, || self.register(connector));
        self.by_connector
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(connector.to_owned())
            .or_insert_with(|| Arc::new(series))
            .clone()
    }

    /// A connector's series, in the recorder [`Family::series`] runs it with.
    fn register(&self, connector: &str) -> Series {
        let label = || connector.to_owned();
        Series {
            duration: histogram!(self.duration, "connector" => label()),
            outcomes: O::NAMES
                .iter()
                .map(|&outcome| counter!(self.total, "connector" => label(), "outcome" => outcome))
                .collect(),
        }
    }

    fn record(&self, recorder: &PrometheusRecorder, connector: &str, outcome: O, took: Duration) {
        let series = self.series(recorder, connector);
        series.duration.record(took);
        series.outcomes[outcome.index()].increment(1);
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics {
            recorder,
            handle,
            activity: crate::activity::Activity::default(),
            webhooks: Family::new(
                "switchyard_webhooks_total",
                "switchyard_webhook_duration_seconds",
            ),
            calls: Family::new(
                "switchyard_connector_calls_total",
                "switchyard_connector_call_duration_seconds",
            ),
            deliveries: Family::new(
                "switchyard_delivery_attempts_total",
                "switchyard_delivery_duration_seconds",
            ),
        };
        metrics.with(|| {
            describe_counter!("switchyard_webhooks_total", "Webhooks received, by answer.");
            describe_histogram!(
                "switchyard_webhook_duration_seconds",
                Unit::Seconds,
                "Time from a webhook's arrival to its answer."
            );
            describe_counter!(
                "switchyard_connector_calls_total",
                "Connector `handle` calls, by outcome."
            );
            describe_histogram!(
                "switchyard_connector_call_duration_seconds",
                Unit::Seconds,
                "Duration of connector `handle` calls."
            );
            describe_counter!(
                "switchyard_delivery_attempts_total",
                "Outbound delivery attempts, by outcome."
            );
            describe_histogram!(
                "switchyard_delivery_duration_seconds",
                Unit::Seconds,
                "Duration of outbound delivery attempts."
            );
            describe_gauge!(
                "switchyard_dispatch_queue_depth",
                "Events waiting for a dispatch worker."
            );
            describe_gauge!(
                "switchyard_connector_backlog",
                "Events waiting for a dispatch worker, by connector."
            );
            describe_counter!(
                "switchyard_store_commits_total",
                "Group commits of the embedded store, one fdatasync each."
            );
            describe_counter!(
                "switchyard_store_committed_events_total",
                "Requests answered by the embedded store's group commits."
            );
            describe_counter!(
                "switchyard_store_sync_microseconds_total",
                "Time spent in the group commits' fdatasync, in microseconds."
            );
            describe_gauge!(
                "switchyard_connector_up",
                "1 while the connector's plugin is loaded and serving."
            );
            describe_gauge!(
                "switchyard_connector_paused",
                "1 while the connector is paused."
            );
            describe_counter!(
                "switchyard_reloads_total",
                "Reloads since start (file changes, API, SIGHUP)."
            );
            describe_gauge!("switchyard_build_info", "The running version; always 1.");
        });
        metrics
    }

    fn with<T>(&self, record: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, record)
    }

    /// A `POST /hooks/{connector}` was answered.
    pub fn webhook(&self, connector: &str, outcome: WebhookOutcome, took: Duration) {
        self.webhooks
            .record(&self.recorder, connector, outcome, took);
        self.activity.webhook(outcome);
    }

    /// A `POST /hooks/{connector}` named no enabled connector: counted without the id,
    /// which any sender can make up, and not timed.
    pub fn unknown_webhook(&self) {
        self.with(|| {
            counter!("switchyard_webhooks_total", "connector" => "", "outcome" => "unknown_connector")
                .increment(1);
        });
    }

    /// A connector's `handle` returned (or could not run).
    pub fn connector_call(&self, connector: &str, outcome: CallOutcome, took: Duration) {
        self.calls.record(&self.recorder, connector, outcome, took);
    }

    /// An outbound delivery attempt ended.
    pub fn delivery_attempt(&self, connector: &str, outcome: DeliveryStatus, took: Duration) {
        self.deliveries
            .record(&self.recorder, connector, outcome, took);
        self.activity
            .delivery_attempt(outcome, took.as_millis() as u64);
    }

    /// The breaker disabled a destination.
    pub fn destination_disabled(&self, destination: &str) {
        self.with(|| {
            counter!("switchyard_destination_disabled_total", "destination" => destination.to_owned())
                .increment(1)
        });
    }

    /// The text a scrape gets, gauges read now from what they measure.
    pub fn render(&self, gauges: Gauges<'_>) -> String {
        self.with(|| {
            let backlog = gauges.storage.dispatch_backlog();
            gauge!("switchyard_dispatch_queue_depth")
                .set(backlog.iter().map(|(_, n)| *n).sum::<usize>() as f64);
            for (connector, waiting) in backlog {
                gauge!("switchyard_connector_backlog", "connector" => connector)
                    .set(waiting as f64);
            }
            if let Some(stats) = gauges.storage.commit_stats() {
                use std::sync::atomic::Ordering::Relaxed;
                counter!("switchyard_store_commits_total").absolute(stats.commits.load(Relaxed));
                counter!("switchyard_store_committed_events_total")
                    .absolute(stats.events.load(Relaxed));
                counter!("switchyard_store_sync_microseconds_total")
                    .absolute(stats.sync_micros.load(Relaxed));
            }
            for connector in gauges.connectors.all() {
                let id = connector.config.id.clone();
                let up = connector.unavailable().is_none();
                gauge!("switchyard_connector_up", "connector" => id.clone())
                    .set(f64::from(u8::from(up)));
                gauge!("switchyard_connector_paused", "connector" => id)
                    .set(f64::from(u8::from(connector.paused)));
            }
            for destination in gauges.destinations.all() {
                let state = destination.state();
                let id = state.id.clone();
                let position = match state.state {
                    BreakerState::Closed => 0.0,
                    BreakerState::HalfOpen => 1.0,
                    BreakerState::Open => 2.0,
                    BreakerState::Disabled => 3.0,
                };
                gauge!("switchyard_destination_state", "destination" => id.clone()).set(position);
                gauge!("switchyard_destination_in_flight", "destination" => id.clone())
                    .set(state.in_flight as f64);
                for (outcome, n) in [
                    ("succeeded", state.counts.succeeded),
                    ("failed", state.counts.failed),
                    ("deferred", state.counts.deferred),
                ] {
                    counter!("switchyard_destination_tries_total", "destination" => id.clone(), "outcome" => outcome)
                        .absolute(n);
                }
            }
            counter!("switchyard_reloads_total").absolute(gauges.reloads);
            gauge!("switchyard_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        });
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// What a scrape reads at the time of the scrape.
pub struct Gauges<'a> {
    pub storage: &'a dyn Storage,
    pub connectors: &'a Registry,
    pub destinations: &'a Destinations,
    /// Reloads done since start.
    pub reloads: u64,
}

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Metrics {
    /// Fold histogram samples into their buckets every [`UPKEEP_EVERY`], or the samples of
    /// an unscraped host pile up (run it as a background task).
    pub async fn upkeep(&self) {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            self.handle.run_upkeep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each outcome counts in its own series, under its own name: the label a scrape shows
    /// is the name stored in the record (issue 20.1).
    #[test]
    fn every_outcome_has_its_own_series_under_its_name() {
        fn check<O: Outcome + std::fmt::Debug>(all: &[O], name: impl Fn(O) -> &'static str) {
            let mut seen = std::collections::HashSet::new();
            for &outcome in all {
                assert_eq!(O::NAMES[outcome.index()], name(outcome), "{outcome:?}");
                seen.insert(outcome.index());
            }
            assert_eq!(seen.len(), O::NAMES.len(), "every series is used");
        }
        check(&WebhookOutcome::ALL, WebhookOutcome::as_str);
        check(&CallOutcome::ALL, CallOutcome::as_str);
        check(
            &[
                DeliveryStatus::Succeeded,
                DeliveryStatus::Retrying,
                DeliveryStatus::Dead,
            ],
            DeliveryStatus::as_str,
        );
    }

    #[test]
    fn the_scrape_lists_each_outcome_of_a_connector_once_counted() {
        let metrics = Metrics::new();
        metrics.connector_call("stripe", CallOutcome::Oversized, Duration::from_millis(2));
        metrics.webhook("stripe", WebhookOutcome::Timeout, Duration::from_millis(1));
        let text = metrics.handle.render();
        for outcome in CallOutcome::ALL {
            let line = format!(
                "switchyard_connector_calls_total{{connector=\"stripe\",outcome=\"{outcome}\"}}"
            );
            let want = if outcome == CallOutcome::Oversized {
                1
            } else {
                0
            };
            assert!(
                text.contains(&format!("{line} {want}")),
                "{line} {want}\n{text}"
            );
        }
        assert!(
            text.contains("switchyard_webhooks_total{connector=\"stripe\",outcome=\"timeout\"} 1"),
            "{text}"
        );
    }
}
