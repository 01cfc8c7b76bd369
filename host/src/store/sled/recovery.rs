//! Recovery of the sled store: the inbox is the truth, sled an index that can always be
//! rebuilt from it.
//!
//! A `kill -9` leaves every write in the OS's page cache, and sled recovers a prefix of its
//! log: the replay of the inbox's tail (`ingest::replay`) brings back what sled had not
//! written yet. A power cut is worse: sled 0.34 rewrites its log segments in place and
//! makes them durable only at our checkpoints, so a torn write can leave it opening as an
//! empty database, behind what it had already made durable, or panicking while it opens.
//! So at every open the index is checked before it is trusted ([`check`]), and when it
//! cannot be, it is moved aside (kept for forensics) and rebuilt from every retained inbox
//! segment ([`rebuild`]).
//!
//! # Layout of `storage.path`
//! - `inbox/`: the segments (`inbox.rs`), the truth;
//! - `index/`: sled, and [`CHECKPOINT`], what the index had made durable at its last
//!   checkpoint: how far into the inbox it held, and the newest event acknowledged by then;
//! - `index.rebuilding/`: a rebuild in progress (a crash leaves it; the next one starts
//!   over);
//! - `index.broken-<time>/`: an index that could not be trusted, kept as it was found (the
//!   newest three);
//! - `lock`: held while a process has the store open.
//!
//! # What is durable, in which order
//! Every directory is fsynced after an entry is created or renamed in it (`storage.path`,
//! `inbox/`, `index/`), so a new store, a new segment and a rebuilt index survive a power
//! cut on a file system that makes directory entries durable only when asked. The
//! checkpoint is written after the sled data it describes is fsynced, and replaced
//! atomically (a new file, fsynced, renamed over the old, directory fsynced).

use std::fs::{self, File};
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::inbox::{Inbox, Location};
use super::layout::{index_dir, sync_dir};
use crate::store::{Result, StoreError};

/// The checkpoint file in `index/`.
pub(super) const CHECKPOINT: &str = "checkpoint";
const REBUILDING: &str = "index.rebuilding";
const ASIDE: &str = "index.broken-";
/// Indexes moved aside that are kept: the newest few, so that repeated cuts cannot fill
/// the disk with them.
const KEPT_ASIDE: usize = 3;

/// The newest event acknowledged when a checkpoint was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Acked {
    pub id: String,
    pub received_at: u64,
}

/// What the index had made durable at its last checkpoint (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Checkpoint {
    /// The index held every inbox entry before this one (`meta/ingest.applied` then).
    pub segment: u64,
    pub offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked: Option<Acked>,
}

impl Checkpoint {
    pub fn mark(&self) -> Location {
        Location {
            segment: self.segment,
            offset: self.offset,
            len: 0,
        }
    }
}

/// Remove what an interrupted rebuild left.
pub(super) fn clear_interrupted_rebuild(root: &Path) -> Result<()> {
    let partial = root.join(REBUILDING);
    if partial.exists() {
        tracing::warn!(path = %partial.display(), "removing an interrupted rebuild of the index");
        fs::remove_dir_all(&partial).map_err(|err| {
            StoreError::Unavailable(format!("removing {}: {err}", partial.display()))
        })?;
        sync_dir(root)?;
    }
    Ok(())
}

/// Run `open` (sled's own opening, reading and recovery), turning a panic inside it into
/// an error: sled 0.34 panics on some torn logs (`serialization.rs: tried to serialize
/// Uninitialized`), and that must mean "rebuild", not a host that cannot start.
pub(super) fn without_panics<T>(what: &str, open: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(open)) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(StoreError::Unavailable(format!(
                "{what} panicked: {message}"
            )))
        }
    }
}

/// Read the checkpoint of the index in `dir`. One that does not read (never written yet, or
/// from a build that had none) only means there is less to check.
pub(super) fn read_checkpoint(dir: &Path) -> Option<Checkpoint> {
    let bytes = fs::read(dir.join(CHECKPOINT)).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(checkpoint) => Some(checkpoint),
        Err(err) => {
            tracing::warn!("the index's checkpoint does not read ({err}); not checked against it");
            None
        }
    }
}

/// Replace the checkpoint of the index in `dir` atomically and durably.
pub(super) fn write_checkpoint(dir: &Path, checkpoint: &Checkpoint) -> Result<()> {
    let tmp = dir.join("checkpoint.tmp");
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(checkpoint)?)?;
        file.sync_data()?;
        fs::rename(&tmp, dir.join(CHECKPOINT))
    };
    write()
        .map_err(|err| StoreError::Unavailable(format!("writing the index checkpoint: {err}")))?;
    sync_dir(dir)
}

/// Whether the opened index can be trusted, as far as a cheap check can tell; `Err` says
/// why not. `mark` is how far it says it holds the inbox (`meta/ingest.applied`), `holds`
/// whether it has an event. `cutoff` (unix ms): events received before it may be gone by
/// retention.
pub(super) fn check(
    mark: Option<Location>,
    holds: impl Fn(&str) -> Result<bool>,
    checkpoint: Option<&Checkpoint>,
    inbox: &Inbox,
    cutoff: u64,
) -> Result<(), String> {
    let Some(mark) = mark else {
        // A new store has no mark and nothing in its inbox. A mark is written before the
        // first event is accepted, so an index without one that has an inbox with data
        // behind it is one that lost everything (sled opened a torn log as a new one).
        if inbox.has_earlier_data() {
            return Err(
                "it holds no mark of how far it has applied the inbox, which \
                        holds events: it opened as a new database"
                    .into(),
            );
        }
        return Ok(());
    };
    let Some(checkpoint) = checkpoint else {
        return Ok(());
    };
    if mark < checkpoint.mark() {
        return Err(format!(
            "it holds the inbox up to {}:{} only, behind its checkpoint at {}:{}: it lost \
             writes it had made durable",
            mark.segment, mark.offset, checkpoint.segment, checkpoint.offset
        ));
    }
    if let Some(acked) = &checkpoint.acked
        && acked.received_at >= cutoff
    {
        match holds(&acked.id) {
            Ok(true) => {}
            Ok(false) => {
                return Err(format!(
                    "event {} was acknowledged before its last checkpoint and is not in it",
                    acked.id
                ));
            }
            Err(err) => return Err(format!("reading it failed: {err}")),
        }
    }
    Ok(())
}

/// How a rebuild went, for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rebuilt {
    pub events: usize,
    pub progress: usize,
    pub kv: usize,
}

/// Rebuild the index of the store at `root` from its inbox, because of `reason`: `fill`
/// writes a new, empty sled database (opened here, in `index.rebuilding/`) from the inbox
/// and returns what it applied. Then the old index (if any) is moved aside to
/// `index.broken-<time>/` and the new one takes its place, each step durable.
pub(super) fn rebuild(
    root: &Path,
    reason: &str,
    fill: impl FnOnce(&sled::Db) -> Result<Rebuilt>,
) -> Result<()> {
    let started = Instant::now();
    let index = index_dir(root);
    tracing::warn!(
        path = %index.display(),
        "the index cannot be trusted ({reason}); rebuilding it from the inbox"
    );
    clear_interrupted_rebuild(root)?;
    let partial = root.join(REBUILDING);
    fs::create_dir(&partial)
        .map_err(|err| StoreError::Unavailable(format!("creating {}: {err}", partial.display())))?;
    sync_dir(root)?;
    let rebuilt = {
        let db = sled::Config::new()
            .path(&partial)
            // Written once, by one thread, and flushed once at the end.
            .cache_capacity(128 << 20)
            .flush_every_ms(None)
            .open()
            .map_err(|err| StoreError::Unavailable(format!("creating the new index: {err}")))?;
        let rebuilt = fill(&db)?;
        db.flush()?;
        File::open(partial.join("db"))
            .and_then(|log| log.sync_data())
            .map_err(|err| StoreError::Unavailable(format!("syncing the new index: {err}")))?;
        rebuilt
    };
    for dir in [partial.join("blobs"), partial.clone()] {
        if dir.exists() {
            sync_dir(&dir)?;
        }
    }
    let kept = if index.exists() {
        let aside = aside_path(root);
        fs::rename(&index, &aside).map_err(|err| {
            StoreError::Unavailable(format!("moving {} aside: {err}", index.display()))
        })?;
        Some(aside)
    } else {
        None
    };
    fs::rename(&partial, &index)
        .map_err(|err| StoreError::Unavailable(format!("moving the new index in place: {err}")))?;
    sync_dir(root)?;
    prune_aside(root);
    tracing::warn!(
        events = rebuilt.events,
        progress = rebuilt.progress,
        kv = rebuilt.kv,
        seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
        kept = %kept.as_deref().map_or("nothing to keep".into(), |p| p.display().to_string()),
        "rebuilt the index from the inbox"
    );
    Ok(())
}

/// Remove all but the newest [`KEPT_ASIDE`] indexes moved aside (best effort).
fn prune_aside(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let mut aside: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(ASIDE))
        .map(|e| e.path())
        .collect();
    // The names sort by time.
    aside.sort();
    let excess = aside.len().saturating_sub(KEPT_ASIDE);
    for old in &aside[..excess] {
        match fs::remove_dir_all(old) {
            Ok(()) => tracing::info!(path = %old.display(), "removed an old index kept aside"),
            Err(err) => {
                tracing::warn!(path = %old.display(), "removing an old index kept aside: {err}")
            }
        }
    }
}

/// `index.broken-<UTC time>`, with a counter if a rebuild in the same second made one.
fn aside_path(root: &Path) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut path = root.join(format!("{ASIDE}{stamp}"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = root.join(format!("{ASIDE}{stamp}-{n}"));
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_replaced_whole_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_checkpoint(dir.path()), None);
        let first = Checkpoint {
            segment: 1,
            offset: 80,
            acked: None,
        };
        write_checkpoint(dir.path(), &first).unwrap();
        let second = Checkpoint {
            segment: 2,
            offset: 0,
            acked: Some(Acked {
                id: "01A".into(),
                received_at: 10,
            }),
        };
        write_checkpoint(dir.path(), &second).unwrap();
        assert_eq!(read_checkpoint(dir.path()), Some(second));
        assert!(!dir.path().join("checkpoint.tmp").exists());
        std::fs::write(dir.path().join(CHECKPOINT), b"garbage").unwrap();
        assert_eq!(read_checkpoint(dir.path()), None, "only a warning");
    }

    #[test]
    fn a_panic_while_opening_is_an_error() {
        let result: Result<()> = without_panics("opening sled", || panic!("torn log"));
        let err = result.unwrap_err().to_string();
        assert!(err.contains("opening sled panicked: torn log"), "{err}");
    }

    #[test]
    fn only_the_newest_indexes_kept_aside_stay() {
        let dir = tempfile::tempdir().unwrap();
        for stamp in [
            "20261201T000000Z",
            "20261202T000000Z",
            "20261203T000000Z",
            "20261204T000000Z",
        ] {
            std::fs::create_dir(dir.path().join(format!("{ASIDE}{stamp}"))).unwrap();
        }
        prune_aside(dir.path());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "index.broken-20261202T000000Z",
                "index.broken-20261203T000000Z",
                "index.broken-20261204T000000Z"
            ]
        );
    }
}
