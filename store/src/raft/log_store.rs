//! The Raft log and vote in their own redb database (`raft.redb`), so appends never wait for
//! the state machine's write lock.
//!
//! An append is written at once (readable as soon as `append` returns, as openraft requires) in a
//! non-durable redb commit; a flusher thread then makes everything written so far durable with
//! one fsync and reports each append flushed. So the leader replicates while its own fsync runs,
//! and one fsync covers every append that arrived meanwhile (group commit).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::typ::{Entry, LogId, StorageError, Vote};
use super::{TypeConfig, sto_err};
use crate::error::{Error, Result};
use crate::mvcc::tables::{decode, encode};

/// Raft log entries: index → bincode `Entry`.
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Raft scalars and the member's identity.
pub const RAFT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";

/// redb page cache of `raft.redb`: replication reads recent entries only.
pub const LOG_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Open (or create) a member's `raft.redb`.
pub fn open_log_db(path: &std::path::Path) -> Result<Database, redb::DatabaseError> {
    Database::builder()
        .set_cache_size(LOG_CACHE_BYTES)
        .create(path)
}

/// The log store; clones share the database and serve as log readers.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    flusher: std::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
}

/// Make appends durable in batches, then tell openraft, in order.
fn flusher(db: Arc<Database>, rx: std::sync::mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let start = std::time::Instant::now();
        let res = (|| -> Result<()> {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            txn.commit()?;
            Ok(())
        })();
        crate::metrics::observe_since(&crate::metrics::METRICS.wal_fsync, start);
        for cb in batch {
            match &res {
                Ok(()) => cb.log_io_completed(Ok(())),
                Err(e) => cb.log_io_completed(Err(std::io::Error::other(e.to_string()))),
            }
        }
    }
}

impl LogStore {
    /// Wrap an open `raft.redb`, creating its tables.
    pub fn new(db: Arc<Database>) -> Result<Self> {
        let txn = db.begin_write()?;
        txn.open_table(LOG)?;
        txn.open_table(RAFT_META)?;
        txn.commit()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let flush_db = db.clone();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flusher(flush_db, rx))?;
        Ok(LogStore { db, flusher: tx })
    }

    /// The shared database (identity records live beside the log).
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    fn get_meta<T: for<'de> serde::Deserialize<'de>>(
        &self,
        key: &'static str,
    ) -> Result<Option<T>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(RAFT_META)?;
        t.get(key)?.map(|v| decode(key, v.value())).transpose()
    }

    fn put_meta<T: serde::Serialize>(&self, key: &str, v: &T) -> Result<()> {
        self.put_meta_with(key, v, Durability::Immediate)
    }

    fn put_meta_with<T: serde::Serialize>(&self, key: &str, v: &T, d: Durability) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(d)?;
        txn.open_table(RAFT_META)?
            .insert(key, encode(v).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(LOG)?;
        let lo = range.start_bound().cloned();
        let hi = range.end_bound().cloned();
        let mut out = Vec::new();
        for item in t.range::<u64>((lo, hi))? {
            let (_, v) = item?;
            out.push(decode("raft log entry", v.value())?);
        }
        Ok(out)
    }

    fn append_blocking(&self, entries: Vec<Entry>) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        {
            let mut t = txn.open_table(LOG)?;
            for e in &entries {
                t.insert(e.log_id.index, encode(e).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn remove_range(&self, range: (Bound<u64>, Bound<u64>), purged: Option<LogId>) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(LOG)?;
            t.retain_in::<u64, _>(range, |_, _| false)?;
            if let Some(p) = purged {
                txn.open_table(RAFT_META)?
                    .insert(KEY_PURGED, encode(&p).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let me = self.clone();
        let range = (range.start_bound().cloned(), range.end_bound().cloned());
        blocking(move || me.entries(range))
            .await
            .map_err(|e| sto_err(StorageIOError::read_logs, e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let me = self.clone();
        blocking(move || {
            let purged: Option<LogId> = me.get_meta(KEY_PURGED)?;
            let txn = me.db.begin_read()?;
            let t = txn.open_table(LOG)?;
            let last = match t.last()? {
                Some((_, v)) => Some(decode::<Entry>("raft log entry", v.value())?.log_id),
                None => purged,
            };
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id: last,
            })
        })
        .await
        .map_err(|e| sto_err(StorageIOError::read_logs, e))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let me = self.clone();
        let vote = *vote;
        blocking(move || me.put_meta(KEY_VOTE, &vote))
            .await
            .map_err(|e| sto_err(StorageIOError::write_vote, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let me = self.clone();
        blocking(move || me.get_meta(KEY_VOTE))
            .await
            .map_err(|e| sto_err(StorageIOError::read_vote, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let me = self.clone();
        // Advisory (openraft re-learns it): made durable by the next append.
        blocking(move || me.put_meta_with(KEY_COMMITTED, &committed, Durability::None))
            .await
            .map_err(|e| sto_err(StorageIOError::write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let me = self.clone();
        blocking(move || Ok(me.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten()))
            .await
            .map_err(|e| sto_err(StorageIOError::read, e))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let me = self.clone();
        let res = blocking(move || me.append_blocking(entries)).await;
        match res {
            Ok(()) => {
                // Durable later, in the flusher's next batch.
                if let Err(e) = self.flusher.send(callback) {
                    e.0.log_io_completed(Err(std::io::Error::other("log flusher stopped")));
                }
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(sto_err(StorageIOError::write_logs, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let me = self.clone();
        blocking(move || me.remove_range((Bound::Included(log_id.index), Bound::Unbounded), None))
            .await
            .map_err(|e| sto_err(StorageIOError::write_logs, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let me = self.clone();
        blocking(move || {
            me.remove_range(
                (Bound::Unbounded, Bound::Included(log_id.index)),
                Some(log_id),
            )
        })
        .await
        .map_err(|e| sto_err(StorageIOError::write_logs, e))
    }
}
