//! Where the store keeps what in `storage.path`, and how entries of its directories are
//! made durable (see `recovery.rs` for the layout and why).

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::store::{Result, StoreError};

const INDEX: &str = "index";
/// sled's own files in a store written before the index had its own directory.
const SLED_FILES: [&str; 3] = ["db", "conf", "blobs"];

pub(super) fn index_dir(root: &Path) -> PathBuf {
    root.join(INDEX)
}

/// fsync a directory, so the entries created or renamed in it are durable.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|err| {
        StoreError::Unavailable(format!("syncing the directory {}: {err}", dir.display()))
    })
}

/// Create `dir` and any missing parent, each made durable in its parent.
pub(super) fn create_dir_durably(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            return Err(StoreError::Unavailable(format!(
                "creating {}: {err}",
                dir.display()
            )));
        }
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

/// Hold the store's lock for as long as the returned file is open: two processes on one
/// store would each take the other's events for their own (and a rebuild by one would move
/// the other's index away).
pub(super) fn lock(root: &Path) -> Result<File> {
    let path = root.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| StoreError::Unavailable(format!("opening {}: {err}", path.display())))?;
    // A store of this process that was just closed may still be letting go of it (a
    // restart in the same process): wait a little before saying it is taken.
    let mut tries = 0;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Unavailable(format!(
                    "{} is in use by another process (another `switchyard serve` on the \
                     same storage.path?)",
                    root.display()
                )));
            }
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(StoreError::Unavailable(format!(
                    "locking {}: {err}",
                    path.display()
                )));
            }
        }
    }
}

/// Move sled's files of the earlier layout (directly in `storage.path`) into `index/`.
pub(super) fn migrate_layout(root: &Path) -> Result<()> {
    let index = index_dir(root);
    if index.exists() || !root.join("db").exists() {
        return Ok(());
    }
    fs::create_dir(&index)
        .map_err(|err| StoreError::Unavailable(format!("creating {}: {err}", index.display())))?;
    let snapshots = fs::read_dir(root)
        .map_err(|err| StoreError::Unavailable(format!("reading {}: {err}", root.display())))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name())
        .filter(|name| name.to_string_lossy().starts_with("snap."));
    let names: Vec<std::ffi::OsString> = SLED_FILES
        .iter()
        .map(std::ffi::OsString::from)
        .chain(snapshots)
        .collect();
    for name in names {
        let from = root.join(&name);
        if from.exists() {
            fs::rename(&from, index.join(&name)).map_err(|err| {
                StoreError::Unavailable(format!("moving {}: {err}", from.display()))
            })?;
        }
    }
    sync_dir(&index)?;
    sync_dir(root)?;
    tracing::info!(path = %index.display(), "moved the sled index into its own directory");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earlier_layout_moves_into_the_index_directory() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["db", "conf", "snap.0000000000A0"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        std::fs::create_dir(dir.path().join("inbox")).unwrap();
        migrate_layout(dir.path()).unwrap();
        let index = index_dir(dir.path());
        for name in ["db", "conf", "snap.0000000000A0", "blobs"] {
            assert!(index.join(name).exists(), "{name} moved");
            assert!(
                !dir.path().join(name).exists(),
                "{name} is no longer at the top"
            );
        }
        assert!(dir.path().join("inbox").exists(), "the inbox stays");
        // Once moved, nothing more happens.
        migrate_layout(dir.path()).unwrap();
    }

    #[test]
    fn a_second_process_on_the_same_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let err = lock(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another process"), "{err}");
        drop(held);
        lock(dir.path()).unwrap();
    }
}
