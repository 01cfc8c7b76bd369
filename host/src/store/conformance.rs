//! The conformance suite: what every engine must do, written once against the capability
//! traits. Each engine's tests run it ([`run`]) on fresh stores of that engine: the
//! in-memory reference, sled, and NATS (in `tests/`, against real servers).
//!
//! Built for this crate's tests and, with the `conformance` feature, for other crates'.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{
    DeliveryRecord, DeliveryStatus, EventQuery, EventRecord, Inserted, NewEvent, ReplayError,
    Status, Storage, StoredRequest,
};
use crate::store::OutboundRequest;

/// A fresh, empty store, and whatever must live as long as it (a temp dir, a server).
pub struct Fresh {
    pub store: Arc<dyn Storage>,
    pub keep: Box<dyn std::any::Any + Send>,
}

/// Run every check, each on a fresh store from `fresh`; a failure names the check.
pub async fn run<F, Fut>(engine: &str, mut fresh: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Fresh>,
{
    macro_rules! check {
        ($($name:ident),* $(,)?) => {
            $(
                let Fresh { store, keep } = fresh().await;
                eprintln!("conformance ({engine}): {}", stringify!($name));
                $name(store).await;
                drop(keep);
            )*
        };
    }
    check!(
        accepted_events_are_stored_and_queued_for_their_connector,
        a_repeat_within_the_window_is_a_duplicate_and_not_queued,
        each_event_goes_to_one_worker_at_a_time,
        a_lease_dropped_unfinished_is_handed_out_again,
        finishing_a_dispatch_queues_its_deliveries,
        deliveries_tried_before_they_are_stored_are_queued_only_if_open,
        a_scheduled_call_is_due_then_and_not_before,
        a_delivery_is_due_until_it_is_final,
        updates_change_the_record_and_its_updated_at,
        the_log_pages_newest_first_with_filters,
        only_finished_events_are_replayed_and_replays_are_queued,
        retention_removes_old_events_and_dedupe_entries,
        kv_is_namespaced_per_connector,
    );
}

const SHORT: Duration = Duration::from_millis(100);
/// Long enough for any engine to hand out an item due now.
const LONG: Duration = Duration::from_secs(10);

fn event(id: &str, connector: &str, at: u64, key: Option<&str>) -> NewEvent {
    NewEvent {
        record: EventRecord::received(id.into(), connector.into(), at, "stripe"),
        request: StoredRequest {
            method: "POST".into(),
            path: format!("/hooks/{connector}"),
            query: String::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: format!("{{\"id\":\"{id}\"}}").into_bytes().into(),
        },
        dedupe: key.map(|k| (k.to_string(), 60_000)),
    }
}

/// A ULID at `ms` (ids sort by time, as the host makes them).
fn id_at(ms: u64, n: u128) -> String {
    ulid::Ulid::from_parts(ms, n).to_string()
}

fn delivery(event_id: &str, index: u32) -> DeliveryRecord {
    DeliveryRecord {
        event_id: event_id.into(),
        index,
        idempotency_key: format!("{event_id}-{index}"),
        request: OutboundRequest {
            method: "POST".into(),
            url: "http://127.0.0.1:9/".into(),
            headers: Vec::new(),
            body: b"{}".as_slice().into(),
        },
        status: DeliveryStatus::Pending,
        next_attempt_at: None,
        attempts: Vec::new(),
    }
}

async fn insert(store: &Arc<dyn Storage>, event: NewEvent) -> Inserted {
    store.insert_event(event).await.expect("insert_event")
}

async fn accepted_events_are_stored_and_queued_for_their_connector(store: Arc<dyn Storage>) {
    let now = crate::time::now_ms();
    let (a, b) = (id_at(now, 1), id_at(now, 2));
    assert_eq!(
        insert(&store, event(&a, "stripe", now, Some("evt_a"))).await,
        Inserted::Accepted { id: a.clone() }
    );
    insert(&store, event(&b, "mailchimp", now, None)).await;
    let record = store.event(&a).await.unwrap().expect("stored");
    assert_eq!(record.status, Status::Pending);
    assert_eq!(record.dedupe_key.as_deref(), Some("evt_a"));
    let request = store.request(&a).await.unwrap().expect("its request");
    assert_eq!(
        request.body.as_bytes(),
        format!("{{\"id\":\"{a}\"}}").as_bytes()
    );
    // Each connector's queue has its own events only.
    let lease = store
        .next_dispatch("stripe", LONG)
        .await
        .unwrap()
        .expect("queued");
    assert_eq!(lease.id, a);
    assert!(
        store
            .next_dispatch("stripe", SHORT)
            .await
            .unwrap()
            .is_none()
    );
    let lease_b = store
        .next_dispatch("mailchimp", LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease_b.id, b);
    assert!(store.event("nope").await.unwrap().is_none());
}

async fn a_repeat_within_the_window_is_a_duplicate_and_not_queued(store: Arc<dyn Storage>) {
    let now = crate::time::now_ms();
    let (first, again, other) = (id_at(now, 1), id_at(now, 2), id_at(now, 3));
    insert(&store, event(&first, "stripe", now, Some("evt_1"))).await;
    assert_eq!(
        insert(&store, event(&again, "stripe", now + 10, Some("evt_1"))).await,
        Inserted::Duplicate {
            id: again.clone(),
            first_id: first.clone()
        }
    );
    let duplicate = store.event(&again).await.unwrap().unwrap();
    assert_eq!(duplicate.status, Status::Duplicate);
    assert_eq!(duplicate.duplicate_of.as_deref(), Some(first.as_str()));
    // The same key of another connector is another key.
    assert!(matches!(
        insert(&store, event(&other, "other", now, Some("evt_1"))).await,
        Inserted::Accepted { .. }
    ));
    // After the window (60 s here) it is a new event.
    let later = id_at(now + 61_000, 4);
    assert!(matches!(
        insert(&store, event(&later, "stripe", now + 61_000, Some("evt_1"))).await,
        Inserted::Accepted { .. }
    ));
    let mut handed = Vec::new();
    while let Some(lease) = store.next_dispatch("stripe", SHORT).await.unwrap() {
        handed.push(lease.id.clone());
        store.forget_dispatch(lease).await.unwrap();
    }
    handed.sort();
    assert_eq!(
        handed,
        vec![first, later],
        "the duplicate is not dispatched"
    );
}

async fn each_event_goes_to_one_worker_at_a_time(store: Arc<dyn Storage>) {
    let now = crate::time::now_ms();
    let ids: Vec<String> = (0..20).map(|n| id_at(now, n)).collect();
    for id in &ids {
        insert(&store, event(id, "stripe", now, None)).await;
    }
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(lease) = store.next_dispatch("stripe", SHORT).await.unwrap() {
                    got.push(lease.id.clone());
                    // Held while "working", then finished: never handed to another.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let record = store.event(&lease.id).await.unwrap().unwrap();
                    store
                        .finish_dispatch(lease, &record, &[], None)
                        .await
                        .unwrap();
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    all.sort();
    assert_eq!(all, ids, "each event exactly once");
}

async fn a_lease_dropped_unfinished_is_handed_out_again(store: Arc<dyn Storage>) {
    let now = crate::time::now_ms();
    let id = id_at(now, 1);
    insert(&store, event(&id, "stripe", now, None)).await;
    let lease = store.next_dispatch("stripe", LONG).await.unwrap().unwrap();
    drop(lease);
    let again = store
        .next_dispatch("stripe", LONG)
        .await
        .unwrap()
        .expect("handed out again");
    assert_eq!(again.id, id);
}

async fn finishing_a_dispatch_queues_its_deliveries(store: Arc<dyn Storage>) {
    let now = crate::time::now_ms();
    let id = id_at(now, 1);
    insert(&store, event(&id, "stripe", now, None)).await;
    let lease = store.next_dispatch("stripe", LONG).await.unwrap().unwrap();
    let record = store.event(&id).await.unwrap().unwrap();
    let rows = [delivery(&id, 0), delivery(&id, 1)];
    store
        .finish_dispatch(lease, &record, &rows, None)
        .await
        .unwrap();
    assert!(
        store
            .next_dispatch("stripe", SHORT)
            .await
            .unwrap()
            .is_none(),
        "the event is released"
    );
    assert_eq!(store.deliveries(&id).await.unwrap(), rows.to_vec());
    let mut keys = Vec::new();
    while let Some((lease, row)) = store.next_delivery(SHORT).await.unwrap() {
        keys.push((row.event_id.clone(), row.index));
        let mut done = row;
        done.status = DeliveryStatus::Succeeded;
        store.finish_delivery(lease, &done).await.unwrap();
    }
    keys.sort();
    assert_eq!(keys, vec![(id.clone(), 0), (id.clone(), 1)]);
    assert!(
        store
            .deliveries(&id)
            .await
            .unwrap()
            .iter()
            .all(|d| d.status == DeliveryStatus::Succeeded)
    );
}

/// The dispatch makes the first try of each delivery before it stores them
/// (`deliver::first_tries`): a row that try settled is stored and never handed out, a row
/// it left retrying is handed out at its `next_attempt_at`, not before.
async fn deliveries_tried_before_they_are_stored_are_queued_only_if_open(store: Arc<dyn Storage>) {
    let now = crate::time::now_ms();
    let id = id_at(now, 1);
    insert(&store, event(&id, "stripe", now, None)).await;
    let lease = store.next_dispatch("stripe", LONG).await.unwrap().unwrap();
    let mut record = store.event(&id).await.unwrap().unwrap();
    record.status = Status::Retrying;
    let mut settled = delivery(&id, 0);
    settled.status = DeliveryStatus::Succeeded;
    let mut retrying = delivery(&id, 1);
    retrying.status = DeliveryStatus::Retrying;
    retrying.next_attempt_at = Some(crate::time::now_ms() + 600);
    let rows = [settled, retrying];
    store
        .finish_dispatch(lease, &record, &rows, None)
        .await
        .unwrap();
    assert_eq!(store.deliveries(&id).await.unwrap(), rows.to_vec());
    assert_eq!(
        store.event(&id).await.unwrap().unwrap().status,
        Status::Retrying
    );
    assert!(
        store
            .next_delivery(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none(),
        "the settled row is never handed out, the retrying one not before its time"
    );
    let (lease, row) = store
        .next_delivery(LONG)
        .await
        .unwrap()
        .expect("due by now");
    assert_eq!((row.index, row.status), (1, DeliveryStatus::Retrying));
    let mut done = row;
    done.status = DeliveryStatus::Succeeded;
    done.next_attempt_at = None;
    store.finish_delivery(lease, &done).await.unwrap();
    assert!(store.next_delivery(SHORT).await.unwrap().is_none());
}

async fn a_scheduled_call_is_due_then_and_not_before(store: Arc<dyn Storage>) {
    let now = crate::time::now_ms();
    let (retried, released) = (id_at(now, 1), id_at(now, 2));
    insert(&store, event(&retried, "stripe", now, None)).await;
    insert(&store, event(&released, "stripe", now, None)).await;
    for _ in 0..2 {
        let lease = store.next_dispatch("stripe", LONG).await.unwrap().unwrap();
        if lease.id == retried {
            let mut record = store.event(&retried).await.unwrap().unwrap();
            let at = crate::time::now_ms() + 600;
            record.status = Status::Retrying;
            record.next_attempt_at = Some(at);
            store
                .finish_dispatch(lease, &record, &[], Some(at))
                .await
                .unwrap();
        } else {
            store
                .release_dispatch(lease, Duration::from_millis(600))
                .await
                .unwrap();
        }
    }
    assert!(
        store
            .next_dispatch("stripe", Duration::from_millis(300))
            .await
            .unwrap()
            .is_none(),
        "not due yet"
    );
    // Held until the end: a lease dropped unfinished is handed out again.
    let mut leases = Vec::new();
    for _ in 0..2 {
        let lease = store.next_dispatch("stripe", LONG).await.unwrap();
        leases.push(lease.expect("due by now"));
    }
    let mut due: Vec<String> = leases.iter().map(|l| l.id.clone()).collect();
    due.sort();
    assert_eq!(due, vec![retried.clone(), released]);
    let record = store.event(&retried).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Retrying, "the record as finished");
}

async fn a_delivery_is_due_until_it_is_final(store: Arc<dyn Storage>) {
    let now = crate::time::now_ms();
    let id = id_at(now, 1);
    insert(&store, event(&id, "stripe", now, None)).await;
    let lease = store.next_dispatch("stripe", LONG).await.unwrap().unwrap();
    let record = store.event(&id).await.unwrap().unwrap();
    store
        .finish_dispatch(lease, &record, &[delivery(&id, 0)], None)
        .await
        .unwrap();
    let (lease, mut row) = store.next_delivery(LONG).await.unwrap().unwrap();
    row.status = DeliveryStatus::Retrying;
    row.next_attempt_at = Some(crate::time::now_ms() + 500);
    store.finish_delivery(lease, &row).await.unwrap();
    assert!(
        store
            .next_delivery(Duration::from_millis(250))
            .await
            .unwrap()
            .is_none(),
        "due at its next attempt, not before"
    );
    let (lease, mut row) = store.next_delivery(LONG).await.unwrap().expect("due again");
    assert_eq!(row.status, DeliveryStatus::Retrying);
    row.status = DeliveryStatus::Dead;
    row.next_attempt_at = None;
    store.finish_delivery(lease, &row).await.unwrap();
    assert!(store.next_delivery(SHORT).await.unwrap().is_none(), "final");
    assert_eq!(
        store.deliveries(&id).await.unwrap()[0].status,
        DeliveryStatus::Dead
    );
}

async fn updates_change_the_record_and_its_updated_at(store: Arc<dyn Storage>) {
    let now = crate::time::now_ms();
    let id = id_at(now, 1);
    insert(&store, event(&id, "stripe", now, None)).await;
    let before = store.event(&id).await.unwrap().unwrap();
    let updated = store
        .update_event(&id, &mut |r| r.error = Some("x".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.error.as_deref(), Some("x"));
    assert!(updated.updated_at > before.updated_at);
    assert_eq!(store.event(&id).await.unwrap().unwrap(), updated);
    assert!(
        store
            .update_event("nope", &mut |_| {})
            .await
            .unwrap()
            .is_none()
    );
    // Writers racing on one record each see the other's write.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move {
                store
                    .update_event(&id, &mut |r| r.attempts_marker(i))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let record = store.event(&id).await.unwrap().unwrap();
    assert_eq!(
        record.deliveries_from, 0b1111_1111,
        "no write lost: {record:?}"
    );
}

/// A test-only mark in a field no check reads otherwise.
trait AttemptsMarker {
    fn attempts_marker(&mut self, i: u32);
}

impl AttemptsMarker for EventRecord {
    fn attempts_marker(&mut self, i: u32) {
        self.deliveries_from |= 1 << i;
    }
}

async fn the_log_pages_newest_first_with_filters(store: Arc<dyn Storage>) {
    let base = crate::time::now_ms() - 10_000;
    let ids: Vec<String> = (0..7).map(|n| id_at(base + n * 1000, 0)).collect();
    for (n, id) in ids.iter().enumerate() {
        let connector = if n % 2 == 0 { "stripe" } else { "mailchimp" };
        insert(&store, event(id, connector, base + n as u64 * 1000, None)).await;
    }
    let page = |query: EventQuery| {
        let store = store.clone();
        async move { store.list_events(&query).await.unwrap() }
    };
    let (first, next) = page(EventQuery {
        limit: 3,
        ..EventQuery::default()
    })
    .await;
    let names: Vec<&str> = first.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(names, vec![&ids[6], &ids[5], &ids[4]], "newest first");
    let (second, _) = page(EventQuery {
        limit: 3,
        cursor: next,
        ..EventQuery::default()
    })
    .await;
    let names: Vec<&str> = second.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(names, vec![&ids[3], &ids[2], &ids[1]]);
    let (stripe, _) = page(EventQuery {
        limit: 10,
        connector: Some("stripe".into()),
        ..EventQuery::default()
    })
    .await;
    assert_eq!(stripe.len(), 4);
    assert!(stripe.iter().all(|r| r.connector == "stripe"));
    let (window, next) = page(EventQuery {
        limit: 10,
        since: Some(base + 2000),
        until: Some(base + 5000),
        ..EventQuery::default()
    })
    .await;
    let names: Vec<&str> = window.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(names, vec![&ids[4], &ids[3], &ids[2]], "since ≤ t < until");
    assert_eq!(next, None, "the last page says so");
    let (pending, _) = page(EventQuery {
        limit: 10,
        status: Some(Status::Succeeded),
        ..EventQuery::default()
    })
    .await;
    assert!(pending.is_empty());
}

async fn only_finished_events_are_replayed_and_replays_are_queued(store: Arc<dyn Storage>) {
    let now = crate::time::now_ms();
    let id = id_at(now, 1);
    insert(&store, event(&id, "stripe", now, None)).await;
    assert!(matches!(
        store.replay(&id, false).await,
        Err(ReplayError::NotReplayable("pending", _))
    ));
    assert!(matches!(
        store.replay("nope", false).await,
        Err(ReplayError::NotFound(_))
    ));
    let lease = store.next_dispatch("stripe", LONG).await.unwrap().unwrap();
    let mut record = store.event(&id).await.unwrap().unwrap();
    record.status = Status::Dead;
    record.error = Some("rejected".into());
    store
        .finish_dispatch(lease, &record, &[delivery(&id, 0)], None)
        .await
        .unwrap();
    let replayed = store.replay(&id, true).await.unwrap();
    assert_eq!(replayed.status, Status::Pending);
    assert_eq!(replayed.error, None);
    assert_eq!(
        replayed.deliveries_from, 1,
        "numbered after the first run's"
    );
    assert!(replayed.new_keys);
    assert!(
        store.event(&id).await.unwrap().unwrap().new_keys,
        "the choice of keys is stored with the record"
    );
    let lease = store.next_dispatch("stripe", LONG).await.unwrap();
    assert_eq!(lease.expect("queued again").id, id);
    assert_eq!(
        store.deliveries(&id).await.unwrap().len(),
        1,
        "history kept"
    );
}

async fn retention_removes_old_events_and_dedupe_entries(store: Arc<dyn Storage>) {
    let now = crate::time::now_ms();
    let (old, new) = (id_at(now - 5000, 1), id_at(now, 2));
    insert(&store, event(&old, "stripe", now - 5000, Some("evt_old"))).await;
    insert(&store, event(&new, "stripe", now, Some("evt_new"))).await;
    let lease = store.next_dispatch("stripe", LONG).await.unwrap().unwrap();
    let record = store.event(&lease.id).await.unwrap().unwrap();
    let row = delivery(&record.id, 0);
    store
        .finish_dispatch(lease, &record, &[row], None)
        .await
        .unwrap();
    assert_eq!(store.purge_before(now - 1000, 100).await.unwrap(), 1);
    assert!(store.event(&old).await.unwrap().is_none());
    assert!(store.request(&old).await.unwrap().is_none());
    assert!(store.deliveries(&old).await.unwrap().is_empty());
    assert!(store.event(&new).await.unwrap().is_some());
    // Its dedupe claim went with it: the key is free.
    let again = id_at(now, 3);
    assert!(matches!(
        insert(&store, event(&again, "stripe", now, Some("evt_old"))).await,
        Inserted::Accepted { .. }
    ));
    // Dedupe entries past their window may be removed (an engine's own expiry may do it
    // instead): page through; a claim still inside its window must stay.
    let mut from = None;
    for _ in 0..100 {
        let (_, next) = store.purge_dedupe(now - 60_000, from, 1).await.unwrap();
        match next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    let repeat = id_at(now, 4);
    assert!(
        matches!(
            insert(&store, event(&repeat, "stripe", now + 10, Some("evt_new"))).await,
            Inserted::Duplicate { .. }
        ),
        "a claim inside its window survives the purge"
    );
}

async fn kv_is_namespaced_per_connector(store: Arc<dyn Storage>) {
    store.kv_set("a", "k", b"1").await.unwrap();
    store.kv_set("b", "k", b"2").await.unwrap();
    store.kv_set("a", "k", b"3").await.unwrap();
    assert_eq!(store.kv_get("a", "k").await.unwrap(), Some(b"3".to_vec()));
    assert_eq!(store.kv_get("b", "k").await.unwrap(), Some(b"2".to_vec()));
    store.kv_delete("a", "k").await.unwrap();
    assert_eq!(store.kv_get("a", "k").await.unwrap(), None);
    assert_eq!(store.kv_get("b", "k").await.unwrap(), Some(b"2".to_vec()));
    // Keys of any bytes, values of any bytes.
    store.kv_set("a", "ü / .*> ", &[0, 255]).await.unwrap();
    assert_eq!(
        store.kv_get("a", "ü / .*> ").await.unwrap(),
        Some(vec![0, 255])
    );

    // Counted per connector, deleted keys not at all, and never past the limit asked.
    for key in ["x", "y", "z"] {
        store.kv_set("c", key, b"v").await.unwrap();
    }
    store.kv_set("c", "x", b"again").await.unwrap();
    store.kv_delete("c", "y").await.unwrap();
    assert_eq!(store.kv_count("c", 100).await.unwrap(), 2);
    assert_eq!(store.kv_count("c", 1).await.unwrap(), 1);
    assert_eq!(store.kv_count("a", 100).await.unwrap(), 1);
    assert_eq!(store.kv_count("none", 100).await.unwrap(), 0);
}
