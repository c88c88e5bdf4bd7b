//! The Raft log and vote in their own redb database (`raft.redb`), so appends never wait for
//! the state machine's write lock.
//!
//! One writer thread owns every change to the log. `append` hands its entries to the writer and
//! keeps them in an in-memory tail, so they are readable at once (as openraft requires) and
//! openraft's core never waits for the disk. The writer takes everything queued meanwhile and
//! writes it in one durable redb commit (one fsync), then reports those appends flushed, in
//! order: group commit, whose batches grow with the load. Truncation, purge and the vote go
//! through the same queue, so the file always holds an ordered prefix of the operations, and
//! their callers wait for them to be durable.
//!
//! The tail keeps the most recent entries (flushed or not, up to [`TAIL_BYTES`]), so replication
//! reads of recent entries are served from memory; older ones are read from redb.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

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

/// Encoded bytes of recent entries kept in memory once durable (at least the last entry is
/// always kept; entries not yet durable are never dropped).
pub const TAIL_BYTES: usize = 64 * 1024 * 1024;

/// Open (or create) a member's `raft.redb`.
pub fn open_log_db(path: &std::path::Path) -> Result<Database, redb::DatabaseError> {
    Database::builder()
        .set_cache_size(LOG_CACHE_BYTES)
        .create(path)
}

/// A change to the log, in the order openraft asked for it.
enum Op {
    /// Entries (encoded by the writer, off openraft's core task), their append's sequence
    /// number, and the callback to call once they are durable.
    Append(Vec<Entry>, u64, LogFlushed<TypeConfig>),
    /// Delete entries at and after this index.
    Truncate(u64, Done),
    /// Delete entries up to and including this log id, and remember it.
    Purge(LogId, Done),
    /// Save the vote.
    Vote(Vote, Done),
    /// Save the committed log id (advisory: durable with the next durable commit).
    Committed(Option<LogId>),
}

type Done = tokio::sync::oneshot::Sender<std::result::Result<(), String>>;

/// An entry in the tail: the entry, its encoded size, and the sequence number of its append.
type TailEntry = (Entry, usize, u64);

/// The most recent entries: every entry of the log at or after `start`, in index order.
#[derive(Default)]
struct Tail {
    entries: VecDeque<TailEntry>,
    /// Index of the first entry the tail stands for (the next index to append when empty).
    start: u64,
    /// Encoded bytes held.
    bytes: usize,
    /// Sequence number of the next append.
    next_seq: u64,
    /// Appends with a sequence number below this are in the database. An entry removed from
    /// the log (truncated or purged) is removed from the tail first, so an entry still in the
    /// tail whose append is durable is in the database.
    durable_seq: u64,
    /// The last purged log id.
    purged: Option<LogId>,
}

impl Tail {
    fn next_index(&self) -> u64 {
        self.start + self.entries.len() as u64
    }

    fn push(&mut self, e: Entry, size: usize, seq: u64) {
        let index = e.log_id.index;
        if index < self.next_index() {
            // Overwrite without an explicit truncation: drop the stale suffix first.
            self.truncate(index);
        }
        if self.entries.is_empty() {
            self.start = index;
        }
        debug_assert_eq!(index, self.next_index(), "log entries must be contiguous");
        self.bytes += size;
        self.entries.push_back((e, size, seq));
    }

    fn truncate(&mut self, index: u64) {
        if index <= self.start {
            self.entries.clear();
            self.bytes = 0;
            self.start = index;
        } else {
            let keep = (index - self.start) as usize;
            for (_, size, _) in self.entries.drain(keep.min(self.entries.len())..) {
                self.bytes -= size;
            }
        }
    }

    fn purge(&mut self, index: u64) {
        while self
            .entries
            .front()
            .is_some_and(|(e, _, _)| e.log_id.index <= index)
        {
            if let Some((_, size, _)) = self.entries.pop_front() {
                self.bytes -= size;
            }
            self.start += 1;
        }
        if self.entries.is_empty() {
            self.start = self.start.max(index + 1);
        }
    }

    /// Drop the oldest durable entries beyond the memory budget (keeping the last one).
    fn trim(&mut self) {
        while self.bytes > TAIL_BYTES && self.entries.len() > 1 {
            match self.entries.front() {
                Some((_, _, seq)) if *seq < self.durable_seq => {}
                _ => break,
            }
            if let Some((_, size, _)) = self.entries.pop_front() {
                self.bytes -= size;
            }
            self.start += 1;
        }
    }
}

/// The log store; clones share the database, the tail and the writer, and serve as readers.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    tail: Arc<Mutex<Tail>>,
    writer: std::sync::mpsc::Sender<Op>,
}

/// Write queued operations in batches, one durable commit per batch, then report them done.
fn writer(db: Arc<Database>, tail: Arc<Mutex<Tail>>, rx: std::sync::mpsc::Receiver<Op>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        // A batch of committed-index updates alone needs no fsync: the next durable commit
        // carries it.
        let durable = batch.iter().any(|op| !matches!(op, Op::Committed(_)));
        let start = std::time::Instant::now();
        let res = write_batch(&db, &batch, durable);
        if durable {
            crate::metrics::observe_since(&crate::metrics::METRICS.wal_fsync, start);
        }
        let last_seq = batch
            .iter()
            .filter_map(|op| match op {
                Op::Append(_, seq, _) => Some(*seq),
                _ => None,
            })
            .next_back();
        if res.is_ok()
            && let Some(seq) = last_seq
        {
            let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
            t.durable_seq = t.durable_seq.max(seq + 1);
            t.trim();
        }
        let err = |e: &Error| e.to_string();
        for op in batch {
            match op {
                Op::Append(_, _, cb) => cb.log_io_completed(
                    res.as_ref()
                        .map(|_| ())
                        .map_err(|e| std::io::Error::other(err(e))),
                ),
                Op::Truncate(_, done) | Op::Purge(_, done) | Op::Vote(_, done) => {
                    let _ = done.send(res.as_ref().map(|_| ()).map_err(err));
                }
                Op::Committed(_) => {}
            }
        }
    }
}

fn write_batch(db: &Database, batch: &[Op], durable: bool) -> Result<()> {
    let mut txn = db.begin_write()?;
    txn.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    })?;
    {
        let mut log = txn.open_table(LOG)?;
        let mut meta = txn.open_table(RAFT_META)?;
        let mut committed = None;
        for op in batch {
            match op {
                Op::Append(entries, _, _) => {
                    for e in entries {
                        log.insert(e.log_id.index, encode(e).as_slice())?;
                    }
                }
                Op::Truncate(index, _) => {
                    log.retain_in::<u64, _>(*index.., |_, _| false)?;
                }
                Op::Purge(log_id, _) => {
                    log.retain_in::<u64, _>(..=log_id.index, |_, _| false)?;
                    meta.insert(KEY_PURGED, encode(log_id).as_slice())?;
                }
                Op::Vote(vote, _) => {
                    meta.insert(KEY_VOTE, encode(vote).as_slice())?;
                }
                Op::Committed(c) => committed = Some(*c),
            }
        }
        if let Some(c) = committed {
            meta.insert(KEY_COMMITTED, encode(&c).as_slice())?;
        }
    }
    txn.commit()?;
    Ok(())
}

impl LogStore {
    /// Wrap an open `raft.redb`, creating its tables, and start its writer thread.
    pub fn new(db: Arc<Database>) -> Result<Self> {
        let txn = db.begin_write()?;
        txn.open_table(LOG)?;
        txn.open_table(RAFT_META)?;
        txn.commit()?;
        let purged: Option<LogId> = Self::meta_in(&db, KEY_PURGED)?;
        let last = Self::last_in_db(&db)?.or(purged);
        let tail = Arc::new(Mutex::new(Tail {
            start: last.map_or(0, |l| l.index + 1),
            purged,
            ..Default::default()
        }));
        let (tx, rx) = std::sync::mpsc::channel();
        let (writer_db, writer_tail) = (db.clone(), tail.clone());
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer(writer_db, writer_tail, rx))?;
        Ok(LogStore {
            db,
            tail,
            writer: tx,
        })
    }

    /// The shared database (identity records live beside the log).
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn meta_in<T: for<'de> serde::Deserialize<'de>>(
        db: &Database,
        key: &'static str,
    ) -> Result<Option<T>> {
        let txn = db.begin_read()?;
        let t = txn.open_table(RAFT_META)?;
        t.get(key)?.map(|v| decode(key, v.value())).transpose()
    }

    fn last_in_db(db: &Database) -> Result<Option<LogId>> {
        let txn = db.begin_read()?;
        let t = txn.open_table(LOG)?;
        match t.last()? {
            Some((_, v)) => Ok(Some(decode::<Entry>("raft log entry", v.value())?.log_id)),
            None => Ok(None),
        }
    }

    fn entries_in_db(&self, lo: Bound<u64>, hi: Bound<u64>) -> Result<Vec<Entry>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(LOG)?;
        let mut out = Vec::new();
        for item in t.range::<u64>((lo, hi))? {
            let (_, v) = item?;
            out.push(decode("raft log entry", v.value())?);
        }
        Ok(out)
    }

    /// Give up a leadership this member held before it stopped: its vote, saved as granted by
    /// a quorum, is saved again as only asked for (same term), so openraft starts it as a
    /// follower instead of resuming as leader, and the cluster elects a leader in a new term
    /// (etcd's behaviour: a restarted leader never carries on its old term). Returns whether
    /// the vote was changed. Safe: the member still holds its vote for that term, so it never
    /// grants another candidate in it.
    pub async fn step_down(&self, me: u64) -> Result<bool> {
        let vote: Option<Vote> = Self::meta_in(&self.db, KEY_VOTE)?;
        match vote {
            Some(v) if v.committed && v.leader_id.voted_for() == Some(me) => {
                let asked = Vote {
                    committed: false,
                    ..v
                };
                self.write_and_wait(|done| Op::Vote(asked, done)).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Queue an operation and wait until it is durable.
    async fn write_and_wait(&self, make: impl FnOnce(Done) -> Op) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(make(tx))
            .map_err(|_| Error::Io(std::io::Error::other("raft log writer stopped")))?;
        rx.await
            .map_err(|_| Error::Io(std::io::Error::other("raft log writer stopped")))?
            .map_err(|e| Error::Io(std::io::Error::other(e)))
    }
}

/// Roughly the bytes an entry holds (for the tail's memory budget).
fn entry_size(e: &Entry) -> usize {
    64 + match &e.payload {
        openraft::EntryPayload::Normal(c) => c.approx_size(),
        _ => 0,
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
        let lo = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let hi = range.end_bound().cloned();
        // What the tail holds of the range, and where it starts.
        let (start, mut from_tail) = {
            let t = self.tail();
            let skip = (lo.saturating_sub(t.start) as usize).min(t.entries.len());
            let from_tail: Vec<Entry> = t
                .entries
                .range(skip..)
                .map(|(e, _, _)| e)
                .take_while(|e| (Bound::Unbounded, hi).contains(&e.log_id.index))
                .cloned()
                .collect();
            (t.start, from_tail)
        };
        if lo >= start {
            return Ok(from_tail);
        }
        let me = self.clone();
        let db_hi = match hi {
            Bound::Included(h) if h < start => Bound::Included(h),
            Bound::Excluded(h) if h <= start => Bound::Excluded(h),
            _ => Bound::Excluded(start),
        };
        // Entries below the tail's start (as it was looked at) are in the database.
        let mut out = blocking(move || me.entries_in_db(Bound::Included(lo), db_hi))
            .await
            .map_err(|e| sto_err(StorageIOError::read_logs, e))?;
        out.append(&mut from_tail);
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let (last, purged) = {
            let t = self.tail();
            (t.entries.back().map(|(e, _, _)| e.log_id), t.purged)
        };
        let last = match last {
            Some(l) => Some(l),
            None => {
                let db = self.db.clone();
                blocking(move || Self::last_in_db(&db))
                    .await
                    .map_err(|e| sto_err(StorageIOError::read_logs, e))?
                    .or(purged)
            }
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.write_and_wait(|done| Op::Vote(vote, done))
            .await
            .map_err(|e| sto_err(StorageIOError::write_vote, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let db = self.db.clone();
        blocking(move || Self::meta_in(&db, KEY_VOTE))
            .await
            .map_err(|e| sto_err(StorageIOError::read_vote, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Advisory (openraft re-learns it): written by the writer's next commit.
        self.writer
            .send(Op::Committed(committed))
            .map_err(|_| std::io::Error::other("raft log writer stopped"))
            .map_err(|e| sto_err(StorageIOError::write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let db = self.db.clone();
        blocking(move || Ok(Self::meta_in::<Option<LogId>>(&db, KEY_COMMITTED)?.flatten()))
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
        let mut t = self.tail();
        let seq = t.next_seq;
        t.next_seq += 1;
        for e in &entries {
            t.push(e.clone(), entry_size(e), seq);
        }
        // Sent under the tail's lock: the writer sees appends in sequence order.
        let sent = self.writer.send(Op::Append(entries, seq, callback));
        drop(t);
        if let Err(e) = sent {
            let Op::Append(_, _, callback) = e.0 else {
                unreachable!("the op sent was an append")
            };
            let err = std::io::Error::other("raft log writer stopped");
            callback.log_io_completed(Err(std::io::Error::other(err.to_string())));
            return Err(sto_err(StorageIOError::write_logs, err));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.tail().truncate(log_id.index);
        self.write_and_wait(|done| Op::Truncate(log_id.index, done))
            .await
            .map_err(|e| sto_err(StorageIOError::write_logs, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        {
            let mut t = self.tail();
            t.purge(log_id.index);
            t.purged = Some(log_id);
        }
        self.write_and_wait(|done| Op::Purge(log_id, done))
            .await
            .map_err(|e| sto_err(StorageIOError::write_logs, e))
    }
}
