//! The file operations the storage layers make, behind a trait, so that tests can run them over
//! a disk that loses power ([`power_loss`]) and production over the operating system's files
//! ([`Os`]).
//!
//! The set is what a crash-safe log needs and no more: positioned reads and writes, the two
//! fsyncs (`sync_data` for a file's bytes, `sync_all` for its bytes and size), directory
//! listing, rename, remove, and an fsync of a directory that makes its entries durable. There
//! is no seek and no buffering: every write reaches the "disk" model as it is issued, which is
//! what a power-loss model needs to decide what survives.
//!
//! redb (the state machine's file) has this abstraction of its own, `redb::StorageBackend`:
//! production lets redb open its file itself, and the power-loss disk hands redb a file of its
//! own ([`power_loss::PowerLossDisk::redb_file`]).

#[cfg(test)]
pub mod power_loss;

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Read only; it must exist.
    Read,
    /// Read and write; it must exist.
    ReadWrite,
    /// Read and write; created if missing, emptied if present.
    Create,
}

/// A file system.
pub trait Disk: Debug + Send + Sync + 'static {
    /// Open `path`.
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn DiskFile>>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Create `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The paths of the files in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Remove the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Rename `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Make `dir`'s entries (files created, renamed or removed in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file.
pub trait DiskFile: Debug + Send + Sync {
    /// Fill `buf` from `offset`; an error if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Write all of `buf` at `offset`, growing the file if needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// The file's size.
    fn size(&self) -> io::Result<u64>;
    /// Make the bytes written durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Make the bytes and the size durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;

    /// The whole file.
    fn read_all(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.size()?).map_err(io::Error::other)?;
        let mut buf = vec![0; len];
        self.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }
}

/// The operating system's files.
#[derive(Debug, Clone, Copy, Default)]
pub struct Os;

impl Os {
    /// The operating system's files, as a shared [`Disk`].
    pub fn shared() -> Arc<dyn Disk> {
        Arc::new(Os)
    }
}

impl Disk for Os {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn DiskFile>> {
        let mut o = OpenOptions::new();
        o.read(true);
        match how {
            Open::Read => {}
            Open::ReadWrite => {
                o.write(true);
            }
            Open::Create => {
                o.write(true).create(true).truncate(true);
            }
        }
        Ok(Box::new(OsFile(o.open(path)?)))
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// A file of the operating system.
#[derive(Debug)]
struct OsFile(File);

impl DiskFile for OsFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}
