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

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::oneshot;

use super::entry::{self, KvWrite, Progress};
use super::inbox::{Inbox, Location};
use super::ingest::{self, Ingest, Trees};
use super::recovery::{self, Checkpoint};
use super::{
    DeliveryRecord, EventQuery, EventRecord, Inserted, NewEvent, ReplayError, Result, Status,
    Storage, StoreError, StoredRequest,
};

type Waiter = oneshot::Sender<Result<()>>;

/// What the flusher is asked for.
enum Flush {
    /// Make sled durable, then answer.
    Durable(Waiter),
    /// Progress was written (sent once per flush: see `SledStore::progressed`).
    Progress,
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
    /// The store's lock (`recovery::lock`), held until the store is dropped.
    _lock: Arc<File>,
}

/// The flusher thread and its queue of waiters.
struct Flusher {
    tx: Option<std_mpsc::Sender<Flush>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // Closing the queue ends the thread (after a last checkpoint); joining it releases
        // its handle on the db, so the same path can be opened again at once (a restart in
        // the same process).
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A `dedupe` value: the event that claimed the key, and when it was received.
#[derive(Serialize, Deserialize)]
pub(super) struct DedupeEntry {
    pub event_id: String,
    pub at: u64,
}

/// Whether a `dedupe` value is the claim of event `id` (a later event may hold the key now).
pub(super) fn claimed_by(entry: &[u8], id: &str) -> bool {
    serde_json::from_slice::<DedupeEntry>(entry).is_ok_and(|e| e.event_id == id)
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
        recovery::create_dir_durably(path)?;
        let lock = Arc::new(recovery::lock(path)?);
        recovery::migrate_layout(path)?;
        recovery::clear_interrupted_rebuild(path)?;
        let inbox = Arc::new(Inbox::open(&path.join("inbox"))?);
        let cutoff = crate::time::now_ms().saturating_sub(options.retention.as_millis() as u64);
        match Self::open_index(path, &inbox, options, cutoff, &lock) {
            Ok(store) => Ok(store),
            Err(err) => {
                recovery::rebuild(path, &err.0, |db| {
                    let trees = Trees::open(db)?;
                    let replayed = ingest::replay_from(&trees, &inbox, Location::START, cutoff)?;
                    ingest::mark_applied(&trees, &inbox)?;
                    Ok(recovery::Rebuilt {
                        events: replayed.events,
                        progress: replayed.progress,
                        kv: replayed.kv,
                    })
                })?;
                Self::open_index(path, &inbox, options, cutoff, &lock).map_err(|err| {
                    StoreError(format!(
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
        let dir = recovery::index_dir(root);
        if !dir.exists() && inbox.has_earlier_data() {
            return Err(StoreError("it is missing".into()));
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
            let db = open_sled(&config)
                .map_err(|err| StoreError(format!("opening {}: {err}", dir.display())))?;
            // sled does not sync the directories of the files it creates.
            recovery::sync_dir(&dir)?;
            recovery::sync_dir(root)?;
            let trees = Trees::open(&db)?;
            recovery::check(
                trees.applied()?,
                |id| Ok(trees.events.contains_key(id.as_bytes())?),
                recovery::read_checkpoint(&dir).as_ref(),
                inbox,
                cutoff,
            )
            .map_err(StoreError)?;
            let store = SledStore {
                trees,
                inbox: inbox.clone(),
                db,
                ingest: None,
                flusher: None,
                progress: Arc::new(AtomicBool::new(false)),
                kv_lock: Mutex::new(()),
                _lock: lock.clone(),
            };
            store.recover(root, options, cutoff)
        })
    }

    /// Apply the inbox's tail, drop what was never acknowledged, make it all durable, and
    /// start the flusher and the ingest threads.
    fn recover(mut self, root: &Path, options: StoreOptions, cutoff: u64) -> Result<Self> {
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
        // Durable before the first event is accepted: the replay mark above, and whatever
        // the recovery changed.
        self.db.flush()?;
        let dir = recovery::index_dir(root);
        if options.durable {
            File::open(dir.join("db"))
                .and_then(|log| log.sync_data())
                .map_err(|err| StoreError(format!("syncing the sled log: {err}")))?;
            let log = File::open(dir.join("db"))
                .map_err(|err| StoreError(format!("opening the sled log: {err}")))?;
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
            options.durable,
        )?);
        Ok(self)
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

    /// Progress was written: the flusher hands it to the OS within about [`FLUSH_EVERY`].
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
        let progress = Progress {
            record: record.clone(),
            deliveries: self.deliveries(&record.id)?,
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
    fn dedupe_key_of(record: &EventRecord) -> Option<Vec<u8>> {
        record
            .dedupe_key
            .as_ref()
            .map(|key| kv_key(&record.connector, key))
    }
}

/// A delivery's key: sorts by event, then index.
pub(super) fn delivery_key(event_id: &str, index: u32) -> String {
    format!("{event_id}/{index:05}")
}

/// The `updated_at` of a record written now over one written at `previous`: later than
/// `previous` even when the clock says otherwise, so that of two states of one record the
/// newer has the greater value (recovery compares them).
fn next_update(previous: u64) -> u64 {
    crate::time::now_ms().max(previous + 1)
}

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

/// `{connector}\0{key}`: the key of a connector's entry in `dedupe` and `kv`.
pub(super) fn kv_key(connector: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(connector.len() + 1 + key.len());
    k.extend_from_slice(connector.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// How often the progress written to sled (dispatch, deliveries, connector state) is
/// handed to the OS when there is some: a `kill -9` loses about this much of it at most,
/// which then shows as deliveries sent again. New events need no flush: they are in the
/// inbox, and sled gets them back from there after a crash.
const FLUSH_EVERY: Duration = Duration::from_millis(5);
/// How often sled is made durable when nobody asks (a power cut loses about this much of
/// the progress, and the inbox replay after a crash stays short).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// What the flusher makes durable, and where it writes the checkpoint.
struct Checkpointer {
    db: sled::Db,
    /// sled's log file, fsynced after each durable flush.
    log: File,
    /// The index's directory (its checkpoint, and the entries of sled's files).
    dir: PathBuf,
    trees: Trees,
    inbox: Arc<Inbox>,
    progress: Arc<AtomicBool>,
    /// The checkpoint last written.
    written: Option<Checkpoint>,
}

impl Checkpointer {
    /// Flush sled; with `durable`, make the inbox and sled durable and write the
    /// checkpoint of what they hold.
    fn flush(&mut self, durable: bool) -> Result<()> {
        if !durable {
            self.db.flush()?;
            return Ok(());
        }
        // Read before the flush: everything they cover was written before it.
        let mark = self.trees.applied()?;
        let acked = self
            .trees
            .acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // Progress and kv entries are appended without a sync of their own.
        self.inbox.sync()?;
        self.db.flush()?;
        self.log
            .sync_data()
            .map_err(|err| StoreError(format!("fdatasync of the sled log: {err}")))?;
        let Some(mark) = mark else {
            return Ok(());
        };
        let checkpoint = Checkpoint {
            segment: mark.segment,
            offset: mark.offset,
            acked,
        };
        if self.written.as_ref() != Some(&checkpoint) {
            // sled creates blob files and snapshots, and syncs no directory.
            let blobs = self.dir.join("blobs");
            if blobs.exists() {
                recovery::sync_dir(&blobs)?;
            }
            recovery::write_checkpoint(&self.dir, &checkpoint)?;
            self.written = Some(checkpoint);
        }
        Ok(())
    }
}

/// The single flusher thread: sled's only flusher while the store is durable. It ends when
/// the store (the last sender) is dropped, after a last checkpoint.
///
/// Measured (`tests/tests/crash.rs`): with sled left to its own periodic flush, a `kill -9`
/// under load re-sent 20–70 deliveries whose success had not reached the disk, against 3–18
/// with progress flushed within 5 ms. Flushing every 5 ms whatever was written (ingress
/// included) raised RSS by ~25 MB. Idle, the thread wakes once a second.
fn spawn_flusher(mut checkpointer: Checkpointer) -> Flusher {
    let (tx, rx) = std_mpsc::channel::<Flush>();
    let thread = std::thread::Builder::new()
        .name("switchyard-flush".into())
        .spawn(move || {
            let mut checkpointed = Instant::now();
            loop {
                let until_checkpoint = CHECKPOINT_EVERY.saturating_sub(checkpointed.elapsed());
                let first = match rx.recv_timeout(until_checkpoint) {
                    Ok(asked) => Some(asked),
                    Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                };
                if matches!(first, Some(Flush::Progress)) {
                    // A burst of progress (many deliveries at once) makes one flush.
                    std::thread::sleep(FLUSH_EVERY);
                }
                let waiters: Vec<Waiter> = first
                    .into_iter()
                    .chain(rx.try_iter())
                    .filter_map(|asked| match asked {
                        Flush::Durable(waiter) => Some(waiter),
                        Flush::Progress => None,
                    })
                    .collect();
                // Cleared before the flush: progress written during it asks again.
                checkpointer.progress.store(false, Ordering::Release);
                let durable = !waiters.is_empty() || checkpointed.elapsed() >= CHECKPOINT_EVERY;
                if durable {
                    checkpointed = Instant::now();
                }
                let result = checkpointer.flush(durable);
                if let Err(err) = &result {
                    tracing::error!("flushing sled failed: {err}");
                }
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
            if let Err(err) = checkpointer.flush(true) {
                tracing::error!("the last checkpoint failed: {err}");
            }
        })
        .expect("spawning the flusher thread");
    Flusher {
        tx: Some(tx),
        thread: Some(thread),
    }
}

fn abort(err: impl ToString) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(StoreError(err.to_string()))
}

fn tx_error(err: TransactionError<StoreError>) -> StoreError {
    match err {
        TransactionError::Abort(err) => err,
        TransactionError::Storage(err) => err.into(),
    }
}

/// An `events` value is a prefix, then the record's JSON. The prefix is `0x01` and the
/// request's [`Location`]; or `0x03`, the location, and the key of the `queue` batch the
/// event waits in (one length byte, then the key) while it has not been dispatched; or,
/// for events stored before the inbox, nothing.
const TAGGED: u8 = 1;
const QUEUED: u8 = 3;

pub(super) fn location_of(value: &[u8]) -> Option<Location> {
    match value.first() {
        Some(&TAGGED | &QUEUED) => Location::decode(&value[1..]),
        _ => None,
    }
}

/// The bytes before the record's JSON (empty for an untagged value).
fn prefix_of(value: &[u8]) -> &[u8] {
    let end = match value.first() {
        Some(&TAGGED) => 1 + Location::ENCODED,
        Some(&QUEUED) => {
            let len = value.get(1 + Location::ENCODED).copied().unwrap_or(0) as usize;
            1 + Location::ENCODED + 1 + len
        }
        _ => 0,
    };
    &value[..end.min(value.len())]
}

/// The `queue` batch an undispatched event waits in.
pub(super) fn batch_of(value: &[u8]) -> Option<&[u8]> {
    match value.first() {
        Some(&QUEUED) => prefix_of(value).get(1 + Location::ENCODED + 1..),
        _ => None,
    }
}

/// The prefix of a value once its event has left the `queue` batch: the location alone.
pub(super) fn dispatched_prefix(value: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let prefix = prefix_of(value);
    match prefix.first() {
        Some(&QUEUED) => match prefix.get(..1 + Location::ENCODED) {
            Some(location) => {
                let mut tagged = location.to_vec();
                tagged[0] = TAGGED;
                tagged.into()
            }
            // Truncated: no location to keep (the record reads as corrupt anyway).
            None => std::borrow::Cow::Borrowed(&[]),
        },
        _ => prefix.into(),
    }
}

pub(super) fn decode_event(value: &[u8]) -> Result<EventRecord> {
    Ok(serde_json::from_slice(&value[prefix_of(value).len()..])?)
}

/// An `events` value for a record (as JSON) whose request is at `location`, waiting in the
/// `queue` batch `batch` if it is given (at most 255 bytes).
pub(super) fn event_value(location: Location, batch: Option<&[u8]>, record_json: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(2 + Location::ENCODED + 32 + record_json.len());
    match batch {
        Some(key) => {
            value.push(QUEUED);
            location.encode(&mut value);
            value.push(key.len() as u8);
            value.extend_from_slice(key);
        }
        None => {
            value.push(TAGGED);
            location.encode(&mut value);
        }
    }
    value.extend_from_slice(record_json);
    value
}

pub(super) fn encode_event(prefix: &[u8], record: &EventRecord) -> Result<Vec<u8>> {
    let mut value = prefix.to_vec();
    serde_json::to_writer(&mut value, record)?;
    Ok(value)
}

impl Storage for SledStore {
    fn insert_event(&self, event: NewEvent) -> BoxFuture<'static, Result<Inserted>> {
        let stopped = || StoreError("the store is shutting down".into());
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

    fn sync(&self) -> BoxFuture<'static, Result<()>> {
        let Some(flusher) = self.flusher.as_ref().and_then(|f| f.tx.as_ref()) else {
            return futures::future::ready(Ok(())).boxed();
        };
        let (tx, rx) = oneshot::channel();
        if flusher.send(Flush::Durable(tx)).is_err() {
            return futures::future::ready(Err(StoreError("flusher has stopped".into()))).boxed();
        }
        async move {
            rx.await
                .unwrap_or_else(|_| Err(StoreError("flusher has stopped".into())))
        }
        .boxed()
    }

    fn event(&self, id: &str) -> Result<Option<EventRecord>> {
        match self.trees.events.get(id.as_bytes())? {
            Some(bytes) => Ok(Some(decode_event(&bytes)?)),
            None => Ok(None),
        }
    }

    fn request(&self, id: &str) -> Result<Option<StoredRequest>> {
        let Some(value) = self.trees.events.get(id.as_bytes())? else {
            return Ok(None);
        };
        let bytes = match location_of(&value) {
            Some(location) => self.inbox.read(location)?,
            None => self.trees.requests.get(id.as_bytes())?.map(|v| v.to_vec()),
        };
        bytes.map(|bytes| entry::entry_request(&bytes)).transpose()
    }

    fn update_event(
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
            update(&mut record);
            record.updated_at = next_update(record.updated_at);
            let new = encode_event(prefix_of(&current), &record)?;
            match self
                .trees
                .events
                .compare_and_swap(id.as_bytes(), Some(current), Some(new))?
            {
                Ok(()) => {
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

    fn pending_events(&self) -> Result<Vec<String>> {
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

    fn finish_dispatch(
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
            self.trees.outbox_open.insert(key.as_bytes(), &[])?;
        }
        let before = decode_event(&current)?;
        let mut record = record.clone();
        record.updated_at = next_update(before.updated_at);
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
            self.log_progress(&record)?;
        }
        Ok(())
    }

    fn deliveries(&self, event_id: &str) -> Result<Vec<DeliveryRecord>> {
        let prefix = format!("{event_id}/");
        self.trees
            .outbox
            .scan_prefix(prefix.as_bytes())
            .values()
            .map(|value| Ok(serde_json::from_slice(&value?)?))
            .collect()
    }

    fn open_deliveries(&self) -> Result<Vec<DeliveryRecord>> {
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

    fn put_delivery(&self, delivery: &DeliveryRecord) -> Result<()> {
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

    fn list_events(&self, query: &EventQuery) -> Result<(Vec<EventRecord>, Option<String>)> {
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

    fn replay(&self, id: &str) -> Result<EventRecord, ReplayError> {
        let existing = self
            .trees
            .outbox
            .scan_prefix(format!("{id}/").as_bytes())
            .count() as u32;
        let result = (&self.trees.events, &self.trees.pending).transaction(|(events, pending)| {
            let Some(bytes) = events.get(id.as_bytes())? else {
                return Ok(Err(ReplayError::NotFound(id.to_string())));
            };
            let mut record = decode_event(&bytes).map_err(abort)?;
            let refusal = match record.status {
                Status::Pending | Status::Retrying => Some("it is still being processed"),
                Status::Rejected => Some("its signature was never verified"),
                Status::Duplicate => Some("it repeats another event; replay that one"),
                Status::Succeeded | Status::Dead => None,
            };
            if let Some(reason) = refusal {
                return Ok(Err(ReplayError::NotReplayable(
                    record.status.as_str(),
                    reason,
                )));
            }
            record.status = Status::Pending;
            record.error = None;
            record.next_attempt_at = None;
            record.deliveries_from = existing;
            record.updated_at = next_update(record.updated_at);
            let value = encode_event(prefix_of(&bytes), &record).map_err(abort)?;
            events.insert(id.as_bytes(), value)?;
            pending.insert(id.as_bytes(), &[])?;
            Ok(Ok(record))
        });
        let record = result.map_err(tx_error)??;
        self.progressed();
        // Durable with the `sync` the API waits for before it answers.
        self.log_progress(&record)?;
        Ok(record)
    }

    fn purge_before(&self, cutoff: u64, batch: usize) -> Result<usize> {
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

    fn purge_dedupe(
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

    fn kv_get(&self, connector: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .trees
            .kv
            .get(kv_key(connector, key))?
            .map(|v| v.to_vec()))
    }

    fn kv_set(&self, connector: &str, key: &str, value: &[u8]) -> Result<()> {
        self.write_kv(connector, key, Some(value))
    }

    fn kv_delete(&self, connector: &str, key: &str) -> Result<()> {
        self.write_kv(connector, key, None)
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Best effort: a clean shutdown leaves nothing for recovery to replay (the flusher
        // ends with a checkpoint).
        self.ingest.take();
        self.flusher.take();
        let _ = self.inbox.sync();
        let _ = self.db.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::OutboundRequest;
    use crate::store::DeliveryStatus;
    use crate::store::InsertNow as _;

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
    /// for its connector, 01D replayed after it succeeded, and kv writes.
    async fn store_with_history(dir: &Path) {
        let store = SledStore::open(dir, true).unwrap();
        for (id, key) in [
            ("01A", "evt_a"),
            ("01B", "evt_b"),
            ("01C", "evt_c"),
            ("01D", "evt_d"),
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
        store.replay("01D").unwrap();
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
        let delivered = store.deliveries("01A").unwrap();
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].status, DeliveryStatus::Succeeded);
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
    fn beside_index(dir: &Path, prefix: &str) -> Vec<PathBuf> {
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
            db.open_tree("events").unwrap().remove("01D").unwrap();
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
        store.replay("01A").unwrap();
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
}
