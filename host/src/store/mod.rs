//! Durable storage of events, their attempts and their deliveries.
//!
//! The pipeline talks to [`Storage`]; [`sled::SledStore`] is the embedded engine. A new
//! event is acknowledged only once [`Storage::insert_event`] says it is durable, so a 200
//! is never sent for a request a crash could lose; other writes an answer depends on are
//! followed by [`Storage::sync`], a group commit.

pub mod nats;
pub mod record;
pub mod retention;
pub mod sled;

pub use record::*;

use futures::future::BoxFuture;

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

impl From<serde_json::Error> for StoreError {
    fn from(err: serde_json::Error) -> Self {
        StoreError::Corrupt(err.to_string())
    }
}

/// The shortest dedupe window a config may set (`storage.dedupe_window`).
pub const MIN_DEDUPE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

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

/// The pipeline's view of storage.
pub trait Storage: Send + Sync + 'static {
    /// Store a new event (or a rejected/duplicate record) with its request, its dedupe
    /// entry and its place in the dispatch queue. Resolves once it is durable, with what
    /// was decided (accepted or a duplicate); an error means it is not stored and was not
    /// acknowledged. The write is queued when this is called, whether or not the future is
    /// awaited, unless the store's queue is full: then the future waits for room.
    fn insert_event(&self, event: NewEvent) -> BoxFuture<'static, Result<Inserted>>;

    /// Resolves once every other write made before the call (updates, replays, kv) is on
    /// disk: a group commit.
    fn sync(&self) -> BoxFuture<'static, Result<()>>;

    fn event(&self, id: &str) -> Result<Option<EventRecord>>;
    fn request(&self, id: &str) -> Result<Option<StoredRequest>>;

    /// Read-modify-write of one event record.
    fn update_event(
        &self,
        id: &str,
        update: &mut dyn FnMut(&mut EventRecord),
    ) -> Result<Option<EventRecord>>;

    /// Events waiting for the connector (new or scheduled for another `handle`).
    fn pending_events(&self) -> Result<Vec<String>>;

    /// The connector ran: store its deliveries and the updated record, and take the event
    /// out of the dispatch queue, in one atomic write. With `keep_pending` the event stays
    /// queued (a `handle` retry is scheduled).
    fn finish_dispatch(
        &self,
        record: &EventRecord,
        deliveries: &[DeliveryRecord],
        keep_pending: bool,
    ) -> Result<()>;

    /// Every delivery of an event, in order.
    fn deliveries(&self, event_id: &str) -> Result<Vec<DeliveryRecord>>;
    /// Deliveries not yet succeeded or dead.
    fn open_deliveries(&self) -> Result<Vec<DeliveryRecord>>;
    /// Update a delivery after a try.
    fn put_delivery(&self, delivery: &DeliveryRecord) -> Result<()>;

    /// A page of the event log, newest first, and the cursor of the next page.
    fn list_events(&self, query: &EventQuery) -> Result<(Vec<EventRecord>, Option<String>)>;

    /// Put a finished (`succeeded` or `dead`) event back in the dispatch queue. Its history
    /// is kept; the connector runs again and its new deliveries get new indexes (and so new
    /// idempotency keys: a replay is a deliberate new effect).
    fn replay(&self, id: &str) -> Result<EventRecord, ReplayError>;

    /// Remove up to `batch` events received before `cutoff` (unix ms) with their request,
    /// deliveries and dedupe entries. Returns how many were removed; call again while it
    /// returns `batch`.
    fn purge_before(&self, cutoff: u64, batch: usize) -> Result<usize>;

    /// Remove up to `batch` dedupe entries recorded before `cutoff` (unix ms), scanning from
    /// `from` (a key returned by the previous call). Returns the removed count and where to
    /// continue (`None`: the scan is complete).
    fn purge_dedupe(
        &self,
        cutoff: u64,
        from: Option<Vec<u8>>,
        batch: usize,
    ) -> Result<(usize, Option<Vec<u8>>)>;

    fn kv_get(&self, connector: &str, key: &str) -> Result<Option<Vec<u8>>>;
    fn kv_set(&self, connector: &str, key: &str, value: &[u8]) -> Result<()>;
    fn kv_delete(&self, connector: &str, key: &str) -> Result<()>;
}

/// For tests written as plain functions: insert and wait until it is durable.
#[cfg(test)]
pub(crate) trait InsertNow {
    fn insert_now(&self, event: NewEvent) -> Result<Inserted>;
}

#[cfg(test)]
impl<S: Storage + ?Sized> InsertNow for S {
    fn insert_now(&self, event: NewEvent) -> Result<Inserted> {
        futures::executor::block_on(self.insert_event(event))
    }
}
