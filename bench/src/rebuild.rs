//! `switchyard-bench rebuild`: how long the store takes to rebuild its index from the inbox
//! (what a start after a power cut that tore sled costs), against a normal start on the
//! same data.
//!
//! It fills a store through the [`Storage`] API as the host would (events as Stripe sends
//! them, most of them settled with one delivery), removes the index, and times the open
//! that rebuilds it, then an open that trusts it.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use switchyard::outbound::OutboundRequest;
use switchyard::store::sled::{SledStore, StoreOptions};
use switchyard::store::{
    DeliveryRecord, DeliveryStatus, EventRecord, NewEvent, Status, StoredRequest,
};

/// Events inserted together (the sequencer batches them as it does under load).
const CHUNK: usize = 2_000;

pub async fn run(tmp: &Path, events: usize, settled_share: f64) -> anyhow::Result<()> {
    std::fs::create_dir_all(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let dir = tempfile::tempdir_in(tmp)?;
    let options = StoreOptions::default();
    let started = Instant::now();
    let settled = fill(dir.path(), events, settled_share).await?;
    let filled = started.elapsed();
    let inbox_bytes: u64 = std::fs::read_dir(dir.path().join("inbox"))?
        .map(|e| e.map(|e| e.metadata().map(|m| m.len()).unwrap_or(0)))
        .sum::<Result<u64, _>>()?;

    std::fs::remove_dir_all(dir.path().join("index"))?;
    let started = Instant::now();
    let store = SledStore::open_with(dir.path(), options)?;
    let rebuild = started.elapsed();
    let pending = store.pending_events()?.len();
    drop(store);

    let started = Instant::now();
    drop(SledStore::open_with(dir.path(), options)?);
    let trusted = started.elapsed();

    println!(
        "{events} events ({settled} settled, {pending} pending after the rebuild), inbox {:.0} MiB, filled in {:.1} s",
        inbox_bytes as f64 / (1 << 20) as f64,
        filled.as_secs_f64()
    );
    println!(
        "rebuild from the inbox: {:.2} s ({:.1} µs per event); open with a trusted index: {:.2} s",
        rebuild.as_secs_f64(),
        rebuild.as_secs_f64() * 1e6 / events as f64,
        trusted.as_secs_f64()
    );
    Ok(())
}

/// Insert `events` events, settling `share` of them with one succeeded delivery.
async fn fill(dir: &Path, events: usize, share: f64) -> anyhow::Result<usize> {
    let store = SledStore::open_with(
        dir,
        StoreOptions {
            durable: false,
            ..StoreOptions::default()
        },
    )?;
    let now = switchyard::time::now_ms();
    let mut settled = 0;
    for chunk in 0..events.div_ceil(CHUNK) {
        let ids: Vec<String> = (chunk * CHUNK..((chunk + 1) * CHUNK).min(events))
            .map(|i| ulid::Ulid::from_parts(now - 3_600_000 + i as u64 / 10, i as u128).to_string())
            .collect();
        let inserts: Vec<_> = ids
            .iter()
            .map(|id| store.insert_event(new_event(id, now)))
            .collect();
        for inserted in futures::future::join_all(inserts).await {
            inserted?;
        }
        for (i, id) in ids.iter().enumerate() {
            if ((chunk * CHUNK + i) as f64 / events as f64) >= share {
                continue;
            }
            let mut record = store.event(id)?.context("just inserted")?;
            record.status = Status::Pending;
            let mut delivery = delivery(id);
            store.finish_dispatch(&record, std::slice::from_ref(&delivery), false)?;
            delivery.status = DeliveryStatus::Succeeded;
            store.put_delivery(&delivery)?;
            store.update_event(id, &mut |r| r.status = Status::Succeeded)?;
            settled += 1;
        }
    }
    Ok(settled)
}

fn new_event(id: &str, now: u64) -> NewEvent {
    let evt = format!("evt_{id}");
    let body = format!(
        r#"{{"id":"{evt}","object":"event","api_version":"2024-06-20","created":1700000000,"data":{{"object":{{"id":"in_1NcXo2LkdIwHu7ix","object":"invoice","amount_due":2000,"amount_paid":2000,"currency":"usd","customer":"cus_OPJkPtG2lcr1tN","status":"paid","lines":{{"object":"list","data":[]}}}}}},"livemode":false,"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}},"type":"invoice.paid"}}"#
    );
    let mut record = EventRecord::received(id.into(), "stripe".into(), now, "stripe");
    record.dedupe_key = Some(evt.clone());
    NewEvent {
        record,
        request: StoredRequest {
            method: "POST".into(),
            path: "/hooks/stripe".into(),
            query: String::new(),
            headers: vec![
                (
                    "content-type".into(),
                    "application/json; charset=utf-8".into(),
                ),
                (
                    "stripe-signature".into(),
                    format!("t=1700000000,v1={}", "ab".repeat(32)),
                ),
                (
                    "user-agent".into(),
                    "Stripe/1.0 (+https://stripe.com/docs/webhooks)".into(),
                ),
            ],
            body: body.into_bytes().into(),
        },
        dedupe: Some((evt, 7 * 86_400_000)),
    }
}

fn delivery(id: &str) -> DeliveryRecord {
    DeliveryRecord {
        event_id: id.into(),
        index: 0,
        idempotency_key: format!("{id}-0"),
        request: OutboundRequest {
            method: "POST".into(),
            url: "http://127.0.0.1:9000/billing".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"type":"invoice.paid","data":{"object":{"id":"in_1NcXo2LkdIwHu7ix"}}}"#
                .as_slice()
                .into(),
        },
        status: DeliveryStatus::Pending,
        next_attempt_at: None,
        attempts: Vec::new(),
    }
}
