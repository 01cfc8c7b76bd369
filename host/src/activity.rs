//! What this host did, minute by minute, over the last 24 hours: webhooks answered by
//! outcome, delivery attempts by outcome, and how long the attempts took. It is what the
//! console's chart draws (`GET /v1/activity`), kept in memory beside the Prometheus
//! counters ([`crate::metrics::Metrics`] records both at the same call), so answering it
//! reads no log.
//!
//! It starts empty when the host starts and counts this host only: the event log (and
//! the connectors' counts, `GET /v1/connectors`) is the durable record; this is the
//! recent pulse. A minute is one slot of a ring of 1,440, so memory is fixed (~300 KB)
//! whatever the traffic, and recording is a short lock and a few additions.

use std::sync::Mutex;

use crate::store::DeliveryStatus;
use serde::Serialize;
use utoipa::ToSchema;

/// How a `POST /hooks/{connector}` to an enabled connector was answered, as
/// `switchyard_webhooks_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Accepted,
    Duplicate,
    /// 401: the signature did not verify.
    Rejected,
    /// 413.
    TooLarge,
    /// 408: the body did not arrive in time.
    Timeout,
    /// 503: it could not be stored.
    Unavailable,
    /// Any other error answer.
    Error,
}

impl WebhookOutcome {
    /// Every outcome, in declaration order.
    pub const ALL: [WebhookOutcome; 7] = [
        WebhookOutcome::Accepted,
        WebhookOutcome::Duplicate,
        WebhookOutcome::Rejected,
        WebhookOutcome::TooLarge,
        WebhookOutcome::Timeout,
        WebhookOutcome::Unavailable,
        WebhookOutcome::Error,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Accepted => "accepted",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::Rejected => "rejected",
            WebhookOutcome::TooLarge => "too_large",
            WebhookOutcome::Timeout => "timeout",
            WebhookOutcome::Unavailable => "unavailable",
            WebhookOutcome::Error => "error",
        }
    }
}

const MINUTE_MS: u64 = 60_000;

/// Minutes kept.
const MINUTES: usize = 24 * 60;

/// Upper bounds (ms) of the latency buckets; the last bucket holds everything slower.
const LATENCY_BOUNDS_MS: [u64; 14] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000,
];

/// How a webhook was answered, as the chart groups it.
#[derive(Debug, Clone, Copy)]
enum Webhook {
    Accepted,
    Duplicate,
    Rejected,
    Failed,
}

impl Webhook {
    /// From the outcomes `switchyard_webhooks_total` counts.
    fn of(outcome: WebhookOutcome) -> Webhook {
        match outcome {
            WebhookOutcome::Accepted => Webhook::Accepted,
            WebhookOutcome::Duplicate => Webhook::Duplicate,
            WebhookOutcome::Rejected => Webhook::Rejected,
            // The sender was not served.
            WebhookOutcome::TooLarge
            | WebhookOutcome::Timeout
            | WebhookOutcome::Unavailable
            | WebhookOutcome::Error => Webhook::Failed,
        }
    }
}

/// How a delivery attempt ended, as `switchyard_delivery_attempts_total` counts it.
#[derive(Debug, Clone, Copy)]
enum Attempt {
    Succeeded,
    Retrying,
    Dead,
}

impl Attempt {
    fn of(outcome: DeliveryStatus) -> Attempt {
        match outcome {
            DeliveryStatus::Succeeded => Attempt::Succeeded,
            DeliveryStatus::Dead => Attempt::Dead,
            DeliveryStatus::Retrying | DeliveryStatus::Pending => Attempt::Retrying,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The minute (unix ms / 60,000) these counts are for; another minute's counts are
    /// stale and read as zeros.
    minute: u64,
    webhooks: [u32; 4],
    attempts: [u32; 3],
    latency: [u32; LATENCY_BOUNDS_MS.len() + 1],
}

impl Slot {
    fn add(&mut self, other: &Slot) {
        let add = |a: &mut [u32], b: &[u32]| a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        add(&mut self.webhooks, &other.webhooks);
        add(&mut self.attempts, &other.attempts);
        add(&mut self.latency, &other.latency);
    }
}

#[derive(Debug)]
pub struct Activity {
    started_at: u64,
    slots: Mutex<Box<[Slot]>>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new(crate::time::now_ms())
    }
}

impl Activity {
    fn new(started_at: u64) -> Activity {
        Activity {
            started_at,
            slots: Mutex::new(vec![Slot::default(); MINUTES].into_boxed_slice()),
        }
    }

    fn with_slot(&self, at: u64, f: impl FnOnce(&mut Slot)) {
        let minute = at / MINUTE_MS;
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut slots[(minute % MINUTES as u64) as usize];
        if minute < slot.minute {
            // A day older than what the slot holds (the wall clock stepped back): the
            // newer minute's counts stay.
            return;
        }
        if slot.minute != minute {
            *slot = Slot {
                minute,
                ..Slot::default()
            };
        }
        f(slot);
    }

    /// A `POST /hooks/{connector}` was answered with `outcome`.
    pub fn webhook(&self, outcome: WebhookOutcome) {
        self.webhook_at(crate::time::now_ms(), outcome);
    }

    fn webhook_at(&self, at: u64, outcome: WebhookOutcome) {
        self.with_slot(at, |slot| slot.webhooks[Webhook::of(outcome) as usize] += 1);
    }

    /// A delivery attempt ended with `outcome` after `took_ms`.
    pub fn delivery_attempt(&self, outcome: DeliveryStatus, took_ms: u64) {
        self.attempt_at(crate::time::now_ms(), outcome, took_ms);
    }

    fn attempt_at(&self, at: u64, outcome: DeliveryStatus, took_ms: u64) {
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|&bound| took_ms <= bound)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.with_slot(at, |slot| {
            slot.attempts[Attempt::of(outcome) as usize] += 1;
            slot.latency[bucket] += 1;
        });
    }

    /// The last `window` as `window / step` buckets, oldest first, the newest ending with
    /// the current minute.
    pub fn report(&self, window: Window) -> ActivityReport {
        self.report_at(crate::time::now_ms(), window)
    }

    fn report_at(&self, now: u64, window: Window) -> ActivityReport {
        let (minutes, step) = window.shape();
        let current = now / MINUTE_MS;
        let first = (current + 1).saturating_sub(minutes);
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = Slot::default();
        let buckets = (0..minutes / step)
            .map(|i| {
                let start = first + i * step;
                let mut sum = Slot::default();
                for minute in start..start + step {
                    let slot = &slots[(minute % MINUTES as u64) as usize];
                    if slot.minute == minute {
                        sum.add(slot);
                    }
                }
                total.add(&sum);
                Bucket::of(start * MINUTE_MS, &sum)
            })
            .collect();
        drop(slots);
        ActivityReport {
            window: window.name().to_string(),
            step_seconds: step * 60,
            started_at: self.started_at,
            buckets,
            total: Bucket::of(first * MINUTE_MS, &total),
        }
    }
}

/// The spans `GET /v1/activity?window=` takes.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, ToSchema)]
pub enum Window {
    /// The last hour, by the minute.
    #[default]
    #[serde(rename = "1h")]
    Hour,
    /// The last 24 hours, by the quarter hour.
    #[serde(rename = "24h")]
    Day,
}

impl Window {
    /// (minutes, minutes per bucket)
    fn shape(self) -> (u64, u64) {
        match self {
            Window::Hour => (60, 1),
            Window::Day => (MINUTES as u64, 15),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
        }
    }
}

/// `GET /v1/activity`: this host's webhooks and delivery attempts over a window, since it
/// started.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityReport {
    /// `1h` or `24h`.
    pub window: String,
    /// Each bucket's span.
    pub step_seconds: u64,
    /// When this host started (unix ms): nothing before it is counted.
    pub started_at: u64,
    /// Oldest first; the last one holds the current minute.
    pub buckets: Vec<Bucket>,
    /// The whole window.
    pub total: Bucket,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Bucket {
    /// Its start (unix ms).
    pub at: u64,
    pub webhooks: WebhookCounts,
    pub deliveries: AttemptCounts,
    /// Of the delivery attempts; null without any.
    pub latency_ms: Option<Latency>,
}

/// Webhooks answered: `failed` is every 413 and 503 (the sender was not served).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookCounts {
    pub accepted: u32,
    pub duplicate: u32,
    pub rejected: u32,
    pub failed: u32,
}

/// Delivery attempts by how they ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptCounts {
    pub succeeded: u32,
    pub retrying: u32,
    pub dead: u32,
}

/// Quantiles of the attempts' durations, each the upper bound of the bucket it falls in
/// (1, 2, 5, 10, 20, 50 … 30,000 ms; slower than that reads 30,000).
#[derive(Debug, Serialize, ToSchema)]
pub struct Latency {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
}

impl Bucket {
    fn of(at: u64, slot: &Slot) -> Bucket {
        let [accepted, duplicate, rejected, failed] = slot.webhooks;
        let [succeeded, retrying, dead] = slot.attempts;
        Bucket {
            at,
            webhooks: WebhookCounts {
                accepted,
                duplicate,
                rejected,
                failed,
            },
            deliveries: AttemptCounts {
                succeeded,
                retrying,
                dead,
            },
            latency_ms: Latency::of(&slot.latency),
        }
    }
}

impl Latency {
    fn of(buckets: &[u32]) -> Option<Latency> {
        let count: u64 = buckets.iter().map(|&n| u64::from(n)).sum();
        if count == 0 {
            return None;
        }
        let quantile = |q: f64| {
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, &n) in buckets.iter().enumerate() {
                seen += u64::from(n);
                if seen >= rank {
                    return LATENCY_BOUNDS_MS[i.min(LATENCY_BOUNDS_MS.len() - 1)];
                }
            }
            LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1]
        };
        Some(Latency {
            p50: quantile(0.50),
            p95: quantile(0.95),
            p99: quantile(0.99),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn counts_land_in_their_minute_and_old_minutes_fall_out() {
        let activity = Activity::new(NOW - 3 * 3_600_000);
        activity.webhook_at(NOW, WebhookOutcome::Accepted);
        activity.webhook_at(NOW, WebhookOutcome::Accepted);
        activity.webhook_at(NOW - MINUTE_MS, WebhookOutcome::Rejected);
        activity.webhook_at(NOW - MINUTE_MS, WebhookOutcome::TooLarge);
        activity.webhook_at(NOW - 2 * 3_600_000, WebhookOutcome::Duplicate);
        // A day ago: the same slot of the ring as now, overwritten by now's counts.
        activity.webhook_at(NOW - 24 * 3_600_000, WebhookOutcome::Accepted);

        let hour = activity.report_at(NOW, Window::Hour);
        assert_eq!(hour.buckets.len(), 60);
        assert_eq!(hour.step_seconds, 60);
        let last = hour.buckets.last().unwrap();
        assert_eq!(last.at, NOW / MINUTE_MS * MINUTE_MS);
        assert_eq!(last.webhooks.accepted, 2);
        let before = &hour.buckets[58];
        assert_eq!((before.webhooks.rejected, before.webhooks.failed), (1, 1));
        assert_eq!(hour.total.webhooks.accepted, 2);
        assert_eq!(
            hour.total.webhooks.duplicate, 0,
            "two hours ago is not in 1h"
        );

        let day = activity.report_at(NOW, Window::Day);
        assert_eq!(day.buckets.len(), 96);
        assert_eq!(day.step_seconds, 900);
        assert_eq!(day.total.webhooks.duplicate, 1);
        assert_eq!(day.total.webhooks.accepted, 2, "a day ago fell out");
    }

    #[test]
    fn latency_quantiles_come_from_the_attempts() {
        let activity = Activity::new(NOW);
        assert!(
            activity
                .report_at(NOW, Window::Hour)
                .total
                .latency_ms
                .is_none()
        );
        for _ in 0..98 {
            activity.attempt_at(NOW, DeliveryStatus::Succeeded, 3);
        }
        activity.attempt_at(NOW, DeliveryStatus::Retrying, 700);
        activity.attempt_at(NOW, DeliveryStatus::Dead, 60_000);
        let total = activity.report_at(NOW, Window::Hour).total;
        assert_eq!(
            (
                total.deliveries.succeeded,
                total.deliveries.retrying,
                total.deliveries.dead
            ),
            (98, 1, 1)
        );
        let latency = total.latency_ms.unwrap();
        assert_eq!((latency.p50, latency.p95, latency.p99), (5, 5, 1_000));
    }
}
