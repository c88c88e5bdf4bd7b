//! The Raft log and vote in the write-ahead log ([`super::wal`], the `wal/` directory of a
//! member), so an append costs one `write` + `fdatasync` of a preallocated segment and never
//! waits for the state machine.
//!
//! A writer thread makes the changes to the log. `append` hands its entries to the writer and
//! keeps them in an in-memory tail, so they are readable at once (as openraft requires) and
//! openraft's core never waits for the disk. The writer takes everything queued meanwhile and
//! writes it with one `fdatasync`, then reports those appends flushed, in order: group commit,
//! whose batches grow with the load. Truncation, purge and the vote go through the same queue,
//! so the WAL always holds an ordered prefix of the operations, and their callers wait for them
//! to be durable. The one exception: a follower's append, when nothing is queued, is written by
//! the caller itself (see [`LogStore::set_member_id`]); the order holds, as only openraft's core
//! changes the log, one call at a time. The committed log id is advisory and rides on the next
//! write, without a queue entry of its own.
//!
//! The tail keeps the most recent entries (flushed or not, up to [`TAIL_BYTES`]), so replication
//! reads of recent entries are served from memory; older ones are read from the WAL.
//!
//! Encodings (kept from the log's earlier home in redb, so a migration copies bytes): an entry,
//! the vote and the committed log id are bincode; the purged log id rides in the WAL's purge
//! marker.

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError};

use super::typ::{Entry, LogId, StorageError, Vote};
use super::wal::{Record, Wal, WalOptions};
use super::{TypeConfig, sto_err};
use crate::error::{Error, Result};
use crate::mvcc::tables::{decode, encode};

/// The WAL's directory inside a member directory.
pub const WAL_DIR: &str = "wal";

/// Encoded bytes of recent entries kept in memory once durable (at least the last entry is
/// always kept; entries not yet durable are never dropped).
pub const TAIL_BYTES: usize = 64 * 1024 * 1024;

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
}

/// The committed log id (encoded) waiting for the next write. It is advisory (openraft
/// re-learns it), so it costs neither a sync nor a wake of the writer of its own; entries up to
/// it were handed to the log before it was known, so they are written before it or with it.
type PendingCommitted = Arc<Mutex<Option<Vec<u8>>>>;

fn take_committed(c: &PendingCommitted) -> Option<Vec<u8>> {
    c.lock().unwrap_or_else(|e| e.into_inner()).take()
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

/// The log store; clones share the WAL, the tail and the writer, and serve as readers.
#[derive(Clone)]
pub struct LogStore {
    wal: Arc<Mutex<Wal>>,
    tail: Arc<Mutex<Tail>>,
    writer: std::sync::mpsc::Sender<Op>,
    /// Operations handed to the writer and not yet done.
    queued: Arc<AtomicUsize>,
    committed: PendingCommitted,
    /// This member's id, once known: entries of another leader are written inline.
    me: Option<u64>,
    leaders: Leaders,
}

/// What the votes this member saved say about leadership: the latest vote, and how many times
/// a committed vote for each member was saved. openraft saves a committed vote for a member
/// before that member acts as leader (its own, when this member wins an election), and saves a
/// newer vote before it acts on that; so, unlike the metrics, which trail the Raft core, this
/// says exactly whether this member may be leading, and whether it became leader since.
#[derive(Clone, Default, Debug)]
pub struct Leaders(Arc<Mutex<LeaderVotes>>);

#[derive(Default, Debug)]
struct LeaderVotes {
    latest: Option<Vote>,
    committed: HashMap<u64, u64>,
}

/// A member's standing according to the saved votes, see [`Leaders::standing`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    /// The latest saved vote is a committed vote for the member: it may be leading.
    pub may_lead: bool,
    /// How many committed votes for the member were saved so far.
    pub times_led: u64,
}

impl Leaders {
    fn record(&self, vote: &Vote) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.latest = Some(*vote);
        if let (true, Some(node)) = (vote.committed, vote.leader_id.voted_for()) {
            *m.committed.entry(node).or_default() += 1;
        }
    }

    /// `node`'s standing now.
    pub fn standing(&self, node: u64) -> Standing {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Standing {
            may_lead: m
                .latest
                .is_some_and(|v| v.committed && v.leader_id.voted_for() == Some(node)),
            times_led: m.committed.get(&node).copied().unwrap_or(0),
        }
    }
}

/// Write queued operations in batches, one `fdatasync` per batch where the operations allow
/// it, then report them done.
fn writer(
    wal: Arc<Mutex<Wal>>,
    tail: Arc<Mutex<Tail>>,
    queued: Arc<AtomicUsize>,
    pending_committed: PendingCommitted,
    rx: std::sync::mpsc::Receiver<Op>,
) {
    while let Ok(first) = rx.recv() {
        // Taken before the queue is drained: every append it may cover was queued before it
        // was set, so it is in this batch or an earlier one.
        let committed = take_committed(&pending_committed);
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let n = batch.len();
        let res = {
            let mut wal = wal.lock().unwrap_or_else(|e| e.into_inner());
            write_batch(&mut wal, &batch, committed)
        };
        complete(&tail, batch, res);
        queued.fetch_sub(n, Ordering::AcqRel);
    }
}

/// After `batch` was written with result `res`: mark its appends durable in the tail, then
/// report every operation done.
fn complete(tail: &Mutex<Tail>, batch: Vec<Op>, res: Result<()>) {
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
        }
    }
}

/// Write a batch in order: runs of appends, votes and the committed log id go in one WAL
/// append (one `write` + `fdatasync`); a truncation or purge ends a run and is synced itself.
fn write_batch(wal: &mut Wal, batch: &[Op], committed: Option<Vec<u8>>) -> Result<()> {
    let start = std::time::Instant::now();
    let res = write_runs(wal, batch, committed);
    crate::metrics::observe_since(&crate::metrics::METRICS.wal_fsync, start);
    res
}

/// [`write_batch`]'s body.
fn write_runs(wal: &mut Wal, batch: &[Op], committed: Option<Vec<u8>>) -> Result<()> {
    let mut run: Vec<(Option<u64>, Vec<u8>)> = Vec::new();
    for op in batch {
        match op {
            Op::Append(entries, _, _) => {
                let first = entries.first().map(|e| e.log_id.index);
                // openraft truncates before it overwrites; should it ever not, the stale
                // suffix goes first, as the tail drops it.
                let last = run.iter().rev().find_map(|(i, _)| *i).or(wal.last_index());
                if let (Some(f), Some(l)) = (first, last)
                    && f <= l
                {
                    flush(wal, &mut run, None)?;
                    wal.truncate_from(f)?;
                }
                run.extend(entries.iter().map(|e| (Some(e.log_id.index), encode(e))));
            }
            Op::Vote(vote, _) => run.push((None, encode(vote))),
            Op::Truncate(index, _) => {
                flush(wal, &mut run, None)?;
                wal.truncate_from(*index)?;
            }
            Op::Purge(log_id, _) => {
                flush(wal, &mut run, None)?;
                wal.purge_upto_with(log_id.index, &encode(log_id))?;
            }
        }
    }
    flush(wal, &mut run, committed)
}

/// Append a run of encoded entries (with their index) and votes (without), and the committed
/// log id, as one WAL write.
fn flush(
    wal: &mut Wal,
    run: &mut Vec<(Option<u64>, Vec<u8>)>,
    committed: Option<Vec<u8>>,
) -> Result<()> {
    let mut records: Vec<Record<'_>> = run
        .iter()
        .map(|(index, payload)| match index {
            Some(index) => Record::Entry {
                index: *index,
                payload,
            },
            None => Record::Vote(payload),
        })
        .collect();
    if let Some(c) = &committed {
        records.push(Record::Committed(c));
    }
    if !records.is_empty() {
        wal.append(&records)?;
    }
    run.clear();
    Ok(())
}

impl LogStore {
    /// Open (or create) the WAL in `member_dir` and start its writer thread. The caller holds
    /// the directory's lock ([`crate::data_dir::lock`]).
    pub fn open(member_dir: &Path, options: WalOptions) -> Result<Self> {
        let dir = member_dir.join(WAL_DIR);
        let wal = Wal::open(&dir, options)?;
        let purged: Option<LogId> = wal
            .purged_meta()
            .filter(|m| !m.is_empty())
            .map(|m| decode("purged log id", m))
            .transpose()?;
        let last = match wal.last_index() {
            Some(i) => Some(entry_at(&wal, i)?.log_id),
            None => purged,
        };
        let tail = Arc::new(Mutex::new(Tail {
            start: last.map_or(0, |l| l.index + 1),
            purged,
            ..Default::default()
        }));
        let wal = Arc::new(Mutex::new(wal));
        let (tx, rx) = std::sync::mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let committed = PendingCommitted::default();
        let (w_wal, w_tail, w_queued, w_committed) =
            (wal.clone(), tail.clone(), queued.clone(), committed.clone());
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer(w_wal, w_tail, w_queued, w_committed, rx))?;
        let store = LogStore {
            wal,
            tail,
            writer: tx,
            queued,
            committed,
            me: None,
            leaders: Leaders::default(),
        };
        if let Some(vote) = store.vote()? {
            store.leaders.record(&vote);
        }
        Ok(store)
    }

    /// This member's id: from now on, while the writer is idle, entries of another leader (a
    /// follower's appends) are written on the caller's thread instead of the writer's.
    ///
    /// A follower answers its leader only once the entries are durable, so there the write is
    /// on the path of every put anyway, and handing it to the writer thread and back costs two
    /// thread switches per append. A leader's own entries still go to the writer: openraft's
    /// core waits for `append` to return before it replicates them, and the leader's fsync must
    /// overlap the followers' round trip, not precede it.
    pub fn set_member_id(&mut self, me: u64) {
        self.me = Some(me);
    }

    /// Who led in which term, kept up to date as votes are saved.
    pub fn leaders(&self) -> Leaders {
        self.leaders.clone()
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wal(&self) -> std::sync::MutexGuard<'_, Wal> {
        self.wal.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn vote(&self) -> Result<Option<Vote>> {
        self.wal().vote().map(|v| decode("vote", v)).transpose()
    }

    fn last_in_wal(&self) -> Result<Option<LogId>> {
        let wal = self.wal();
        wal.last_index()
            .map(|i| Ok(entry_at(&wal, i)?.log_id))
            .transpose()
    }

    fn entries_in_wal(&self, lo: Bound<u64>, hi: Bound<u64>) -> Result<Vec<Entry>> {
        let raw = self.wal().read_range((lo, hi))?;
        raw.iter()
            .map(|(_, payload)| decode("raft log entry", payload))
            .collect()
    }

    /// Give up a leadership this member held before it stopped: its vote, saved as granted by
    /// a quorum, is saved again as only asked for (same term), so openraft starts it as a
    /// follower instead of resuming as leader, and the cluster elects a leader in a new term
    /// (etcd's behaviour: a restarted leader never carries on its old term). Returns whether
    /// the vote was changed. Safe: the member still holds its vote for that term, so it never
    /// grants another candidate in it.
    pub async fn step_down(&self, me: u64) -> Result<bool> {
        match self.vote()? {
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

    /// Hand an operation to the writer.
    fn queue(&self, op: Op) -> std::result::Result<(), std::sync::mpsc::SendError<Op>> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.writer.send(op).inspect_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        })
    }

    /// Queue an operation and wait until it is durable.
    async fn write_and_wait(&self, make: impl FnOnce(Done) -> Op) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue(make(tx))
            .map_err(|_| Error::Io(std::io::Error::other("raft log writer stopped")))?;
        rx.await
            .map_err(|_| Error::Io(std::io::Error::other("raft log writer stopped")))?
            .map_err(|e| Error::Io(std::io::Error::other(e)))
    }
}

/// The entry at `index` of `wal`, which must hold it.
fn entry_at(wal: &Wal, index: u64) -> Result<Entry> {
    match wal.read(index)? {
        Some(payload) => decode("raft log entry", &payload),
        None => Err(Error::decode(
            "raft log entry",
            format!("entry {index} is not in the log"),
        )),
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
        // Entries below the tail's start (as it was looked at) are in the WAL.
        let mut out = blocking(move || me.entries_in_wal(Bound::Included(lo), db_hi))
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
                let me = self.clone();
                blocking(move || me.last_in_wal())
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
            .map_err(|e| sto_err(StorageIOError::write_vote, e))?;
        // Durable, and openraft has not acted on it yet.
        self.leaders.record(&vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let me = self.clone();
        blocking(move || me.vote())
            .await
            .map_err(|e| sto_err(StorageIOError::read_vote, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        *self.committed.lock().unwrap_or_else(|e| e.into_inner()) = Some(encode(&committed));
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let me = self.clone();
        let committed = move || -> Result<Option<LogId>> {
            let wal = me.wal();
            let c: Option<Option<LogId>> = wal
                .committed()
                .map(|c| decode("committed log id", c))
                .transpose()?;
            Ok(c.flatten())
        };
        blocking(committed)
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
        let mut t = self.tail();
        // Entries at or below the purge point are applied and in a snapshot already: openraft
        // never sends them, but its storage suite does after it purged a hole; dropped.
        let purged = t.purged.map(|p| p.index);
        let entries: Vec<Entry> = entries
            .into_iter()
            .filter(|e| purged.is_none_or(|p| e.log_id.index > p))
            .collect();
        let seq = t.next_seq;
        t.next_seq += 1;
        for e in &entries {
            t.push(e.clone(), entry_size(e), seq);
        }
        let from_other_leader = self.me.is_some()
            && entries
                .first()
                .is_some_and(|e| Some(e.log_id.leader_id.node_id) != self.me);
        // Only openraft's core changes the log, one call at a time, so with nothing queued
        // nothing can be queued before this append is written: the order holds.
        if from_other_leader && self.queued.load(Ordering::Acquire) == 0 {
            drop(t);
            let op = Op::Append(entries, seq, callback);
            let committed = take_committed(&self.committed);
            let res = write_batch(&mut self.wal(), std::slice::from_ref(&op), committed);
            complete(&self.tail, vec![op], res);
            return Ok(());
        }
        // Sent under the tail's lock: the writer sees appends in sequence order.
        let sent = self.queue(Op::Append(entries, seq, callback));
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

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorage;

    use super::*;

    #[tokio::test]
    async fn saved_votes_say_whether_a_member_may_lead_and_since_when() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(dir.path(), WalOptions::default()).unwrap();
        let leaders = log.leaders();
        let none = Standing {
            may_lead: false,
            times_led: 0,
        };
        // Asked for (not committed): nobody leads.
        log.save_vote(&Vote::new(3, 1)).await.unwrap();
        assert_eq!(leaders.standing(1), none);
        log.save_vote(&Vote::new_committed(3, 1)).await.unwrap();
        let led = Standing {
            may_lead: true,
            times_led: 1,
        };
        assert_eq!(leaders.standing(1), led);
        assert_eq!(leaders.standing(2), none);
        // A newer vote for another member (as at a step-down, even in the same term): member 1
        // no longer leads, and its count stays.
        log.save_vote(&Vote::new(3, 2)).await.unwrap();
        let stepped_down = Standing {
            may_lead: false,
            times_led: 1,
        };
        assert_eq!(leaders.standing(1), stepped_down);
        drop((log, leaders));
        // Reopened: the saved vote is known again.
        let log = LogStore::open(dir.path(), WalOptions::default()).unwrap();
        assert!(!log.leaders().standing(1).may_lead);
    }
}
