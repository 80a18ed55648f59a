//! A [`Storage`] in memory for tests, that can lose power and fail writes.
//!
//! It keeps two states. What the engine sees: files' bytes and the directory tree as written. What survives
//! a power loss: each file's bytes as of its last fsync, and each directory's entries (creates, renames,
//! removes) as of its last directory fsync. Every mutating call is one numbered operation; a crash plan
//! captures, just before operation `k`, the image a machine losing power there would boot with:
//! - [`CrashMode::Strict`]: nothing unsynced survives;
//! - [`CrashMode::Random`]: an in-order prefix of the unsynced directory operations survives (a journaled
//!   filesystem), and of each file's unsynced writes a random subset (reordered: a later write can land
//!   while an earlier one does not, leaving a hole of zeros) with the last one that lands possibly torn
//!   to a prefix of its bytes.
//!
//! A fault plan makes every write, fsync, create and rename from operation `k` on fail with an OS error
//! (an append first writes half its bytes, a short write) until [`MemFs::clear_fault`]; removing and
//! truncating never fail, as they free space.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::storage::{Mapped, Storage, StorageFile};

/// How much unsynced state survives a crash.
#[derive(Clone, Copy, Debug)]
pub enum CrashMode {
    /// Nothing that was not fsynced.
    Strict,
    /// A random part of it, drawn from this seed (see the module doc).
    Random(u64),
}

/// What one numbered operation was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// An append, or a truncation.
    Write,
    /// A file fsync.
    Sync,
    /// A directory fsync.
    SyncDir,
    /// A create, rename or remove.
    Namespace,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Node {
    Dir,
    File(u64),
}

#[derive(Clone, Debug)]
enum NsOp {
    Link(PathBuf, Node),
    Remove(PathBuf),
    Rename(PathBuf, PathBuf),
}

impl NsOp {
    fn in_dir(&self, dir: &Path) -> bool {
        let parent = |p: &PathBuf| p.parent() == Some(dir);
        match self {
            Self::Link(p, _) | Self::Remove(p) => parent(p),
            Self::Rename(a, b) => parent(a) || parent(b),
        }
    }

    fn apply(&self, ns: &mut BTreeMap<PathBuf, Node>) {
        match self {
            Self::Link(p, node) => {
                ns.insert(p.clone(), node.clone());
            }
            Self::Remove(p) => ns.retain(|k, _| !k.starts_with(p)),
            Self::Rename(a, b) => {
                let moved: Vec<(PathBuf, Node)> = ns
                    .iter()
                    .filter(|(k, _)| k.starts_with(a))
                    .map(|(k, n)| (k.clone(), n.clone()))
                    .collect();
                if moved.is_empty() {
                    return;
                }
                ns.retain(|k, _| !k.starts_with(a) && !k.starts_with(b));
                for (k, n) in moved {
                    let rest = k.strip_prefix(a).expect("filtered on the prefix");
                    ns.insert(if rest.as_os_str().is_empty() { b.clone() } else { b.join(rest) }, n);
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
pub(super) enum Write {
    At(u64, Vec<u8>),
    SetLen(u64),
}

impl Write {
    fn apply(&self, data: &mut Vec<u8>, torn: Option<usize>) {
        match self {
            Self::At(offset, bytes) => {
                let bytes = &bytes[..torn.unwrap_or(bytes.len()).min(bytes.len())];
                let end = *offset as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[*offset as usize..end].copy_from_slice(bytes);
            }
            Self::SetLen(len) => data.resize(*len as usize, 0),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub(super) struct Inode {
    pub(super) data: Vec<u8>,
    pub(super) durable: Vec<u8>,
    pub(super) pending: Vec<Write>,
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) ns: BTreeMap<PathBuf, Node>,
    durable_ns: BTreeMap<PathBuf, Node>,
    pending_ns: Vec<NsOp>,
    pub(super) inodes: HashMap<u64, Inode>,
    next_ino: u64,
    log: Vec<OpKind>,
    crash: Option<(usize, CrashMode)>,
    image: Option<Box<Inner>>,
    fault: Option<(usize, i32)>,
    injected: u64,
}

impl Inner {
    /// Counts operation `kind`; captures the crash image or fails it when a plan says so.
    fn op(&mut self, kind: OpKind, can_fail: bool) -> io::Result<()> {
        let n = self.log.len();
        if self.image.is_none()
            && let Some((at, mode)) = self.crash
            && at <= n
        {
            self.image = Some(Box::new(self.crash_image(mode)));
        }
        self.log.push(kind);
        match self.fault {
            Some((from, errno)) if can_fail && from <= n => {
                self.injected += 1;
                Err(io::Error::from_raw_os_error(errno))
            }
            _ => Ok(()),
        }
    }

    fn crash_image(&self, mode: CrashMode) -> Inner {
        let mut rng = match mode {
            CrashMode::Strict => None,
            CrashMode::Random(seed) => Some(fastrand::Rng::with_seed(seed)),
        };
        let mut ns = self.durable_ns.clone();
        let prefix = rng.as_mut().map_or(0, |r| r.usize(0..=self.pending_ns.len()));
        for op in &self.pending_ns[..prefix] {
            op.apply(&mut ns);
        }
        // An entry whose directory's own entry did not survive is gone with it.
        let mut reachable = BTreeMap::new();
        for (path, node) in ns {
            let parent = path.parent().filter(|p| p.parent().is_some());
            if parent.is_none_or(|p| reachable.get(p) == Some(&Node::Dir)) {
                reachable.insert(path, node);
            }
        }
        let ns = reachable;
        let mut inodes = HashMap::new();
        for node in ns.values() {
            let Node::File(ino) = node else { continue };
            let inode = &self.inodes[ino];
            let mut data = inode.durable.clone();
            if let Some(rng) = rng.as_mut() {
                let landed: Vec<&Write> = inode.pending.iter().filter(|_| rng.bool()).collect();
                for (i, w) in landed.iter().enumerate() {
                    let torn = (i + 1 == landed.len() && rng.bool()).then(|| rng.usize(0..=64));
                    w.apply(&mut data, torn);
                }
            }
            inodes.insert(*ino, Inode { durable: data.clone(), data, pending: Vec::new() });
        }
        Inner { durable_ns: ns.clone(), ns, inodes, next_ino: self.next_ino, ..Inner::default() }
    }

    fn parent_exists(&self, path: &Path) -> bool {
        path.parent().is_none_or(|p| p.parent().is_none() || self.ns.get(p) == Some(&Node::Dir))
    }

    fn ns_op(&mut self, op: NsOp) {
        op.apply(&mut self.ns);
        self.pending_ns.push(op);
    }

    fn file(&self, path: &Path) -> io::Result<u64> {
        match self.ns.get(path) {
            Some(Node::File(ino)) => Ok(*ino),
            Some(Node::Dir) => Err(io::Error::other(format!("{} is a directory", path.display()))),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn link_new(&mut self, path: &Path) -> io::Result<u64> {
        if !self.parent_exists(path) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, Inode::default());
        self.ns_op(NsOp::Link(path.to_path_buf(), Node::File(ino)));
        Ok(ino)
    }
}

/// The in-memory filesystem; clones share it.
#[derive(Clone, Debug, Default)]
pub struct MemFs(pub(super) Arc<Mutex<Inner>>);

impl MemFs {
    /// An empty filesystem with `root` (and its ancestors) existing durably.
    pub fn with_root(root: &Path) -> Self {
        let fs = Self::default();
        {
            let mut inner = fs.0.lock();
            for dir in root.ancestors().filter(|d| d.parent().is_some()) {
                inner.ns.insert(dir.to_path_buf(), Node::Dir);
            }
            inner.durable_ns = inner.ns.clone();
        }
        fs
    }

    /// Captures the crash image just before operation `at` (or at [`MemFs::crash_now`]).
    pub fn plan_crash(&self, at: usize, mode: CrashMode) {
        self.0.lock().crash = Some((at, mode));
    }

    /// The image the crash plan captured, or (when its operation never came) one captured now.
    pub fn crash_now(&self, mode: CrashMode) -> MemFs {
        let mut inner = self.0.lock();
        let image = inner.image.take().map_or_else(|| inner.crash_image(mode), |image| *image);
        MemFs(Arc::new(Mutex::new(image)))
    }

    /// Whether the crash plan's operation has come.
    pub fn crashed(&self) -> bool {
        self.0.lock().image.is_some()
    }

    /// Makes writes fail with `errno` from operation `from` on.
    pub fn plan_fault(&self, from: usize, errno: i32) {
        self.0.lock().fault = Some((from, errno));
    }

    /// Ends the fault: writes succeed again.
    pub fn clear_fault(&self) {
        self.0.lock().fault = None;
    }

    /// How many operations failed by the fault plan.
    pub fn injected(&self) -> u64 {
        self.0.lock().injected
    }

    /// Every operation so far, in order.
    pub fn log(&self) -> Vec<OpKind> {
        self.0.lock().log.clone()
    }

    fn handle(&self, ino: u64) -> Box<dyn StorageFile> {
        Box::new(MemFile { fs: self.clone(), ino })
    }
}

/// An open file of a [`MemFs`].
#[derive(Debug)]
struct MemFile {
    fs: MemFs,
    ino: u64,
}

impl StorageFile for MemFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut inner = self.fs.0.lock();
        let failed = inner.op(OpKind::Write, true);
        let inode = inner.inodes.get_mut(&self.ino).expect("open files keep their inode");
        let at = inode.data.len() as u64;
        // A failing append is a short write: half of it lands.
        let landed = if failed.is_err() { &bytes[..bytes.len() / 2] } else { bytes };
        let write = Write::At(at, landed.to_vec());
        write.apply(&mut inode.data, None);
        inode.pending.push(write);
        failed
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let inner = self.fs.0.lock();
        let data = &inner.inodes[&self.ino].data;
        let src =
            data.get(offset as usize..offset as usize + buf.len()).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut inner = self.fs.0.lock();
        inner.op(OpKind::Sync, true)?;
        let inode = inner.inodes.get_mut(&self.ino).expect("open files keep their inode");
        inode.durable = inode.data.clone();
        inode.pending.clear();
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut inner = self.fs.0.lock();
        inner.op(OpKind::Write, false)?;
        let inode = inner.inodes.get_mut(&self.ino).expect("open files keep their inode");
        let write = Write::SetLen(len);
        write.apply(&mut inode.data, None);
        inode.pending.push(write);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.fs.0.lock().inodes[&self.ino].data.len() as u64)
    }
}

impl Storage for MemFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut inner = self.0.lock();
        inner.op(OpKind::Namespace, true)?;
        if inner.ns.contains_key(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let ino = inner.link_new(path)?;
        Ok(self.handle(ino))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut inner = self.0.lock();
        inner.op(OpKind::Namespace, true)?;
        let ino = inner.link_new(path)?;
        Ok(self.handle(ino))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let ino = self.0.lock().file(path)?;
        Ok(self.handle(ino))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.open_append(path)
    }

    fn map(&self, path: &Path) -> io::Result<Mapped> {
        Ok(Box::new(self.read(path)?))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let inner = self.0.lock();
        let ino = inner.file(path)?;
        Ok(inner.inodes[&ino].data.clone())
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        let inner = self.0.lock();
        let ino = inner.file(path)?;
        Ok(inner.inodes[&ino].data.len() as u64)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let inner = self.0.lock();
        if inner.ns.get(dir) != Some(&Node::Dir) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let children = inner.ns.keys().filter(|k| k.parent() == Some(dir));
        Ok(children.filter_map(|k| k.file_name()).map(|n| n.to_string_lossy().into_owned()).collect())
    }

    fn exists(&self, path: &Path) -> bool {
        self.0.lock().ns.contains_key(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.0.lock().ns.get(path) == Some(&Node::Dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut inner = self.0.lock();
        inner.op(OpKind::Namespace, true)?;
        if !inner.ns.contains_key(from) || !inner.parent_exists(to) {
            return Err(io::ErrorKind::NotFound.into());
        }
        inner.ns_op(NsOp::Rename(from.to_path_buf(), to.to_path_buf()));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.0.lock();
        inner.op(OpKind::Namespace, false)?;
        inner.file(path)?;
        inner.ns_op(NsOp::Remove(path.to_path_buf()));
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.0.lock();
        inner.op(OpKind::Namespace, false)?;
        if inner.ns.get(path) != Some(&Node::Dir) {
            return Err(io::ErrorKind::NotFound.into());
        }
        inner.ns_op(NsOp::Remove(path.to_path_buf()));
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.0.lock();
        let missing: Vec<PathBuf> = path
            .ancestors()
            .filter(|d| d.parent().is_some() && !inner.ns.contains_key(*d))
            .map(Path::to_path_buf)
            .collect();
        for dir in missing.into_iter().rev() {
            inner.op(OpKind::Namespace, true)?;
            inner.ns_op(NsOp::Link(dir, Node::Dir));
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut inner = self.0.lock();
        inner.op(OpKind::SyncDir, true)?;
        if inner.ns.get(path) != Some(&Node::Dir) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let pending = std::mem::take(&mut inner.pending_ns);
        let (now, later): (Vec<NsOp>, Vec<NsOp>) = pending.into_iter().partition(|op| op.in_dir(path));
        for op in &now {
            op.apply(&mut inner.durable_ns);
        }
        inner.pending_ns = later;
        Ok(())
    }
}
