//! The inbox: append-only segment files holding each event's request (the large,
//! immutable part) and, since the inbox became the write-ahead log of ingress, its record
//! as accepted (see `ingest.rs` for the payload and why).
//!
//! Segments live in `{storage.path}/inbox/` as `{n:016x}.seg`. Each entry is a header —
//! payload length and CRC-32 of the payload, both little-endian `u32` — followed by the
//! payload. An event's record in sled holds the entry's [`Location`].
//!
//! **Durability.** A new event is acknowledged once [`Inbox::sync`] (an `fdatasync` of
//! the segment being written) has returned after its entry was written. sled is written
//! behind the inbox and may write a record before the inbox is synced; after a crash such a
//! record can point past the end of its segment or at a torn entry. The CRC check finds
//! those ([`Inbox::read`] returns `None`), and they can only be events that were never
//! acknowledged. The store removes them on open (see `SledStore::open`). A sync that fails
//! poisons its segment ([`Inbox::sync`]).
//!
//! A new process always starts a new segment, and a segment is synced before the next one
//! is started, so only the last segment holding data can have a torn tail, and a location
//! in a later segment (left empty, so removed) is lost by definition. Checking from the
//! last segment with data, not from the last segment, also covers a second crash during
//! the recovery of the first: that run's segment is empty.
//!
//! **Retention.** A segment is deleted once it is sealed (not the one being written) and
//! its last write is older than the retention cutoff: every entry in it belongs to an
//! event received before then, which retention has removed.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::store::{Result, StoreError};

/// A segment is sealed and a new one started past this size…
const SEGMENT_BYTES: u64 = 64 << 20;
/// …or this age, so that retention can delete old ones on a quiet instance too.
const SEGMENT_AGE: Duration = Duration::from_secs(3600);
const HEADER: usize = 8;
/// Segments kept open for reading at most.
const MAX_OPEN_READERS: usize = 32;

pub use switchyard_core::store::Location;

struct Writer {
    segment: u64,
    file: Arc<File>,
    offset: u64,
    started: Instant,
}

/// The segment files of one store.
pub struct Inbox {
    dir: PathBuf,
    writer: Mutex<Writer>,
    /// Open handles for reading, by segment number.
    readers: RwLock<HashMap<u64, Arc<File>>>,
    /// Segments whose entries a crash may have torn: from the last one holding data up
    /// to (not including) the one this process writes.
    suspect: std::ops::Range<u64>,
    /// Segments whose `fdatasync` failed (see [`Inbox::sync`]).
    poisoned: Mutex<Vec<u64>>,
    /// Whether segments written before this process hold anything.
    earlier_data: bool,
    /// Tests: this many next syncs fail as a dying disk's would.
    #[cfg(test)]
    pub(super) failing_syncs: std::sync::atomic::AtomicUsize,
}

impl Inbox {
    /// Open the inbox under `dir`, starting a new segment after the existing ones.
    pub fn open(dir: &Path) -> Result<Inbox> {
        super::layout::create_dir_durably(dir)?;
        let existing: Vec<(u64, PathBuf, u64)> = segments(dir)?
            .into_iter()
            .map(|(n, path)| {
                let len = fs::metadata(&path).map_or(0, |m| m.len());
                (n, path, len)
            })
            .collect();
        let last = existing.iter().map(|(n, ..)| *n).max();
        let last_with_data = existing
            .iter()
            .filter(|(.., len)| *len > 0)
            .map(|(n, ..)| *n)
            .max();
        // Each start begins a segment: those a start left empty (a crash loop leaves many)
        // hold nothing and go now.
        for (_, path, _) in existing.iter().filter(|(.., len)| *len == 0) {
            let _ = fs::remove_file(path);
        }
        let segment = last.map_or(0, |n| n + 1);
        let file = create_segment(dir, segment)?;
        Ok(Inbox {
            dir: dir.to_path_buf(),
            writer: Mutex::new(Writer {
                segment,
                file: Arc::new(file),
                offset: 0,
                started: Instant::now(),
            }),
            readers: RwLock::new(HashMap::new()),
            suspect: last_with_data.unwrap_or(0)..segment,
            poisoned: Mutex::new(Vec::new()),
            earlier_data: last_with_data.is_some(),
            #[cfg(test)]
            failing_syncs: Default::default(),
        })
    }

    // A panic while holding either lock leaves nothing half-done that matters here: the
    // writer's offset only moves after a complete write, and the readers are a cache.
    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn readers_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u64, Arc<File>>> {
        self.readers.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Append `payload`; not durable until the next [`Inbox::sync`].
    pub fn append(&self, payload: &[u8]) -> Result<Location> {
        let locations = self.append_batch(&[payload])?;
        Ok(locations[0])
    }

    /// Append `payloads` in one write, in order; not durable until the next
    /// [`Inbox::sync`]. All of them are written or, on an error, none is acknowledged: the
    /// next append starts a new segment.
    pub fn append_batch(&self, payloads: &[&[u8]]) -> Result<Vec<Location>> {
        let size: usize = payloads.iter().map(|p| HEADER + p.len()).sum();
        let mut entries = Vec::with_capacity(size);
        let mut lens = Vec::with_capacity(payloads.len());
        for payload in payloads {
            let len = u32::try_from(payload.len())
                .map_err(|_| StoreError::Invalid("request too large for the inbox".into()))?;
            entries.extend_from_slice(&len.to_le_bytes());
            entries.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            entries.extend_from_slice(payload);
            lens.push(len);
        }

        let mut writer = self.writer();
        // A poisoned segment takes no more entries (see `Inbox::sync`).
        if writer.offset >= SEGMENT_BYTES
            || (writer.offset > 0 && writer.started.elapsed() >= SEGMENT_AGE)
            || self.is_poisoned(writer.segment)
        {
            self.roll(&mut writer)?;
        }
        // A failed or short write leaves the offset where it was only if nothing was
        // written; to be safe, the next entry goes to a new segment.
        if let Err(err) = (&*writer.file).write_all(&entries) {
            writer.offset = SEGMENT_BYTES;
            return Err(StoreError::Unavailable(format!("writing the inbox: {err}")));
        }
        let mut offset = writer.offset;
        let locations = lens
            .into_iter()
            .map(|len| {
                let location = Location {
                    segment: writer.segment,
                    offset,
                    len,
                };
                offset += (HEADER + len as usize) as u64;
                location
            })
            .collect();
        writer.offset = offset;
        Ok(locations)
    }

    /// Where the next entry will be written (its length unknown: 0).
    pub fn head(&self) -> Location {
        let writer = self.writer();
        Location {
            segment: writer.segment,
            offset: writer.offset,
            len: 0,
        }
    }

    /// Seal the current segment (synced) and start the next.
    fn roll(&self, writer: &mut Writer) -> Result<()> {
        // A segment whose sync failed is not synced again: what it holds past its last
        // good sync was refused, and a second `fdatasync` would only report success.
        // When this sync fails, the segment is poisoned like any other failed sync's (the
        // kernel reports the error once: the syncer's next sync of the same file would
        // succeed and acknowledge what may be lost), and the next append starts a new one.
        if !self.is_poisoned(writer.segment) {
            self.sync_segment(writer.segment, writer.file.clone())?;
        }
        let segment = writer.segment + 1;
        let file = create_segment(&self.dir, segment)?;
        *writer = Writer {
            segment,
            file: Arc::new(file),
            offset: 0,
            started: Instant::now(),
        };
        Ok(())
    }

    /// Make every entry appended so far durable. Sealed segments were synced when sealed.
    ///
    /// When the `fdatasync` fails, the kernel may have dropped any write since the last
    /// good one, and a later sync would not say so: the segment is *poisoned* (see
    /// [`Inbox::is_poisoned`]; nothing in it past that point may be acknowledged) and the
    /// next append starts a new one.
    pub fn sync(&self) -> Result<()> {
        let (segment, file) = {
            let writer = self.writer();
            (writer.segment, writer.file.clone())
        };
        self.sync_segment(segment, file)
    }

    /// `fdatasync` one segment; a failure poisons it.
    fn sync_segment(&self, segment: u64, file: Arc<File>) -> Result<()> {
        #[cfg(test)]
        let file = {
            use std::sync::atomic::Ordering::SeqCst;
            let fail = self
                .failing_syncs
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok();
            SyncTarget { file, fail }
        };
        file.sync_data().map_err(|err| {
            self.poisoned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(segment);
            StoreError::Unavailable(format!("syncing the inbox: {err}"))
        })
    }

    /// Whether a sync of `segment` failed in this process: its entries written since its
    /// last good sync must not be acknowledged.
    pub fn is_poisoned(&self, segment: u64) -> bool {
        self.poisoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&segment)
    }

    /// Call `visit` with every intact entry from `from` on, in order, in the segments
    /// written before this process opened the inbox. A segment is read up to its first
    /// torn or short entry (a crash's cut), then the next one is read.
    pub fn scan_earlier(
        &self,
        from: Location,
        mut visit: impl FnMut(Location, &[u8]) -> Result<()>,
    ) -> Result<()> {
        use std::io::{BufReader, Read as _, Seek as _, SeekFrom};
        let current = self.writer().segment;
        for (segment, path) in segments(&self.dir)? {
            if segment < from.segment || segment >= current {
                continue;
            }
            let file = File::open(&path).map_err(|err| {
                StoreError::Unavailable(format!("opening {}: {err}", path.display()))
            })?;
            let size = file
                .metadata()
                .map_err(|err| {
                    StoreError::Unavailable(format!("reading {}: {err}", path.display()))
                })?
                .len();
            let mut reader = BufReader::with_capacity(1 << 20, file);
            let mut offset = if segment == from.segment {
                from.offset
            } else {
                0
            };
            reader.seek(SeekFrom::Start(offset)).map_err(|err| {
                StoreError::Unavailable(format!("reading {}: {err}", path.display()))
            })?;
            let mut header = [0u8; HEADER];
            loop {
                if reader.read_exact(&mut header).is_err() {
                    break;
                }
                let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
                let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
                // A torn header can claim any length: never read past the file. No entry is
                // empty, and zeros (a grown file whose pages a power cut lost) would
                // otherwise read as empty entries with a valid checksum.
                if len == 0 || offset + (HEADER as u64) + u64::from(len) > size {
                    break;
                }
                let mut payload = vec![0; len as usize];
                if reader.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
                    break;
                }
                visit(
                    Location {
                        segment,
                        offset,
                        len,
                    },
                    &payload,
                )?;
                offset += (HEADER + len as usize) as u64;
            }
        }
        Ok(())
    }

    /// The payload at `location`, or `None` when it is not there intact (a crash before it
    /// was synced, or its segment deleted by retention).
    pub fn read(&self, location: Location) -> Result<Option<Vec<u8>>> {
        let Some(file) = self.reader(location.segment)? else {
            return Ok(None);
        };
        let mut entry = vec![0; HEADER + location.len as usize];
        match file.read_exact_at(&mut entry, location.offset) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(err) => return Err(StoreError::Unavailable(format!("reading the inbox: {err}"))),
        }
        let len = u32::from_le_bytes(entry[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(entry[4..8].try_into().expect("4 bytes"));
        let payload = entry.split_off(HEADER);
        if len == 0 || len != location.len || crc != crc32fast::hash(&payload) {
            return Ok(None);
        }
        Ok(Some(payload))
    }

    fn reader(&self, segment: u64) -> Result<Option<Arc<File>>> {
        if let Some(file) = self
            .readers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&segment)
        {
            return Ok(Some(file.clone()));
        }
        let file = match File::open(segment_path(&self.dir, segment)) {
            Ok(file) => Arc::new(file),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => {
                return Err(StoreError::Unavailable(format!(
                    "opening an inbox segment: {err}"
                )));
            }
        };
        let mut readers = self.readers_mut();
        if readers.len() >= MAX_OPEN_READERS {
            // Keep the file descriptors bounded: reads cluster on recent segments, and a
            // segment dropped here is simply opened again.
            readers.retain(|&n, _| n + 2 >= segment);
            if readers.len() >= MAX_OPEN_READERS {
                readers.clear();
            }
        }
        readers.insert(segment, file.clone());
        Ok(Some(file))
    }

    /// Whether segments written before this process opened the inbox hold anything.
    pub fn has_earlier_data(&self) -> bool {
        self.earlier_data
    }

    /// Whether `location`, written before this process opened the inbox, may have been
    /// torn by a crash.
    pub fn may_be_torn(&self, location: Location) -> bool {
        self.suspect.contains(&location.segment)
    }

    /// Delete sealed segments last written before `cutoff`. Returns how many. `before`
    /// runs once first if any is to go (the store carries forward what must outlive them).
    pub fn delete_before(
        &self,
        cutoff: SystemTime,
        before: impl FnOnce() -> Result<()>,
    ) -> Result<usize> {
        let current = self.writer().segment;
        let mut expired = Vec::new();
        for (segment, path) in segments(&self.dir)? {
            if segment >= current {
                continue;
            }
            let modified = fs::metadata(&path)
                .and_then(|m| m.modified())
                .map_err(|err| {
                    StoreError::Unavailable(format!("reading {}: {err}", path.display()))
                })?;
            if modified < cutoff {
                expired.push((segment, path));
            }
        }
        if expired.is_empty() {
            return Ok(0);
        }
        before()?;
        let mut deleted = 0;
        for (segment, path) in expired {
            self.readers_mut().remove(&segment);
            match fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(StoreError::Unavailable(format!(
                        "deleting {}: {err}",
                        path.display()
                    )));
                }
            }
        }
        super::layout::sync_dir(&self.dir)?;
        Ok(deleted)
    }
}

/// Tests: a segment file whose sync may be made to fail.
#[cfg(test)]
struct SyncTarget {
    file: Arc<File>,
    fail: bool,
}

#[cfg(test)]
impl SyncTarget {
    fn sync_data(&self) -> std::io::Result<()> {
        if self.fail {
            return Err(std::io::Error::other("injected I/O error"));
        }
        self.file.sync_data()
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:016x}.seg"))
}

/// Create a segment file and make its directory entry durable.
fn create_segment(dir: &Path, segment: u64) -> Result<File> {
    let path = segment_path(dir, segment);
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|err| StoreError::Unavailable(format!("creating {}: {err}", path.display())))?;
    super::layout::sync_dir(dir)?;
    Ok(file)
}

/// The segment files under `dir`, by number.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = fs::read_dir(dir)
        .map_err(|err| StoreError::Unavailable(format!("reading {}: {err}", dir.display())))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry
            .map_err(|err| StoreError::Unavailable(format!("reading {}: {err}", dir.display())))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        if let Ok(n) = u64::from_str_radix(stem, 16) {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_across_reopen_and_a_new_segment_starts() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = {
            let inbox = Inbox::open(dir.path()).unwrap();
            let a = inbox.append(b"first").unwrap();
            let b = inbox.append(b"second").unwrap();
            inbox.sync().unwrap();
            assert_eq!(inbox.read(a).unwrap().as_deref(), Some(&b"first"[..]));
            (a, b)
        };
        let inbox = Inbox::open(dir.path()).unwrap();
        assert_eq!(inbox.read(b).unwrap().as_deref(), Some(&b"second"[..]));
        let c = inbox.append(b"third").unwrap();
        assert_eq!(
            c.segment,
            a.segment + 1,
            "a new process writes a new segment"
        );
        assert!(inbox.may_be_torn(a));
        assert!(!inbox.may_be_torn(c));
    }

    #[test]
    fn a_failed_sync_while_sealing_a_segment_poisons_it() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path()).unwrap();
        let written = inbox.append(b"written, not yet synced").unwrap();
        // The segment is full: the next append seals it, and that sync fails.
        inbox.writer().offset = SEGMENT_BYTES;
        inbox
            .failing_syncs
            .store(1, std::sync::atomic::Ordering::SeqCst);
        let refused = inbox.append(b"next").unwrap_err();
        assert!(
            refused.to_string().contains("injected I/O error"),
            "{refused}"
        );
        // The kernel reports a writeback error once: a later sync of the same file says Ok,
        // so the segment must remember the failure itself.
        inbox.sync().unwrap();
        assert!(
            inbox.is_poisoned(written.segment),
            "what was written before the failed sync is never acknowledged"
        );
        let next = inbox.append(b"retry").unwrap();
        assert_eq!(next.segment, written.segment + 1, "a new segment starts");
        assert!(!inbox.is_poisoned(next.segment));
    }

    #[test]
    fn a_torn_or_missing_entry_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path()).unwrap();
        let a = inbox.append(b"kept").unwrap();
        let b = inbox.append(b"torn by a crash").unwrap();
        inbox.sync().unwrap();
        // Cut the file inside the second entry, as a crash before its sync can.
        let path = segment_path(dir.path(), b.segment);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(b.offset + 10).unwrap();
        assert_eq!(inbox.read(a).unwrap().as_deref(), Some(&b"kept"[..]));
        assert_eq!(inbox.read(b).unwrap(), None);
        // Garbage where an entry should be fails its checksum.
        file.write_all_at(b"XXXX", a.offset + HEADER as u64)
            .unwrap();
        assert_eq!(inbox.read(a).unwrap(), None);
        // A location in a segment that does not exist.
        let gone = Location { segment: 99, ..a };
        assert_eq!(inbox.read(gone).unwrap(), None);
    }

    #[test]
    fn a_tail_of_zeros_ends_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let kept = {
            let inbox = Inbox::open(dir.path()).unwrap();
            let kept = inbox.append(b"kept").unwrap();
            inbox.sync().unwrap();
            kept
        };
        // A power cut kept the file's new size but not its last pages: zeros, which would
        // read as empty entries with a valid checksum (the CRC-32 of nothing is 0).
        let path = segment_path(dir.path(), kept.segment);
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        file.set_len(kept.offset + (HEADER + 4) as u64 + 4096)
            .unwrap();
        let inbox = Inbox::open(dir.path()).unwrap();
        let mut seen = Vec::new();
        inbox
            .scan_earlier(Location::START, |location, payload| {
                seen.push((location, payload.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, vec![(kept, b"kept".to_vec())]);
        let zeros = Location {
            segment: kept.segment,
            offset: kept.offset + (HEADER + 4) as u64,
            len: 0,
        };
        assert_eq!(inbox.read(zeros).unwrap(), None);
    }

    #[test]
    fn only_sealed_segments_older_than_the_cutoff_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let old = Inbox::open(dir.path()).unwrap().append(b"old").unwrap();
        let inbox = Inbox::open(dir.path()).unwrap();
        let current = inbox.append(b"new").unwrap();
        // Nothing is older than a cutoff in the past.
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        assert_eq!(inbox.delete_before(an_hour_ago, || Ok(())).unwrap(), 0);
        assert!(inbox.read(old).unwrap().is_some());
        // Everything is older than a cutoff in the future, but the current segment stays.
        let later = SystemTime::now() + Duration::from_secs(3600);
        assert_eq!(inbox.delete_before(later, || Ok(())).unwrap(), 1);
        assert_eq!(inbox.read(old).unwrap(), None);
        assert_eq!(inbox.read(current).unwrap().as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn a_crash_during_recovery_keeps_the_torn_segment_suspect() {
        let dir = tempfile::tempdir().unwrap();
        let (synced, older) = {
            let first = Inbox::open(dir.path()).unwrap();
            let older = first.append(b"old").unwrap();
            first.roll(&mut first.writer.lock().unwrap()).unwrap();
            let synced = first.append(b"torn later").unwrap();
            first.sync().unwrap();
            (synced, older)
        };
        // A second run starts and dies before it writes anything: its segment is empty.
        drop(Inbox::open(dir.path()).unwrap());
        let third = Inbox::open(dir.path()).unwrap();
        assert!(third.may_be_torn(synced), "the last segment with data");
        assert!(
            !third.may_be_torn(older),
            "sealed and synced before the next"
        );
        let lost_in_the_empty_one = Location {
            segment: synced.segment + 1,
            ..synced
        };
        assert!(third.may_be_torn(lost_in_the_empty_one));
        let own = third.append(b"new").unwrap();
        assert!(!third.may_be_torn(own));
    }

    #[test]
    fn empty_segments_of_earlier_starts_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            Inbox::open(dir.path()).unwrap();
        }
        let kept = Inbox::open(dir.path()).unwrap().append(b"x").unwrap();
        let inbox = Inbox::open(dir.path()).unwrap();
        let files: Vec<u64> = segments(dir.path())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(files, vec![kept.segment, kept.segment + 1]);
        assert_eq!(inbox.read(kept).unwrap().as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn reading_many_segments_keeps_few_open() {
        let dir = tempfile::tempdir().unwrap();
        let locations: Vec<Location> = (0..MAX_OPEN_READERS + 10)
            .map(|i| {
                let inbox = Inbox::open(dir.path()).unwrap();
                let location = inbox.append(format!("entry {i}").as_bytes()).unwrap();
                inbox.sync().unwrap();
                location
            })
            .collect();
        let inbox = Inbox::open(dir.path()).unwrap();
        for (i, location) in locations.iter().enumerate() {
            let read = inbox.read(*location).unwrap().unwrap();
            assert_eq!(read, format!("entry {i}").into_bytes());
            assert!(inbox.readers.read().unwrap().len() <= MAX_OPEN_READERS);
        }
    }

    #[test]
    fn locations_round_trip() {
        let loc = Location {
            segment: 7,
            offset: 1 << 40,
            len: 1500,
        };
        let mut bytes = Vec::new();
        loc.encode(&mut bytes);
        assert_eq!(bytes.len(), Location::ENCODED);
        assert_eq!(Location::decode(&bytes), Some(loc));
        assert_eq!(Location::decode(&bytes[..19]), None);
    }
}
