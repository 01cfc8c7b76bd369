//! Durable storage of events, their attempts and their deliveries.
//!
//! The pipeline talks to [`Storage`]; [`sled::SledStore`] is the embedded engine. A new
//! event is acknowledged only once [`Storage::insert_event`] says it is durable, so a 200
//! is never sent for a request a crash could lose; other writes an answer depends on are
//! followed by [`Storage::sync`], a group commit.

/// The host's own namespace in the kv (operator overrides: pauses, destinations' enables);
/// no connector id can have it.
pub const HOST_KV: &str = "\0switchyard";

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod due;
pub mod lifecycle;
pub mod memory;
pub mod nats;
pub mod record;
pub mod retention;
pub mod sled;
pub mod tally;

pub use record::*;

use std::collections::HashMap;
use std::time::Duration;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What went wrong in storage, by kind: callers decide by the kind (503, 500…), never by
/// the text, which is for people and never holds a secret.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// Storage cannot be read or written now (a full or failing disk, NATS unreachable, a
    /// timeout): nothing was acknowledged, and trying again later may work (503).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Something stored does not read (a damaged store, or a bug).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// What was asked cannot be stored as it is (a request too large for the store).
    #[error("cannot be stored: {0}")]
    Invalid(String),
    /// The store is shutting down.
    #[error("storage is shutting down")]
    Stopped,
}

impl StoreError {
    /// Whether trying again later may work (the answer to a sender is then a 503).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Stopped)
    }

    /// What happened, without the kind's words.
    pub fn message(&self) -> &str {
        match self {
            StoreError::Unavailable(m) | StoreError::Corrupt(m) | StoreError::Invalid(m) => m,
            StoreError::Stopped => "storage is shutting down",
        }
    }
}

impl From<switchyard_core::store::CodecError> for StoreError {
    fn from(err: switchyard_core::store::CodecError) -> Self {
        use switchyard_core::store::CodecError;
        match err {
            CodecError::Corrupt(m) => StoreError::Corrupt(m),
            CodecError::Invalid(m) => StoreError::Invalid(m),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(err: serde_json::Error) -> Self {
        StoreError::Corrupt(err.to_string())
    }
}

/// What an engine's group commit has done since it started: commits, the events they
/// acknowledged, and the time spent in `fdatasync`.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub commits: std::sync::atomic::AtomicU64,
    pub events: std::sync::atomic::AtomicU64,
    pub sync_micros: std::sync::atomic::AtomicU64,
}

/// A page of the event log: filters, newest first, cursor-paginated.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub connector: Option<String>,
    pub status: Option<Status>,
    /// Received at or after (unix ms).
    pub since: Option<u64>,
    /// Received before (unix ms).
    pub until: Option<u64>,
    pub limit: usize,
    /// The last id of the previous page.
    pub cursor: Option<String>,
    /// Only events deduped on this key (the vendor's event id): from an index, not a scan.
    pub key: Option<String>,
}

/// One page of `candidates` (newest first, few: the events of one key) under `query`'s
/// other filters, and the cursor after it. For engines whose index gives the candidates.
pub(crate) fn page_of(
    candidates: Vec<EventRecord>,
    query: &EventQuery,
) -> (Vec<EventRecord>, Option<String>) {
    let limit = query.limit.max(1);
    let mut page = Vec::new();
    let mut more = false;
    for record in candidates {
        let id = record.id.as_str();
        let ms = ulid::Ulid::from_string(id).map_or(record.received_at, |u| u.timestamp_ms());
        let wanted = query.cursor.as_deref().is_none_or(|c| id < c)
            && query.since.is_none_or(|since| ms >= since)
            && query.until.is_none_or(|until| ms < until)
            && query
                .connector
                .as_ref()
                .is_none_or(|c| *c == record.connector)
            && query.status.is_none_or(|s| s == record.status);
        if !wanted {
            continue;
        }
        if page.len() == limit {
            more = true;
            break;
        }
        page.push(record);
    }
    let next = more
        .then(|| page.last().map(|r: &EventRecord| r.id.clone()))
        .flatten();
    (page, next)
}

/// Why an event cannot be replayed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReplayError {
    #[error("no event `{0}`")]
    NotFound(String),
    #[error("event is {0} and cannot be replayed: {1}")]
    NotReplayable(&'static str, &'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A unit of work handed to this node: an event due for its connector's `handle`, or a
/// delivery due for its downstream. It is this node's until it is finished or given back;
/// dropped unfinished (a task that panicked, a shutdown), the engine hands it out again.
pub struct Lease {
    /// The event's id, or the delivery's key (`{event id}/{index:05}`).
    pub id: String,
    /// The engine's own hold on it (a JetStream message, a place in a queue); it knows what
    /// to do when the lease is dropped unfinished.
    handle: Box<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// For engines: a lease on `id`, held by `handle`.
    pub fn new(id: String, handle: impl std::any::Any + Send + Sync) -> Lease {
        Lease {
            id,
            handle: Box::new(handle),
        }
    }

    /// For engines: their own hold on it back (`None` for another engine's lease).
    pub fn into_handle<H: std::any::Any>(self) -> Option<H> {
        self.handle.downcast::<H>().ok().map(|h| *h)
    }
}

/// The event log: every request received, its record, and the operator's lookups.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync {
    /// Store a new event (or a rejected/duplicate record) with its request and its dedupe
    /// entry, and queue it for its connector once it is durable. Resolves once it is
    /// durable, with what was decided (accepted or a duplicate); an error means it is not
    /// stored and was not acknowledged.
    async fn insert_event(&self, event: NewEvent) -> Result<Inserted>;

    /// The engine's group commits so far, for `GET /metrics` (`None` where a server
    /// commits, not this process).
    fn commit_stats(&self) -> Option<&CommitStats> {
        None
    }

    /// Each connector's events by status ([`Status::ALL`] order): over everything the log
    /// holds, and over those received since the hour of `since` (unix ms). `None` when the
    /// engine cannot say without reading the log.
    async fn counts(
        &self,
        since: u64,
    ) -> Result<Option<HashMap<String, (tally::Counts, tally::Counts)>>> {
        let _ = since;
        Ok(None)
    }

    /// Resolves once every write made before the call (updates, replays, kv) is durable.
    async fn sync(&self) -> Result<()>;

    async fn event(&self, id: &str) -> Result<Option<EventRecord>>;
    async fn request(&self, id: &str) -> Result<Option<StoredRequest>>;

    /// Read-modify-write of one event record (`update` may run more than once, when
    /// another writer got there first).
    async fn update_event(
        &self,
        id: &str,
        update: &mut (dyn for<'r> FnMut(&'r mut EventRecord) + Send),
    ) -> Result<Option<EventRecord>>;

    /// A page of the event log, newest first, and the cursor of the next page.
    async fn list_events(&self, query: &EventQuery) -> Result<(Vec<EventRecord>, Option<String>)>;

    /// Send a finished (`succeeded` or `dead`) event back to its connector
    /// ([`lifecycle::replayable`]). Its history is kept; the new run numbers its
    /// deliveries after the earlier ones, with the first run's `Idempotency-Key`s unless
    /// `new_keys` ([`lifecycle::reset_for_replay`]).
    async fn replay(&self, id: &str, new_keys: bool) -> Result<EventRecord, ReplayError>;

    /// Remove up to `batch` events received before `cutoff` (unix ms) with their request,
    /// deliveries and dedupe entries. Returns how many were removed; call again while it
    /// returns `batch`.
    async fn purge_before(&self, cutoff: u64, batch: usize) -> Result<usize>;
}

/// Events waiting for their connector's `handle`, one queue per connector, shared by every
/// node of a cluster: each event is handed to one node at a time.
#[async_trait::async_trait]
pub trait DispatchQueue: Send + Sync {
    /// The next event of `connector` due for a call, waiting at most `wait` for one.
    async fn next_dispatch(&self, connector: &str, wait: Duration) -> Result<Option<Lease>>;

    /// The connector ran (or cannot run): store the record and its new deliveries (those
    /// not final queued for delivery, due at their `next_attempt_at`; a final one is a
    /// delivery whose first try settled it), and release the event, or with `again_at`
    /// (unix ms) schedule its next call then.
    async fn finish_dispatch(
        &self,
        lease: Lease,
        record: &EventRecord,
        deliveries: &[DeliveryRecord],
        again_at: Option<u64>,
    ) -> Result<()>;

    /// Give the event back untouched, due again after `after`.
    async fn release_dispatch(&self, lease: Lease, after: Duration) -> Result<()>;

    /// The event is gone (retention removed it): stop handing it out.
    async fn forget_dispatch(&self, lease: Lease) -> Result<()>;

    /// Events waiting for their connector, by connector (for `GET /metrics`); engines
    /// whose queues live in a server may leave it empty.
    fn dispatch_backlog(&self) -> Vec<(String, usize)>;
}

/// Deliveries due for their downstream, shared by every node.
#[async_trait::async_trait]
pub trait Outbox: Send + Sync {
    /// The next delivery due for a try, waiting at most `wait` for one.
    async fn next_delivery(&self, wait: Duration) -> Result<Option<(Lease, DeliveryRecord)>>;

    /// A try was made: store it. A delivery not final is due again at its
    /// `next_attempt_at`.
    async fn finish_delivery(&self, lease: Lease, delivery: &DeliveryRecord) -> Result<()>;

    /// Every delivery of an event, in order.
    async fn deliveries(&self, event_id: &str) -> Result<Vec<DeliveryRecord>>;
}

/// Where a scan of dedupe entries goes on from (the engine's own key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeCursor(pub Vec<u8>);

/// The dedupe entries (the dedupe decision itself is part of [`EventLog::insert_event`]).
#[async_trait::async_trait]
pub trait Dedupe: Send + Sync {
    /// Remove up to `batch` dedupe entries recorded before `cutoff` (unix ms), scanning
    /// from `from`. Returns the removed count and where to go on (`None`: done).
    async fn purge_dedupe(
        &self,
        cutoff: u64,
        from: Option<DedupeCursor>,
        batch: usize,
    ) -> Result<(usize, Option<DedupeCursor>)>;
}

/// A connector's `kv` state (and the operator's overrides, in a namespace no connector id
/// can have).
#[async_trait::async_trait]
pub trait ConnectorKv: Send + Sync {
    async fn kv_get(&self, connector: &str, key: &str) -> Result<Option<Vec<u8>>>;
    async fn kv_set(&self, connector: &str, key: &str, value: &[u8]) -> Result<()>;
    async fn kv_delete(&self, connector: &str, key: &str) -> Result<()>;
    /// How many keys `connector` holds, counted up to `limit` (the answer is at most
    /// `limit`, so the cost is bounded by it, not by what a connector stored).
    async fn kv_count(&self, connector: &str, limit: usize) -> Result<usize>;
}

/// One connector's `kv`, and nothing else of the store: what the connector's `kv` import
/// is given (a connector cannot name another's namespace, nor reach the event log).
#[derive(Clone)]
pub struct Kv {
    store: std::sync::Arc<dyn ConnectorKv>,
    connector: String,
}

impl Kv {
    pub fn new(store: std::sync::Arc<dyn ConnectorKv>, connector: &str) -> Kv {
        Kv {
            store,
            connector: connector.to_string(),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.store.kv_get(&self.connector, key).await
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.store.kv_set(&self.connector, key, value).await
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        self.store.kv_delete(&self.connector, key).await
    }

    /// How many keys the connector holds, counted up to `limit`.
    pub async fn count(&self, limit: usize) -> Result<usize> {
        self.store.kv_count(&self.connector, limit).await
    }
}

/// Every capability the pipeline uses: what an engine implements.
pub trait Storage: EventLog + DispatchQueue + Outbox + Dedupe + ConnectorKv + 'static {}

impl<T: EventLog + DispatchQueue + Outbox + Dedupe + ConnectorKv + 'static> Storage for T {}

/// For tests written as plain functions: insert and wait until it is durable.
#[cfg(test)]
pub(crate) trait InsertNow {
    fn insert_now(&self, event: NewEvent) -> Result<Inserted>;
}

#[cfg(test)]
impl<S: EventLog + ?Sized> InsertNow for S {
    fn insert_now(&self, event: NewEvent) -> Result<Inserted> {
        futures::executor::block_on(EventLog::insert_event(self, event))
    }
}
