//! How the sled store accepts new events: the inbox is the write-ahead log of ingress, and
//! sled is written behind it by one thread.
//!
//! Each new event is one inbox entry that holds its record and its request
//! ([`encode_entry`]); the answer to the sender waits only for that entry's `fdatasync`.
//! Two threads do the work:
//!
//! 1. The **sequencer** takes queued [`Job`]s in batches. It decides each one's dedupe
//!    (one thread decides them all, so two copies of an event can never both be accepted,
//!    and no lock is needed), appends the whole batch to the inbox in one `write`, applies
//!    it to sled — the batch's queue entry, then each record and its dedupe entry — and
//!    records how far sled holds the inbox (`meta/ingest.applied`). Then it hands the batch
//!    to the syncer.
//! 2. The **syncer** `fdatasync`s the inbox once for every batch handed over since its last
//!    sync (a group commit) and answers each job. When the sync fails, nothing written since
//!    the last good sync is acknowledged: those jobs get the error and their sled writes are
//!    undone, so the sender's retry is accepted and not taken for a duplicate.
//!
//! The dispatch queue of new events is one `queue` entry per batch, listing the batch's
//! accepted events ([`Batches`]), instead of one entry per event: each record carries its
//! batch's key until it is dispatched, and the entry goes once all of them are.
//!
//! sled is not flushed for an answer: the store's flusher flushes it when dispatch progress
//! is written and at its checkpoints (`sled.rs`). After a crash, the inbox entries from
//! `ingest.applied` on are applied again ([`replay`]), so an acknowledged event that sled
//! had not written yet comes back whole. sled recovers a prefix of its log, so a recovered
//! `ingest.applied` implies every write the sequencer made before it; the mark is made
//! durable when the store opens, before the first event.
//!
//! Why: sled 0.34 operations made from many request tasks at once, with a flush per group
//! commit, cost the ingress far more than the same operations made by one thread behind
//! the log: 18–20k against 23–25k accepted/s in the same minutes, and 40k with no sled at
//! all (BENCHMARKS.md, "What limits it").
//!
//! The answers travel on `futures` oneshot channels, which any executor can wait on (the
//! tests wait with `futures::executor::block_on`; tokio's own count against the tokio
//! task's budget and can stall a blocked-on wait inside a runtime).

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;

use super::entry::{self, Entry, KvWrite, Progress, encode_entry};
use super::inbox::{Inbox, Location};
pub(super) use super::queue::Batches;
use super::recovery::Acked;
use super::{
    DedupeEntry, batch_of, claimed_by, decode_event, delivery_key, dispatched_prefix, encode_event,
    event_value, key_entry, kv_key, location_of,
};
use crate::store::due::Queues;
use crate::store::{EventRecord, Inserted, NewEvent, Result, Status, StoreError};

/// Jobs taken into one batch at most…
const MAX_BATCH: usize = 512;
/// …and bodies of at most this many bytes in all (a batch is one `write`).
const MAX_BATCH_BYTES: usize = 8 << 20;
/// Jobs waiting for the sequencer at most; ingress waits for room beyond that.
const QUEUE: usize = 4096;

/// The key in the `meta` tree of how far sled holds the inbox: the [`Location`] where the
/// entries not yet applied (or not known to be) begin.
pub(super) const APPLIED: &[u8] = b"ingest.applied";

/// A new event waiting for the sequencer, and who to tell once it is durable.
pub(super) struct Job {
    pub event: NewEvent,
    pub reply: oneshot::Sender<Result<Inserted>>,
}

/// The trees of the index (see `sled.rs`), which the sequencer and recovery write.
#[derive(Clone)]
pub(super) struct Trees {
    pub events: sled::Tree,
    pub pending: sled::Tree,
    pub dedupe: sled::Tree,
    /// Every event with a dedupe key, by key, for the retention window (`?key=`).
    pub keys: sled::Tree,
    pub outbox: sled::Tree,
    pub outbox_open: sled::Tree,
    pub kv: sled::Tree,
    pub meta: sled::Tree,
    /// Events stored before the inbox existed: id → their request.
    pub requests: sled::Tree,
    pub batches: Batches,
    /// The newest event acknowledged so far, for the next checkpoint (`recovery.rs`).
    pub acked: Arc<Mutex<Option<Acked>>>,
    /// The syncer's counts, for `GET /metrics`.
    pub commits: Arc<crate::store::CommitStats>,
    /// Events by connector, status and hour, for `GET /v1/connectors`.
    pub tally: Arc<crate::store::tally::Tally>,
}

impl Trees {
    pub fn open(db: &sled::Db) -> Result<Trees> {
        Ok(Trees {
            events: db.open_tree("events")?,
            pending: db.open_tree("pending")?,
            dedupe: db.open_tree("dedupe")?,
            keys: db.open_tree("keys")?,
            outbox: db.open_tree("outbox")?,
            outbox_open: db.open_tree("outbox_open")?,
            kv: db.open_tree("kv")?,
            meta: db.open_tree("meta")?,
            requests: db.open_tree("requests")?,
            batches: Batches::new(db.open_tree("queue")?),
            acked: Default::default(),
            commits: Default::default(),
            tally: Default::default(),
        })
    }

    /// How far the index holds the inbox, if it says.
    pub fn applied(&self) -> Result<Option<Location>> {
        Ok(self.meta.get(APPLIED)?.and_then(|v| Location::decode(&v)))
    }
}

/// The sequencer and syncer threads; dropping this drains the queue and joins both.
pub(super) struct Ingest {
    pub jobs: async_channel::Sender<Job>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Ingest {
    /// Start both threads. With `durable = false` nothing is synced before answering.
    pub fn start(
        trees: Trees,
        inbox: Arc<Inbox>,
        queues: Arc<Queues>,
        durable: bool,
    ) -> Result<Ingest> {
        let (jobs, queue) = async_channel::bounded::<Job>(QUEUE);
        let (handover, batches) = std_mpsc::channel::<Batch>();
        let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(work)
                .map_err(|err| {
                    StoreError::Unavailable(format!("starting the {name} thread: {err}"))
                })
        };
        let syncer = {
            let (trees, inbox) = (trees.clone(), inbox.clone());
            spawn(
                "switchyard-sync",
                Box::new(move || sync_batches(batches, &trees, &inbox, &queues, durable)),
            )?
        };
        let sequencer = spawn(
            "switchyard-seq",
            Box::new(move || {
                while let Ok(first) = queue.recv_blocking() {
                    let mut batch = vec![first];
                    let mut bytes = batch[0].event.request.body.len();
                    while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                        match queue.try_recv() {
                            Ok(job) => {
                                bytes += job.event.request.body.len();
                                batch.push(job);
                            }
                            Err(_) => break,
                        }
                    }
                    if let Some(batch) = sequence(&trees, &inbox, batch) {
                        // The syncer outlives this loop (it ends when `handover` drops).
                        let _ = handover.send(batch);
                    }
                }
            }),
        )?;
        Ok(Ingest {
            jobs,
            threads: vec![sequencer, syncer],
        })
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        // The sequencer takes what is queued, then ends; the syncer ends after it, once it
        // has answered the last batch.
        self.jobs.close();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A batch written to the inbox and applied to sled, waiting for its sync.
struct Batch {
    /// The inbox segment it was written to.
    segment: u64,
    /// Its `queue` entry, if it has one.
    queue_key: Option<Vec<u8>>,
    answers: Vec<Answer>,
}

struct Answer {
    reply: oneshot::Sender<Result<Inserted>>,
    inserted: Inserted,
    received_at: u64,
    connector: String,
    /// Whether it waits for its connector (a rejected request does not).
    queued: bool,
    /// What to undo if the sync fails.
    id: String,
    claim: Option<Vec<u8>>,
    batch: Option<Vec<u8>>,
}

/// One event, decided: its record is final and its inbox entry encoded.
struct Decided {
    id: String,
    received_at: u64,
    connector: String,
    record_json: Vec<u8>,
    entry: Vec<u8>,
    queued: bool,
    /// The `dedupe` tree key this event claims.
    claim: Option<(Vec<u8>, u64)>,
    /// The key it was deduped on (a claim or a duplicate): its `keys` entry.
    dedupe_key: Option<String>,
    status: Status,
    inserted: Inserted,
}

/// Decide, write and apply one batch. `None` when no job of it is left to sync (each has
/// been answered with its error).
fn sequence(trees: &Trees, inbox: &Inbox, jobs: Vec<Job>) -> Option<Batch> {
    // Claims made earlier in this batch: not in sled yet.
    let mut claims: HashMap<Vec<u8>, String> = HashMap::new();
    let mut decided = Vec::with_capacity(jobs.len());
    for job in jobs {
        match decide(trees, &mut claims, job.event) {
            Ok(event) => decided.push((event, job.reply)),
            Err(err) => {
                let _ = job.reply.send(Err(err));
            }
        }
    }
    if decided.is_empty() {
        return None;
    }
    let payloads: Vec<&[u8]> = decided.iter().map(|(d, _)| d.entry.as_slice()).collect();
    let locations = match inbox.append_batch(&payloads) {
        Ok(locations) => locations,
        Err(err) => {
            tracing::error!(requests = decided.len(), "{err}; refused");
            for (_, reply) in decided {
                let _ = reply.send(Err(err.clone()));
            }
            return None;
        }
    };
    let segment = locations[0].segment;
    // The batch's accepted events are queued under the first one's id, the entry written
    // before them.
    let queued: Vec<&str> = decided
        .iter()
        .filter(|(d, _)| d.queued)
        .map(|(d, _)| d.id.as_str())
        .collect();
    let batch = match queued.first() {
        Some(first) if queued.iter().all(|id| id.len() <= u8::MAX as usize) => {
            let key = first.as_bytes().to_vec();
            match trees.batches.add(&key, &queued) {
                Ok(()) => Some(key),
                Err(err) => {
                    tracing::error!(
                        requests = decided.len(),
                        "queueing the batch failed: {err}; refused"
                    );
                    for (_, reply) in decided {
                        let _ = reply.send(Err(err.clone()));
                    }
                    return None;
                }
            }
        }
        // Ids too long for a batch entry (never ULIDs): queued one by one.
        _ => None,
    };
    let mut answers = Vec::with_capacity(decided.len());
    for ((event, reply), location) in decided.into_iter().zip(locations) {
        let claim = event.claim.as_ref().map(|(key, _)| key.clone());
        let batch = batch.clone().filter(|_| event.queued);
        match apply(trees, &event, location, batch.as_deref()) {
            Ok(()) => answers.push(Answer {
                reply,
                inserted: event.inserted,
                received_at: event.received_at,
                connector: event.connector,
                queued: event.queued,
                id: event.id,
                claim,
                batch,
            }),
            Err(err) => {
                tracing::error!(event_id = %event.id, "storing the event failed: {err}");
                if let Err(undo_err) = undo(trees, &event.id, claim.as_deref(), batch.as_deref()) {
                    tracing::error!(event_id = %event.id, "undoing a failed store: {undo_err}");
                }
                let _ = reply.send(Err(err));
            }
        }
    }
    let mut applied = Vec::with_capacity(Location::ENCODED);
    inbox.head().encode(&mut applied);
    if let Err(err) = trees.meta.insert(APPLIED, applied) {
        // Only makes a recovery replay more of the inbox than it needs to.
        tracing::warn!("recording how far sled holds the inbox: {err}");
    }
    Some(Batch {
        segment,
        queue_key: batch,
        answers,
    })
}

/// Dedupe one event against sled and the earlier jobs of its batch, and encode it.
fn decide(
    trees: &Trees,
    claims: &mut HashMap<Vec<u8>, String>,
    event: NewEvent,
) -> Result<Decided> {
    let NewEvent {
        mut record,
        request,
        dedupe,
    } = event;
    let now = record.received_at;
    let mut claim = None;
    // The record names the key it was checked on (recovery claims it again from there).
    record.dedupe_key = dedupe.as_ref().map(|(key, _)| key.clone());
    if let Some((key, window)) = &dedupe {
        let tree_key = kv_key(&record.connector, key);
        let first = match claims.get(&tree_key) {
            Some(id) => Some(id.clone()),
            None => first_claim(trees, &tree_key, now, *window)?,
        };
        match first {
            Some(first_id) => {
                crate::store::lifecycle::duplicate(&mut record, first_id);
            }
            None => {
                claims.insert(tree_key.clone(), record.id.clone());
                claim = Some((tree_key, now));
            }
        }
    }
    let inserted = match &record.duplicate_of {
        Some(first_id) => Inserted::Duplicate {
            id: record.id.clone(),
            first_id: first_id.clone(),
        },
        None => Inserted::Accepted {
            id: record.id.clone(),
        },
    };
    let record_json = serde_json::to_vec(&record)?;
    let entry = encode_entry(&record_json, &request)?;
    Ok(Decided {
        queued: record.status == Status::Pending,
        received_at: record.received_at,
        connector: record.connector,
        id: record.id,
        record_json,
        entry,
        claim,
        dedupe_key: record.dedupe_key,
        status: record.status,
        inserted,
    })
}

/// The event that holds the dedupe key `tree_key` within `window` of `now`, if any. An
/// entry whose event is gone (retention, or a crash before it was acknowledged) does not
/// count.
fn first_claim(trees: &Trees, tree_key: &[u8], now: u64, window: u64) -> Result<Option<String>> {
    let Some(entry) = claim_of(trees, tree_key)? else {
        return Ok(None);
    };
    let live = now.saturating_sub(entry.at) <= window
        && trees.events.contains_key(entry.event_id.as_bytes())?;
    Ok(live.then_some(entry.event_id))
}

/// The `dedupe` entry of `tree_key`, if there is one that reads.
fn claim_of(trees: &Trees, tree_key: &[u8]) -> Result<Option<DedupeEntry>> {
    let Some(existing) = trees.dedupe.get(tree_key)? else {
        return Ok(None);
    };
    match serde_json::from_slice(&existing) {
        Ok(entry) => Ok(Some(entry)),
        // Refusing every copy of this key forever would be worse than taking it anew.
        Err(err) => {
            tracing::error!("a dedupe entry does not read ({err}); the key is claimed anew");
            Ok(None)
        }
    }
}

/// Written in this order, so that whatever prefix a crash leaves is consistent: the dedupe
/// entry only ever points at an event that is stored and queued. A queued event waits in
/// `batch` (whose entry is already written) or, without one, gets its own `pending` entry.
///
/// The `keys` entry goes first: an event sled holds is always found by its key (an entry
/// whose event is gone is skipped by lookups).
fn apply(trees: &Trees, event: &Decided, location: Location, batch: Option<&[u8]>) -> Result<()> {
    if let Some(key) = &event.dedupe_key {
        trees
            .keys
            .insert(key_entry(key, &event.id), event.connector.as_bytes())?;
    }
    trees.events.insert(
        event.id.as_bytes(),
        event_value(location, batch, &event.record_json),
    )?;
    if event.queued && batch.is_none() {
        trees.pending.insert(event.id.as_bytes(), &[])?;
    }
    if let Some((key, at)) = &event.claim {
        let entry = DedupeEntry {
            event_id: event.id.clone(),
            at: *at,
        };
        trees
            .dedupe
            .insert(key.as_slice(), serde_json::to_vec(&entry)?)?;
    }
    trees.tally.moved(
        &event.connector,
        event.received_at,
        None,
        Some(event.status),
    );
    Ok(())
}

/// Take back an event that will not be acknowledged.
fn undo(trees: &Trees, id: &str, claim: Option<&[u8]>, batch: Option<&[u8]>) -> Result<()> {
    if let Some(key) = claim
        && let Some(entry) = trees.dedupe.get(key)?
        && claimed_by(&entry, id)
    {
        trees.dedupe.remove(key)?;
    }
    trees.pending.remove(id.as_bytes())?;
    if let Some(value) = trees.events.remove(id.as_bytes())?
        && let Ok(record) = decode_event(&value)
    {
        trees.tally.moved(
            &record.connector,
            record.received_at,
            Some(record.status),
            None,
        );
        if let Some(key) = &record.dedupe_key {
            trees.keys.remove(key_entry(key, id))?;
        }
    }
    if let Some(batch) = batch {
        trees.batches.leave(batch)?;
    }
    Ok(())
}

/// The syncer: one `fdatasync` for every batch handed over since the last, then answers.
///
/// A duplicate is acknowledged only while the event it repeats is stored: the sequencer may
/// have decided it against an event that was then refused and taken back (its sync failed,
/// or its store did), by the sequencer earlier in the same batch or by this thread in an
/// earlier one. A 200 `duplicate` would then tell the sender an event is stored that is
/// not, and nothing would ever be dispatched.
fn sync_batches(
    batches: std_mpsc::Receiver<Batch>,
    trees: &Trees,
    inbox: &Inbox,
    queues: &Queues,
    durable: bool,
) {
    while let Ok(first) = batches.recv() {
        let mut group = vec![first];
        group.extend(batches.try_iter());
        let started = std::time::Instant::now();
        let synced = if durable { inbox.sync() } else { Ok(()) };
        let requests: usize = group.iter().map(|b| b.answers.len()).sum();
        if let Err(err) = &synced {
            tracing::error!(requests, "{err}; refused");
        } else {
            use std::sync::atomic::Ordering::Relaxed;
            let stats = &trees.commits;
            stats.commits.fetch_add(1, Relaxed);
            stats.events.fetch_add(requests as u64, Relaxed);
            stats
                .sync_micros
                .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        }
        for batch in group {
            let result = match &synced {
                // Written to a segment whose sync failed after the write: the failed sync
                // may have dropped it, and this sync was of another segment.
                Ok(()) if durable && inbox.is_poisoned(batch.segment) => {
                    Err(StoreError::Unavailable(
                        "an earlier sync of the inbox failed; not acknowledged".into(),
                    ))
                }
                Ok(()) => Ok(()),
                Err(err) => Err(err.clone()),
            };
            let mut replies = Vec::with_capacity(batch.answers.len());
            for answer in batch.answers {
                let answered = match (&result, answer.inserted) {
                    (Err(err), _) => Err(err.clone()),
                    (Ok(()), Inserted::Duplicate { first_id, .. })
                        if !trees
                            .events
                            .contains_key(first_id.as_bytes())
                            .unwrap_or(false) =>
                    {
                        Err(StoreError::Unavailable(
                            "the event this one repeats was not stored; not acknowledged".into(),
                        ))
                    }
                    (Ok(()), inserted) => Ok(inserted),
                };
                if answered.is_err() {
                    let undone = undo(
                        trees,
                        &answer.id,
                        answer.claim.as_deref(),
                        answer.batch.as_deref(),
                    );
                    if let Err(undo_err) = undone {
                        tracing::error!(event_id = %answer.id, "undoing a refused event: {undo_err}");
                    }
                }
                let accepted = matches!(answered, Ok(Inserted::Accepted { .. }));
                if accepted && answer.queued {
                    // Acknowledged: for its connector now.
                    queues
                        .dispatch(&answer.connector)
                        .push(&answer.id, crate::time::now_ms());
                }
                let acked = accepted.then_some(Acked {
                    id: answer.id,
                    received_at: answer.received_at,
                });
                replies.push((answer.reply, answered, acked));
            }
            // Acknowledged (or taken back) from here on: other dispatchers may see it.
            if let Some(key) = &batch.queue_key {
                trees.batches.synced(key);
            }
            for (reply, answered, acked) in replies {
                if answered.is_ok()
                    && let Some(acked) = acked
                {
                    *trees.acked.lock().unwrap_or_else(|p| p.into_inner()) = Some(acked);
                }
                let _ = reply.send(answered);
            }
        }
    }
}

/// What a replay of the inbox applied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Replayed {
    /// Events the index did not have.
    pub events: usize,
    /// Progress newer than the index had.
    pub progress: usize,
    /// `kv` writes.
    pub kv: usize,
}

/// After a crash: apply again every inbox entry from `ingest.applied` on (see
/// [`replay_from`]), then mark the inbox's head as applied. Nothing without a mark: a new
/// store (an index without one whose inbox has data is rebuilt instead, `recovery.rs`).
pub(super) fn replay(trees: &Trees, inbox: &Inbox, cutoff: u64) -> Result<Replayed> {
    let replayed = match trees.applied()? {
        Some(from) => replay_from(trees, inbox, from, cutoff)?,
        None => Replayed::default(),
    };
    mark_applied(trees, inbox)?;
    Ok(replayed)
}

/// From here on, this process's own entries: the store makes the mark durable before it
/// accepts any, so that a crash losing all that sled got from this process still finds
/// where to replay from.
pub(super) fn mark_applied(trees: &Trees, inbox: &Inbox) -> Result<()> {
    let mut applied = Vec::with_capacity(Location::ENCODED);
    inbox.head().encode(&mut applied);
    trees.meta.insert(APPLIED, applied)?;
    Ok(())
}

/// Apply every inbox entry from `from` on, in order, that the index does not have: the
/// tail sled had not written before a crash, or (from the start) the whole inbox into an
/// empty index. `cutoff` (unix ms): events received before it are left out, retention has
/// removed them (or is about to).
///
/// - An event is applied when the index does not have it, with its dispatch-queue entry and
///   its dedupe claim ([`replay_event`]).
/// - Progress is applied when the index has the event at an older state
///   ([`apply_progress`]).
/// - A `kv` write is applied: it is appended to the inbox before sled is written, so the
///   inbox's order is the order of the writes.
pub(super) fn replay_from(
    trees: &Trees,
    inbox: &Inbox,
    from: Location,
    cutoff: u64,
) -> Result<Replayed> {
    let mut replayed = Replayed::default();
    inbox.scan_earlier(from, |location, payload| {
        let decoded = match entry::decode(payload) {
            Ok(decoded) => decoded,
            Err(err) => {
                tracing::error!(
                    segment = location.segment,
                    offset = location.offset,
                    "{err}; skipped"
                );
                return Ok(());
            }
        };
        match decoded {
            Entry::Event { record } => {
                if replay_event(trees, location, record, cutoff)? {
                    replayed.events += 1;
                }
            }
            Entry::Progress(progress) => {
                if apply_progress(trees, &progress)? {
                    replayed.progress += 1;
                }
            }
            Entry::Kv(write) => {
                apply_kv(trees, &write)?;
                replayed.kv += 1;
            }
            Entry::RequestOnly => {}
        }
        Ok(())
    })?;
    Ok(replayed)
}

/// Apply an event's inbox entry if the index does not have it; whether it did.
///
/// The inbox also holds entries that were refused (503: their sync, or their store,
/// failed), and sled no longer has those either (or has them only because the crash lost
/// their take-back). An entry with a dedupe key tells on itself when the sender retried:
/// the retry was accepted, which could only happen while this one did not hold the key.
/// So when an accepted entry finds its key claimed by another event that sled has:
/// - one later in the inbox: this entry is the refused one, and is not applied;
/// - one earlier, received less than [`crate::config::MIN_DEDUPE_WINDOW`] before it (the shortest
///   dedupe window, so its claim had not expired): that one was refused, and is taken back.
///
/// A refused entry nothing tells on is applied, and dispatched although its sender got a
/// 503; the sender's retry is then a duplicate of it.
fn replay_event(
    trees: &Trees,
    location: Location,
    record_json: &[u8],
    cutoff: u64,
) -> Result<bool> {
    let record: EventRecord = match serde_json::from_slice(record_json) {
        Ok(record) => record,
        Err(err) => {
            tracing::error!(
                segment = location.segment,
                offset = location.offset,
                "an inbox entry's record does not read ({err}); skipped"
            );
            return Ok(false);
        }
    };
    if record.received_at < cutoff || trees.events.contains_key(record.id.as_bytes())? {
        return Ok(false);
    }
    let claim = match (&record.dedupe_key, record.status) {
        (Some(key), Status::Pending) => {
            let tree_key = kv_key(&record.connector, key);
            match other_claimant(trees, &tree_key, &record.id)? {
                Some((_, other)) if other > location => return Ok(false),
                Some((entry, _))
                    if record.received_at.saturating_sub(entry.at)
                        < crate::config::MIN_DEDUPE_WINDOW.as_millis() as u64 =>
                {
                    tracing::warn!(event_id = %entry.event_id, "taking back an event refused before the crash: its retry was accepted");
                    undo(trees, &entry.event_id, Some(&tree_key), None)?;
                }
                _ => {}
            }
            Some((tree_key, record.received_at))
        }
        _ => None,
    };
    let event = Decided {
        queued: record.status == Status::Pending,
        received_at: record.received_at,
        connector: record.connector,
        id: record.id,
        record_json: record_json.to_vec(),
        entry: Vec::new(),
        claim,
        dedupe_key: record.dedupe_key,
        status: record.status,
        inserted: Inserted::Accepted { id: String::new() },
    };
    // Queued on its own: its batch entry may be lost with it.
    apply(trees, &event, location, None)?;
    Ok(true)
}

/// Apply an event's progress unless the index has the event at that state or a later one
/// (a record's `updated_at` grows with every write of it, `sled.rs`), or does not have the
/// event at all (retention removed it, or it was never applied: nothing to update).
/// Whether it did.
fn apply_progress(trees: &Trees, progress: &Progress) -> Result<bool> {
    let id = progress.record.id.as_bytes();
    let Some(current) = trees.events.get(id)? else {
        return Ok(false);
    };
    if decode_event(&current)?.updated_at >= progress.record.updated_at {
        return Ok(false);
    }
    for delivery in &progress.deliveries {
        let key = delivery_key(&delivery.event_id, delivery.index);
        trees
            .outbox
            .insert(key.as_bytes(), serde_json::to_vec(delivery)?)?;
        if delivery.status.is_final() {
            trees.outbox_open.remove(key.as_bytes())?;
        } else {
            trees.outbox_open.insert(key.as_bytes(), &[])?;
        }
    }
    // A replayed event waits for its connector again; a settled one waits for nothing.
    let queued = !progress.record.status.is_final();
    if queued {
        trees.pending.insert(id, &[])?;
    }
    trees.events.insert(
        id,
        encode_event(&dispatched_prefix(&current), &progress.record)?,
    )?;
    if !queued {
        trees.pending.remove(id)?;
    }
    if let Some(batch) = batch_of(&current) {
        trees.batches.leave(batch)?;
    }
    Ok(true)
}

fn apply_kv(trees: &Trees, write: &KvWrite) -> Result<()> {
    let key = kv_key(&write.connector, &write.key);
    match &write.value {
        Some(value) => trees.kv.insert(key, value.as_bytes())?,
        None => trees.kv.remove(key)?,
    };
    Ok(())
}

/// The claim on `tree_key` of an event other than `id` that sled has, with where the
/// inbox holds that event.
fn other_claimant(
    trees: &Trees,
    tree_key: &[u8],
    id: &str,
) -> Result<Option<(DedupeEntry, Location)>> {
    let Some(entry) = claim_of(trees, tree_key)? else {
        return Ok(None);
    };
    if entry.event_id == id {
        return Ok(None);
    }
    let location = trees
        .events
        .get(entry.event_id.as_bytes())?
        .and_then(|value| location_of(&value));
    Ok(location.map(|location| (entry, location)))
}

#[cfg(test)]
mod tests {
    use super::*;
    /// A sled db and an inbox in `dir`, as the store opens them.
    fn open(dir: &std::path::Path) -> (Trees, Inbox) {
        let db = sled::Config::new().path(dir.join("db")).open().unwrap();
        (
            Trees::open(&db).unwrap(),
            Inbox::open(&dir.join("inbox")).unwrap(),
        )
    }

    fn job(id: &str, key: &str) -> (Job, oneshot::Receiver<Result<Inserted>>) {
        let mut record = EventRecord::received(id.into(), "stripe".into(), 10, "stripe");
        record.status = Status::Pending;
        let event = NewEvent {
            record,
            request: crate::store::StoredRequest {
                method: "POST".into(),
                path: "/hooks/stripe".into(),
                query: String::new(),
                headers: Vec::new(),
                body: b"{}".as_slice().into(),
            },
            dedupe: Some((key.into(), 60_000)),
        };
        let (reply, answer) = oneshot::channel();
        (Job { event, reply }, answer)
    }

    #[test]
    fn a_copy_decided_against_a_refused_event_is_refused_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let (trees, inbox) = open(dir.path());
        let (a, a_answer) = job("01A", "evt_1");
        let first = sequence(&trees, &inbox, vec![a]).unwrap();
        let queue_key = first.queue_key.clone().unwrap();
        assert!(
            trees.batches.is_unsynced(&queue_key),
            "not handed to other dispatchers before its sync"
        );
        // The sync of A's segment fails; before the syncer takes A back, the sender's retry
        // B is decided against A's claim (a duplicate of it) and written to a new segment.
        inbox
            .failing_syncs
            .store(1, std::sync::atomic::Ordering::SeqCst);
        inbox.sync().unwrap_err();
        let (b, b_answer) = job("01B", "evt_1");
        let second = sequence(&trees, &inbox, vec![b]).unwrap();
        assert!(matches!(
            second.answers[0].inserted,
            Inserted::Duplicate { .. }
        ));
        assert_ne!(second.segment, first.segment);

        let (handover, batches) = std_mpsc::channel();
        handover.send(first).unwrap();
        handover.send(second).unwrap();
        drop(handover);
        sync_batches(batches, &trees, &inbox, &Queues::default(), true);

        let answer = |rx: oneshot::Receiver<Result<Inserted>>| {
            futures::executor::block_on(rx).expect("answered")
        };
        assert!(answer(a_answer).is_err(), "A's sync failed");
        let b = answer(b_answer);
        assert!(
            b.is_err(),
            "a 200 for B would tell the sender its event is stored: {b:?}"
        );
        assert!(!trees.events.contains_key("01A").unwrap());
        assert!(!trees.events.contains_key("01B").unwrap());
        assert!(!trees.batches.is_unsynced(&queue_key));
        // The sender's next try is a new event.
        let (c, c_answer) = job("01C", "evt_1");
        let third = sequence(&trees, &inbox, vec![c]).unwrap();
        let (handover, batches) = std_mpsc::channel();
        handover.send(third).unwrap();
        drop(handover);
        sync_batches(batches, &trees, &inbox, &Queues::default(), true);
        assert_eq!(
            answer(c_answer).unwrap(),
            Inserted::Accepted { id: "01C".into() }
        );
    }
}
