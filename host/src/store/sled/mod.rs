//! The embedded store on sled 0.34: the inbox (`inbox.rs`) is the truth, and sled, in
//! `{storage.path}/index/`, an index of it that can always be rebuilt (`recovery.rs`).
//!
//! Trees (keys are ULID event ids, which sort by time):
//! - `events`: id → [`EventRecord`] (status, attempts), prefixed with the [`Location`] of
//!   its [`StoredRequest`] in the [`Inbox`] (the large, immutable part, kept out of sled:
//!   see `inbox.rs`);
//! - `requests`: id → [`StoredRequest`], for events stored before the inbox existed;
//! - `queue`: the dispatch queue of new events, one entry per batch of them (see
//!   `ingest.rs`);
//! - `pending`: id → `()`, the rest of the dispatch queue (scheduled retries, replays);
//! - `dedupe`: `{connector}\0{key}` → `{event_id, at}`;
//! - `outbox`: `{event_id}/{index:05}` → [`DeliveryRecord`];
//! - `outbox_open`: the same keys for deliveries not yet final (the delivery queue);
//! - `kv`: `{connector}\0{key}` → bytes.
//!
//! - `meta`: the store's own bookkeeping (how far sled holds the inbox: `ingest.rs`).
//!
//! **New events** go through the inbox, the write-ahead log of ingress, and are written to
//! sled behind it by one thread; an answer waits for the inbox's `fdatasync` only (see
//! `ingest.rs`, which says why).
//!
//! **Everything else is written to sled directly and made durable by [`Storage::sync`]**
//! where an answer depends on it (a replay), and by a checkpoint every second otherwise.
//! sled 0.34 hangs when several tasks call `flush_async` at once (spacejam/sled#1308), and
//! its flush ends in `sync_file_range`, which neither flushes the drive cache nor the file
//! size. So exactly one thread flushes, followed by an `fdatasync` of the log file, and
//! every waiter that registered before the flush started is released by it.
//!
//! **What a rebuild needs is in the inbox too** (`entry.rs`): an event's progress when it
//! settles or is replayed, written after sled, and every `kv` write, written before sled
//! (under one lock, so the inbox has them in the order sled got them). Each write of a
//! record makes its `updated_at` grow, so recovery can tell which state is newer.
//!
//! **No transactions on the hot path.** A sled 0.34 transaction takes the global
//! concurrency-control *write* lock, and a flush holds its *read* lock for the whole
//! `sync_file_range`: every transaction waits for the flush in progress (measured: 2.3k
//! accepted/s against 25k/s for plain inserts). Event, dispatch and delivery writes are
//! therefore ordered plain inserts, arranged so that any prefix a crash leaves is
//! consistent (sled recovers a prefix of its log): a dedupe entry is written after the
//! event it points at, deliveries before the event leaves the dispatch queue. Rare
//! maintenance (replay, retention) keeps transactions.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::oneshot;

mod flusher;
mod inbox;
mod ingest;
mod layout;
mod queue;
mod recovery;

use switchyard_core::store::{entry, value};

use self::entry::{KvWrite, Progress};
use self::flusher::{Checkpointer, Flush, Flusher, spawn_flusher};
use self::inbox::{Inbox, Location};
use self::ingest::{Ingest, Trees};
pub(crate) use self::value::{
    DedupeEntry, batch_of, claimed_by, decode_event, delivery_key, dispatched_prefix, encode_event,
    event_of_key_entry, event_value, key_entry, key_prefix, kv_key, location_of, prefix_of,
};
use super::due::{self, Queues};
use super::{
    ConnectorKv, Dedupe, DedupeCursor, DeliveryRecord, DispatchQueue, EventLog, EventQuery,
    EventRecord, Inserted, Lease, NewEvent, Outbox, ReplayError, Result, StoreError, StoredRequest,
    lifecycle,
};

impl From<::sled::Error> for StoreError {
    fn from(err: ::sled::Error) -> Self {
        match err {
            ::sled::Error::Corruption { .. } => StoreError::Corrupt(err.to_string()),
            ::sled::Error::Io(_) => StoreError::Unavailable(err.to_string()),
            _ => StoreError::Unavailable(format!("sled: {err}")),
        }
    }
}

/// How a [`SledStore`] is opened.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// With `false`, no flush is awaited before acknowledging: a crash may lose the last
    /// ~0.5 s of accepted events (benchmarks only).
    pub durable: bool,
    /// `storage.retention_days`: a rebuild of the index leaves out events older than this
    /// (retention has removed them, or is about to).
    pub retention: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durable: true,
            retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// sled-backed [`Storage`].
pub struct SledStore {
    db: sled::Db,
    trees: Trees,
    inbox: Arc<Inbox>,
    /// Accepts new events (`ingest.rs`). Dropped first: it drains its queue into sled.
    ingest: Option<Ingest>,
    /// Flushes sled for [`Storage::sync`] and the checkpoints; `None` when durability is
    /// switched off (benchmarks).
    flusher: Option<Flusher>,
    /// Set by writes of dispatch and delivery progress (and connector state) for the
    /// flusher, which hands them to the OS soon (see [`spawn_flusher`]).
    progress: Arc<AtomicBool>,
    /// Orders `kv` writes in the inbox as in sled (see the module docs).
    kv_lock: Mutex<()>,
    /// When each queued event and open delivery is due, and which are handed out.
    queues: Arc<Queues>,
    /// The store's lock (`layout::lock`), held until the store is dropped.
    _lock: Arc<File>,
}

impl SledStore {
    /// Open (or create) the store at `path` with the default options, durable or not.
    pub fn open(path: &Path, durable: bool) -> Result<Self> {
        Self::open_with(
            path,
            StoreOptions {
                durable,
                ..StoreOptions::default()
            },
        )
    }

    /// Open (or create) the store at `path`. The index is checked against the inbox and
    /// its last checkpoint, and rebuilt from the inbox when it cannot be trusted
    /// (`recovery.rs`); the tail it had not written before a crash is applied again.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Self> {
        layout::create_dir_durably(path)?;
        let lock = Arc::new(layout::lock(path)?);
        layout::migrate_layout(path)?;
        recovery::clear_interrupted_rebuild(path)?;
        let inbox = Arc::new(Inbox::open(&path.join("inbox"))?);
        let cutoff = crate::time::now_ms().saturating_sub(options.retention.as_millis() as u64);
        match Self::open_index(path, &inbox, options, cutoff, &lock) {
            Ok(store) => Ok(store),
            Err(err) => {
                recovery::rebuild(path, err.message(), |db| {
                    let trees = Trees::open(db)?;
                    let replayed = ingest::replay_from(&trees, &inbox, Location::START, cutoff)?;
                    // Each event applied wrote its `keys` entry.
                    trees.meta.insert(KEYS_INDEXED, &[])?;
                    ingest::mark_applied(&trees, &inbox)?;
                    Ok(recovery::Rebuilt {
                        events: replayed.events,
                        progress: replayed.progress,
                        kv: replayed.kv,
                    })
                })?;
                Self::open_index(path, &inbox, options, cutoff, &lock).map_err(|err| {
                    StoreError::Unavailable(format!(
                        "the index rebuilt from the inbox does not open: {err}"
                    ))
                })
            }
        }
    }

    /// Open the index in `{root}/index/`, check it, and apply what it lacks of the inbox.
    /// An error (a panic of sled's included) means it cannot be trusted.
    fn open_index(
        root: &Path,
        inbox: &Arc<Inbox>,
        options: StoreOptions,
        cutoff: u64,
        lock: &Arc<File>,
    ) -> Result<Self> {
        let dir = layout::index_dir(root);
        if !dir.exists() && inbox.has_earlier_data() {
            return Err(StoreError::Unavailable("it is missing".into()));
        }
        let config = sled::Config::new()
            .path(&dir)
            // The workload is append-mostly (new events, then a few updates): a modest
            // page cache serves it, and keeps the host's RSS small. 20 MiB: with frequent
            // flushes (end to end), 32 MiB held ~145 MB at steady load, 20 MiB ~131 MB, at
            // the same throughput (BENCHMARKS.md).
            .cache_capacity(20 << 20)
            // sled's own periodic flush only when no flusher of ours runs (see
            // `spawn_flusher`): exactly one thread may flush (spacejam/sled#1308).
            .flush_every_ms((!options.durable).then_some(500));
        recovery::without_panics("opening the index", || {
            let db = open_sled(&config).map_err(|err| {
                StoreError::Unavailable(format!("opening {}: {err}", dir.display()))
            })?;
            // sled does not sync the directories of the files it creates.
            layout::sync_dir(&dir)?;
            layout::sync_dir(root)?;
            let trees = Trees::open(&db)?;
            recovery::check(
                trees.applied()?,
                |id| Ok(trees.events.contains_key(id.as_bytes())?),
                recovery::read_checkpoint(&dir).as_ref(),
                inbox,
                cutoff,
            )
            .map_err(StoreError::Corrupt)?;
            let store = SledStore {
                trees,
                inbox: inbox.clone(),
                db,
                ingest: None,
                flusher: None,
                progress: Arc::new(AtomicBool::new(false)),
                kv_lock: Mutex::new(()),
                queues: Arc::new(Queues::default()),
                _lock: lock.clone(),
            };
            store.recover(root, options, cutoff)
        })
    }

    /// Apply the inbox's tail, drop what was never acknowledged, make it all durable, and
    /// start the flusher and the ingest threads.
    fn recover(mut self, root: &Path, options: StoreOptions, cutoff: u64) -> Result<Self> {
        self.index_keys()?;
        // Acknowledged events sled lost first, then the ones never acknowledged go.
        let replayed = ingest::replay(&self.trees, &self.inbox, cutoff)?;
        if replayed != ingest::Replayed::default() {
            tracing::warn!(
                events = replayed.events,
                progress = replayed.progress,
                kv = replayed.kv,
                "applied acknowledged events again from the inbox (sled had lost them in a crash)"
            );
        }
        self.drop_unacknowledged()?;
        self.trees
            .batches
            .load(|batch, id| self.waits_in(batch, id))?;
        self.fill_queues()?;
        // A clean shutdown left the counts (taken now: a crash from here on counts again);
        // anything the recovery applied means they may be behind.
        let kept = self.trees.meta.remove(TALLY)?;
        let restored = replayed == ingest::Replayed::default()
            && kept.is_some_and(|kept| self.trees.tally.restore(&kept));
        if !restored {
            self.fill_tally()?;
        }
        // Durable before the first event is accepted: the replay mark above, and whatever
        // the recovery changed.
        self.db.flush()?;
        let dir = layout::index_dir(root);
        if options.durable {
            File::open(dir.join("db"))
                .and_then(|log| log.sync_data())
                .map_err(|err| StoreError::Unavailable(format!("syncing the sled log: {err}")))?;
            let log = File::open(dir.join("db"))
                .map_err(|err| StoreError::Unavailable(format!("opening the sled log: {err}")))?;
            self.flusher = Some(spawn_flusher(Checkpointer {
                db: self.db.clone(),
                log,
                dir,
                trees: self.trees.clone(),
                inbox: self.inbox.clone(),
                progress: self.progress.clone(),
                written: None,
            }));
        }
        self.ingest = Some(Ingest::start(
            self.trees.clone(),
            self.inbox.clone(),
            self.queues.clone(),
            options.durable,
        )?);
        Ok(self)
    }

    /// Queue every event waiting for its connector and every open delivery, each due when
    /// it was scheduled (or now).
    fn fill_queues(&self) -> Result<()> {
        let now = crate::time::now_ms();
        for id in self.pending_events()? {
            if let Some(record) = self.event(&id)? {
                self.queues
                    .dispatch(&record.connector)
                    .push(&id, record.next_attempt_at.unwrap_or(now));
            }
        }
        for delivery in self.open_deliveries()? {
            self.queues.deliveries.push(
                &delivery_key(&delivery.event_id, delivery.index),
                delivery.next_attempt_at.unwrap_or(now),
            );
        }
        Ok(())
    }

    /// After a crash: remove queued events whose request did not reach the disk. sled can
    /// write a record before the group commit syncs the inbox, so such an event exists, but
    /// it was never acknowledged (the answer waits for both): its sender still has it and
    /// will send it again, which its dedupe entry must not turn into a `duplicate`.
    fn drop_unacknowledged(&self) -> Result<()> {
        let mut dropped = 0;
        for key in self.pending_events()? {
            let Some(value) = self.trees.events.get(&key)? else {
                continue;
            };
            let Some(location) = location_of(&value) else {
                continue;
            };
            if !self.inbox.may_be_torn(location) || self.inbox.read(location)?.is_some() {
                continue;
            }
            let record = decode_event(&value)?;
            if let Some(dk) = Self::dedupe_key_of(&record)
                && let Some(entry) = self.trees.dedupe.get(&dk)?
                && claimed_by(&entry, &record.id)
            {
                self.trees.dedupe.remove(dk)?;
            }
            self.trees.pending.remove(&key)?;
            self.trees.events.remove(&key)?;
            if let Some(dk) = &record.dedupe_key {
                self.trees.keys.remove(key_entry(dk, &record.id))?;
            }
            dropped += 1;
        }
        if dropped > 0 {
            // Their batch entries are counted after this (`Batches::load`).
            tracing::warn!(
                count = dropped,
                "removed events whose request was lost in a crash before they were acknowledged"
            );
        }
        Ok(())
    }

    /// Progress was written: the flusher hands it to the OS within about [`flusher::FLUSH_EVERY`].
    /// Only the first write since the last flush wakes it.
    fn progressed(&self) {
        if !self.progress.swap(true, Ordering::AcqRel)
            && let Some(flusher) = self.flusher.as_ref().and_then(|f| f.tx.as_ref())
        {
            let _ = flusher.send(Flush::Progress);
        }
    }

    /// Append an event's progress to the inbox (after sled has it: see the module docs).
    /// It is durable with the next sync of the inbox: an answer's, or a checkpoint's.
    fn log_progress(&self, record: &EventRecord) -> Result<()> {
        self.log_progress_with(record, &[])
    }

    /// [`SledStore::log_progress`], where `written` are rows of the event just written to
    /// sled: taken as they are instead of decoded again (the rows of a first try settled
    /// by `finish_dispatch`; decoding them back was 3 % of the host's CPU end to end).
    fn log_progress_with(&self, record: &EventRecord, written: &[DeliveryRecord]) -> Result<()> {
        let mut deliveries = Vec::new();
        for item in self
            .trees
            .outbox
            .scan_prefix(format!("{}/", record.id).as_bytes())
        {
            let (key, value) = item?;
            let fresh = written
                .iter()
                .find(|row| delivery_key(&row.event_id, row.index).as_bytes() == &*key);
            deliveries.push(match fresh {
                Some(row) => row.clone(),
                None => serde_json::from_slice(&value)?,
            });
        }
        let progress = Progress {
            record: record.clone(),
            deliveries,
        };
        self.inbox.append(&entry::encode_progress(&progress)?)?;
        Ok(())
    }

    /// A `kv` write: to the inbox, then to sled, in one order for all (see the module docs).
    fn write_kv(&self, connector: &str, key: &str, value: Option<&[u8]>) -> Result<()> {
        let _in_order = self.kv_lock.lock().unwrap_or_else(|p| p.into_inner());
        let write = KvWrite {
            connector: connector.into(),
            key: key.into(),
            value: value.map(Into::into),
        };
        self.inbox.append(&entry::encode_kv(&write)?)?;
        let key = kv_key(connector, key);
        match value {
            Some(value) => self.trees.kv.insert(key, value)?,
            None => self.trees.kv.remove(key)?,
        };
        self.progressed();
        Ok(())
    }

    /// Before retention deletes inbox segments: every `kv` value again, in the current
    /// segment, durably, so that a rebuild still finds the ones last written in them.
    fn carry_kv_forward(&self) -> Result<()> {
        let _in_order = self.kv_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut payloads = Vec::new();
        for item in self.trees.kv.iter() {
            let (key, value) = item?;
            let mut parts = key.splitn(2, |b| *b == 0);
            let connector = String::from_utf8_lossy(parts.next().unwrap_or_default());
            let key = String::from_utf8_lossy(parts.next().unwrap_or_default());
            payloads.push(entry::encode_kv(&KvWrite {
                connector: connector.into_owned(),
                key: key.into_owned(),
                value: Some(value.to_vec().into()),
            })?);
        }
        for chunk in payloads.chunks(512) {
            let chunk: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            self.inbox.append_batch(&chunk)?;
        }
        self.inbox.sync()
    }

    /// Whether event `id` still waits in the `queue` batch `batch`.
    fn waits_in(&self, batch: &[u8], id: &str) -> Result<bool> {
        Ok(self
            .trees
            .events
            .get(id.as_bytes())?
            .is_some_and(|value| batch_of(&value) == Some(batch)))
    }

    /// The `dedupe` tree key an event claimed, if it has a dedupe key.
    /// Count the events by connector, status and hour (read once at open; then each write
    /// of a record moves its count).
    fn fill_tally(&self) -> Result<()> {
        #[derive(serde::Deserialize)]
        struct Head {
            connector: String,
            received_at: u64,
            status: crate::store::Status,
        }
        let mut unread = 0usize;
        let mut failed = None;
        let heads = self.trees.events.iter().filter_map(|item| match item {
            Ok((_, value)) => {
                match serde_json::from_slice::<Head>(&value[prefix_of(&value).len()..]) {
                    Ok(head) => Some((head.connector, head.received_at, head.status)),
                    // Read as corrupt wherever it is used; not counted here.
                    Err(_) => {
                        unread += 1;
                        None
                    }
                }
            }
            Err(err) => {
                failed.get_or_insert(err);
                None
            }
        });
        self.trees.tally.fill(heads);
        if let Some(err) = failed {
            return Err(err.into());
        }
        if unread > 0 {
            tracing::warn!(
                records = unread,
                "event records that do not read are not counted"
            );
        }
        Ok(())
    }

    /// Fill the `keys` tree from the events of a store written before it existed (once:
    /// the `meta` tree then says it is done; a new store is done at once).
    fn index_keys(&self) -> Result<()> {
        if self.trees.meta.contains_key(KEYS_INDEXED)? {
            return Ok(());
        }
        let mut indexed = 0usize;
        for item in self.trees.events.iter() {
            let (_, value) = item?;
            let record = decode_event(&value)?;
            if let Some(key) = &record.dedupe_key {
                self.trees
                    .keys
                    .insert(key_entry(key, &record.id), record.connector.as_bytes())?;
                indexed += 1;
            }
        }
        self.trees.meta.insert(KEYS_INDEXED, &[])?;
        if indexed > 0 {
            tracing::info!(events = indexed, "indexed the stored events by dedupe key");
        }
        Ok(())
    }

    fn dedupe_key_of(record: &EventRecord) -> Option<Vec<u8>> {
        record
            .dedupe_key
            .as_ref()
            .map(|key| kv_key(&record.connector, key))
    }
}

/// The `meta` key saying the `keys` tree holds every stored event's entry (see
/// [`SledStore::index_keys`]).
const KEYS_INDEXED: &[u8] = b"keys.indexed";

/// The `meta` key of the event counts a clean shutdown left ([`crate::store::tally`]).
const TALLY: &[u8] = b"tally";

/// Open sled, waiting a little for the lock a store of this process just closed: sled's I/O
/// threads can hold its file a moment after the last flush returned. Another process
/// holding the lock is reported after that wait.
fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let mut tries = 0;
    loop {
        match config.open() {
            // sled says so only in the message.
            Err(err) if tries < 100 && err.to_string().contains("could not acquire lock") => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

fn abort(err: impl ToString) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(StoreError::Unavailable(err.to_string()))
}

fn tx_error(err: TransactionError<StoreError>) -> StoreError {
    match err {
        TransactionError::Abort(err) => err,
        TransactionError::Storage(err) => err.into(),
    }
}

/// The engine's own operations, synchronous (the pipeline uses the async traits below).
impl SledStore {
    pub fn insert_event(&self, event: NewEvent) -> BoxFuture<'static, Result<Inserted>> {
        let stopped = || StoreError::Stopped;
        let Some(ingest) = &self.ingest else {
            return futures::future::ready(Err(stopped())).boxed();
        };
        let (reply, answer) = futures::channel::oneshot::channel();
        // Queued now when there is room, so the write happens whether or not the caller
        // awaits it; when the queue is full, the future waits for room.
        let waiting = match ingest.jobs.try_send(ingest::Job { event, reply }) {
            Ok(()) => None,
            Err(async_channel::TrySendError::Full(job)) => Some(job),
            Err(async_channel::TrySendError::Closed(_)) => {
                return futures::future::ready(Err(stopped())).boxed();
            }
        };
        let jobs = ingest.jobs.clone();
        async move {
            if let Some(job) = waiting {
                jobs.send(job).await.map_err(|_| stopped())?;
            }
            answer.await.unwrap_or_else(|_| Err(stopped()))
        }
        .boxed()
    }

    pub fn sync(&self) -> BoxFuture<'static, Result<()>> {
        let Some(flusher) = self.flusher.as_ref().and_then(|f| f.tx.as_ref()) else {
            return futures::future::ready(Ok(())).boxed();
        };
        let (tx, rx) = oneshot::channel();
        if flusher.send(Flush::Durable(tx)).is_err() {
            return futures::future::ready(Err(StoreError::Stopped)).boxed();
        }
        async move { rx.await.unwrap_or(Err(StoreError::Stopped)) }.boxed()
    }

    pub fn event(&self, id: &str) -> Result<Option<EventRecord>> {
        match self.trees.events.get(id.as_bytes())? {
            Some(bytes) => Ok(Some(decode_event(&bytes)?)),
            None => Ok(None),
        }
    }

    pub fn request(&self, id: &str) -> Result<Option<StoredRequest>> {
        let Some(value) = self.trees.events.get(id.as_bytes())? else {
            return Ok(None);
        };
        let bytes = match location_of(&value) {
            Some(location) => self.inbox.read(location)?,
            None => self.trees.requests.get(id.as_bytes())?.map(|v| v.to_vec()),
        };
        Ok(bytes
            .map(|bytes| entry::entry_request(&bytes))
            .transpose()?)
    }

    pub fn update_event(
        &self,
        id: &str,
        update: &mut dyn FnMut(&mut EventRecord),
    ) -> Result<Option<EventRecord>> {
        // compare-and-swap loop: concurrent delivery tasks update the same record.
        loop {
            let Some(current) = self.trees.events.get(id.as_bytes())? else {
                return Ok(None);
            };
            let mut record = decode_event(&current)?;
            let before = record.status;
            update(&mut record);
            record.updated_at = lifecycle::next_update(record.updated_at);
            let new = encode_event(prefix_of(&current), &record)?;
            match self
                .trees
                .events
                .compare_and_swap(id.as_bytes(), Some(current), Some(new))?
            {
                Ok(()) => {
                    self.trees.tally.moved(
                        &record.connector,
                        record.received_at,
                        Some(before),
                        Some(record.status),
                    );
                    self.progressed();
                    // Settled: what a rebuild needs to not send it again. Each later try
                    // of another of its deliveries writes it again, with that one's state.
                    if record.status.is_final() {
                        self.log_progress(&record)?;
                    }
                    return Ok(Some(record));
                }
                Err(_) => continue,
            }
        }
    }

    pub fn pending_events(&self) -> Result<Vec<String>> {
        let mut ids = self
            .trees
            .pending
            .iter()
            .keys()
            .map(|key| Ok(String::from_utf8_lossy(&key?).into_owned()))
            .collect::<Result<Vec<_>>>()?;
        for entry in self.trees.batches.entries() {
            let (batch, listed) = entry?;
            // Not acknowledged yet (its sync may still fail and take it back): ingress
            // hands its events over once they are.
            if self.trees.batches.is_unsynced(&batch) {
                continue;
            }
            for id in listed {
                if self.waits_in(&batch, &id)? {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    pub fn finish_dispatch(
        &self,
        record: &EventRecord,
        deliveries: &[DeliveryRecord],
        keep_pending: bool,
    ) -> Result<()> {
        // Ordered writes, no transaction (see the module docs): deliveries first, then the
        // record, and the event leaves the queue last. A crash in between re-dispatches
        // the event, whose new run writes the same delivery keys again.
        let id = record.id.as_bytes();
        let Some(current) = self.trees.events.get(id)? else {
            // Gone while it was handled (retention, or taken back because its sync
            // failed): nothing to deliver, and no record to bring back.
            tracing::warn!(event_id = %record.id, "event removed while it was dispatched; its deliveries are dropped");
            return Ok(());
        };
        for delivery in deliveries {
            let key = delivery_key(&delivery.event_id, delivery.index);
            self.trees
                .outbox
                .insert(key.as_bytes(), serde_json::to_vec(delivery)?)?;
            // One whose first try settled it is not queued.
            if !delivery.status.is_final() {
                self.trees.outbox_open.insert(key.as_bytes(), &[])?;
            }
        }
        let before = decode_event(&current)?;
        let mut record = record.clone();
        record.updated_at = lifecycle::next_update(before.updated_at);
        // The record keeps its request's location, and leaves its `queue` batch.
        let batch = batch_of(&current).map(<[u8]>::to_vec);
        if batch.is_some() && keep_pending {
            // A scheduled retry waits on its own; queued so before it leaves the batch.
            self.trees.pending.insert(id, &[])?;
        }
        let prefix = dispatched_prefix(&current);
        self.trees
            .events
            .insert(id, encode_event(&prefix, &record)?)?;
        self.trees.tally.moved(
            &record.connector,
            record.received_at,
            Some(before.status),
            Some(record.status),
        );
        match batch {
            Some(batch) => self.trees.batches.leave(&batch)?,
            None if !keep_pending => {
                self.trees.pending.remove(id)?;
            }
            None => {}
        }
        self.progressed();
        // Settled by this run (dead, or succeeded with nothing to deliver): what a rebuild
        // needs to not run it again.
        if record.status.is_final() && before.status != record.status {
            self.log_progress_with(&record, deliveries)?;
        }
        Ok(())
    }

    pub fn deliveries(&self, event_id: &str) -> Result<Vec<DeliveryRecord>> {
        let prefix = format!("{event_id}/");
        self.trees
            .outbox
            .scan_prefix(prefix.as_bytes())
            .values()
            .map(|value| Ok(serde_json::from_slice(&value?)?))
            .collect()
    }

    pub fn open_deliveries(&self) -> Result<Vec<DeliveryRecord>> {
        let mut rows = Vec::new();
        for key in self.trees.outbox_open.iter().keys() {
            let key = key?;
            if let Some(bytes) = self.trees.outbox.get(&key)? {
                let row: DeliveryRecord = serde_json::from_slice(&bytes)?;
                if !row.status.is_final() {
                    rows.push(row);
                }
            }
        }
        Ok(rows)
    }

    pub fn put_delivery(&self, delivery: &DeliveryRecord) -> Result<()> {
        let key = delivery_key(&delivery.event_id, delivery.index);
        self.trees
            .outbox
            .insert(key.as_bytes(), serde_json::to_vec(delivery)?)?;
        // The open index follows the row; `open_deliveries` skips a final row whose index
        // entry a crash left behind.
        if delivery.status.is_final() {
            self.trees.outbox_open.remove(key.as_bytes())?;
        } else {
            self.trees.outbox_open.insert(key.as_bytes(), &[])?;
        }
        self.progressed();
        Ok(())
    }

    pub fn list_events(&self, query: &EventQuery) -> Result<(Vec<EventRecord>, Option<String>)> {
        if let Some(key) = &query.key {
            return self.events_by_key(key, query);
        }
        // Ids are ULIDs: their order is the order of arrival, so time bounds are key bounds.
        let lower = query
            .since
            .map(|ms| ulid::Ulid::from_parts(ms, 0).to_string().into_bytes())
            .unwrap_or_default();
        let mut upper = query
            .until
            .map(|ms| ulid::Ulid::from_parts(ms, 0).to_string().into_bytes());
        if let Some(cursor) = &query.cursor {
            let cursor = cursor.as_bytes().to_vec();
            upper = Some(match upper {
                Some(u) if u < cursor => u,
                _ => cursor,
            });
        }
        let range = match upper {
            Some(upper) => self.trees.events.range(lower..upper),
            None => self.trees.events.range(lower..),
        };
        let limit = query.limit.max(1);
        // Bound the work of one page when filters match little: the caller continues from
        // the cursor.
        let mut scanned = 0usize;
        let mut page = Vec::new();
        let mut last_key = None;
        for item in range.rev() {
            let (key, value) = item?;
            scanned += 1;
            last_key = Some(key.clone());
            let record = decode_event(&value)?;
            let matches = query
                .connector
                .as_ref()
                .is_none_or(|c| *c == record.connector)
                && query.status.is_none_or(|s| s == record.status);
            if matches {
                page.push(record);
                if page.len() == limit {
                    break;
                }
            }
            if scanned >= 10_000 {
                break;
            }
        }
        let exhausted = page.len() < limit && scanned < 10_000;
        let next = if exhausted {
            None
        } else {
            last_key.map(|k| String::from_utf8_lossy(&k).into_owned())
        };
        Ok((page, next))
    }

    /// The events deduped on `key`, newest first, from the `keys` tree (one key has a
    /// first event and its repeats: a short list), with the query's other filters.
    fn events_by_key(
        &self,
        key: &str,
        query: &EventQuery,
    ) -> Result<(Vec<EventRecord>, Option<String>)> {
        let mut ids = Vec::new();
        for entry in self.trees.keys.scan_prefix(key_prefix(key)).keys() {
            if let Some(id) = event_of_key_entry(&entry?) {
                ids.push(id.to_string());
            }
        }
        let mut candidates = Vec::with_capacity(ids.len());
        for id in ids.iter().rev() {
            if let Some(value) = self.trees.events.get(id.as_bytes())? {
                candidates.push(decode_event(&value)?);
            }
        }
        Ok(super::page_of(candidates, query))
    }

    pub fn replay(&self, id: &str, new_keys: bool) -> Result<EventRecord, ReplayError> {
        let existing = self
            .trees
            .outbox
            .scan_prefix(format!("{id}/").as_bytes())
            .count() as u32;
        let before = std::cell::Cell::new(None);
        let result = (&self.trees.events, &self.trees.pending).transaction(|(events, pending)| {
            let Some(bytes) = events.get(id.as_bytes())? else {
                return Ok(Err(ReplayError::NotFound(id.to_string())));
            };
            let mut record = decode_event(&bytes).map_err(abort)?;
            before.set(Some(record.status));
            if let Err(refused) = lifecycle::reset_for_replay(&mut record, existing, new_keys) {
                return Ok(Err(refused));
            }
            let value = encode_event(prefix_of(&bytes), &record).map_err(abort)?;
            events.insert(id.as_bytes(), value)?;
            pending.insert(id.as_bytes(), &[])?;
            Ok(Ok(record))
        });
        let record = result.map_err(tx_error)??;
        self.trees.tally.moved(
            &record.connector,
            record.received_at,
            before.get(),
            Some(record.status),
        );
        self.progressed();
        // Durable with the `sync` the API waits for before it answers.
        self.log_progress(&record)?;
        self.queues
            .dispatch(&record.connector)
            .push(&record.id, crate::time::now_ms());
        Ok(record)
    }

    pub fn purge_before(&self, cutoff: u64, batch: usize) -> Result<usize> {
        let mut removed = 0;
        for item in self.trees.events.iter().take(batch) {
            let (key, value) = item?;
            let record = decode_event(&value)?;
            if record.received_at >= cutoff {
                break;
            }
            let prefix = format!("{}/", record.id);
            let deliveries: Vec<_> = self
                .trees
                .outbox
                .scan_prefix(prefix.as_bytes())
                .keys()
                .collect::<std::result::Result<_, _>>()?;
            let dedupe_key = Self::dedupe_key_of(&record);
            (
                &self.trees.requests,
                &self.trees.events,
                &self.trees.pending,
                &self.trees.outbox,
                &self.trees.outbox_open,
                &self.trees.dedupe,
            )
                .transaction(|(requests, events, pending, outbox, open, dedupe)| {
                    requests.remove(&key)?;
                    events.remove(&key)?;
                    pending.remove(&key)?;
                    for delivery in &deliveries {
                        outbox.remove(delivery)?;
                        open.remove(delivery)?;
                    }
                    if let Some(dk) = &dedupe_key
                        && let Some(entry) = dedupe.get(dk)?
                        && claimed_by(&entry, &record.id)
                    {
                        dedupe.remove(dk.as_slice())?;
                    }
                    Ok::<_, ConflictableTransactionError<StoreError>>(())
                })
                .map_err(tx_error)?;
            self.trees.tally.moved(
                &record.connector,
                record.received_at,
                Some(record.status),
                None,
            );
            // After the event: an entry whose event is gone is skipped by lookups.
            if let Some(dk) = &record.dedupe_key {
                self.trees.keys.remove(key_entry(dk, &record.id))?;
            }
            // Never dispatched (its connector paused or gone for the whole retention):
            // it leaves its `queue` batch too, or the entry would stay until a restart.
            if let Some(queued_in) = batch_of(&value) {
                self.trees.batches.leave(queued_in)?;
            }
            removed += 1;
        }
        if removed < batch {
            // The scan is complete: no event received before the cutoff is left, so no
            // segment written to only before it is needed.
            let cutoff = std::time::UNIX_EPOCH + std::time::Duration::from_millis(cutoff);
            let deleted = self
                .inbox
                .delete_before(cutoff, || self.carry_kv_forward())?;
            if deleted > 0 {
                tracing::info!(segments = deleted, "retention deleted inbox segments");
            }
        }
        Ok(removed)
    }

    pub fn purge_dedupe(
        &self,
        cutoff: u64,
        from: Option<Vec<u8>>,
        batch: usize,
    ) -> Result<(usize, Option<Vec<u8>>)> {
        let start = from.unwrap_or_default();
        let mut removed = 0;
        let mut seen = 0;
        let mut last = None;
        for item in self.trees.dedupe.range(start..) {
            let (key, value) = item?;
            seen += 1;
            let expired =
                serde_json::from_slice::<DedupeEntry>(&value).is_ok_and(|e| e.at < cutoff);
            if expired {
                // Only if unchanged since read: a concurrent insert of the same key wins.
                if self
                    .trees
                    .dedupe
                    .compare_and_swap(&key, Some(value), None as Option<&[u8]>)?
                    .is_ok()
                {
                    removed += 1;
                }
            }
            last = Some(key);
            if seen >= batch {
                break;
            }
        }
        let next = if seen >= batch {
            last.map(|k| {
                let mut next = k.to_vec();
                next.push(0);
                next
            })
        } else {
            None
        };
        Ok((removed, next))
    }

    pub fn kv_get(&self, connector: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .trees
            .kv
            .get(kv_key(connector, key))?
            .map(|v| v.to_vec()))
    }

    pub fn kv_set(&self, connector: &str, key: &str, value: &[u8]) -> Result<()> {
        self.write_kv(connector, key, Some(value))
    }

    pub fn kv_delete(&self, connector: &str, key: &str) -> Result<()> {
        self.write_kv(connector, key, None)
    }

    pub fn kv_count(&self, connector: &str, limit: usize) -> Result<usize> {
        let mut prefix = connector.as_bytes().to_vec();
        prefix.push(0);
        let mut count = 0;
        for key in self.trees.kv.scan_prefix(prefix).keys().take(limit) {
            key?;
            count += 1;
        }
        Ok(count)
    }
}

// The capabilities the pipeline uses. sled's operations are short and never wait on a disk
// (the fsyncs are on the store's own threads), so they run on the caller's task; the ones
// that can scan or write much (a page of the log, a replay, retention) run where blocking
// is allowed.

#[async_trait::async_trait]
impl EventLog for SledStore {
    async fn insert_event(&self, event: NewEvent) -> Result<Inserted> {
        SledStore::insert_event(self, event).await
    }

    fn commit_stats(&self) -> Option<&crate::store::CommitStats> {
        Some(&self.trees.commits)
    }

    async fn counts(
        &self,
        since: u64,
    ) -> Result<Option<HashMap<String, (crate::store::tally::Counts, crate::store::tally::Counts)>>>
    {
        Ok(self.trees.tally.counts(since))
    }

    async fn sync(&self) -> Result<()> {
        SledStore::sync(self).await
    }

    async fn event(&self, id: &str) -> Result<Option<EventRecord>> {
        SledStore::event(self, id)
    }

    async fn request(&self, id: &str) -> Result<Option<StoredRequest>> {
        SledStore::request(self, id)
    }

    async fn update_event(
        &self,
        id: &str,
        update: &mut (dyn for<'r> FnMut(&'r mut EventRecord) + Send),
    ) -> Result<Option<EventRecord>> {
        SledStore::update_event(self, id, update)
    }

    async fn list_events(&self, query: &EventQuery) -> Result<(Vec<EventRecord>, Option<String>)> {
        blocking(|| SledStore::list_events(self, query))
    }

    async fn replay(&self, id: &str, new_keys: bool) -> Result<EventRecord, ReplayError> {
        blocking(|| SledStore::replay(self, id, new_keys))
    }

    async fn purge_before(&self, cutoff: u64, batch: usize) -> Result<usize> {
        blocking(|| SledStore::purge_before(self, cutoff, batch))
    }
}

#[async_trait::async_trait]
impl DispatchQueue for SledStore {
    async fn next_dispatch(&self, connector: &str, wait: Duration) -> Result<Option<Lease>> {
        Ok(self.queues.next_dispatch(connector, wait).await)
    }

    async fn finish_dispatch(
        &self,
        lease: Lease,
        record: &EventRecord,
        deliveries: &[DeliveryRecord],
        again_at: Option<u64>,
    ) -> Result<()> {
        if let Err(err) = SledStore::finish_dispatch(self, record, deliveries, again_at.is_some()) {
            // Still queued in sled: tried again in a while, not in a loop.
            due::end(lease, Some(crate::time::now_ms() + due::RETRY_MS));
            return Err(err);
        }
        let now = crate::time::now_ms();
        for delivery in deliveries.iter().filter(|d| !d.status.is_final()) {
            self.queues.deliveries.push(
                &delivery_key(&delivery.event_id, delivery.index),
                delivery.next_attempt_at.unwrap_or(now),
            );
        }
        due::end(lease, again_at);
        Ok(())
    }

    async fn release_dispatch(&self, lease: Lease, after: Duration) -> Result<()> {
        due::end(
            lease,
            Some(crate::time::now_ms() + after.as_millis() as u64),
        );
        Ok(())
    }

    async fn forget_dispatch(&self, lease: Lease) -> Result<()> {
        due::end(lease, None);
        Ok(())
    }

    fn dispatch_backlog(&self) -> Vec<(String, usize)> {
        self.queues.dispatch_backlog()
    }
}

#[async_trait::async_trait]
impl Outbox for SledStore {
    async fn next_delivery(&self, wait: Duration) -> Result<Option<(Lease, DeliveryRecord)>> {
        self.queues
            .next_delivery(wait, |key| {
                let row = self
                    .trees
                    .outbox
                    .get(key.as_bytes())?
                    .map(|bytes| serde_json::from_slice::<DeliveryRecord>(&bytes))
                    .transpose()?;
                // Removed by retention, or settled meanwhile: nothing to send.
                Ok(row.filter(|row| !row.status.is_final()))
            })
            .await
    }

    async fn finish_delivery(&self, lease: Lease, delivery: &DeliveryRecord) -> Result<()> {
        let stored = self.put_delivery(delivery);
        let again = match &stored {
            Err(_) => Some(crate::time::now_ms() + due::RETRY_MS),
            Ok(()) if delivery.status.is_final() => None,
            Ok(()) => Some(delivery.next_attempt_at.unwrap_or_else(crate::time::now_ms)),
        };
        due::end(lease, again);
        stored
    }

    async fn deliveries(&self, event_id: &str) -> Result<Vec<DeliveryRecord>> {
        SledStore::deliveries(self, event_id)
    }
}

/// Run `work`, which may scan or write much, where a tokio worker may block: on a
/// multi-threaded runtime the others take over this worker's tasks meanwhile
/// (`block_in_place`); on a current-thread runtime (tests) it just runs.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

#[async_trait::async_trait]
impl Dedupe for SledStore {
    async fn purge_dedupe(
        &self,
        cutoff: u64,
        from: Option<DedupeCursor>,
        batch: usize,
    ) -> Result<(usize, Option<DedupeCursor>)> {
        let (removed, next) =
            blocking(|| SledStore::purge_dedupe(self, cutoff, from.map(|c| c.0), batch))?;
        Ok((removed, next.map(DedupeCursor)))
    }
}

#[async_trait::async_trait]
impl ConnectorKv for SledStore {
    async fn kv_get(&self, connector: &str, key: &str) -> Result<Option<Vec<u8>>> {
        SledStore::kv_get(self, connector, key)
    }

    async fn kv_set(&self, connector: &str, key: &str, value: &[u8]) -> Result<()> {
        SledStore::kv_set(self, connector, key, value)
    }

    async fn kv_delete(&self, connector: &str, key: &str) -> Result<()> {
        SledStore::kv_delete(self, connector, key)
    }

    async fn kv_count(&self, connector: &str, limit: usize) -> Result<usize> {
        SledStore::kv_count(self, connector, limit)
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Best effort: a clean shutdown leaves nothing for recovery to replay (the flusher
        // ends with a checkpoint).
        self.ingest.take();
        self.flusher.take();
        // Nothing writes now: the counts are the index's, for the next open to take.
        if let Some(snapshot) = self.trees.tally.snapshot() {
            let _ = self.trees.meta.insert(TALLY, snapshot);
        }
        let _ = self.inbox.sync();
        let _ = self.db.flush();
    }
}

#[cfg(test)]
mod tests;
