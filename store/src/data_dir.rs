//! A member's data directory on disk: its layout, the format version stamped into it, the
//! member's identity, and the migration of the previous format.
//!
//! `<data-dir>/member/` holds:
//! - `LOCK`: locked (flock) by the process that uses the directory, before anything else is
//!   read or written, so that a second kvstore on the same directory stops at once;
//! - `format`: the format version, as text (`3`); written before anything else of a new
//!   directory, and last by a migration;
//! - `identity`: who this directory belongs to ([`Identity`], bincode), written atomically
//!   (temporary file, fsync, rename, fsync of the directory);
//! - `wal/`: the Raft log, vote and committed index ([`crate::raft::log_store`]);
//! - `state.redb`: the state machine, which is also the Raft snapshot (`snap/` holds only the
//!   unnamed files a snapshot is written into while sent or received);
//! - `raft.redb`: not a database but a note saying the log moved, so that a kvstore from
//!   before format 2 refuses the directory instead of starting with an empty log (and voting a
//!   second time in a term it already voted in).
//!
//! Format 1 (kvstore before the WAL) kept the Raft log, the vote and the identity in
//! `raft.redb`. A format-1 directory is migrated at start: the log is copied into a new WAL
//! under a temporary name (byte for byte: the encodings did not change), which is synced and
//! renamed into place; then the identity and the format are written, and `raft.redb` is
//! replaced by the note last. A crash at any point leaves `raft.redb` intact until the format
//! says 2, so the next start migrates again from scratch.
//!
//! Format 2 kept a copy of every live value in the state machine's history table. A format-2
//! directory is migrated at start by dropping those copies from `state.redb` in one redb
//! transaction, then stamping format 3; the migration is idempotent, so a crash before the
//! stamp only repeats it. A directory of a newer format is refused.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::mvcc::tables::{decode, encode};
use crate::raft::PeerNode;
use crate::raft::log_store::WAL_DIR;
use crate::raft::typ::LogId;
use crate::raft::wal::{Record, Wal, WalOptions};

/// The format this kvstore writes.
pub const FORMAT: u32 = 3;

/// Format 2: the WAL, with a state machine that stored each live value twice.
const V2: u32 = 2;

/// The state machine's database in a member directory.
const STATE_DB: &str = "state.redb";

const FORMAT_FILE: &str = "format";
const IDENTITY_FILE: &str = "identity";
const LOCK_FILE: &str = "LOCK";

/// What `raft.redb` holds from format 2 on: not a redb file, so older releases refuse to start.
const V1_NOTE: &[u8] = b"kvstore data format 2: the Raft log moved to wal/. This file is not a \
database; it keeps kvstore releases from before format 2 off this directory.\n";

/// Format 1: the Raft database, its tables and keys.
const V1_RAFT_DB: &str = "raft.redb";
const V1_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const V1_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

/// Entries copied per WAL write during a migration.
const MIGRATE_BATCH: usize = 1024;

/// Who this data directory belongs to; written once, when the member first starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// The cluster id.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// Set when this member bootstrapped the cluster (`--initial-cluster-state new`, or a
    /// snapshot restore).
    pub bootstrapped: bool,
    /// The initial membership to initialize Raft with, while it is not initialized yet.
    pub bootstrap: Option<BTreeMap<u64, PeerNode>>,
}

/// The member directory inside a data directory.
pub fn member_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("member")
}

/// The lock on a member directory: held for as long as the process uses it.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

/// Create `member` if needed and lock it, or say that another process has it.
pub fn lock(member: &Path) -> Result<DirLock> {
    std::fs::create_dir_all(member)?;
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(member.join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::InUse(member.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Make the locked `member` a directory of the current format: stamp it when new, migrate it
/// when of format 1 or 2, refuse it when of a format this kvstore does not know.
pub fn prepare(member: &Path, _lock: &DirLock) -> Result<()> {
    match read_format(member)? {
        Some(format @ (V2 | FORMAT)) => {
            // A migration that stopped after stamping format 2 leaves the old database.
            if !is_note(&member.join(V1_RAFT_DB))? {
                write_atomic(member, V1_RAFT_DB, V1_NOTE)?;
            }
            if format == V2 {
                migrate_v2(member)?;
            }
            Ok(())
        }
        Some(other) => Err(Error::Config(format!(
            "data dir {} has format {other}, which this kvstore (format {FORMAT}) cannot read: \
             run a kvstore release that knows format {other}, or restore a snapshot into an \
             empty data dir",
            member.display()
        ))),
        None if member.join(V1_RAFT_DB).exists() && !is_note(&member.join(V1_RAFT_DB))? => {
            tracing::info!(dir = %member.display(), "migrating the data dir from format 1 (raft.redb) to 2 (WAL)");
            migrate_v1(member)?;
            migrate_v2(member)
        }
        None => {
            write_atomic(member, FORMAT_FILE, format!("{FORMAT}\n").as_bytes())?;
            write_atomic(member, V1_RAFT_DB, V1_NOTE)
        }
    }
}

/// Drop the history copies of live values from a format-2 directory's `state.redb` (one
/// durable redb transaction, so a crash leaves it as it was or done), then stamp format 3.
fn migrate_v2(member: &Path) -> Result<()> {
    let path = member.join(STATE_DB);
    if path.exists() {
        let db = open_db(member, &path)?;
        let txn = db.begin_write()?;
        let dropped = crate::mvcc::migrate::drop_live_copies(&txn)?;
        txn.commit()?;
        tracing::info!(dir = %member.display(), dropped, "data dir migrated to format 3: each value stored once");
    }
    write_atomic(member, FORMAT_FILE, format!("{FORMAT}\n").as_bytes())
}

/// The contents of `path`, or `None` when there is no such file.
fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether `path` holds the note that replaces `raft.redb`.
fn is_note(path: &Path) -> Result<bool> {
    Ok(read_if_exists(path)?.is_some_and(|bytes| bytes == V1_NOTE))
}

fn read_format(member: &Path) -> Result<Option<u32>> {
    let Some(bytes) = read_if_exists(&member.join(FORMAT_FILE))? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    text.trim().parse().map(Some).map_err(|_| {
        Error::Config(format!(
            "data dir {}: its format file holds {:?}, not a format version",
            member.display(),
            text.trim()
        ))
    })
}

/// The identity stamp of a member directory, if it has one.
pub fn read_identity(member: &Path) -> Result<Option<Identity>> {
    read_if_exists(&member.join(IDENTITY_FILE))?
        .map(|bytes| decode("identity", &bytes))
        .transpose()
}

/// Stamp a member directory with its identity.
pub fn write_identity(member: &Path, id: &Identity) -> Result<()> {
    write_atomic(member, IDENTITY_FILE, &encode(id))
}

/// Write `dir/name` so that a crash leaves the old file or the new one, never a mix.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    use crate::disk::Disk;
    crate::disk::Os.sync_dir(dir)?;
    Ok(())
}

/// Open the redb file at `path` in `member` for a migration; a database another process has
/// open means the directory is in use.
fn open_db(member: &Path, path: &Path) -> Result<redb::Database> {
    redb::Database::open(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::InUse(member.to_path_buf()),
        other => other.into(),
    })
}

/// Copy a format-1 directory's `raft.redb` into a WAL and the identity file, then stamp
/// format 2 and remove `raft.redb`.
fn migrate_v1(member: &Path) -> Result<()> {
    let wal_dir = member.join(WAL_DIR);
    let tmp = member.join(format!("{WAL_DIR}.migrating"));
    let db = open_db(member, &member.join(V1_RAFT_DB))?;
    for stale in [&tmp, &wal_dir] {
        // Left by a migration that crashed before stamping the format: start over.
        if stale.exists() {
            std::fs::remove_dir_all(stale)?;
        }
    }
    let txn = db.begin_read()?;
    let meta = |key: &str| -> Result<Option<Vec<u8>>> {
        let t = match txn.open_table(V1_META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    };
    let identity = meta("identity")?;
    {
        let mut wal = Wal::open(&tmp, WalOptions::default())?;
        if let Some(p) = meta("last_purged")? {
            // Format 1 stored the purged log id itself (not an Option).
            let purged: LogId = decode("purged log id", &p)?;
            wal.purge_upto_with(purged.index, &encode(&purged))?;
        }
        match txn.open_table(V1_LOG) {
            Ok(log) => {
                let mut batch: Vec<(u64, Vec<u8>)> = Vec::with_capacity(MIGRATE_BATCH);
                for item in log.iter()? {
                    let (k, v) = item?;
                    batch.push((k.value(), v.value().to_vec()));
                    if batch.len() == MIGRATE_BATCH {
                        append_entries(&mut wal, &batch)?;
                        batch.clear();
                    }
                }
                append_entries(&mut wal, &batch)?;
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let (vote, committed) = (meta("vote")?, meta("committed")?);
        let mut records = Vec::new();
        if let Some(v) = &vote {
            records.push(Record::Vote(v));
        }
        if let Some(c) = &committed {
            records.push(Record::Committed(c));
        }
        if !records.is_empty() {
            wal.append(&records)?;
        }
    }
    sync_dir(&tmp)?;
    std::fs::rename(&tmp, &wal_dir)?;
    sync_dir(member)?;
    if let Some(identity) = identity {
        write_atomic(member, IDENTITY_FILE, &identity)?;
    }
    write_atomic(member, FORMAT_FILE, format!("{V2}\n").as_bytes())?;
    drop(txn);
    drop(db);
    write_atomic(member, V1_RAFT_DB, V1_NOTE)
}

fn append_entries(wal: &mut Wal, batch: &[(u64, Vec<u8>)]) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let records: Vec<Record<'_>> = batch
        .iter()
        .map(|(index, payload)| Record::Entry {
            index: *index,
            payload,
        })
        .collect();
    Ok(wal.append(&records)?)
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, storage::RaftLogStorage};

    use super::*;
    use crate::raft::log_store::LogStore;
    use crate::raft::typ::{Entry, Vote};

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 7), index)
    }

    fn identity() -> Identity {
        Identity {
            cluster_id: 0xc1,
            member_id: 0x31,
            bootstrapped: true,
            bootstrap: None,
        }
    }

    /// A format-1 member directory as kvstore wrote it: entries 4..=9 (1..=3 purged), a vote,
    /// a committed log id and the identity in `raft.redb`.
    fn v1_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join(V1_RAFT_DB)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut log = txn.open_table(V1_LOG).unwrap();
            for i in 4..=9 {
                let e = Entry {
                    log_id: log_id(2, i),
                    payload: EntryPayload::Blank,
                };
                log.insert(i, encode(&e).as_slice()).unwrap();
            }
            let mut meta = txn.open_table(V1_META).unwrap();
            let vote = Vote::new_committed(2, 7);
            meta.insert("vote", encode(&vote).as_slice()).unwrap();
            meta.insert("committed", encode(&Some(log_id(2, 8))).as_slice())
                .unwrap();
            // As format 1 wrote it: the log id itself.
            meta.insert("last_purged", encode(&log_id(1, 3)).as_slice())
                .unwrap();
            meta.insert("identity", encode(&identity()).as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
        dir
    }

    async fn check_migrated(member: &Path) {
        assert_eq!(read_format(member).unwrap(), Some(FORMAT));
        assert!(
            is_note(&member.join(V1_RAFT_DB)).unwrap(),
            "raft.redb left behind"
        );
        assert!(
            redb::Database::open(member.join(V1_RAFT_DB)).is_err(),
            "a release of format 1 could open raft.redb"
        );
        assert_eq!(read_identity(member).unwrap(), Some(identity()));
        let mut log = LogStore::open(member, WalOptions::default()).unwrap();
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
        assert_eq!(state.last_log_id, Some(log_id(2, 9)));
        let ids: Vec<u64> = log
            .try_get_log_entries(0..)
            .await
            .unwrap()
            .iter()
            .map(|e| e.log_id.index)
            .collect();
        assert_eq!(ids, (4..=9).collect::<Vec<_>>());
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(Vote::new_committed(2, 7))
        );
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 8)));
    }

    #[tokio::test]
    async fn a_format_1_dir_is_migrated_at_start_and_only_once() {
        let dir = v1_dir();
        let lock = lock(dir.path()).unwrap();
        prepare(dir.path(), &lock).unwrap();
        check_migrated(dir.path()).await;
        // A second start finds the current format and changes nothing.
        prepare(dir.path(), &lock).unwrap();
        check_migrated(dir.path()).await;
    }

    #[tokio::test]
    async fn a_migration_cut_short_starts_over_from_raft_redb() {
        let dir = v1_dir();
        // As if a migration crashed after renaming its WAL, before stamping the format: a WAL
        // whose contents must not be trusted, and a half-written one beside it.
        let mut wal = Wal::open(dir.path().join(WAL_DIR), WalOptions::default()).unwrap();
        wal.append(&[Record::Entry {
            index: 1,
            payload: b"not an entry",
        }])
        .unwrap();
        drop(wal);
        std::fs::create_dir_all(dir.path().join("wal.migrating")).unwrap();
        prepare(dir.path(), &lock(dir.path()).unwrap()).unwrap();
        check_migrated(dir.path()).await;
        assert!(!dir.path().join("wal.migrating").exists());
    }

    #[test]
    fn a_new_dir_is_stamped_and_a_newer_or_unreadable_format_refused() {
        let dir = tempfile::tempdir().unwrap();
        let member = dir.path().join("member");
        let lock = lock(&member).unwrap();
        prepare(&member, &lock).unwrap();
        assert!(is_note(&member.join(V1_RAFT_DB)).unwrap());
        assert_eq!(
            std::fs::read_to_string(member.join(FORMAT_FILE)).unwrap(),
            "3\n"
        );
        std::fs::write(member.join(FORMAT_FILE), "4\n").unwrap();
        let e = prepare(&member, &lock).unwrap_err().to_string();
        assert!(
            e.contains("has format 4, which this kvstore (format 3) cannot read"),
            "{e}"
        );
        std::fs::write(member.join(FORMAT_FILE), "two").unwrap();
        let e = prepare(&member, &lock).unwrap_err().to_string();
        assert!(e.contains("not a format version"), "{e}");
    }

    #[test]
    fn a_format_2_dir_drops_its_copies_of_live_values_at_start() {
        use crate::mvcc::tables::KV_HISTORY;
        let dir = tempfile::tempdir().unwrap();
        let member = dir.path().join("member");
        let lock = lock(&member).unwrap();
        prepare(&member, &lock).unwrap();
        let db = redb::Database::create(member.join(STATE_DB)).unwrap();
        let txn = db.begin_write().unwrap();
        crate::mvcc::write::put_each(&txn, [("a", "1"), ("a", "2"), ("b", "1")]);
        // As format 2 kept them: a history row for each live version too.
        crate::mvcc::migrate::add_live_copies(&txn);
        txn.commit().unwrap();
        drop(db);
        let rows = || {
            let db = redb::Database::open(member.join(STATE_DB)).unwrap();
            let txn = db.begin_read().unwrap();
            let table = txn.open_table(KV_HISTORY).unwrap();
            table.iter().unwrap().count()
        };
        assert_eq!(rows(), 3);
        std::fs::write(member.join(FORMAT_FILE), "2\n").unwrap();
        prepare(&member, &lock).unwrap();
        assert_eq!(read_format(&member).unwrap(), Some(FORMAT));
        // Only the superseded a=1 is left in history.
        assert_eq!(rows(), 1);
        prepare(&member, &lock).unwrap();
        assert_eq!(rows(), 1);
    }

    #[test]
    fn a_second_process_on_the_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let member = dir.path().join("member");
        let _first = lock(&member).unwrap();
        let e = lock(&member).expect_err("a second lock").to_string();
        assert!(e.contains("is in use by another kvstore"), "{e}");
    }
}
