//! The retention cleaner: removes events older than `storage.retention_days` (with their
//! requests, deliveries and dedupe entries) and dedupe entries older than the dedupe
//! window, in small batches that yield between them so ingress never waits on it.

use std::sync::Arc;
use std::time::Duration;

use super::{Result, Storage};

/// Rows removed per batch; each batch is one short write.
pub const BATCH: usize = 200;

/// How often the cleaner runs.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub events: usize,
    pub dedupe_entries: usize,
}

/// One full sweep as of `now` (unix ms): the clock is a parameter so tests can move it.
pub async fn sweep(
    storage: &dyn Storage,
    now: u64,
    retention: Duration,
    dedupe_window: Duration,
) -> Result<Swept> {
    let mut swept = Swept::default();
    let cutoff = now.saturating_sub(retention.as_millis() as u64);
    loop {
        let removed = storage.purge_before(cutoff, BATCH).await?;
        swept.events += removed;
        if removed < BATCH {
            break;
        }
        tokio::task::yield_now().await;
    }
    let dedupe_cutoff = now.saturating_sub(dedupe_window.as_millis() as u64);
    let mut from = None;
    loop {
        let (removed, next) = storage.purge_dedupe(dedupe_cutoff, from, BATCH).await?;
        swept.dedupe_entries += removed;
        match next {
            Some(next) => from = Some(next),
            None => break,
        }
        tokio::task::yield_now().await;
    }
    Ok(swept)
}

/// Run [`sweep`] every [`INTERVAL`] against the wall clock, until the task is cancelled.
pub async fn run(storage: Arc<dyn Storage>, retention: Duration, dedupe_window: Duration) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        match sweep(
            storage.as_ref(),
            crate::time::now_ms(),
            retention,
            dedupe_window,
        )
        .await
        {
            Ok(swept) if swept != Swept::default() => {
                tracing::info!(
                    events = swept.events,
                    dedupe_entries = swept.dedupe_entries,
                    "retention: removed expired records"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::error!("retention sweep failed: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::InsertNow as _;
    use crate::store::sled::SledStore;
    use crate::store::{
        DeliveryRecord, DeliveryStatus, EventQuery, EventRecord, Inserted, NewEvent, Status,
        StoredRequest,
    };

    const DAY: u64 = 86_400_000;

    fn event(at: u64, key: &str) -> NewEvent {
        let id = ulid::Ulid::from_parts(at, rand::random()).to_string();
        NewEvent {
            record: {
                let mut record = EventRecord::received(id, "stripe".into(), at, "stripe");
                record.dedupe_key = Some(key.into());
                record
            },
            request: StoredRequest {
                method: "POST".into(),
                path: "/hooks/stripe".into(),
                query: String::new(),
                headers: vec![],
                body: b"{}".as_slice().into(),
            },
            dedupe: Some((key.into(), 7 * DAY)),
        }
    }

    /// A sweep with the default retention (30 days) and dedupe window (7 days).
    async fn sweep_defaults(store: &SledStore, now: u64) -> Swept {
        sweep(
            store,
            now,
            Duration::from_millis(30 * DAY),
            Duration::from_millis(7 * DAY),
        )
        .await
        .unwrap()
    }

    fn id_of(inserted: Inserted) -> String {
        match inserted {
            Inserted::Accepted { id } | Inserted::Duplicate { id, .. } => id,
        }
    }

    #[tokio::test]
    async fn old_events_go_and_new_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), false).unwrap();
        let now = 100 * DAY;
        // 450 old events (more than two batches) and 3 recent ones.
        let mut old = Vec::new();
        for i in 0..450 {
            old.push(id_of(
                store
                    .insert_now(event(now - 40 * DAY + i, &format!("old{i}")))
                    .unwrap(),
            ));
        }
        // An old event with a delivery row.
        let mut record = store.event(&old[0]).unwrap().unwrap();
        record.status = Status::Succeeded;
        let delivery = DeliveryRecord {
            event_id: old[0].clone(),
            index: 0,
            idempotency_key: format!("{}-0", old[0]),
            request: crate::store::OutboundRequest {
                method: "POST".into(),
                url: "http://127.0.0.1:1/".into(),
                headers: vec![],
                body: Default::default(),
            },
            status: DeliveryStatus::Retrying,
            next_attempt_at: None,
            attempts: vec![],
        };
        store.finish_dispatch(&record, &[delivery], false).unwrap();
        let recent: Vec<String> = (0..3)
            .map(|i| {
                id_of(
                    store
                        .insert_now(event(now - DAY + i, &format!("new{i}")))
                        .unwrap(),
                )
            })
            .collect();

        let swept = sweep_defaults(&store, now).await;
        assert_eq!(swept.events, 450);
        for id in &old {
            assert!(store.event(id).unwrap().is_none());
            assert!(store.request(id).unwrap().is_none());
        }
        assert!(store.deliveries(&old[0]).unwrap().is_empty());
        assert!(store.open_deliveries().unwrap().is_empty());
        for id in &recent {
            assert!(store.event(id).unwrap().is_some());
            assert!(store.request(id).unwrap().is_some());
        }
        let (page, _) = store
            .list_events(&EventQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.len(), 3);
        // The removed events' dedupe keys are free again; the recent ones still dedupe.
        assert!(matches!(
            store.insert_now(event(now, "old7")).unwrap(),
            Inserted::Accepted { .. }
        ));
        assert!(matches!(
            store.insert_now(event(now, "new1")).unwrap(),
            Inserted::Duplicate { .. }
        ));
    }

    #[tokio::test]
    async fn inbox_segments_go_with_their_events() {
        let dir = tempfile::tempdir().unwrap();
        let segments = || {
            let mut names: Vec<String> = std::fs::read_dir(dir.path().join("inbox"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let now = crate::time::now_ms();
        // A previous process wrote 40-day-old events into its segment, last written then.
        let old: Vec<String> = {
            let store = SledStore::open(dir.path(), false).unwrap();
            (0..5)
                .map(|i| {
                    id_of(
                        store
                            .insert_now(event(now - 40 * DAY + i, &format!("old{i}")))
                            .unwrap(),
                    )
                })
                .collect()
        };
        let first = segments().remove(0);
        let forty_days_ago = std::time::SystemTime::now() - Duration::from_millis(40 * DAY);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("inbox").join(&first))
            .unwrap()
            .set_modified(forty_days_ago)
            .unwrap();

        let store = SledStore::open(dir.path(), false).unwrap();
        let recent = id_of(store.insert_now(event(now - DAY, "new")).unwrap());
        assert_eq!(segments().len(), 2);
        let swept = sweep_defaults(&store, now).await;
        assert_eq!(swept.events, 5);
        assert!(!segments().contains(&first), "the old segment is deleted");
        assert_eq!(segments().len(), 1, "the segment being written stays");
        for id in &old {
            assert!(store.event(id).unwrap().is_none());
        }
        let request = store
            .request(&recent)
            .unwrap()
            .expect("recent request kept");
        assert_eq!(request.body.as_bytes(), b"{}");
    }

    #[tokio::test]
    async fn dedupe_entries_expire_after_their_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), false).unwrap();
        let now = 100 * DAY;
        for i in 0..500 {
            store
                .insert_now(event(now - 8 * DAY + i, &format!("k{i}")))
                .unwrap();
        }
        store.insert_now(event(now - DAY, "fresh")).unwrap();
        let swept = sweep_defaults(&store, now).await;
        assert_eq!(
            swept,
            Swept {
                events: 0,
                dedupe_entries: 500
            }
        );
        // The events themselves are kept (30 days), and the fresh key still dedupes.
        let (page, _) = store
            .list_events(&EventQuery {
                limit: 1000,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.len(), 501);
        assert!(matches!(
            store.insert_now(event(now, "fresh")).unwrap(),
            Inserted::Duplicate { .. }
        ));
    }
}
