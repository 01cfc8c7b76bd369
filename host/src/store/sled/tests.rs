//! The sled engine's own tests: storage, crash recovery and rebuilds.

use super::*;
use crate::store::DeliveryStatus;
use crate::store::InsertNow as _;
use crate::store::OutboundRequest;
use crate::store::Status;

/// An hour ago, in unix ms: the tests' events are received `at` ms after it (within
/// the retention a recovery keeps).
fn base() -> u64 {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| crate::time::now_ms() - 3_600_000)
}

fn record(id: &str, at: u64) -> EventRecord {
    let mut record = EventRecord::received(id.into(), "stripe".into(), base() + at, "stripe");
    record.dedupe_key = Some("evt_1".into());
    record
}

fn request(body: &[u8]) -> StoredRequest {
    StoredRequest {
        method: "POST".into(),
        path: "/hooks/stripe".into(),
        query: String::new(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into(),
    }
}

fn new_event(id: &str, at: u64, key: Option<&str>) -> NewEvent {
    NewEvent {
        record: record(id, at),
        request: request(b"{}"),
        dedupe: key.map(|k| (k.to_string(), 1_000)),
    }
}

#[tokio::test]
async fn accepted_events_are_durable_and_queued() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path(), true).unwrap();
        let inserted = store
            .insert_now(new_event("01A", 10, Some("evt_1")))
            .unwrap();
        assert_eq!(inserted, Inserted::Accepted { id: "01A".into() });
        store.sync().await.unwrap();
    }
    // Reopened: the record, the raw request and the queue entry are all there.
    let store = SledStore::open(dir.path(), true).unwrap();
    assert_eq!(store.event("01A").unwrap().unwrap().status, Status::Pending);
    assert_eq!(
        store.request("01A").unwrap().unwrap().body.as_bytes(),
        b"{}"
    );
    assert_eq!(store.pending_events().unwrap(), vec!["01A".to_string()]);
}

#[tokio::test]
async fn acknowledged_events_sled_lost_come_back_from_the_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, lost) = ("01A", ["01B", "01C"]);
    {
        let store = SledStore::open(dir.path(), true).unwrap();
        store
            .insert_event(new_event(kept, 10, Some("evt_a")))
            .await
            .unwrap();
        let from = store.inbox.head();
        for (i, id) in lost.iter().enumerate() {
            let key = format!("evt_{i}");
            let inserted = store.insert_event(new_event(id, 20, Some(&key))).await;
            assert_eq!(inserted.unwrap(), Inserted::Accepted { id: id.to_string() });
        }
        // What a crash leaves when sled had written up to `from` only: the later
        // events are acknowledged (in the synced inbox) but absent from sled.
        for (i, id) in lost.iter().enumerate() {
            store.trees.events.remove(id).unwrap();
            store.trees.pending.remove(id).unwrap();
            store
                .trees
                .dedupe
                .remove(kv_key("stripe", &format!("evt_{i}")))
                .unwrap();
        }
        let mut applied = Vec::new();
        from.encode(&mut applied);
        store.trees.meta.insert(ingest::APPLIED, applied).unwrap();
    }
    let store = SledStore::open(dir.path(), true).unwrap();
    for id in lost {
        let record = store.event(id).unwrap().expect("the lost event is back");
        assert_eq!(record.status, Status::Pending);
        assert_eq!(store.request(id).unwrap().unwrap().body.as_bytes(), b"{}");
    }
    assert_eq!(store.pending_events().unwrap(), vec!["01A", "01B", "01C"]);
    // Their dedupe claims came back too: a repeat is a duplicate.
    let again = store
        .insert_event(new_event("01D", 30, Some("evt_1")))
        .await
        .unwrap();
    assert_eq!(
        again,
        Inserted::Duplicate {
            id: "01D".into(),
            first_id: "01C".into()
        }
    );
    // Replayed once: the next start has nothing to apply.
    drop(store);
    let store = SledStore::open(dir.path(), true).unwrap();
    assert_eq!(store.pending_events().unwrap().len(), 3);
    assert_eq!(
        store.event("01D").unwrap().unwrap().status,
        Status::Duplicate
    );
}

#[tokio::test]
async fn a_refused_event_does_not_come_back_beside_its_retry_after_a_crash() {
    // Whether sled had written the retry before the crash, or lost it too.
    for sled_kept_the_retry in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path(), true).unwrap();
            store
                .insert_event(new_event("01A", 10, Some("evt_a")))
                .await
                .unwrap();
            let from = store.inbox.head();
            // 01B is refused (503): its entry stays in the inbox, intact.
            store
                .inbox
                .failing_syncs
                .store(1, std::sync::atomic::Ordering::SeqCst);
            let refused = store
                .insert_event(new_event("01B", 20, Some("evt_b")))
                .await;
            assert!(refused.is_err());
            // The sender's retry is accepted.
            let retry = store
                .insert_event(new_event("01C", 30, Some("evt_b")))
                .await
                .unwrap();
            assert_eq!(retry, Inserted::Accepted { id: "01C".into() });
            // A crash: sled holds the inbox up to `from` only, or the retry too.
            if !sled_kept_the_retry {
                store.trees.events.remove("01C").unwrap();
                store
                    .trees
                    .dedupe
                    .remove(kv_key("stripe", "evt_b"))
                    .unwrap();
            }
            let mut applied = Vec::new();
            from.encode(&mut applied);
            store.trees.meta.insert(ingest::APPLIED, applied).unwrap();
        }
        let store = SledStore::open(dir.path(), true).unwrap();
        assert_eq!(
            store.pending_events().unwrap(),
            vec!["01A", "01C"],
            "evt_b is dispatched once, as the event its sender was told of \
             (sled kept the retry: {sled_kept_the_retry})"
        );
        assert_eq!(store.event("01B").unwrap(), None);
        let again = store
            .insert_event(new_event("01D", 40, Some("evt_b")))
            .await
            .unwrap();
        assert_eq!(
            again,
            Inserted::Duplicate {
                id: "01D".into(),
                first_id: "01C".into()
            }
        );
    }
}

#[tokio::test]
async fn retention_of_undispatched_events_empties_their_queue_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), true).unwrap();
    for id in ["01A", "01B"] {
        store.insert_event(new_event(id, 10, None)).await.unwrap();
    }
    assert!(store.trees.batches.entries().count() > 0);
    assert_eq!(store.purge_before(base() + 100, 100).unwrap(), 2);
    assert!(store.pending_events().unwrap().is_empty());
    assert_eq!(
        store.trees.batches.entries().count(),
        0,
        "no queue entry outlives its events"
    );
}

#[tokio::test]
async fn a_dispatch_finished_after_its_event_was_removed_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), true).unwrap();
    store
        .insert_event(new_event("01A", 10, None))
        .await
        .unwrap();
    let record = store.event("01A").unwrap().unwrap();
    // Taken back (or purged) while a worker handled it.
    store.trees.events.remove("01A").unwrap();
    let delivery = DeliveryRecord {
        event_id: "01A".into(),
        index: 0,
        idempotency_key: "01A-0".into(),
        request: OutboundRequest {
            method: "POST".into(),
            url: "http://127.0.0.1:9/".into(),
            headers: Vec::new(),
            body: b"{}".as_slice().into(),
        },
        status: DeliveryStatus::Pending,
        next_attempt_at: None,
        attempts: Vec::new(),
    };
    store
        .finish_dispatch(&record, std::slice::from_ref(&delivery), false)
        .unwrap();
    assert_eq!(store.event("01A").unwrap(), None, "not brought back");
    assert!(
        store.open_deliveries().unwrap().is_empty(),
        "nothing to send"
    );
}

fn delivery(event_id: &str, index: u32, status: DeliveryStatus) -> DeliveryRecord {
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
        status,
        next_attempt_at: None,
        attempts: Vec::new(),
    }
}

/// A store with: 01A delivered (settled), 01B dead by its connector, 01C still waiting
/// for its connector, 01D replayed after it succeeded, 01E delivered by the first try its
/// dispatch made (settled in `finish_dispatch`), and kv writes.
async fn store_with_history(dir: &Path) {
    let store = SledStore::open(dir, true).unwrap();
    for (id, key) in [
        ("01A", "evt_a"),
        ("01B", "evt_b"),
        ("01C", "evt_c"),
        ("01D", "evt_d"),
        ("01E", "evt_e"),
    ] {
        store
            .insert_event(new_event(id, 10, Some(key)))
            .await
            .unwrap();
    }
    // 01A: one delivery, then it succeeds.
    let mut a = store.event("01A").unwrap().unwrap();
    let sent = delivery("01A", 0, DeliveryStatus::Pending);
    store
        .finish_dispatch(&a, std::slice::from_ref(&sent), false)
        .unwrap();
    let mut done = sent;
    done.status = DeliveryStatus::Succeeded;
    store.put_delivery(&done).unwrap();
    a = store
        .update_event("01A", &mut |r| r.status = Status::Succeeded)
        .unwrap()
        .unwrap();
    assert_eq!(a.status, Status::Succeeded);
    // 01B: rejected by its connector.
    let mut b = store.event("01B").unwrap().unwrap();
    b.status = Status::Dead;
    b.error = Some("rejected".into());
    store.finish_dispatch(&b, &[], false).unwrap();
    // 01D: succeeded with nothing to deliver, then replayed.
    let mut d = store.event("01D").unwrap().unwrap();
    d.status = Status::Succeeded;
    store.finish_dispatch(&d, &[], false).unwrap();
    store.replay("01D", false).unwrap();
    // 01E: its delivery succeeded at the first try, before the rows were stored.
    let mut e = store.event("01E").unwrap().unwrap();
    e.status = Status::Succeeded;
    let first = delivery("01E", 0, DeliveryStatus::Succeeded);
    store
        .finish_dispatch(&e, std::slice::from_ref(&first), false)
        .unwrap();
    store.kv_set("stripe", "cursor", b"1").unwrap();
    store.kv_set("stripe", "cursor", b"2").unwrap();
    store.kv_set("stripe", "gone", b"x").unwrap();
    store.kv_delete("stripe", "gone").unwrap();
    store.sync().await.unwrap();
}

/// What [`store_with_history`] wrote, read back from a store however it was recovered.
fn assert_history(store: &SledStore) {
    let status = |id: &str| store.event(id).unwrap().expect(id).status;
    assert_eq!(status("01A"), Status::Succeeded);
    assert_eq!(status("01B"), Status::Dead);
    assert_eq!(status("01C"), Status::Pending);
    assert_eq!(status("01D"), Status::Pending, "the replay holds");
    let pending: Vec<String> = store
        .pending_events()
        .unwrap()
        .into_iter()
        .filter(|id| id.starts_with("01"))
        .collect();
    assert_eq!(pending, vec!["01C", "01D"], "nothing settled is run again");
    assert_eq!(status("01E"), Status::Succeeded);
    for id in ["01A", "01E"] {
        let delivered = store.deliveries(id).unwrap();
        assert_eq!(delivered.len(), 1, "{id}");
        assert_eq!(delivered[0].status, DeliveryStatus::Succeeded, "{id}");
    }
    assert!(
        store.open_deliveries().unwrap().is_empty(),
        "nothing to send again"
    );
    assert_eq!(
        store.request("01C").unwrap().unwrap().body.as_bytes(),
        b"{}"
    );
    assert_eq!(
        store.kv_get("stripe", "cursor").unwrap(),
        Some(b"2".to_vec())
    );
    assert_eq!(store.kv_get("stripe", "gone").unwrap(), None);
    // Dedupe claims came back: a repeat of each is a duplicate.
    for (i, key) in ["evt_a", "evt_b", "evt_c", "evt_d"].iter().enumerate() {
        let again = store
            .insert_now(new_event(&format!("01R{i}"), 20, Some(key)))
            .unwrap();
        assert!(
            matches!(again, Inserted::Duplicate { .. }),
            "{key}: {again:?}"
        );
    }
}

/// Directories next to the index whose names start with `prefix`.
fn beside_index(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect()
}

#[tokio::test]
async fn a_missing_index_is_rebuilt_from_the_inbox_with_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    store_with_history(dir.path()).await;
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let store = SledStore::open(dir.path(), true).unwrap();
    assert_history(&store);
    assert!(
        beside_index(dir.path(), "index.broken-").is_empty(),
        "nothing to keep"
    );
    // Rebuilt once: it is trusted at the next start.
    drop(store);
    let store = SledStore::open(dir.path(), true).unwrap();
    assert_eq!(store.pending_events().unwrap(), vec!["01C", "01D"]);
}

#[tokio::test]
async fn a_garbage_index_is_kept_aside_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    store_with_history(dir.path()).await;
    let index = dir.path().join("index");
    for file in ["db", "conf"] {
        std::fs::write(index.join(file), vec![0x5a; 70_000]).unwrap();
    }
    let store = SledStore::open(dir.path(), true).unwrap();
    assert_history(&store);
    let kept = beside_index(dir.path(), "index.broken-");
    assert_eq!(kept.len(), 1, "the broken index is kept for forensics");
    assert_eq!(
        std::fs::read(kept[0].join("db")).unwrap(),
        vec![0x5a; 70_000]
    );
}

#[tokio::test]
async fn an_index_that_opens_empty_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    store_with_history(dir.path()).await;
    // What sled 0.34 does with some torn logs: it opens as a new database.
    let index = dir.path().join("index");
    std::fs::remove_dir_all(&index).unwrap();
    drop(sled::Config::new().path(&index).open().unwrap());
    let store = SledStore::open(dir.path(), true).unwrap();
    assert_history(&store);
    assert_eq!(beside_index(dir.path(), "index.broken-").len(), 1);
}

#[tokio::test]
async fn an_index_behind_its_checkpoint_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let old = dir.path().join("old-index");
    {
        let store = SledStore::open(dir.path(), true).unwrap();
        store
            .insert_event(new_event("00Z", 10, None))
            .await
            .unwrap();
    }
    copy_dir(&index, &old);
    store_with_history(dir.path()).await;
    // sled went back to an earlier state (a torn rewrite of a segment), but the
    // checkpoint says it had made more durable.
    let checkpoint = std::fs::read(index.join(recovery::CHECKPOINT)).unwrap();
    std::fs::remove_dir_all(&index).unwrap();
    std::fs::rename(&old, &index).unwrap();
    std::fs::write(index.join(recovery::CHECKPOINT), checkpoint).unwrap();
    let store = SledStore::open(dir.path(), true).unwrap();
    assert_history(&store);
    assert_eq!(beside_index(dir.path(), "index.broken-").len(), 1);
}

#[tokio::test]
async fn an_index_missing_an_acknowledged_event_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    store_with_history(dir.path()).await;
    {
        // The newest acknowledged event is gone while the marks say all is there.
        let db = sled::Config::new()
            .path(dir.path().join("index"))
            .open()
            .unwrap();
        db.open_tree("events").unwrap().remove("01E").unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path(), true).unwrap();
    assert_history(&store);
}

#[tokio::test]
async fn a_rebuild_cut_short_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    store_with_history(dir.path()).await;
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    // What a crash in the middle of a rebuild leaves.
    std::fs::create_dir(dir.path().join("index.rebuilding")).unwrap();
    std::fs::write(dir.path().join("index.rebuilding/db"), b"half").unwrap();
    let store = SledStore::open(dir.path(), true).unwrap();
    assert_history(&store);
    assert!(!dir.path().join("index.rebuilding").exists());
}

#[tokio::test]
async fn a_store_of_the_earlier_layout_moves_its_index_and_keeps_its_events() {
    let dir = tempfile::tempdir().unwrap();
    store_with_history(dir.path()).await;
    // Before `index/`: sled's files directly in storage.path.
    let index = dir.path().join("index");
    for entry in std::fs::read_dir(&index).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != recovery::CHECKPOINT {
            std::fs::rename(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::remove_dir_all(&index).unwrap();
    let store = SledStore::open(dir.path(), true).unwrap();
    assert_history(&store);
    assert!(!dir.path().join("db").exists());
    assert!(
        beside_index(dir.path(), "index.broken-").is_empty(),
        "no rebuild needed"
    );
}

#[tokio::test]
async fn kv_outlives_the_inbox_segments_it_was_written_in() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path(), true).unwrap();
        store.kv_set("stripe", "cursor", b"kept").unwrap();
    }
    // Written in a segment that retention deletes (everything before the cutoff)…
    let store = SledStore::open(dir.path(), true).unwrap();
    store
        .insert_event(new_event("01N", 10, None))
        .await
        .unwrap();
    assert_eq!(store.purge_before(0, 100).unwrap(), 0);
    let far = crate::time::now_ms() + 3_600_000;
    store.purge_before(far, 100).unwrap();
    assert_eq!(
        beside_index(&dir.path().join("inbox"), "").len(),
        1,
        "only the current segment is left"
    );
    drop(store);
    // …and still there after a rebuild.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let store = SledStore::open(dir.path(), true).unwrap();
    assert_eq!(
        store.kv_get("stripe", "cursor").unwrap(),
        Some(b"kept".to_vec())
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn a_new_store_whose_sled_writes_were_all_lost_comes_back_from_the_inbox() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path(), true).unwrap();
        // Made durable by `open`, before any event: what sled recovers at the least.
        let mark = store.trees.meta.get(ingest::APPLIED).unwrap();
        assert!(mark.is_some(), "a new store marks where its inbox begins");
        for id in ["01A", "01B"] {
            store.insert_event(new_event(id, 10, None)).await.unwrap();
        }
        // A crash that lost every sled write of this run.
        store.trees.events.clear().unwrap();
        store
            .trees
            .meta
            .insert(ingest::APPLIED, mark.unwrap())
            .unwrap();
    }
    let store = SledStore::open(dir.path(), true).unwrap();
    assert_eq!(store.pending_events().unwrap(), vec!["01A", "01B"]);
    assert_eq!(
        store.request("01B").unwrap().unwrap().body.as_bytes(),
        b"{}"
    );
}

#[tokio::test]
async fn the_queue_follows_dispatch_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..40).map(|i| format!("01Q{i:02}")).collect();
    {
        let store = Arc::new(SledStore::open(dir.path(), true).unwrap());
        // Inserted together, so that they share batches.
        let inserts: Vec<_> = ids
            .iter()
            .map(|id| store.insert_event(new_event(id, 10, None)))
            .collect();
        for inserted in futures::future::join_all(inserts).await {
            inserted.unwrap();
        }
        assert_eq!(store.pending_events().unwrap(), ids);
        // Dispatched: the first 30; a retry scheduled (it stays queued): the 31st.
        for id in &ids[..31] {
            let mut record = store.event(id).unwrap().unwrap();
            record.status = Status::Succeeded;
            store.finish_dispatch(&record, &[], id == &ids[30]).unwrap();
        }
        assert_eq!(store.pending_events().unwrap(), ids[30..].to_vec());
        store.sync().await.unwrap();
    }
    let store = SledStore::open(dir.path(), true).unwrap();
    assert_eq!(store.pending_events().unwrap(), ids[30..].to_vec());
    for id in &ids[30..] {
        let record = store.event(id).unwrap().unwrap();
        store.finish_dispatch(&record, &[], false).unwrap();
    }
    assert!(store.pending_events().unwrap().is_empty());
    assert_eq!(store.trees.pending.len(), 0);
    assert_eq!(
        store.trees.batches.entries().count(),
        0,
        "every batch entry went"
    );
}

#[tokio::test]
async fn a_failed_sync_acknowledges_nothing_since_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), true).unwrap();
    store
        .insert_event(new_event("01A", 10, Some("evt_a")))
        .await
        .unwrap();
    store
        .inbox
        .failing_syncs
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let failed = store
        .insert_event(new_event("01B", 20, Some("evt_b")))
        .await;
    assert!(
        failed
            .unwrap_err()
            .to_string()
            .contains("injected I/O error"),
        "the sync's error is the answer"
    );
    // Not stored, not queued, and its dedupe key is free: the sender's retry is new.
    assert_eq!(store.event("01B").unwrap(), None);
    assert_eq!(store.pending_events().unwrap(), vec!["01A"]);
    let retry = store
        .insert_event(new_event("01C", 30, Some("evt_b")))
        .await
        .unwrap();
    assert_eq!(retry, Inserted::Accepted { id: "01C".into() });
    // The retry went to a new segment: the failed one may have lost anything since
    // its last good sync.
    let segment_of = |id: &str| {
        location_of(&store.trees.events.get(id).unwrap().unwrap())
            .unwrap()
            .segment
    };
    assert_eq!(segment_of("01C"), segment_of("01A") + 1);
    assert!(store.inbox.is_poisoned(segment_of("01A")));
}

#[tokio::test]
async fn an_event_whose_request_a_crash_lost_is_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let segment;
    let lost_at;
    {
        let store = SledStore::open(dir.path(), true).unwrap();
        store
            .insert_now(new_event("01A", 10, Some("evt_1")))
            .unwrap();
        store.sync().await.unwrap();
        store
            .insert_now(new_event("01B", 20, Some("evt_2")))
            .unwrap();
        // sled writes the record on its own; the inbox entry has not been synced, and
        // the crash takes it (the file ends where the last sync left it).
        store.db.flush().unwrap();
        let value = store.trees.events.get("01B").unwrap().unwrap();
        let location = location_of(&value).unwrap();
        segment = location.segment;
        lost_at = location.offset;
    }
    let path = dir.path().join("inbox").join(format!("{segment:016x}.seg"));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(lost_at)
        .unwrap();

    let store = SledStore::open(dir.path(), true).unwrap();
    // The acknowledged event is intact; the other one was never acknowledged, so it is
    // gone, and its sender's retry is accepted rather than taken for a duplicate.
    assert_eq!(
        store.request("01A").unwrap().unwrap().body.as_bytes(),
        b"{}"
    );
    assert_eq!(store.event("01B").unwrap(), None);
    assert_eq!(store.pending_events().unwrap(), vec!["01A".to_string()]);
    assert_eq!(
        store
            .insert_now(new_event("01C", 30, Some("evt_2")))
            .unwrap(),
        Inserted::Accepted { id: "01C".into() }
    );
    assert!(matches!(
        store
            .insert_now(new_event("01D", 40, Some("evt_1")))
            .unwrap(),
        Inserted::Duplicate { .. }
    ));
}

#[test]
fn events_stored_before_the_inbox_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), false).unwrap();
    // The earlier layout: the record's JSON alone, the request in `requests`.
    let old = record("01OLD", 10);
    store
        .trees
        .events
        .insert("01OLD", serde_json::to_vec(&old).unwrap())
        .unwrap();
    store
        .trees
        .requests
        .insert("01OLD", serde_json::to_vec(&request(b"legacy")).unwrap())
        .unwrap();
    assert_eq!(store.event("01OLD").unwrap(), Some(old));
    assert_eq!(
        store.request("01OLD").unwrap().unwrap().body.as_bytes(),
        b"legacy"
    );
    let updated = store
        .update_event("01OLD", &mut |r| r.status = Status::Succeeded)
        .unwrap()
        .unwrap();
    assert_eq!(updated.status, Status::Succeeded);
    assert_eq!(
        store.request("01OLD").unwrap().unwrap().body.as_bytes(),
        b"legacy"
    );
}

#[test]
fn updates_keep_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), false).unwrap();
    let mut event = new_event("01A", 10, None);
    event.request = request(b"the body");
    store.insert_now(event).unwrap();
    let mut rec = store.event("01A").unwrap().unwrap();
    rec.status = Status::Succeeded;
    store.finish_dispatch(&rec, &[], false).unwrap();
    store
        .update_event("01A", &mut |r| r.error = Some("x".into()))
        .unwrap();
    store.replay("01A", false).unwrap();
    let rec = store.event("01A").unwrap().unwrap();
    assert_eq!(rec.status, Status::Pending);
    assert_eq!(rec.error, None);
    assert_eq!(
        store.request("01A").unwrap().unwrap().body.as_bytes(),
        b"the body"
    );
}

#[tokio::test]
async fn many_concurrent_waiters_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SledStore::open(dir.path(), true).unwrap());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert_now(new_event(&format!("{i:04}"), 10, None))
                .unwrap();
            store.sync().await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.pending_events().unwrap().len(), 200);
}

#[test]
fn copies_arriving_together_are_accepted_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SledStore::open(dir.path(), false).unwrap());
    let start = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (store, start) = (store.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (0..300)
                    .map(|k| {
                        let id = format!("{k:03}-{i}");
                        store
                            .insert_now(new_event(&id, 10, Some(&format!("evt_{k}"))))
                            .unwrap()
                    })
                    .filter(|inserted| matches!(inserted, Inserted::Accepted { .. }))
                    .count()
            })
        })
        .collect();
    let accepted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(accepted, 300, "each of the 300 keys accepted exactly once");
    assert_eq!(store.pending_events().unwrap().len(), 300);
}

#[test]
fn a_repeat_within_the_window_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), false).unwrap();
    store
        .insert_now(new_event("01A", 10, Some("evt_1")))
        .unwrap();
    let again = store
        .insert_now(new_event("01B", 500, Some("evt_1")))
        .unwrap();
    assert_eq!(
        again,
        Inserted::Duplicate {
            id: "01B".into(),
            first_id: "01A".into()
        }
    );
    let dup = store.event("01B").unwrap().unwrap();
    assert_eq!(dup.status, Status::Duplicate);
    assert_eq!(dup.duplicate_of.as_deref(), Some("01A"));
    assert_eq!(store.pending_events().unwrap(), vec!["01A".to_string()]);
    // Another key is not a duplicate; nor is the same key after the window.
    assert!(matches!(
        store
            .insert_now(new_event("01C", 600, Some("evt_2")))
            .unwrap(),
        Inserted::Accepted { .. }
    ));
    assert!(matches!(
        store
            .insert_now(new_event("01D", 5_000, Some("evt_1")))
            .unwrap(),
        Inserted::Accepted { .. }
    ));
}

#[test]
fn finishing_a_dispatch_moves_the_event_to_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), false).unwrap();
    store.insert_now(new_event("01A", 10, None)).unwrap();
    let mut rec = store.event("01A").unwrap().unwrap();
    rec.status = Status::Pending;
    let delivery = DeliveryRecord {
        event_id: "01A".into(),
        index: 0,
        idempotency_key: "01A-0".into(),
        request: OutboundRequest {
            method: "POST".into(),
            url: "http://127.0.0.1:9/x".into(),
            headers: vec![],
            body: b"{}".as_slice().into(),
        },
        status: DeliveryStatus::Pending,
        next_attempt_at: None,
        attempts: vec![],
    };
    store
        .finish_dispatch(&rec, std::slice::from_ref(&delivery), false)
        .unwrap();
    assert!(store.pending_events().unwrap().is_empty());
    assert_eq!(store.open_deliveries().unwrap(), vec![delivery.clone()]);

    let mut done = delivery;
    done.status = DeliveryStatus::Succeeded;
    store.put_delivery(&done).unwrap();
    assert!(store.open_deliveries().unwrap().is_empty());
    assert_eq!(store.deliveries("01A").unwrap(), vec![done]);
}

#[test]
fn kv_is_namespaced_per_connector() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), false).unwrap();
    store.kv_set("a", "k", b"1").unwrap();
    store.kv_set("b", "k", b"2").unwrap();
    assert_eq!(store.kv_get("a", "k").unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.kv_get("b", "k").unwrap(), Some(b"2".to_vec()));
    store.kv_delete("a", "k").unwrap();
    assert_eq!(store.kv_get("a", "k").unwrap(), None);
    assert_eq!(store.kv_get("b", "k").unwrap(), Some(b"2".to_vec()));
}

#[test]
fn bodies_round_trip_as_text_or_base64() {
    let text = serde_json::to_string(&crate::store::Body::from(b"hi".as_slice())).unwrap();
    assert_eq!(text, "\"hi\"");
    let raw = crate::store::Body::from(vec![0xff, 0x00]);
    let json = serde_json::to_string(&raw).unwrap();
    assert_eq!(json, r#"{"base64":"/wA="}"#);
    let back: crate::store::Body = serde_json::from_str(&json).unwrap();
    assert_eq!(back, raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sled_engine_conforms() {
    crate::store::conformance::run("sled", || async {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), true).unwrap();
        crate::store::conformance::Fresh {
            store: Arc::new(store),
            keep: Box::new(dir),
        }
    })
    .await;
}
