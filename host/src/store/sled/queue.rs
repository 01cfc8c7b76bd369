//! The dispatch queue of new events: one `queue` entry per batch the sequencer wrote
//! (`ingest.rs`), instead of one per event.

use std::collections::HashMap;
use std::sync::Arc;

use crate::store::Result;

/// The `queue` tree: batch key (the id of the batch's first accepted event) → the ids of
/// its accepted events (each a length byte and the id). Beside it, in memory, how many of
/// each batch's events have not been dispatched yet; when none is left the entry goes.
///
/// An event is queued in a batch while its `events` value carries that batch's key (see
/// `sled.rs`); dispatch removes the key from the value first and then calls
/// [`Batches::leave`], so after a crash an entry's undispatched events are exactly those
/// whose values still name it ([`Batches::load`] counts them again).
#[derive(Clone)]
pub(crate) struct Batches {
    tree: sled::Tree,
    open: Arc<std::sync::Mutex<HashMap<Vec<u8>, OpenBatch>>>,
}

/// A batch some of whose events wait in the queue.
#[derive(Clone, Copy)]
struct OpenBatch {
    /// How many.
    left: usize,
    /// Whether its sync is done. Until then its events are not acknowledged and may still
    /// be taken back, so nothing but ingress (after the answer) may dispatch them.
    synced: bool,
}

impl Batches {
    pub fn new(tree: sled::Tree) -> Self {
        Batches {
            tree,
            open: Default::default(),
        }
    }

    /// Whether batch `key` was written and not yet synced (see [`OpenBatch::synced`]).
    pub fn is_unsynced(&self, key: &[u8]) -> bool {
        self.open().get(key).is_some_and(|batch| !batch.synced)
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, OpenBatch>> {
        // The counts are only ever changed whole; a panic elsewhere leaves them usable.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write the entry of a new batch; before its events, so that none of them can be on
    /// disk without it.
    pub fn add(&self, key: &[u8], ids: &[&str]) -> Result<()> {
        let mut value = Vec::with_capacity(ids.len() * 27);
        for id in ids {
            value.push(id.len() as u8);
            value.extend_from_slice(id.as_bytes());
        }
        let batch = OpenBatch {
            left: ids.len(),
            synced: false,
        };
        self.open().insert(key.to_vec(), batch);
        if let Err(err) = self.tree.insert(key, value) {
            self.open().remove(key);
            return Err(err.into());
        }
        Ok(())
    }

    /// Batch `key` is synced: no longer [`Batches::is_unsynced`].
    pub fn synced(&self, key: &[u8]) {
        if let Some(batch) = self.open().get_mut(key) {
            batch.synced = true;
        }
    }

    /// One event of batch `key` has left the queue (dispatched, or taken back).
    pub fn leave(&self, key: &[u8]) -> Result<()> {
        let done = {
            let mut open = self.open();
            match open.get_mut(key) {
                Some(batch) if batch.left > 1 => {
                    batch.left -= 1;
                    false
                }
                Some(_) => {
                    open.remove(key);
                    true
                }
                None => false,
            }
        };
        if done {
            self.tree.remove(key)?;
        }
        Ok(())
    }

    /// Every entry: its key and the ids it lists.
    pub fn entries(&self) -> impl Iterator<Item = Result<(sled::IVec, Vec<String>)>> + '_ {
        self.tree.iter().map(|item| {
            let (key, value) = item?;
            let mut ids = Vec::new();
            let mut rest = &value[..];
            while let Some((&len, tail)) = rest.split_first() {
                let (id, tail) = tail.split_at((len as usize).min(tail.len()));
                ids.push(String::from_utf8_lossy(id).into_owned());
                rest = tail;
            }
            Ok((key, ids))
        })
    }

    /// On open: count each entry's events still waiting in it (`waiting` says whether an
    /// event does), and remove the entries none is left in.
    pub fn load(&self, mut waiting: impl FnMut(&[u8], &str) -> Result<bool>) -> Result<()> {
        let mut open = HashMap::new();
        let mut done = Vec::new();
        for entry in self.entries() {
            let (key, ids) = entry?;
            let mut left = 0;
            for id in &ids {
                if waiting(&key, id)? {
                    left += 1;
                }
            }
            if left == 0 {
                done.push(key);
            } else {
                open.insert(key.to_vec(), OpenBatch { left, synced: true });
            }
        }
        for key in done {
            self.tree.remove(key)?;
        }
        *self.open() = open;
        Ok(())
    }
}
