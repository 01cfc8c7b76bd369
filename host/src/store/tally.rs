//! How many events each connector has in each status, by the hour they were received:
//! the counts `GET /v1/connectors` shows over the retention window and the last 24 hours,
//! without reading the log.
//!
//! An engine whose index lives in this process keeps one: it fills it from its index when
//! it opens ([`Tally::fill`]), then moves an event between statuses wherever it writes a
//! record. Counts are by the hour an event was received, so "the last 24 hours" means the
//! current hour and the 23 before it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::store::Status;

const HOUR_MS: u64 = 3_600_000;

/// Counts by status, in the order of [`Status::ALL`].
pub type Counts = [u64; Status::ALL.len()];

/// Each connector's counts over `events` (connector, received at, status), and over those
/// received since the hour of `since`: for engines that count from an index they read.
pub fn count<'a>(
    events: impl IntoIterator<Item = (&'a str, u64, Status)>,
    since: u64,
) -> HashMap<String, (Counts, Counts)> {
    let mut counts: HashMap<String, (Counts, Counts)> = HashMap::new();
    for (connector, at, status) in events {
        let entry = counts.entry(connector.to_string()).or_default();
        entry.0[status.index()] += 1;
        if at / HOUR_MS >= since / HOUR_MS {
            entry.1[status.index()] += 1;
        }
    }
    counts
}

#[derive(Debug, Default)]
pub struct Tally {
    /// Connector → hour (unix ms / 1 h) → counts. `None` until filled: changes made while
    /// an engine recovers are in the index the fill reads.
    inner: Mutex<Option<HashMap<String, BTreeMap<u64, Counts>>>>,
}

impl Tally {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, BTreeMap<u64, Counts>>) -> T,
    ) -> Option<T> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.as_mut().map(f)
    }

    /// Start counting from `events` (connector, received at, status), all of the index.
    pub fn fill(&self, events: impl IntoIterator<Item = (String, u64, Status)>) {
        let mut counts: HashMap<String, BTreeMap<u64, Counts>> = HashMap::new();
        for (connector, at, status) in events {
            counts
                .entry(connector)
                .or_default()
                .entry(at / HOUR_MS)
                .or_default()[status.index()] += 1;
        }
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = Some(counts);
    }

    /// The counts as bytes, for an engine to keep across a clean shutdown (`None` until
    /// filled).
    pub fn snapshot(&self) -> Option<Vec<u8>> {
        self.with(|counts| serde_json::to_vec(counts).ok())
            .flatten()
    }

    /// Start counting from a [`Tally::snapshot`]; false if it does not read.
    pub fn restore(&self, snapshot: &[u8]) -> bool {
        match serde_json::from_slice::<HashMap<String, BTreeMap<u64, Counts>>>(snapshot) {
            Ok(counts) => {
                *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = Some(counts);
                true
            }
            Err(_) => false,
        }
    }

    /// An event came to be (`to`), left (`from`), or moved from one status to another.
    pub fn moved(
        &self,
        connector: &str,
        received_at: u64,
        from: Option<Status>,
        to: Option<Status>,
    ) {
        if from == to {
            return;
        }
        self.with(|counts| {
            let hour = counts
                .entry(connector.to_string())
                .or_default()
                .entry(received_at / HOUR_MS)
                .or_default();
            if let Some(from) = from {
                hour[from.index()] = hour[from.index()].saturating_sub(1);
            }
            if let Some(to) = to {
                hour[to.index()] += 1;
            }
        });
    }

    /// Each connector's counts over everything held, and over the events received at or
    /// after the hour of `since` (unix ms). `None` until filled.
    pub fn counts(&self, since: u64) -> Option<HashMap<String, (Counts, Counts)>> {
        self.with(|counts| {
            counts
                .iter()
                .map(|(connector, hours)| {
                    let (mut all, mut recent) = (Counts::default(), Counts::default());
                    for (hour, c) in hours {
                        for (i, n) in c.iter().enumerate() {
                            all[i] += n;
                            if *hour >= since / HOUR_MS {
                                recent[i] += n;
                            }
                        }
                    }
                    (connector.clone(), (all, recent))
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_move_between_statuses_by_the_hour_they_came() {
        let tally = Tally::default();
        // Before it is filled, nothing counts (the fill reads the index as it is then).
        tally.moved("a", 0, None, Some(Status::Pending));
        assert!(tally.counts(0).is_none());
        tally.fill([
            ("a".to_string(), 10, Status::Succeeded),
            ("a".to_string(), 5 * HOUR_MS, Status::Dead),
        ]);
        tally.moved("a", 5 * HOUR_MS + 1, None, Some(Status::Pending));
        tally.moved(
            "a",
            5 * HOUR_MS + 1,
            Some(Status::Pending),
            Some(Status::Succeeded),
        );
        tally.moved("b", 6 * HOUR_MS, None, Some(Status::Rejected));
        tally.moved("a", 10, Some(Status::Succeeded), None);
        let counts = tally.counts(5 * HOUR_MS + 30).unwrap();
        let (all, recent) = counts["a"];
        assert_eq!(all[Status::Succeeded.index()], 1);
        assert_eq!(all[Status::Dead.index()], 1);
        assert_eq!(all[Status::Pending.index()], 0);
        assert_eq!(recent, all, "both are in the hour of `since`");
        let earlier = tally.counts(6 * HOUR_MS).unwrap();
        assert_eq!(earlier["a"].1, Counts::default());
        assert_eq!(earlier["b"].1[Status::Rejected.index()], 1);

        // Kept across a clean shutdown as it was.
        let again = Tally::default();
        assert!(again.restore(&tally.snapshot().unwrap()));
        assert_eq!(again.counts(0), tally.counts(0));
        assert!(!Tally::default().restore(b"{torn"));
    }
}
