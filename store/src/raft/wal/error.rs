//! The WAL's error type: I/O failures name the file, damage names the file and the offset, and
//! a data dir written in another format says what to do about it.

use std::io;
use std::path::{Path, PathBuf};

/// Result alias for the WAL.
pub type Result<T, E = WalError> = std::result::Result<T, E>;

/// Everything the WAL can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file system call failed.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// What was being done ("read", "append to", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Data that was written and made durable cannot be read back as written: replaying past
    /// it would silently lose or reorder records.
    #[error("damaged WAL data in {} at offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A segment written in a format version this build does not read.
    #[error(
        "{} is in WAL format version {found}, but this build reads only version {supported}: \
         start the kvstore release that wrote this data dir, or remove the member's data dir and \
         add the member again so that it catches up from the cluster",
        path.display()
    )]
    UnsupportedVersion {
        /// The segment file.
        path: PathBuf,
        /// The version byte found.
        found: u8,
        /// The version this build writes and reads.
        supported: u8,
    },
    /// A `*.wal` file that does not start with the WAL's magic bytes.
    #[error("{} is not a kvstore WAL segment (bad magic bytes)", path.display())]
    NotASegment {
        /// The file.
        path: PathBuf,
    },
    /// An entry whose index does not follow the last entry's.
    #[error("log entry {got} appended where entry {expected} was expected")]
    NotContiguous {
        /// The index the next entry must have.
        expected: u64,
        /// The index it had.
        got: u64,
    },
    /// A truncation into the purged part of the log.
    #[error("failed to truncate from entry {index}: entries up to {purged} are purged")]
    BelowPurged {
        /// The first entry the truncation would remove.
        index: u64,
        /// The purge point.
        purged: u64,
    },
    /// A payload too large for one record.
    #[error("a record payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier write or sync failed, so what is on disk is unknown until the WAL is replayed
    /// again (a failed `fdatasync` must not be retried and trusted).
    #[error("the WAL failed an earlier write and must be reopened")]
    Poisoned,
}

/// Wrap an I/O error with what was being done to which file.
pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WalError {
    let path = path.to_path_buf();
    move |source| WalError::Io {
        action,
        path,
        source,
    }
}

/// A damaged-data error.
pub(crate) fn corrupt(path: &Path, offset: usize, reason: impl Into<String>) -> WalError {
    WalError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.into(),
    }
}
