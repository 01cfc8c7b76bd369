//! A file system that models a power cut, for the tests of the store's durability.
//!
//! [`PowerCut::mount`] mounts an in-memory FUSE file system (pure Rust, no libfuse; needs
//! root and `/dev/fuse`). It serves every read from what was written, as any file system
//! does, and remembers separately what is *durable*:
//!
//! - a file's content is durable up to its last `fsync`/`fdatasync`; a write since then is
//!   held in memory only (`sync_file_range`, which sled uses between its own flushes, makes
//!   nothing durable: the file is opened with direct I/O, so there is no page cache for it
//!   to act on, which is what a drive cache makes of it);
//! - with [`Options::strict_dirs`], a directory entry (a file or directory created,
//!   renamed or removed in it) is durable only once the directory itself is fsynced, as
//!   POSIX promises and no more; without it, entries are durable at once (ext4 commits
//!   them in order with the data, in practice).
//!
//! [`PowerCut::cut`] is the power cut: it unmounts, turns what is durable into what is
//! there, with [`Cut`] deciding what the "drive" had written back of the rest, and mounts
//! again. Kill whatever used the mount first (`kill -9`), as a power cut would.
//!
//! This is the approach of LazyFS (Jepsen's tool for the same question), written here so
//! that the tests need nothing outside the repository.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, MountOption, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    consts::FOPEN_DIRECT_IO,
};
use libc::{EEXIST, EINVAL, EISDIR, ENOENT, ENOTDIR, ENOTEMPTY};
use rand::{Rng as _, SeedableRng as _};

/// The size of a page the "drive" writes back whole or not at all.
pub const PAGE: usize = 4096;

/// No caching in the kernel: after a cut, every name and size is asked again.
const TTL: Duration = Duration::ZERO;
const ROOT: u64 = fuser::FUSE_ROOT_ID;

/// How the file system treats directory entries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// A directory entry is durable only after an fsync of its directory.
    pub strict_dirs: bool,
}

/// What the "drive" had written back, of what was not fsynced, when the power went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Nothing: every write since a file's last fsync is lost.
    DropUnsynced,
    /// A random half of the pending pages of each file, in any order, and a file's new
    /// size or its old one (so a grown file can end in pages of zeros): a drive cache that
    /// reorders writes. The seed makes a run repeatable.
    RandomPages { seed: u64 },
    /// A random prefix of each file's pending writes, in the order they were made, as an
    /// ext4 `data=ordered` file system writes data back.
    OrderedPrefix { seed: u64 },
}

/// What a cut changed, for the tests' reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Files whose content differs from what was written.
    pub files_changed: usize,
    /// Bytes written but not kept (counted by page, or by write in ordered mode).
    pub bytes_lost: u64,
    /// Directory entries undone (strict mode).
    pub entries_undone: usize,
}

/// One write not yet fsynced, in the order made (for [`Cut::OrderedPrefix`]).
#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug)]
enum Content {
    File {
        /// What reads return.
        data: Vec<u8>,
        /// What survives a cut: the content at the last fsync.
        durable: Vec<u8>,
        pending: Vec<Pending>,
    },
    Dir {
        entries: BTreeMap<OsString, u64>,
        /// The entries a cut keeps (the same as `entries` unless `strict_dirs`).
        durable: BTreeMap<OsString, u64>,
    },
}

#[derive(Debug)]
struct Node {
    content: Content,
    perm: u16,
    mtime: SystemTime,
}

impl Node {
    fn file(perm: u16) -> Node {
        Node {
            content: Content::File {
                data: Vec::new(),
                durable: Vec::new(),
                pending: Vec::new(),
            },
            perm,
            mtime: SystemTime::now(),
        }
    }

    fn dir(perm: u16) -> Node {
        Node {
            content: Content::Dir {
                entries: BTreeMap::new(),
                durable: BTreeMap::new(),
            },
            perm,
            mtime: SystemTime::now(),
        }
    }
}

#[derive(Debug)]
struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    options: Options,
    /// fsync and fsyncdir calls, for the reports.
    syncs: u64,
}

impl State {
    fn new(options: Options) -> State {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, Node::dir(0o755));
        State {
            nodes,
            next_ino: ROOT + 1,
            options,
            syncs: 0,
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.nodes.get(&ino)?;
        let (kind, size, nlink) = match &node.content {
            Content::File { data, .. } => (FileType::RegularFile, data.len() as u64, 1),
            Content::Dir { .. } => (FileType::Directory, 0, 2),
        };
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind,
            perm: node.perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut Content, i32> {
        match self.nodes.get_mut(&ino) {
            Some(Node {
                content: content @ Content::Dir { .. },
                ..
            }) => Ok(content),
            Some(_) => Err(ENOTDIR),
            None => Err(ENOENT),
        }
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, i32> {
        match self.nodes.get(&parent).map(|n| &n.content) {
            Some(Content::Dir { entries, .. }) => entries.get(name).copied().ok_or(ENOENT),
            Some(_) => Err(ENOTDIR),
            None => Err(ENOENT),
        }
    }

    /// Set (or, with `None`, remove) an entry; durable at once unless `strict_dirs`.
    fn set_entry(&mut self, parent: u64, name: &OsStr, ino: Option<u64>) -> Result<(), i32> {
        let strict = self.options.strict_dirs;
        let Content::Dir { entries, durable } = self.dir_mut(parent)? else {
            unreachable!("dir_mut returns directories")
        };
        for map in [Some(entries), (!strict).then_some(durable)]
            .into_iter()
            .flatten()
        {
            match ino {
                Some(ino) => map.insert(name.to_os_string(), ino),
                None => map.remove(name),
            };
        }
        Ok(())
    }

    fn create(&mut self, parent: u64, name: &OsStr, node: Node) -> Result<u64, i32> {
        if self.lookup(parent, name).is_ok() {
            return Err(EEXIST);
        }
        self.dir_mut(parent)?;
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        self.set_entry(parent, name, Some(ino))?;
        Ok(ino)
    }

    fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Result<(), i32> {
        let node = self.nodes.get_mut(&ino).ok_or(ENOENT)?;
        let Content::File { data, pending, .. } = &mut node.content else {
            return Err(EISDIR);
        };
        let end = offset as usize + bytes.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(bytes);
        pending.push(Pending::Write {
            offset,
            bytes: bytes.to_vec(),
        });
        node.mtime = SystemTime::now();
        Ok(())
    }

    fn set_len(&mut self, ino: u64, len: u64) -> Result<(), i32> {
        let node = self.nodes.get_mut(&ino).ok_or(ENOENT)?;
        let Content::File { data, pending, .. } = &mut node.content else {
            return Err(EISDIR);
        };
        data.resize(len as usize, 0);
        pending.push(Pending::SetLen(len));
        node.mtime = SystemTime::now();
        Ok(())
    }

    fn fsync(&mut self, ino: u64) -> Result<(), i32> {
        self.syncs += 1;
        match &mut self.nodes.get_mut(&ino).ok_or(ENOENT)?.content {
            Content::File {
                data,
                durable,
                pending,
            } => {
                // What was written since the last fsync, not the whole file again: the
                // inbox is fsynced for every group of requests.
                for op in pending.drain(..) {
                    apply(durable, &op);
                }
                debug_assert_eq!(durable.len(), data.len());
            }
            Content::Dir { entries, durable } => durable.clone_from(entries),
        }
        Ok(())
    }

    /// The power cut: what is durable (with what `cut` wrote back of the rest) is what
    /// there is from now on.
    fn cut(&mut self, cut: Cut) -> CutReport {
        let mut report = CutReport::default();
        let seed = match cut {
            Cut::DropUnsynced => 0,
            Cut::RandomPages { seed } | Cut::OrderedPrefix { seed } => seed,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // In inode order, so that a seed always picks the same pages.
        let mut inos: Vec<u64> = self.nodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let node = self.nodes.get_mut(&ino).expect("listed");
            match &mut node.content {
                Content::File {
                    data,
                    durable,
                    pending,
                } => {
                    if pending.is_empty() {
                        continue;
                    }
                    let kept = written_back(cut, &mut rng, data, durable, pending);
                    report.bytes_lost += kept.1;
                    if kept.0 != *data {
                        report.files_changed += 1;
                    }
                    *data = kept.0;
                    durable.clone_from(data);
                    pending.clear();
                }
                Content::Dir { entries, durable } => {
                    let undone = entries
                        .iter()
                        .filter(|(name, ino)| durable.get(*name) != Some(ino))
                        .count()
                        + durable.keys().filter(|n| !entries.contains_key(*n)).count();
                    report.entries_undone += undone;
                    entries.clone_from(durable);
                }
            }
        }
        // Whatever no durable entry reaches is gone.
        let mut reachable = HashSet::from([ROOT]);
        let mut walk = vec![ROOT];
        while let Some(ino) = walk.pop() {
            if let Some(Content::Dir { entries, .. }) = self.nodes.get(&ino).map(|n| &n.content) {
                for child in entries.values() {
                    if reachable.insert(*child) {
                        walk.push(*child);
                    }
                }
            }
        }
        self.nodes.retain(|ino, _| reachable.contains(ino));
        report
    }
}

/// What a file holds after a cut, and how many written bytes it did not keep.
fn written_back(
    cut: Cut,
    rng: &mut rand::rngs::StdRng,
    data: &[u8],
    durable: &[u8],
    pending: &[Pending],
) -> (Vec<u8>, u64) {
    match cut {
        Cut::DropUnsynced => (durable.to_vec(), written_bytes(pending)),
        Cut::OrderedPrefix { .. } => {
            let keep = rng.random_range(0..=pending.len());
            let mut image = durable.to_vec();
            for op in &pending[..keep] {
                apply(&mut image, op);
            }
            (image, written_bytes(&pending[keep..]))
        }
        Cut::RandomPages { .. } => {
            let mut dirty: Vec<usize> = pending
                .iter()
                .flat_map(|op| match op {
                    Pending::Write { offset, bytes } if !bytes.is_empty() => {
                        let first = *offset as usize / PAGE;
                        let last = (*offset as usize + bytes.len() - 1) / PAGE;
                        first..last + 1
                    }
                    _ => 0..0,
                })
                .collect();
            dirty.sort_unstable();
            dirty.dedup();
            let mut image = durable.to_vec();
            let mut lost = 0;
            for page in dirty {
                let start = page * PAGE;
                let end = (start + PAGE).min(data.len());
                if start >= end {
                    continue;
                }
                if rng.random_bool(0.5) {
                    if image.len() < end {
                        image.resize(end, 0);
                    }
                    image[start..end].copy_from_slice(&data[start..end]);
                } else {
                    lost += (end - start) as u64;
                }
            }
            // The size is metadata: written back or not, apart from the pages.
            let len = if rng.random_bool(0.5) {
                data.len()
            } else {
                durable.len()
            };
            image.resize(len, 0);
            (image, lost)
        }
    }
}

fn apply(image: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write { offset, bytes } => {
            let end = *offset as usize + bytes.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[*offset as usize..end].copy_from_slice(bytes);
        }
        Pending::SetLen(len) => image.resize(*len as usize, 0),
    }
}

fn written_bytes(pending: &[Pending]) -> u64 {
    pending
        .iter()
        .map(|op| match op {
            Pending::Write { bytes, .. } => bytes.len() as u64,
            Pending::SetLen(_) => 0,
        })
        .sum()
}

/// The FUSE side: every operation on the shared [`State`].
struct Fs {
    state: Arc<Mutex<State>>,
}

impl Fs {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reply_entry(&self, result: Result<u64, i32>, reply: ReplyEntry) {
        let state = self.state();
        match result.and_then(|ino| state.attr(ino).ok_or(ENOENT)) {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(errno) => reply.error(errno),
        }
    }
}

impl Filesystem for Fs {
    fn init(&mut self, _req: &Request<'_>, _config: &mut KernelConfig) -> Result<(), i32> {
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let found = self.state().lookup(parent, name);
        self.reply_entry(found, reply);
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.state().attr(ino) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(ENOENT),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let mut state = self.state();
        if let Some(size) = size
            && let Err(errno) = state.set_len(ino, size)
        {
            return reply.error(errno);
        }
        if let Some(node) = state.nodes.get_mut(&ino) {
            if let Some(mode) = mode {
                node.perm = (mode & 0o7777) as u16;
            }
            match mtime {
                Some(TimeOrNow::SpecificTime(at)) => node.mtime = at,
                Some(TimeOrNow::Now) => node.mtime = SystemTime::now(),
                None => {}
            }
        }
        match state.attr(ino) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(ENOENT),
        }
    }

    fn mknod(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(EINVAL);
        }
        let created =
            self.state()
                .create(parent, name, Node::file((mode & !umask & 0o7777) as u16));
        self.reply_entry(created, reply);
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let created = self
            .state()
            .create(parent, name, Node::dir((mode & !umask & 0o7777) as u16));
        self.reply_entry(created, reply);
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.state();
        match state.lookup(parent, name) {
            Ok(ino) if matches!(state.nodes[&ino].content, Content::Dir { .. }) => {
                reply.error(EISDIR)
            }
            Ok(_) => match state.set_entry(parent, name, None) {
                Ok(()) => reply.ok(),
                Err(errno) => reply.error(errno),
            },
            Err(errno) => reply.error(errno),
        }
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.state();
        let ino = match state.lookup(parent, name) {
            Ok(ino) => ino,
            Err(errno) => return reply.error(errno),
        };
        match &state.nodes[&ino].content {
            Content::Dir { entries, .. } if !entries.is_empty() => return reply.error(ENOTEMPTY),
            Content::Dir { .. } => {}
            Content::File { .. } => return reply.error(ENOTDIR),
        }
        match state.set_entry(parent, name, None) {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state();
        let ino = match state.lookup(parent, name) {
            Ok(ino) => ino,
            Err(errno) => return reply.error(errno),
        };
        let replaced = state.lookup(newparent, newname).ok();
        if flags & libc::RENAME_NOREPLACE != 0 && replaced.is_some() {
            return reply.error(EEXIST);
        }
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return reply.error(EINVAL);
        }
        if let Some(old) = replaced
            && let Content::Dir { entries, .. } = &state.nodes[&old].content
            && !entries.is_empty()
        {
            return reply.error(ENOTEMPTY);
        }
        let result = state
            .set_entry(parent, name, None)
            .and_then(|()| state.set_entry(newparent, newname, Some(ino)));
        match result {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.state().nodes.get(&ino).map(|n| &n.content) {
            // Direct I/O: no page cache, so only an fsync reaches this file system, and a
            // cut is never hidden by pages the kernel kept.
            Some(Content::File { .. }) => reply.opened(0, FOPEN_DIRECT_IO),
            Some(Content::Dir { .. }) => reply.error(EISDIR),
            None => reply.error(ENOENT),
        }
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.state();
        let created = state.create(parent, name, Node::file((mode & !umask & 0o7777) as u16));
        match created.and_then(|ino| state.attr(ino).ok_or(ENOENT)) {
            Ok(attr) => reply.created(&TTL, &attr, 0, 0, FOPEN_DIRECT_IO),
            Err(errno) => reply.error(errno),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let state = self.state();
        match state.nodes.get(&ino).map(|n| &n.content) {
            Some(Content::File { data, .. }) => {
                let start = (offset.max(0) as usize).min(data.len());
                let end = (start + size as usize).min(data.len());
                reply.data(&data[start..end]);
            }
            Some(Content::Dir { .. }) => reply.error(EISDIR),
            None => reply.error(ENOENT),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        match self.state().write(ino, offset.max(0) as u64, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(errno) => reply.error(errno),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock: u64, reply: ReplyEmpty) {
        // A close makes nothing durable.
        reply.ok();
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _data: bool, reply: ReplyEmpty) {
        match self.state().fsync(ino) {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _data: bool, reply: ReplyEmpty) {
        match self.state().fsync(ino) {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let state = self.state();
        let Some(Content::Dir { entries, .. }) = state.nodes.get(&ino).map(|n| &n.content) else {
            return reply.error(ENOTDIR);
        };
        let listed = [(ino, OsString::from(".")), (ROOT, OsString::from(".."))]
            .into_iter()
            .chain(entries.iter().map(|(name, ino)| (*ino, name.clone())));
        for (i, (child, name)) in listed.enumerate().skip(offset.max(0) as usize) {
            let kind = match state.nodes.get(&child).map(|n| &n.content) {
                Some(Content::File { .. }) => FileType::RegularFile,
                _ => FileType::Directory,
            };
            if reply.add(child, (i + 1) as i64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        // Plenty of room: a full disk is another test's subject.
        reply.statfs(
            1 << 30,
            1 << 30,
            1 << 30,
            1 << 20,
            1 << 20,
            PAGE as u32,
            255,
            PAGE as u32,
        );
    }

    fn access(&mut self, _req: &Request<'_>, _ino: u64, _mask: i32, reply: ReplyEmpty) {
        reply.ok();
    }
}

/// A mounted power-cut file system.
pub struct PowerCut {
    mountpoint: PathBuf,
    state: Arc<Mutex<State>>,
    session: Option<fuser::BackgroundSession>,
}

impl std::fmt::Debug for PowerCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerCut")
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

impl PowerCut {
    /// Mount an empty file system at `mountpoint` (an existing, empty directory).
    pub fn mount(mountpoint: &Path, options: Options) -> io::Result<PowerCut> {
        let mut fs = PowerCut {
            mountpoint: mountpoint.to_path_buf(),
            state: Arc::new(Mutex::new(State::new(options))),
            session: None,
        };
        fs.session = Some(fs.spawn()?);
        Ok(fs)
    }

    fn spawn(&self) -> io::Result<fuser::BackgroundSession> {
        let options = [
            MountOption::FSName("switchyard-powercut".into()),
            MountOption::RW,
            MountOption::NoAtime,
        ];
        fuser::spawn_mount2(
            Fs {
                state: self.state.clone(),
            },
            &self.mountpoint,
            &options,
        )
        .map_err(|err| {
            io::Error::new(
                err.kind(),
                format!(
                    "mounting the power-cut file system at {} (needs root and /dev/fuse): {err}",
                    self.mountpoint.display()
                ),
            )
        })
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// How many fsyncs (of files and directories) were made so far.
    pub fn syncs(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).syncs
    }

    /// Cut the power: unmount, keep what was durable (and what `cut` wrote back of the
    /// rest), and mount again. Whatever used the mount must be dead by now.
    pub fn cut(&mut self, cut: Cut) -> io::Result<CutReport> {
        // Dropping the session unmounts (its thread ends on its own: `join` would panic
        // when the kernel reports the unmount as an aborted connection, which it may).
        // A request it is still answering holds the state's lock, so the cut waits for it.
        drop(self.session.take());
        let report = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cut(cut);
        self.session = Some(self.spawn()?);
        Ok(report)
    }
}

impl Drop for PowerCut {
    fn drop(&mut self) {
        drop(self.session.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(state: &mut State, name: &str) -> u64 {
        state
            .create(ROOT, OsStr::new(name), Node::file(0o644))
            .unwrap()
    }

    fn data(state: &State, ino: u64) -> Vec<u8> {
        match &state.nodes[&ino].content {
            Content::File { data, .. } => data.clone(),
            Content::Dir { .. } => panic!("a directory"),
        }
    }

    #[test]
    fn a_cut_keeps_what_was_fsynced_and_drops_the_rest() {
        let mut state = State::new(Options::default());
        let ino = file(&mut state, "log");
        state.write(ino, 0, b"synced").unwrap();
        state.fsync(ino).unwrap();
        state.write(ino, 6, b" and not").unwrap();
        let report = state.cut(Cut::DropUnsynced);
        assert_eq!(data(&state, ino), b"synced");
        assert_eq!(report.bytes_lost, 8);
        assert_eq!(report.files_changed, 1);
    }

    #[test]
    fn strict_dirs_undo_entries_their_directory_did_not_sync() {
        let mut state = State::new(Options { strict_dirs: true });
        let kept = file(&mut state, "kept");
        state.fsync(ROOT).unwrap();
        let lost = file(&mut state, "lost");
        state.write(lost, 0, b"data").unwrap();
        // The file's own fsync does not make its name durable.
        state.fsync(lost).unwrap();
        let report = state.cut(Cut::DropUnsynced);
        assert_eq!(state.lookup(ROOT, OsStr::new("kept")), Ok(kept));
        assert_eq!(state.lookup(ROOT, OsStr::new("lost")), Err(ENOENT));
        assert!(!state.nodes.contains_key(&lost));
        assert_eq!(report.entries_undone, 1);
        // A rename not synced is undone as well.
        state
            .set_entry(ROOT, OsStr::new("renamed"), Some(kept))
            .unwrap();
        state.set_entry(ROOT, OsStr::new("kept"), None).unwrap();
        state.cut(Cut::DropUnsynced);
        assert_eq!(state.lookup(ROOT, OsStr::new("kept")), Ok(kept));
        assert_eq!(state.lookup(ROOT, OsStr::new("renamed")), Err(ENOENT));
    }

    #[test]
    fn without_strict_dirs_entries_are_durable_at_once() {
        let mut state = State::new(Options::default());
        let ino = file(&mut state, "new");
        state.cut(Cut::DropUnsynced);
        assert_eq!(state.lookup(ROOT, OsStr::new("new")), Ok(ino));
        assert_eq!(data(&state, ino), b"", "its unsynced content is not");
    }

    #[test]
    fn random_pages_keep_some_pages_and_a_seed_repeats_the_choice() {
        let run = |seed| {
            let mut state = State::new(Options::default());
            let ino = file(&mut state, "db");
            state.write(ino, 0, &vec![1; PAGE * 16]).unwrap();
            state.fsync(ino).unwrap();
            // Rewrite every page in place (as sled does), not synced.
            state.write(ino, 0, &vec![2; PAGE * 16]).unwrap();
            state.cut(Cut::RandomPages { seed });
            data(&state, ino)
        };
        let image = run(7);
        assert_eq!(image, run(7), "the same seed, the same pages");
        let pages: Vec<u8> = image.chunks(PAGE).map(|page| page[0]).collect();
        assert!(pages.contains(&1) && pages.contains(&2), "{pages:?}");
        assert!(
            (0..32).any(|seed| run(seed) != image),
            "another seed, other pages"
        );
    }

    #[test]
    fn an_ordered_prefix_keeps_writes_in_the_order_made() {
        for seed in 0..20 {
            let mut state = State::new(Options::default());
            let ino = file(&mut state, "log");
            for chunk in [b"aaaa", b"bbbb", b"cccc", b"dddd"] {
                let at = data(&state, ino).len() as u64;
                state.write(ino, at, chunk).unwrap();
            }
            state.cut(Cut::OrderedPrefix { seed });
            let kept = data(&state, ino);
            assert!(
                b"aaaabbbbccccdddd".starts_with(&kept) && kept.len().is_multiple_of(4),
                "seed {seed}: {kept:?}"
            );
        }
    }
}
