//! The flusher: sled's only flusher while the store is durable (spacejam/sled#1308: several
//! flushing threads hang sled 0.34), and the index's checkpoints.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::inbox::Inbox;
use super::ingest::Trees;
use super::recovery::{self, Checkpoint};
use crate::store::{Result, StoreError};

type Waiter = oneshot::Sender<Result<()>>;

/// What the flusher is asked for.
pub(super) enum Flush {
    /// Make sled durable, then answer.
    Durable(Waiter),
    /// Progress was written (sent once per flush: see `SledStore::progressed`).
    Progress,
}

/// The flusher thread and its queue of waiters.
pub(super) struct Flusher {
    pub tx: Option<std_mpsc::Sender<Flush>>,
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

/// How often the progress written to sled (dispatch, deliveries, connector state) is
/// handed to the OS when there is some: a `kill -9` loses about this much of it at most,
/// which then shows as deliveries sent again. New events need no flush: they are in the
/// inbox, and sled gets them back from there after a crash.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(5);
/// How often sled is made durable when nobody asks (a power cut loses about this much of
/// the progress, and the inbox replay after a crash stays short).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// What the flusher makes durable, and where it writes the checkpoint.
pub(super) struct Checkpointer {
    pub db: sled::Db,
    /// sled's log file, fsynced after each durable flush.
    pub log: File,
    /// The index's directory (its checkpoint, and the entries of sled's files).
    pub dir: PathBuf,
    pub trees: Trees,
    pub inbox: Arc<Inbox>,
    pub progress: Arc<AtomicBool>,
    /// The checkpoint last written.
    pub written: Option<Checkpoint>,
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
            .map_err(|err| StoreError::Unavailable(format!("fdatasync of the sled log: {err}")))?;
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
                super::layout::sync_dir(&blobs)?;
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
pub(super) fn spawn_flusher(mut checkpointer: Checkpointer) -> Flusher {
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
