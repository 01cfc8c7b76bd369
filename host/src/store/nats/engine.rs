//! The engine on NATS JetStream: every capability of [`crate::store::Storage`] on streams
//! and key-value buckets every node shares. Names start with `storage.nats_prefix` (`P`):
//!
//! | what | JetStream | key or subject |
//! |---|---|---|
//! | each event as received (record + request) | stream `P_events`, limits, `max_age` = retention | `P.ev.{connector}.{id}` (dispatched), `P.no.{connector}.{id}` (duplicates, rejected), `P.rp.{connector}.{id}` (a replay's marker) |
//! | the dispatch queue of a connector | durable pull consumer `P_dispatch_{connector}` on `P_events`, filtered on `ev` and `rp` of that connector | |
//! | event records (status, attempts) | KV `P_records`, `max_age` = retention | `{id}` |
//! | dedupe claims | KV `P_dedupe`, `max_age` = the dedupe window | hash of connector and key |
//! | deliveries | KV `P_deliveries`, `max_age` = retention | `{id}.{index}` |
//! | the delivery queue | stream `P_outbox`, work queue, and consumer `P_deliver` | `P.out` |
//! | connector `kv` | KV `P_kv` | `{connector hex}.{key hex}` |
//!
//! **Durable before 200.** The event (its record and request) is published to `P_events`
//! with `Nats-Msg-Id` = its id (a retried publish cannot store it twice), and the answer
//! waits for the `PubAck`: the message is the truth. It is also the event's place in its
//! connector's queue, so there is no second write that a crash could lose between storing
//! and queueing. The record in `P_records` is written after it; a node that dies between
//! the two leaves it to the dispatcher, which creates a missing record from the message.
//!
//! **Dedupe across the cluster** is one atomic `create` of the key's claim in `P_dedupe`
//! (a second node's `create` fails), kept for the whole window by the bucket's `max_age`,
//! not by the stream's in-memory `Nats-Msg-Id` window. A claim whose event does not exist
//! (its node died between the claim and the publish) is taken over after
//! [`ORPHAN_CLAIM`]; before that a copy gets a 503, and the sender's retry settles it.
//!
//! **Work sharing.** A node leases an event by taking its message from the connector's
//! consumer (explicit acks): it is acked once the outcome is stored, nak'd with a delay
//! for a scheduled retry, and redelivered to another node if this one dies (after
//! `ack_wait`). Deliveries likewise, on `P_deliver`.
//!
//! **The event log's index.** Listing by connector, status and time needs an order the
//! buckets do not have, and scanning 30 days of records per query is not an option. Each
//! node keeps an index in memory (id → connector, status, time), filled at start from a
//! watch of `P_records` and kept current by it, so it sees what every node stores; its
//! own writes update it at once. It is rebuilt from the bucket at every start (about
//! 100 bytes an event in memory). Pages read the records themselves from the bucket.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::kv::{self, CreateErrorKind};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::config::StorageConfig;
use crate::store::tally::Counts;
use crate::store::{
    ConnectorKv, Dedupe, DedupeCursor, DeliveryRecord, DispatchQueue, EventLog, EventQuery,
    EventRecord, Inserted, Lease, NewEvent, Outbox, ReplayError, Result, Status, StoreError,
    StoredRequest, lifecycle,
};

/// A dedupe claim whose event cannot be found is taken over after this long (a copy that
/// arrives sooner gets a 503: the first may still be being stored).
pub const ORPHAN_CLAIM: Duration = Duration::from_secs(30);
/// How long a publish may be retried with the same `Nats-Msg-Id` and still be stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// Events and deliveries a consumer may have handed out and not acked (scheduled retries
/// count while they wait).
const MAX_ACK_PENDING: i64 = 1_000_000;
/// How often the index checks that its watch is not behind the bucket.
const WATCH_CHECK: Duration = Duration::from_secs(2);
/// Records scanned for one page of the event log at most.
const MAX_SCAN: usize = 10_000;

/// How a [`NatsStore`] is opened.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// `storage.retention_days`: the streams' and buckets' `max_age`.
    pub retention: Duration,
    /// `storage.dedupe_window`: the dedupe bucket's `max_age`.
    pub dedupe_window: Duration,
    /// How long a leased event or delivery stays this node's before another node gets it
    /// (when this one died): longer than any connector call or delivery try may take.
    pub ack_wait: Duration,
}

/// The engine on NATS JetStream.
pub struct NatsStore {
    js: Context,
    prefix: String,
    replicas: usize,
    events: stream::Stream,
    records: kv::Store,
    dedupe: kv::Store,
    deliveries: kv::Store,
    kv: kv::Store,
    deliver: consumer::Consumer<pull::Config>,
    ack_wait: Duration,
    retention: Duration,
    /// One consumer per connector, created when first asked for.
    dispatchers: tokio::sync::Mutex<HashMap<String, consumer::Consumer<pull::Config>>>,
    index: Arc<Index>,
    /// The index's watch of `P_records`; stopped with the store.
    watcher: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Drop for NatsStore {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// What a message of `P_events` holds.
#[derive(Serialize, Deserialize)]
struct StoredEvent {
    record: EventRecord,
    request: StoredRequest,
}

/// A NATS lease: the message that holds the item. Dropped unfinished, it is given back
/// at once (not after `ack_wait`).
struct Held(Option<jetstream::Message>);

impl Held {
    fn take(lease: Lease) -> Option<jetstream::Message> {
        lease
            .into_handle::<Held>()
            .and_then(|mut held| held.0.take())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(message) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = message.ack_with(AckKind::Nak(None)).await;
            });
        }
    }
}

/// A dedupe claim: the event that holds the key, and when it was received.
#[derive(Serialize, Deserialize)]
struct Claim {
    event_id: String,
    at: u64,
}

fn unavailable<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> StoreError + '_ {
    move |err| StoreError::Unavailable(format!("{what}: {err}"))
}

/// A subject token for a connector id: as it is when NATS allows it, else hex.
fn token(connector: &str) -> String {
    if !connector.is_empty()
        && connector
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        connector.to_string()
    } else {
        format!("x{}", hex::encode(connector))
    }
}

fn dedupe_key(connector: &str, key: &str) -> String {
    let mut hash = sha2::Sha256::new();
    hash.update(connector.as_bytes());
    hash.update([0]);
    hash.update(key.as_bytes());
    hex::encode(&hash.finalize()[..20])
}

fn delivery_key(delivery: &DeliveryRecord) -> String {
    format!("{}.{}", delivery.event_id, delivery.index)
}

/// Where an event's message is.
fn event_subject(prefix: &str, record: &EventRecord) -> String {
    let kind = if record.status == Status::Duplicate || record.status == Status::Rejected {
        "no"
    } else {
        "ev"
    };
    format!("{prefix}.{kind}.{}.{}", token(&record.connector), record.id)
}

impl NatsStore {
    /// Connect, and create (or update) the streams, buckets and consumers of the
    /// deployment.
    pub async fn open(config: &StorageConfig, options: NatsOptions) -> Result<Self> {
        let client = super::connect(config, "switchyard")
            .await
            .map_err(|err| StoreError::Unavailable(err.to_string()))?;
        let js = jetstream::new(client);
        let prefix = config.nats_prefix.clone();
        let replicas = config.replicas;
        let events = js
            .create_or_update_stream(stream::Config {
                name: format!("{prefix}_events"),
                subjects: vec![
                    format!("{prefix}.ev.>"),
                    format!("{prefix}.no.>"),
                    format!("{prefix}.rp.>"),
                ],
                retention: RetentionPolicy::Limits,
                max_age: options.retention,
                storage: StorageType::File,
                num_replicas: replicas,
                duplicate_window: DUPLICATE_WINDOW,
                // Reads from the leader (see the buckets below).
                allow_direct: false,
                ..Default::default()
            })
            .await
            .map_err(unavailable("creating the events stream"))?;
        let events = js
            .get_stream(&events.config.name)
            .await
            .map_err(unavailable("opening the events stream"))?;
        let outbox = js
            .create_or_update_stream(stream::Config {
                name: format!("{prefix}_outbox"),
                subjects: vec![format!("{prefix}.out")],
                retention: RetentionPolicy::WorkQueue,
                storage: StorageType::File,
                num_replicas: replicas,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(unavailable("creating the outbox stream"))?;
        let outbox = js
            .get_stream(&outbox.config.name)
            .await
            .map_err(unavailable("opening the outbox stream"))?;
        let bucket = |name: &str, max_age: Duration| kv::Config {
            bucket: format!("{prefix}_{name}"),
            history: 1,
            max_age,
            storage: StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        let mut buckets = Vec::new();
        for (name, max_age) in [
            ("records", options.retention),
            ("dedupe", options.dedupe_window),
            ("deliveries", options.retention),
            ("kv", Duration::ZERO),
        ] {
            let config = bucket(name, max_age);
            js.create_or_update_key_value(config.clone())
                .await
                .map_err(unavailable("creating a key-value bucket"))?;
            // Reads from the stream's leader, not any replica: a replica that is behind
            // (just after a node died) answers "not found" for a key it has not got yet,
            // and a dispatcher must never take that for an event that is gone.
            let mut stream = js
                .get_stream(format!("KV_{}", config.bucket))
                .await
                .map_err(unavailable("opening a key-value bucket"))?
                .cached_info()
                .config
                .clone();
            if stream.allow_direct {
                stream.allow_direct = false;
                js.update_stream(stream)
                    .await
                    .map_err(unavailable("configuring a key-value bucket"))?;
            }
            buckets.push(
                js.get_key_value(&config.bucket)
                    .await
                    .map_err(unavailable("opening a key-value bucket"))?,
            );
        }
        let [records, dedupe, deliveries, kv]: [kv::Store; 4] =
            buckets.try_into().expect("four buckets");
        let deliver = outbox
            .get_or_create_consumer(
                &format!("{prefix}_deliver"),
                pull::Config {
                    durable_name: Some(format!("{prefix}_deliver")),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: options.ack_wait,
                    max_deliver: -1,
                    max_ack_pending: MAX_ACK_PENDING,
                    num_replicas: replicas,
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable("creating the delivery consumer"))?;
        let index = Arc::new(Index::default());
        let watcher = index.follow(records.clone()).await?;
        Ok(NatsStore {
            js,
            prefix,
            replicas,
            events,
            records,
            dedupe,
            deliveries,
            kv,
            deliver,
            ack_wait: options.ack_wait,
            retention: options.retention,
            dispatchers: Default::default(),
            index,
            watcher,
        })
    }

    async fn dispatcher(&self, connector: &str) -> Result<consumer::Consumer<pull::Config>> {
        let mut dispatchers = self.dispatchers.lock().await;
        if let Some(consumer) = dispatchers.get(connector) {
            return Ok(consumer.clone());
        }
        let name = format!("{}_dispatch_{}", self.prefix, token(connector));
        let consumer = self
            .events
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    max_deliver: -1,
                    max_ack_pending: MAX_ACK_PENDING,
                    filter_subjects: vec![
                        format!("{}.ev.{}.*", self.prefix, token(connector)),
                        format!("{}.rp.{}.*", self.prefix, token(connector)),
                    ],
                    num_replicas: self.replicas,
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable("creating a dispatch consumer"))?;
        dispatchers.insert(connector.to_string(), consumer.clone());
        Ok(consumer)
    }

    /// One message from `consumer`, waiting at most `wait`.
    async fn take(
        consumer: &consumer::Consumer<pull::Config>,
        wait: Duration,
    ) -> Result<Option<jetstream::Message>> {
        // `fetch` answers at once; `batch` waits on the server for up to `expires`.
        let mut messages = if wait < Duration::from_millis(10) {
            consumer.fetch().max_messages(1).messages().await
        } else {
            consumer
                .batch()
                .max_messages(1)
                .expires(wait)
                .messages()
                .await
        }
        .map_err(unavailable("taking the next message"))?;
        match messages.next().await {
            Some(Ok(message)) => Ok(Some(message)),
            Some(Err(err)) => Err(StoreError::Unavailable(format!(
                "taking the next message: {err}"
            ))),
            None => Ok(None),
        }
    }

    async fn get_record(&self, id: &str) -> Result<Option<(EventRecord, u64)>> {
        match self.records.entry(id).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put => Ok(Some((
                serde_json::from_slice(&entry.value)?,
                entry.revision,
            ))),
            Ok(_) => Ok(None),
            Err(err) => Err(StoreError::Unavailable(format!(
                "reading event {id}: {err}"
            ))),
        }
    }

    /// Write `record` over revision `revision` (`None`: create); `Ok(false)` when another
    /// writer got there first.
    async fn put_record(&self, record: &EventRecord, revision: Option<u64>) -> Result<bool> {
        let value = serde_json::to_vec(record)?.into();
        let written = match revision {
            Some(revision) => self
                .records
                .update(&record.id, value, revision)
                .await
                .map(|_| ())
                .map_err(|err| {
                    (
                        err.kind() == kv::UpdateErrorKind::WrongLastRevision,
                        err.to_string(),
                    )
                }),
            None => self
                .records
                .create(&record.id, value)
                .await
                .map(|_| ())
                .map_err(|err| {
                    (
                        err.kind() == CreateErrorKind::AlreadyExists,
                        err.to_string(),
                    )
                }),
        };
        match written {
            Ok(()) => {
                self.index.put(record);
                Ok(true)
            }
            Err((true, _)) => Ok(false),
            Err((false, err)) => Err(StoreError::Unavailable(format!(
                "writing event {}: {err}",
                record.id
            ))),
        }
    }

    /// Read-modify-write of a record until it wins.
    async fn modify(
        &self,
        id: &str,
        update: &mut (dyn FnMut(&mut EventRecord) + Send),
    ) -> Result<Option<EventRecord>> {
        loop {
            let Some((mut record, revision)) = self.get_record(id).await? else {
                return Ok(None);
            };
            let previous = record.updated_at;
            update(&mut record);
            record.updated_at = lifecycle::next_update(previous);
            if self.put_record(&record, Some(revision)).await? {
                return Ok(Some(record));
            }
        }
    }

    /// Claim the dedupe key for event `id`, received at `at` with a dedupe window of
    /// `window` ms: `Ok(None)` when it is ours, `Ok(Some(first))` when the event `first`
    /// holds it.
    async fn claim(
        &self,
        key: &str,
        connector: &str,
        id: &str,
        at: u64,
        window: u64,
    ) -> Result<Option<String>> {
        let ours: bytes::Bytes = serde_json::to_vec(&Claim {
            event_id: id.to_string(),
            at,
        })?
        .into();
        loop {
            match self.dedupe.create(key, ours.clone()).await {
                Ok(_) => return Ok(None),
                Err(err) if err.kind() == CreateErrorKind::AlreadyExists => {}
                Err(err) => {
                    return Err(StoreError::Unavailable(format!(
                        "claiming a dedupe key: {err}"
                    )));
                }
            }
            let Some(entry) = self
                .dedupe
                .entry(key)
                .await
                .map_err(unavailable("reading a dedupe claim"))?
            else {
                continue;
            };
            let claim = (entry.operation == kv::Operation::Put)
                .then(|| serde_json::from_slice::<Claim>(&entry.value).ok())
                .flatten();
            // Deleted since (a refused copy gave it back), or past its window: anew.
            let live = claim.filter(|c| at.saturating_sub(c.at) <= window);
            let Some(claim) = live else {
                match self.dedupe.update(key, ours.clone(), entry.revision).await {
                    Ok(_) => return Ok(None),
                    Err(_) => continue,
                }
            };
            if self.stored(connector, &claim.event_id).await? {
                return Ok(Some(claim.event_id));
            }
            let age_ms =
                crate::time::now_ms() as i128 - entry.created.unix_timestamp_nanos() / 1_000_000;
            if age_ms < ORPHAN_CLAIM.as_millis() as i128 {
                return Err(StoreError::Unavailable(
                    "a copy of this event is still being stored; retry".into(),
                ));
            }
            // Its node died between the claim and the publish: nothing holds the key.
            match self.dedupe.update(key, ours.clone(), entry.revision).await {
                Ok(_) => return Ok(None),
                Err(_) => continue,
            }
        }
    }

    async fn publish(&self, subject: String, msg_id: &str, payload: Vec<u8>) -> Result<()> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        self.js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(unavailable("publishing"))?
            .await
            .map_err(unavailable("waiting for JetStream's acknowledgement"))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl EventLog for NatsStore {
    async fn insert_event(&self, event: NewEvent) -> Result<Inserted> {
        let NewEvent {
            mut record,
            request,
            dedupe,
        } = event;
        record.dedupe_key = dedupe.as_ref().map(|(key, _)| key.clone());
        let mut claim = None;
        if let Some((key, window)) = &dedupe {
            let hashed = dedupe_key(&record.connector, key);
            match self
                .claim(
                    &hashed,
                    &record.connector,
                    &record.id,
                    record.received_at,
                    *window,
                )
                .await?
            {
                Some(first) => {
                    crate::store::lifecycle::duplicate(&mut record, first);
                }
                None => claim = Some(hashed),
            }
        }
        let payload = serde_json::to_vec(&StoredEvent {
            record: record.clone(),
            request,
        })?;
        let published = self
            .publish(event_subject(&self.prefix, &record), &record.id, payload)
            .await;
        if let Err(err) = published {
            // Not acknowledged: the key is free again for the sender's retry (best
            // effort: a claim left behind is taken over after `ORPHAN_CLAIM`).
            if let Some(key) = claim {
                let _ = self.dedupe.delete(&key).await;
            }
            return Err(err);
        }
        // Stored. The record follows; if writing it fails now, the dispatcher writes it
        // from the message (a duplicate's is only in the message then).
        if let Err(err) = self.put_record(&record, None).await {
            tracing::warn!(event_id = %record.id, "the event is stored, its record not yet: {err}");
        }
        Ok(match record.duplicate_of {
            Some(first_id) => Inserted::Duplicate {
                id: record.id,
                first_id,
            },
            None => Inserted::Accepted { id: record.id },
        })
    }

    async fn sync(&self) -> Result<()> {
        // Every write was acknowledged by JetStream when it returned.
        Ok(())
    }

    async fn event(&self, id: &str) -> Result<Option<EventRecord>> {
        Ok(self.get_record(id).await?.map(|(record, _)| record))
    }

    async fn request(&self, id: &str) -> Result<Option<StoredRequest>> {
        let Some((record, _)) = self.get_record(id).await? else {
            return Ok(None);
        };
        match self
            .last_message(&event_subject(&self.prefix, &record))
            .await?
        {
            Some(message) => {
                let stored: StoredEvent = serde_json::from_slice(&message.payload)?;
                Ok(Some(stored.request))
            }
            None => Ok(None),
        }
    }

    async fn update_event(
        &self,
        id: &str,
        update: &mut (dyn for<'r> FnMut(&'r mut EventRecord) + Send),
    ) -> Result<Option<EventRecord>> {
        self.modify(id, update).await
    }

    async fn counts(&self, since: u64) -> Result<Option<HashMap<String, (Counts, Counts)>>> {
        Ok(Some(self.index.counts(since)))
    }

    async fn list_events(&self, query: &EventQuery) -> Result<(Vec<EventRecord>, Option<String>)> {
        if let Some(key) = &query.key {
            let mut candidates = Vec::new();
            for id in self.index.with_key(key) {
                if let Some((record, _)) = self.get_record(&id).await? {
                    candidates.push(record);
                }
            }
            return Ok(crate::store::page_of(candidates, query));
        }
        let (ids, next) = self.index.page(query);
        let mut page = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some((record, _)) = self.get_record(&id).await? {
                page.push(record);
            }
        }
        Ok((page, next))
    }

    async fn replay(&self, id: &str, new_keys: bool) -> Result<EventRecord, ReplayError> {
        let existing = self.deliveries_of(id).await?.len() as u32;
        let mut refused = None;
        let record = self
            .modify(id, &mut |record| {
                let mut candidate = record.clone();
                match lifecycle::reset_for_replay(&mut candidate, existing, new_keys) {
                    Ok(()) => {
                        refused = None;
                        *record = candidate;
                    }
                    Err(err) => refused = Some(err),
                }
            })
            .await?
            .ok_or_else(|| ReplayError::NotFound(id.to_string()))?;
        if let Some(err) = refused {
            return Err(err);
        }
        let subject = format!(
            "{}.rp.{}.{}",
            self.prefix,
            token(&record.connector),
            record.id
        );
        let msg_id = format!("{}.replay.{}", record.id, record.updated_at);
        self.publish(subject, &msg_id, record.id.clone().into_bytes())
            .await?;
        Ok(record)
    }

    async fn purge_before(&self, cutoff: u64, batch: usize) -> Result<usize> {
        // The buckets' and the stream's `max_age` removes the same a little later; this
        // keeps the index and retention's answer exact.
        let old = self.index.before(cutoff, batch);
        for id in &old {
            if let Some((record, _)) = self.get_record(id).await? {
                for delivery in self.deliveries_of(id).await? {
                    let _ = self.deliveries.purge(delivery_key(&delivery)).await;
                }
                if let Some(key) = &record.dedupe_key {
                    let hashed = dedupe_key(&record.connector, key);
                    if let Ok(Some(entry)) = self.dedupe.entry(&hashed).await
                        && serde_json::from_slice::<Claim>(&entry.value)
                            .is_ok_and(|c| c.event_id == *id)
                    {
                        let _ = self.dedupe.purge(&hashed).await;
                    }
                }
            }
            self.records
                .purge(id)
                .await
                .map_err(unavailable("removing an old event"))?;
            self.index.remove(id);
        }
        Ok(old.len())
    }
}

impl NatsStore {
    /// Whether event `id` of `connector` is stored (its message is in `P_events`).
    async fn stored(&self, connector: &str, id: &str) -> Result<bool> {
        if self.get_record(id).await?.is_some() {
            return Ok(true);
        }
        let subject = format!("{}.ev.{}.{id}", self.prefix, token(connector));
        Ok(self.last_message(&subject).await?.is_some())
    }

    /// The last message of `subject` in `P_events`, read from the stream's leader.
    async fn last_message(
        &self,
        subject: &str,
    ) -> Result<Option<jetstream::message::StreamMessage>> {
        match self.events.get_last_raw_message_by_subject(subject).await {
            Ok(message) => Ok(Some(message)),
            Err(err) if err.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(err) => Err(StoreError::Unavailable(format!("reading {subject}: {err}"))),
        }
    }

    async fn deliveries_of(&self, event_id: &str) -> Result<Vec<DeliveryRecord>> {
        let mut rows = Vec::new();
        // Deliveries are numbered from 0; a run's are contiguous after the earlier runs'.
        for index in 0.. {
            match self.deliveries.get(format!("{event_id}.{index}")).await {
                Ok(Some(value)) => rows.push(serde_json::from_slice(&value)?),
                Ok(None) => break,
                Err(err) => {
                    return Err(StoreError::Unavailable(format!(
                        "reading deliveries: {err}"
                    )));
                }
            }
        }
        Ok(rows)
    }
}

#[async_trait::async_trait]
impl DispatchQueue for NatsStore {
    async fn next_dispatch(&self, connector: &str, wait: Duration) -> Result<Option<Lease>> {
        let consumer = self.dispatcher(connector).await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(message) = Self::take(&consumer, left).await? else {
                return Ok(None);
            };
            let id = match message.subject.rsplit('.').next() {
                Some(id) => id.to_string(),
                None => {
                    let _ = message.ack_with(AckKind::Term).await;
                    continue;
                }
            };
            // The node that stored it may have died before it wrote the record.
            if message.subject.starts_with(&format!("{}.ev.", self.prefix))
                && self.get_record(&id).await?.is_none()
                && let Ok(stored) = serde_json::from_slice::<StoredEvent>(&message.payload)
            {
                let cutoff =
                    crate::time::now_ms().saturating_sub(self.retention.as_millis() as u64);
                if stored.record.received_at < cutoff {
                    // Its record went with retention: it is not brought back.
                    let _ = message.ack_with(AckKind::Term).await;
                    continue;
                }
                if self.put_record(&stored.record, None).await.is_err() {
                    let _ = message
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                    continue;
                }
            }
            return Ok(Some(Lease::new(id, Held(Some(message)))));
        }
    }

    async fn finish_dispatch(
        &self,
        lease: Lease,
        record: &EventRecord,
        deliveries: &[DeliveryRecord],
        again_at: Option<u64>,
    ) -> Result<()> {
        let Some(message) = Held::take(lease) else {
            return Ok(());
        };
        for delivery in deliveries {
            self.deliveries
                .put(delivery_key(delivery), serde_json::to_vec(delivery)?.into())
                .await
                .map_err(unavailable("storing a delivery"))?;
        }
        let wanted = record.clone();
        let stored = self
            .modify(&record.id, &mut |current| {
                let updated_at = current.updated_at;
                *current = wanted.clone();
                current.updated_at = updated_at;
            })
            .await?;
        if stored.is_none() {
            // Gone while it was handled: nothing to deliver.
            let _ = message.ack().await;
            return Ok(());
        }
        // One whose first try settled it is stored, not queued.
        for delivery in deliveries.iter().filter(|d| !d.status.is_final()) {
            let key = delivery_key(delivery);
            self.publish(
                format!("{}.out", self.prefix),
                &key,
                key.clone().into_bytes(),
            )
            .await?;
        }
        let acked = match again_at {
            Some(at) => {
                let delay = Duration::from_millis(at.saturating_sub(crate::time::now_ms()));
                message.ack_with(AckKind::Nak(Some(delay))).await
            }
            None => message.double_ack().await,
        };
        acked.map_err(|err| StoreError::Unavailable(format!("acknowledging an event: {err}")))
    }

    async fn release_dispatch(&self, lease: Lease, after: Duration) -> Result<()> {
        if let Some(message) = Held::take(lease) {
            message
                .ack_with(AckKind::Nak(Some(after)))
                .await
                .map_err(unavailable("giving an event back"))?;
        }
        Ok(())
    }

    async fn forget_dispatch(&self, lease: Lease) -> Result<()> {
        if let Some(message) = Held::take(lease) {
            message
                .ack_with(AckKind::Term)
                .await
                .map_err(unavailable("dropping an event"))?;
        }
        Ok(())
    }

    fn dispatch_backlog(&self) -> Vec<(String, usize)> {
        // Counted by the server per consumer (`nats consumer info`); not asked for on
        // every scrape.
        Vec::new()
    }
}

#[async_trait::async_trait]
impl Outbox for NatsStore {
    async fn next_delivery(&self, wait: Duration) -> Result<Option<(Lease, DeliveryRecord)>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(message) = Self::take(&self.deliver, left).await? else {
                return Ok(None);
            };
            let key = String::from_utf8_lossy(&message.payload).into_owned();
            let row = match self.deliveries.get(&key).await {
                Ok(Some(value)) => serde_json::from_slice::<DeliveryRecord>(&value)?,
                Ok(None) => {
                    // Removed by retention: nothing to send.
                    let _ = message.ack().await;
                    continue;
                }
                Err(err) => {
                    let _ = message
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                        .await;
                    return Err(StoreError::Unavailable(format!(
                        "reading a delivery: {err}"
                    )));
                }
            };
            if row.status.is_final() {
                let _ = message.ack().await;
                continue;
            }
            // Queued with a try already made (a first try that failed): due at its time.
            let now = crate::time::now_ms();
            if let Some(at) = row.next_attempt_at.filter(|at| *at > now) {
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_millis(at - now))))
                    .await;
                continue;
            }
            return Ok(Some((Lease::new(key, Held(Some(message))), row)));
        }
    }

    async fn finish_delivery(&self, lease: Lease, delivery: &DeliveryRecord) -> Result<()> {
        let Some(message) = Held::take(lease) else {
            return Ok(());
        };
        self.deliveries
            .put(delivery_key(delivery), serde_json::to_vec(delivery)?.into())
            .await
            .map_err(unavailable("storing a delivery"))?;
        let acked = if delivery.status.is_final() {
            message.double_ack().await
        } else {
            let at = delivery.next_attempt_at.unwrap_or_else(crate::time::now_ms);
            let delay = Duration::from_millis(at.saturating_sub(crate::time::now_ms()));
            message.ack_with(AckKind::Nak(Some(delay))).await
        };
        acked.map_err(|err| StoreError::Unavailable(format!("acknowledging a delivery: {err}")))
    }

    async fn deliveries(&self, event_id: &str) -> Result<Vec<DeliveryRecord>> {
        self.deliveries_of(event_id).await
    }
}

#[async_trait::async_trait]
impl Dedupe for NatsStore {
    async fn purge_dedupe(
        &self,
        _cutoff: u64,
        _from: Option<DedupeCursor>,
        _batch: usize,
    ) -> Result<(usize, Option<DedupeCursor>)> {
        // The bucket's `max_age` (the dedupe window) removes expired claims itself.
        Ok((0, None))
    }
}

fn kv_key(connector: &str, key: &str) -> String {
    format!("{}.{}", hex::encode(connector), hex::encode(key))
}

#[async_trait::async_trait]
impl ConnectorKv for NatsStore {
    async fn kv_get(&self, connector: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.kv
            .get(kv_key(connector, key))
            .await
            .map(|value| value.map(|v| v.to_vec()))
            .map_err(|err| StoreError::Unavailable(format!("kv get: {err}")))
    }

    async fn kv_set(&self, connector: &str, key: &str, value: &[u8]) -> Result<()> {
        self.kv
            .put(kv_key(connector, key), value.to_vec().into())
            .await
            .map(|_| ())
            .map_err(|err| StoreError::Unavailable(format!("kv set: {err}")))
    }

    async fn kv_delete(&self, connector: &str, key: &str) -> Result<()> {
        self.kv
            .delete(kv_key(connector, key))
            .await
            .map_err(|err| StoreError::Unavailable(format!("kv delete: {err}")))
    }

    /// The latest entry of each of the connector's keys, headers only (as `Store::keys`
    /// reads a whole bucket, filtered to this connector), skipping deleted keys.
    async fn kv_count(&self, connector: &str, limit: usize) -> Result<usize> {
        let unavailable =
            |err: &dyn std::fmt::Display| StoreError::Unavailable(format!("kv count: {err}"));
        let consumer = self
            .kv
            .stream
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.js.client().new_inbox(),
                filter_subject: format!("{}{}.>", self.kv.prefix, hex::encode(connector)),
                headers_only: true,
                deliver_policy: DeliverPolicy::LastPerSubject,
                replay_policy: consumer::ReplayPolicy::Instant,
                ..Default::default()
            })
            .await
            .map_err(|err| unavailable(&err))?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(0);
        }
        let mut messages = consumer.messages().await.map_err(|err| unavailable(&err))?;
        let mut count = 0;
        while count < limit {
            let Some(message) = messages.next().await else {
                break;
            };
            let message = message.map_err(|err| unavailable(&err))?;
            let deleted = message
                .headers
                .as_ref()
                .and_then(|h| h.get("KV-Operation"))
                .is_some_and(|op| op.as_str() == "DEL" || op.as_str() == "PURGE");
            if !deleted {
                count += 1;
            }
            let pending = message.info().map_err(|err| unavailable(&err))?.pending;
            if pending == 0 {
                break;
            }
        }
        Ok(count)
    }
}

/// What the index keeps of each event.
#[derive(Debug, Clone)]
struct Summary {
    connector: String,
    status: Status,
    key: Option<String>,
}

/// The event log's index on this node (see the module docs).
#[derive(Default)]
struct Index {
    events: Mutex<BTreeMap<String, Summary>>,
    /// The events of each dedupe key (`?key=`), in the order of arrival.
    keys: Mutex<HashMap<String, std::collections::BTreeSet<String>>>,
}

impl Index {
    fn events(&self) -> MutexGuard<'_, BTreeMap<String, Summary>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn keys(&self) -> MutexGuard<'_, HashMap<String, std::collections::BTreeSet<String>>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, record: &EventRecord) {
        if let Some(key) = &record.dedupe_key {
            self.keys()
                .entry(key.clone())
                .or_default()
                .insert(record.id.clone());
        }
        self.events().insert(
            record.id.clone(),
            Summary {
                connector: record.connector.clone(),
                status: record.status,
                key: record.dedupe_key.clone(),
            },
        );
    }

    fn remove(&self, id: &str) {
        let removed = self.events().remove(id);
        if let Some(key) = removed.and_then(|summary| summary.key) {
            let mut keys = self.keys();
            if let Some(ids) = keys.get_mut(&key) {
                ids.remove(id);
                if ids.is_empty() {
                    keys.remove(&key);
                }
            }
        }
    }

    /// Counts by connector and status, over everything and since the hour of `since`
    /// (an event's time is its id's, a ULID).
    fn counts(&self, since: u64) -> HashMap<String, (Counts, Counts)> {
        let events = self.events();
        let events = events.iter().map(|(id, summary)| {
            let at = ulid::Ulid::from_string(id).map_or(0, |u| u.timestamp_ms());
            (summary.connector.as_str(), at, summary.status)
        });
        crate::store::tally::count(events, since)
    }

    /// The events deduped on `key`, newest first.
    fn with_key(&self, key: &str) -> Vec<String> {
        self.keys()
            .get(key)
            .map(|ids| ids.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Fill the index from the bucket, then follow it (every node's writes) until the
    /// store is dropped.
    async fn follow(self: &Arc<Self>, records: kv::Store) -> Result<tokio::task::JoinHandle<()>> {
        // Every key's current value, then every change (`watch_all` would give the changes
        // only).
        let mut watch = records
            .watch_with_history(">")
            .await
            .map_err(unavailable("watching the event records"))?;
        let pending = records
            .status()
            .await
            .map_err(unavailable("reading the records bucket"))?
            .values();
        // The current values first: the index is whole before the store is used.
        let mut last = 0;
        let mut seen = 0;
        while seen < pending {
            match watch.next().await {
                Some(Ok(entry)) => {
                    self.apply(&entry);
                    last = entry.revision;
                    seen += 1;
                    if entry.delta == 0 {
                        break;
                    }
                }
                Some(Err(err)) => {
                    return Err(StoreError::Unavailable(format!(
                        "watching the event records: {err}"
                    )));
                }
                None => break,
            }
        }
        let index = self.clone();
        Ok(tokio::spawn(async move {
            index.keep_following(records, watch, last).await;
        }))
    }

    /// Follow the bucket from revision `last` on for good. A watch that fails, ends or
    /// silently stops (after a reconnect or a leader change a JetStream watch can stop
    /// delivering without a word: async-nats has open issues of the kind) is recreated from
    /// the last revision seen, so no write is missed.
    async fn keep_following(&self, records: kv::Store, mut watch: kv::Watch, mut last: u64) {
        loop {
            loop {
                tokio::select! {
                    next = watch.next() => match next {
                        Some(Ok(entry)) => {
                            self.apply(&entry);
                            last = last.max(entry.revision);
                        }
                        Some(Err(err)) => {
                            tracing::warn!("watching the event records: {err}; watching again");
                            break;
                        }
                        None => {
                            tracing::warn!("the watch of the event records ended; watching again");
                            break;
                        }
                    },
                    _ = tokio::time::sleep(WATCH_CHECK) => {
                        let behind = match records.status().await {
                            Ok(status) => status.info.state.last_sequence > last,
                            Err(_) => false,
                        };
                        if behind {
                            tracing::warn!(
                                revision = last,
                                "the watch of the event records fell behind; watching again"
                            );
                            break;
                        }
                    }
                }
            }
            watch = loop {
                match records.watch_all_from_revision(last + 1).await {
                    Ok(watch) => break watch,
                    Err(err) => {
                        tracing::warn!("watching the event records again: {err}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
        }
    }

    fn apply(&self, entry: &kv::Entry) {
        match entry.operation {
            kv::Operation::Put => match serde_json::from_slice::<EventRecord>(&entry.value) {
                Ok(record) => self.put(&record),
                Err(err) => {
                    tracing::warn!(key = %entry.key, "an event record does not read: {err}")
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => self.remove(&entry.key),
        }
    }

    /// The ids of a page of the log (newest first) and the cursor of the next.
    fn page(&self, query: &EventQuery) -> (Vec<String>, Option<String>) {
        let events = self.events();
        let lower = query
            .since
            .map(|ms| ulid::Ulid::from_parts(ms, 0).to_string())
            .unwrap_or_default();
        let mut upper = query
            .until
            .map(|ms| ulid::Ulid::from_parts(ms, 0).to_string());
        if let Some(cursor) = &query.cursor {
            upper = Some(match upper {
                Some(u) if u < *cursor => u,
                _ => cursor.clone(),
            });
        }
        let limit = query.limit.max(1);
        let (mut page, mut scanned, mut last) = (Vec::new(), 0, None);
        let range = events
            .range(lower..)
            .rev()
            .filter(|(id, _)| upper.as_ref().is_none_or(|u| id.as_str() < u.as_str()));
        for (id, summary) in range {
            scanned += 1;
            last = Some(id.clone());
            let matches = query
                .connector
                .as_ref()
                .is_none_or(|c| *c == summary.connector)
                && query.status.is_none_or(|s| s == summary.status);
            if matches {
                page.push(id.clone());
                if page.len() == limit {
                    break;
                }
            }
            if scanned >= MAX_SCAN {
                break;
            }
        }
        let exhausted = page.len() < limit && scanned < MAX_SCAN;
        (page, if exhausted { None } else { last })
    }

    /// Up to `batch` ids of events received before `cutoff` (unix ms), oldest first.
    fn before(&self, cutoff: u64, batch: usize) -> Vec<String> {
        let upper = ulid::Ulid::from_parts(cutoff, 0).to_string();
        self.events()
            .range(..upper)
            .take(batch)
            .map(|(id, _)| id.clone())
            .collect()
    }
}
