//! A disk in memory that loses power: a test [`Disk`] that knows which bytes and directory
//! entries are durable, and at a crash keeps only those (or, like a real disk whose cache
//! wrote some pages back on its own, a random subset of the rest, page by page).
//!
//! The model, as Linux file systems behave:
//! - a file's bytes are durable after its `sync_data`/`sync_all`; until then each 4 KiB page
//!   written since the last sync may or may not reach the disk at a crash, independently, and
//!   a file grown since then may keep its old size;
//! - directory operations (create, rename, remove) are durable once their directory is
//!   fsynced; of those that are not, a crash keeps a prefix (file systems journal them in
//!   order). Stricter than ext4, whose fsync of one directory commits every pending one: a
//!   missing fsync of a directory shows here even if another directory's fsync hides it there;
//! - [`PowerLossDisk::cut_power_after`] makes every operation after the n-th fail, as a
//!   machine that lost power mid-flight; [`PowerLossDisk::crash`] then throws away what was not
//!   durable, and the disk can be used again, as after a reboot;
//! - [`PowerLossDisk::skip_syncs`] turns the fsyncs of some files into no-ops: a storage layer
//!   with a missing fsync, which the power-loss tests must catch.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::Rng;
use rand::rngs::StdRng;

use super::{Disk, DiskFile, Open};

/// Bytes of a page: the unit in which unsynced writes survive or not.
pub const PAGE: usize = 4096;

/// What a crash keeps of what was not durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// Nothing.
    DropAll,
    /// Each unsynced page with probability 1/2, a random prefix of the unsynced directory
    /// operations, and the new or the old size of each file.
    RandomPages,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Pages written since the last sync.
    dirty: BTreeSet<usize>,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(PathBuf, u64),
    Unlink(PathBuf),
}

#[derive(Debug, Default)]
struct State {
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    journal: Vec<DirOp>,
    dirs: BTreeSet<PathBuf>,
    /// Operations left before the power goes (`None`: it stays on).
    ops_left: Option<u64>,
    /// Fsyncs of files whose path contains one of these are ignored.
    skip_syncs: Vec<String>,
    /// The first operation the power cut failed.
    cut: Option<String>,
    /// The power goes when an operation of this name begins.
    cut_on: Option<String>,
}

impl State {
    /// Count one operation (`what` on `path`) against the power budget.
    fn op(&mut self, what: &str, path: &Path) -> io::Result<()> {
        if self.cut_on.as_deref() == Some(what) {
            self.ops_left = Some(0);
        }
        match &mut self.ops_left {
            Some(0) => {
                if self.cut.is_none() {
                    self.cut = Some(format!("{what} {}", path.display()));
                }
                Err(io::Error::other("power lost"))
            }
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn link(&mut self, path: &Path, inode: u64) {
        self.names.insert(path.to_path_buf(), inode);
        self.journal.push(DirOp::Link(path.to_path_buf(), inode));
    }

    fn unlink(&mut self, path: &Path) {
        self.names.remove(path);
        self.journal.push(DirOp::Unlink(path.to_path_buf()));
    }

    /// Make the operations on entries of `dir` durable (in order); the others stay pending.
    fn commit_dir(&mut self, dir: &Path) {
        let (mine, others) = std::mem::take(&mut self.journal)
            .into_iter()
            .partition(|op| op.path().parent() == Some(dir));
        self.journal = others;
        for op in mine {
            apply(&mut self.durable_names, op);
        }
    }
}

impl DirOp {
    fn path(&self) -> &Path {
        match self {
            DirOp::Link(p, _) | DirOp::Unlink(p) => p,
        }
    }
}

fn apply(names: &mut BTreeMap<PathBuf, u64>, op: DirOp) {
    match op {
        DirOp::Link(p, i) => {
            names.insert(p, i);
        }
        DirOp::Unlink(p) => {
            names.remove(&p);
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

/// The disk. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct PowerLossDisk {
    state: Arc<Mutex<State>>,
}

impl PowerLossDisk {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Let `n` more operations succeed, then fail every one.
    pub fn cut_power_after(&self, n: u64) {
        self.state().ops_left = Some(n);
    }

    /// Cut the power when the next operation named `what` (`remove`, `rename`, `fsync`, …)
    /// begins: that operation fails, as every later one.
    pub fn cut_power_at(&self, what: &str) {
        self.state().cut_on = Some(what.into());
    }

    /// The first operation the last power cut failed, e.g. `rename /wal/spare.wal.tmp`.
    pub fn cut_at(&self) -> Option<String> {
        self.state().cut.clone()
    }

    /// Whether the power is off.
    pub fn power_lost(&self) -> bool {
        self.state().ops_left == Some(0)
    }

    /// Ignore the fsyncs of files whose path contains `pattern`.
    pub fn skip_syncs(&self, pattern: &str) {
        self.state().skip_syncs.push(pattern.into());
    }

    /// Lose what was not durable (as `how` says), and turn the power back on. Files opened
    /// before must not be used again.
    pub fn crash(&self, how: Crash, rng: &mut StdRng) {
        let mut s = self.state();
        let journal = std::mem::take(&mut s.journal);
        let keep = match how {
            Crash::DropAll => 0,
            Crash::RandomPages => rng.random_range(0..=journal.len()),
        };
        for op in journal.into_iter().take(keep) {
            apply(&mut s.durable_names, op);
        }
        s.names = s.durable_names.clone();
        for inode in s.inodes.values_mut() {
            let dirty = std::mem::take(&mut inode.dirty);
            if how == Crash::DropAll {
                inode.data = inode.durable.clone();
                continue;
            }
            let len = if rng.random_bool(0.5) {
                inode.data.len()
            } else {
                inode.durable.len()
            };
            let mut out = inode.durable.clone();
            out.resize(len, 0);
            for page in dirty {
                let (lo, hi) = (page * PAGE, ((page + 1) * PAGE).min(len));
                if lo < hi && rng.random_bool(0.5) {
                    let have = inode.data.len().min(hi);
                    if lo < have {
                        out[lo..have].copy_from_slice(&inode.data[lo..have]);
                    }
                }
            }
            inode.data = out.clone();
            inode.durable = out;
        }
        s.ops_left = None;
        s.cut = None;
        s.cut_on = None;
    }

    /// `path` (created if missing) as a redb file.
    pub fn redb_file(&self, path: &Path) -> io::Result<MemFile> {
        let known = self.state().names.get(path).copied();
        let inode = match known {
            Some(i) => i,
            None => {
                drop(self.open(path, Open::Create)?);
                self.state().names[path]
            }
        };
        Ok(self.file(inode, path))
    }

    fn file(&self, inode: u64, path: &Path) -> MemFile {
        MemFile {
            disk: self.clone(),
            inode,
            path: path.to_path_buf(),
        }
    }
}

impl Disk for PowerLossDisk {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn DiskFile>> {
        let mut s = self.state();
        s.op("open", path)?;
        let inode = match (s.names.get(path).copied(), how) {
            (Some(i), Open::Create) => {
                let node = s.inodes.get_mut(&i).expect("a named inode exists");
                node.data.clear();
                i
            }
            (Some(i), _) => i,
            (None, Open::Create) => {
                let parent = path.parent().unwrap_or(Path::new(""));
                if !s.dirs.contains(parent) {
                    return Err(not_found(parent));
                }
                s.next_inode += 1;
                let i = s.next_inode;
                s.inodes.insert(i, Inode::default());
                s.link(path, i);
                i
            }
            (None, _) => return Err(not_found(path)),
        };
        Ok(Box::new(self.file(inode, path)))
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.state();
        s.names.contains_key(path) || s.dirs.contains(path)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // Directories are made once, at the start of a test, and never lost.
        let mut s = self.state();
        s.op("mkdir", dir)?;
        for d in dir.ancestors() {
            s.dirs.insert(d.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut s = self.state();
        s.op("list", dir)?;
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(s.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.op("remove", path)?;
        if !s.names.contains_key(path) {
            return Err(not_found(path));
        }
        s.unlink(path);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.op("rename", from)?;
        let inode = *s.names.get(from).ok_or_else(|| not_found(from))?;
        s.unlink(from);
        s.link(to, inode);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.op("fsync dir", dir)?;
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let skip = s
            .skip_syncs
            .iter()
            .any(|p| dir.to_string_lossy().contains(p));
        if !skip {
            s.commit_dir(dir);
        }
        Ok(())
    }
}

/// A file of a [`PowerLossDisk`].
#[derive(Debug)]
pub struct MemFile {
    disk: PowerLossDisk,
    inode: u64,
    path: PathBuf,
}

impl MemFile {
    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Inode, bool) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut s = self.disk.state();
        s.op(what, &self.path)?;
        let skip = s
            .skip_syncs
            .iter()
            .any(|p| self.path.to_string_lossy().contains(p));
        let inode = s.inodes.get_mut(&self.inode).expect("an open file's inode");
        f(inode, skip)
    }

    fn sync(&self) -> io::Result<()> {
        self.with("fsync", |node, skip| {
            if !skip {
                node.durable = node.data.clone();
                node.dirty.clear();
            }
            Ok(())
        })
    }
}

impl DiskFile for MemFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with("read", |node, _| {
            let lo = usize::try_from(offset).map_err(io::Error::other)?;
            let hi = lo + buf.len();
            if hi > node.data.len() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the end of the file",
                ));
            }
            buf.copy_from_slice(&node.data[lo..hi]);
            Ok(())
        })
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with("write", |node, _| {
            let lo = usize::try_from(offset).map_err(io::Error::other)?;
            let hi = lo + buf.len();
            if node.data.len() < hi {
                node.data.resize(hi, 0);
            }
            node.data[lo..hi].copy_from_slice(buf);
            if hi > lo {
                node.dirty.extend(lo / PAGE..=(hi - 1) / PAGE);
            }
            Ok(())
        })
    }

    fn size(&self) -> io::Result<u64> {
        self.with("stat", |node, _| Ok(node.data.len() as u64))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }
}

impl redb::StorageBackend for MemFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.size()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.read_exact_at(out, offset)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.with("set_len", |node, _| {
            let len = usize::try_from(len).map_err(io::Error::other)?;
            let old = node.data.len();
            node.data.resize(len, 0);
            if len > old {
                node.dirty.extend(old / PAGE..=(len - 1) / PAGE);
            }
            Ok(())
        })
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.sync()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.write_all_at(data, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn write(disk: &PowerLossDisk, path: &str, bytes: &[u8], sync: bool) {
        let f = disk.open(Path::new(path), Open::Create).unwrap();
        f.write_all_at(bytes, 0).unwrap();
        if sync {
            f.sync_data().unwrap();
        }
    }

    #[test]
    fn a_crash_keeps_what_was_synced_and_only_that() {
        let mut rng = StdRng::seed_from_u64(1);
        let disk = PowerLossDisk::new();
        disk.create_dir_all(Path::new("/d")).unwrap();
        write(&disk, "/d/a", b"synced", true);
        write(&disk, "/d/b", b"not synced", false);
        disk.sync_dir(Path::new("/d")).unwrap();
        write(&disk, "/d/c", b"synced, entry not", true);
        disk.crash(Crash::DropAll, &mut rng);
        let read = |p: &str| {
            disk.open(Path::new(p), Open::Read)
                .map(|f| f.read_all().unwrap())
        };
        assert_eq!(read("/d/a").unwrap(), b"synced");
        assert_eq!(read("/d/b").unwrap(), b"");
        assert!(
            read("/d/c").is_err(),
            "a file whose entry was not synced is lost"
        );
    }

    #[test]
    fn power_cut_fails_every_later_operation_until_the_crash() {
        let mut rng = StdRng::seed_from_u64(2);
        let disk = PowerLossDisk::new();
        disk.create_dir_all(Path::new("/d")).unwrap();
        disk.cut_power_after(2);
        let f = disk.open(Path::new("/d/a"), Open::Create).unwrap();
        f.write_all_at(b"x", 0).unwrap();
        assert!(f.sync_data().is_err());
        assert!(disk.power_lost());
        disk.crash(Crash::DropAll, &mut rng);
        assert!(!disk.exists(Path::new("/d/a")));
    }

    #[test]
    fn random_pages_keep_some_unsynced_pages_and_all_synced_ones() {
        let disk = PowerLossDisk::new();
        disk.create_dir_all(Path::new("/d")).unwrap();
        write(&disk, "/d/a", &vec![1; 16 * PAGE], true);
        disk.sync_dir(Path::new("/d")).unwrap();
        let f = disk.open(Path::new("/d/a"), Open::ReadWrite).unwrap();
        f.write_all_at(&vec![2; 16 * PAGE], 0).unwrap();
        disk.crash(Crash::RandomPages, &mut StdRng::seed_from_u64(3));
        let data = disk
            .open(Path::new("/d/a"), Open::Read)
            .unwrap()
            .read_all()
            .unwrap();
        let new = data
            .chunks(PAGE)
            .filter(|p| p.iter().all(|b| *b == 2))
            .count();
        let old = data
            .chunks(PAGE)
            .filter(|p| p.iter().all(|b| *b == 1))
            .count();
        assert_eq!(new + old, 16, "every page is wholly old or wholly new");
        assert!(
            new > 0 && old > 0,
            "some pages survive and some do not: {new} new"
        );
    }
}
