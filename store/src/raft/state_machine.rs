//! The Raft state machine over `state.redb`: applies committed commands through [`crate::mvcc`],
//! takes and installs snapshots, and serves the read side to the API.
//!
//! A Raft snapshot is the state machine at a durable point, written out only for a follower that
//! needs it ([`super::snapshot_data`]): no snapshot file is kept.
//!
//! Each `apply` call is one redb write transaction holding the data, the last applied log id
//! and the membership together, so a crash never separates them; one in [`DURABLE_EVERY`] is
//! durable (the Raft log holds the rest). A small non-durable apply runs on the runtime's
//! thread, the others on the blocking pool.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction,
};
use tokio::sync::broadcast;

use super::command::{Command, CommandResponse};
use super::snapshot::{clear_tables, load_records, read_header};
use super::snapshot_data::SnapshotData;
use super::typ::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership};
use super::{TypeConfig, sto_err};
use crate::disk::Disk;
use crate::error::{Error, EtcdError, Result};
use crate::mvcc::read::Revs;
use crate::mvcc::tables::*;
use crate::mvcc::write::Store;
use crate::pb::mvccpb::Event;

/// redb page cache of `state.redb`.
pub const STATE_CACHE_BYTES: usize = 128 * 1024 * 1024;

/// The longest a state-machine write stays non-durable.
pub const DURABLE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Applied batches kept for watchers that are behind; a watcher further behind catches up from
/// storage, so this bounds the memory a stalled watcher can pin.
pub const LIVE_BATCHES: usize = 32;

/// A change of the state machine's revision, for watchers: the events of one applied batch, or
/// a state replaced whole (a Raft snapshot installed), which carries no events.
///
/// A watcher that has seen everything up to `start` can take `events` as they are; one that
/// stands further back would skip revisions and must catch up from storage first.
#[derive(Debug, Clone)]
pub struct AppliedEvents {
    /// The revision the batch was applied on (the one before its first event).
    pub start: i64,
    /// Events in revision order (none when a snapshot replaced the state).
    pub events: Vec<Event>,
    /// The revision after the batch.
    pub revision: i64,
}

/// State shared by the state machine, its snapshot builder and the API's readers.
pub struct SmShared {
    /// Write-locked only by defragmentation, which needs the database to itself.
    db: std::sync::RwLock<Database>,
    in_use: Mutex<(Option<std::time::Instant>, i64)>,
    last_durable: Mutex<std::time::Instant>,
    path: PathBuf,
    snap_dir: PathBuf,
    revision: AtomicI64,
    compact: AtomicI64,
    events: broadcast::Sender<Arc<AppliedEvents>>,
    /// Requests applied since the last snapshot (a batch entry counts each of its requests).
    since_snapshot: std::sync::atomic::AtomicU64,
    /// Write transactions open outside the apply (a durable flush, a size walk, a
    /// defragmentation): an apply does not run on the runtime's thread while one is, as it
    /// would wait there for it.
    other_writers: AtomicUsize,
}

impl SmShared {
    /// Open (or create) `state.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<Arc<Self>> {
        let path = dir.join("state.redb");
        let db = Database::builder()
            .set_cache_size(STATE_CACHE_BYTES)
            .create(&path)?;
        // redb does not fsync the directory: a new file's entry must be durable before the
        // Raft log is purged behind what the file holds (the power-loss tests found this).
        crate::disk::Os.sync_dir(dir)?;
        Self::with_db(db, path, dir.join("snap"))
    }

    /// [`Self::open`] with `state.redb` at `path` on `backend`, a file of `disk` (the
    /// power-loss tests' disk), and snapshot files in `snap_dir`.
    #[cfg(test)]
    pub fn open_on(
        disk: &dyn Disk,
        path: &Path,
        backend: impl redb::StorageBackend,
        snap_dir: &Path,
    ) -> Result<Arc<Self>> {
        let db = Database::builder()
            .set_cache_size(STATE_CACHE_BYTES)
            .create_with_backend(backend)?;
        if let Some(dir) = path.parent() {
            disk.sync_dir(dir)?;
        }
        Self::with_db(db, path.to_path_buf(), snap_dir.to_path_buf())
    }

    fn with_db(db: Database, path: PathBuf, snap_dir: PathBuf) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&snap_dir)?;
        remove_old_snapshot_files(&snap_dir)?;
        let txn = db.begin_write()?;
        let (rev, compact) = {
            let store = Store::open(&txn)?;
            txn.open_table(MEMBERS)?;
            txn.open_table(ALARMS)?;
            (store.revision(), store.compact_revision())
        };
        txn.commit()?;
        let (events, _) = broadcast::channel(LIVE_BATCHES);
        Ok(Arc::new(SmShared {
            db: std::sync::RwLock::new(db),
            in_use: Mutex::new((None, 0)),
            last_durable: Mutex::new(std::time::Instant::now()),
            path,
            snap_dir,
            revision: AtomicI64::new(rev),
            compact: AtomicI64::new(compact),
            events,
            since_snapshot: std::sync::atomic::AtomicU64::new(0),
            other_writers: AtomicUsize::new(0),
        }))
    }

    /// Begin a write transaction (offline tools only: the state machine owns writes).
    pub fn begin_write(&self) -> Result<WriteTransaction> {
        Ok(self.db().begin_write()?)
    }

    /// Begin a read transaction.
    pub fn read(&self) -> Result<ReadTransaction> {
        Ok(self.db().begin_read()?)
    }

    /// The revisions as of the last applied batch.
    pub fn revs(&self) -> Revs {
        Revs {
            current: self.revision.load(Ordering::Acquire),
            compact: self.compact.load(Ordering::Acquire),
        }
    }

    /// The revisions as seen by a read transaction.
    pub fn revs_in(txn: &ReadTransaction) -> Result<Revs> {
        let meta = txn.open_table(META)?;
        Ok(Revs {
            current: meta_i64(&meta, META_REVISION)?.max(1),
            compact: meta_i64(&meta, META_COMPACT)?,
        })
    }

    /// Subscribe to applied events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AppliedEvents>> {
        self.events.subscribe()
    }

    /// Size of the database file.
    pub fn db_size(&self) -> i64 {
        std::fs::metadata(&self.path)
            .map(|m| m.len() as i64)
            .unwrap_or(0)
    }

    fn db(&self) -> std::sync::RwLockReadGuard<'_, Database> {
        self.db.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of the database actually holding data (measured at most every few seconds: it
    /// walks the trees).
    pub fn db_size_in_use(&self) -> i64 {
        let mut cached = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(at), v) = *cached
            && at.elapsed() < std::time::Duration::from_secs(5)
        {
            return v;
        }
        let _writing = self.other_writer();
        let v = self
            .db()
            .begin_write()
            .ok()
            .and_then(|t| t.stats().ok())
            .map(|s| (s.allocated_pages() * s.page_size() as u64) as i64)
            .unwrap_or_else(|| self.db_size());
        *cached = (Some(std::time::Instant::now()), v);
        v
    }

    /// Rewrite the database file without its free pages (etcd's defragment). Blocks this
    /// member's reads and applies meanwhile, as etcd's does.
    pub fn defragment(&self) -> Result<()> {
        let _writing = self.other_writer();
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        for _ in 0..200 {
            match db.compact() {
                Ok(_) => {
                    *self.in_use.lock().unwrap_or_else(|e| e.into_inner()) = (None, 0);
                    return Ok(());
                }
                Err(redb::CompactionError::TransactionInProgress) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(Error::Storage(e.into())),
            }
        }
        Err(Error::Config(
            "defragment: transactions stayed open; try again".into(),
        ))
    }

    /// The last applied log id and membership.
    pub fn applied_state(&self) -> Result<(Option<LogId>, StoredMembership)> {
        applied_in(&self.read()?)
    }

    /// Published attributes of every member.
    pub fn member_attrs(&self) -> Result<Vec<(u64, MemberAttrs)>> {
        let txn = self.read()?;
        let t = txn.open_table(MEMBERS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push((k.value(), decode("member attributes", v.value())?));
        }
        Ok(out)
    }

    /// Members waiting to be promoted to voters.
    pub fn pending_voters(&self) -> Result<Vec<u64>> {
        let txn = self.read()?;
        let meta = txn.open_table(META)?;
        Ok(match meta.get(META_PENDING_VOTERS)? {
            Some(v) => decode("pending voters", v.value())?,
            None => Vec::new(),
        })
    }

    /// Active alarms as (member id, alarm type).
    pub fn alarms(&self) -> Result<Vec<(u64, i32)>> {
        let txn = self.read()?;
        let t = txn.open_table(ALARMS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, _) = item?;
            out.push(k.value());
        }
        Ok(out)
    }

    /// Live leases as (id, record).
    pub fn leases(&self) -> Result<Vec<(i64, LeaseRecord)>> {
        let txn = self.read()?;
        let t = txn.open_table(LEASES)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push((k.value(), decode("lease", v.value())?));
        }
        Ok(out)
    }

    /// Number of live keys.
    pub fn key_count(&self) -> Result<u64> {
        let txn = self.read()?;
        let t = txn.open_table(KV_LATEST)?;
        Ok(redb::ReadableTableMetadata::len(&t)?)
    }

    /// Keys attached to lease `id`.
    pub fn lease_keys(&self, id: i64) -> Result<Vec<Vec<u8>>> {
        let txn = self.read()?;
        let t = txn.open_table(LEASE_KEYS)?;
        let mut out = Vec::new();
        for item in t.range((id, &[][..])..)? {
            let (k, _) = item?;
            let (lid, key) = k.value();
            if lid != id {
                break;
            }
            out.push(key.to_vec());
        }
        Ok(out)
    }

    /// Make every earlier commit durable (they are normally not: the Raft log is, and entries
    /// after the last durable commit are applied again at start).
    pub fn flush(&self) -> Result<()> {
        let _writing = self.other_writer();
        self.commit_durably(self.db().begin_write()?)
    }

    /// Commit `txn` durably (and with it every earlier commit), and restart the
    /// [`DURABLE_EVERY`] clock.
    fn commit_durably(&self, mut txn: WriteTransaction) -> Result<()> {
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        *self.last_durable.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
        Ok(())
    }

    /// Count a write transaction outside the apply while the guard lives.
    fn other_writer(&self) -> OtherWriter<'_> {
        self.other_writers.fetch_add(1, Ordering::AcqRel);
        OtherWriter(&self.other_writers)
    }

    /// Whether an apply may run on the runtime's thread now: no other write transaction and no
    /// defragmentation is under way, so it will not wait for one.
    fn apply_inline_ok(&self) -> bool {
        self.other_writers.load(Ordering::Acquire) == 0 && self.db.try_read().is_ok()
    }

    /// Whether the next apply is to be durable (and if so, claim it): once per
    /// [`DURABLE_EVERY`].
    fn claim_durable(&self) -> bool {
        let mut last = self.last_durable.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= DURABLE_EVERY {
            *last = std::time::Instant::now();
            true
        } else {
            false
        }
    }

    #[cfg(test)]
    pub(super) fn apply_blocking(&self, entries: Vec<Entry>) -> Result<Vec<CommandResponse>> {
        let durable = self.claim_durable();
        self.apply_entries(entries, durable)
    }

    /// Apply `entries` in one write transaction, durable or not.
    fn apply_entries(&self, entries: Vec<Entry>, durable: bool) -> Result<Vec<CommandResponse>> {
        let mut txn = self.db().begin_write()?;
        // The Raft log is durable; the state machine only needs to be now and then (and before
        // a snapshot lets the log be purged): a crash re-applies the entries after it.
        if !durable {
            txn.set_durability(Durability::None)?;
        }
        let mut out = Vec::with_capacity(entries.len());
        let (start, events, rev, compact) = {
            let mut store = Store::open(&txn)?;
            let start = store.revision();
            let mut last = None;
            for e in entries {
                last = Some(e.log_id);
                let r = match e.payload {
                    EntryPayload::Blank => CommandResponse::Empty,
                    EntryPayload::Normal(cmd) => {
                        let n = match &cmd {
                            Command::Batch(cmds) => cmds.len() as u64,
                            _ => 1,
                        };
                        self.since_snapshot.fetch_add(n, Ordering::Relaxed);
                        apply_command(&mut store, &txn, cmd)?
                    }
                    EntryPayload::Membership(m) => {
                        let sm = StoredMembership::new(Some(e.log_id), m);
                        store.set_meta(META_MEMBERSHIP, &encode(&sm))?;
                        CommandResponse::Empty
                    }
                };
                out.push(r);
            }
            if last.is_some() {
                store.set_meta(META_LAST_APPLIED, &encode(&last))?;
            }
            (
                start,
                std::mem::take(&mut store.events),
                store.revision(),
                store.compact_revision(),
            )
        };
        let commit_start = std::time::Instant::now();
        txn.commit()?;
        crate::metrics::observe_since(&crate::metrics::METRICS.backend_commit, commit_start);
        self.revision.store(rev, Ordering::Release);
        self.compact.store(compact, Ordering::Release);
        if !events.is_empty() {
            let _ = self.events.send(Arc::new(AppliedEvents {
                start,
                events,
                revision: rev,
            }));
        }
        Ok(out)
    }

    /// Requests applied since the last snapshot was built (etcd's `--snapshot-count` counts
    /// these, not Raft entries, which here may carry a batch of requests).
    pub fn applied_since_snapshot(&self) -> u64 {
        self.since_snapshot.load(Ordering::Relaxed)
    }

    /// A snapshot: make the state machine durable and return its metadata with a read
    /// transaction of exactly that state (`last_log_id` is `None` while nothing is applied).
    ///
    /// The metadata is read under the write lock, before the durable commit that makes what it
    /// describes durable, and the read transaction begins in between, so no apply can slip in:
    /// the log may be purged up to `last_log_id` and a crash finds that state on disk.
    pub(super) fn snapshot_blocking(&self) -> Result<(SnapshotMeta, ReadTransaction)> {
        let _writing = self.other_writer();
        let db = self.db();
        let txn = db.begin_write()?;
        let read = db.begin_read()?;
        let (last, membership) = applied_in(&read)?;
        self.commit_durably(txn)?;
        let (term, index) = last.map_or((0, 0), |l| (l.leader_id.term, l.index));
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: membership,
            // The state at a log id is the same on every member, so its name is too (etcd
            // names its snapshot files term-index likewise).
            snapshot_id: format!("{term}-{index}"),
        };
        Ok((meta, read))
    }

    /// [`Self::snapshot_blocking`], counting from it for `--snapshot-count`.
    pub(super) fn build_snapshot_blocking(&self) -> Result<(SnapshotMeta, ReadTransaction)> {
        // (Requests applied while this one is taken go uncounted: the next comes that much
        // later.)
        self.since_snapshot.store(0, Ordering::Relaxed);
        self.snapshot_blocking()
    }

    /// Replace the state with the snapshot in `file` (read from its start), durably.
    fn install_blocking(&self, meta: SnapshotMeta, file: std::fs::File) -> Result<()> {
        let mut r = BufReader::new(file);
        let header = read_header(&mut r)?;
        let txn = self.db().begin_write()?;
        clear_tables(&txn)?;
        load_records(&txn, &header, &mut r)?;
        let (rev, compact) = {
            let mut store = Store::open(&txn)?;
            store.set_meta(META_LAST_APPLIED, &encode(&meta.last_log_id))?;
            store.set_meta(META_MEMBERSHIP, &encode(&meta.last_membership))?;
            (store.revision(), store.compact_revision())
        };
        txn.commit()?;
        self.revision.store(rev, Ordering::Release);
        self.compact.store(compact, Ordering::Release);
        // The revisions the snapshot covers produced no events here: tell the watchers, so
        // that every one standing before `rev` reads them from storage (or is canceled, when
        // the snapshot compacted them) instead of jumping over them with the next batch.
        let _ = self.events.send(Arc::new(AppliedEvents {
            start: rev,
            events: Vec::new(),
            revision: rev,
        }));
        tracing::info!(
            revision = rev,
            compact_revision = compact,
            "installed a Raft snapshot"
        );
        Ok(())
    }
}

/// The last applied log id and membership as seen by `txn`.
fn applied_in(txn: &ReadTransaction) -> Result<(Option<LogId>, StoredMembership)> {
    let meta = txn.open_table(META)?;
    let last = match meta.get(META_LAST_APPLIED)? {
        Some(v) => decode("last applied", v.value())?,
        None => None,
    };
    let membership = match meta.get(META_MEMBERSHIP)? {
        Some(v) => decode("membership", v.value())?,
        None => StoredMembership::default(),
    };
    Ok((last, membership))
}

/// Remove the snapshot files earlier releases kept in `dir` (`*.snap`, and `*.tmp` left by a
/// crash): the state machine is the snapshot now, and nothing reads them.
fn remove_old_snapshot_files(dir: &Path) -> Result<()> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "snap" || x == "tmp") {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(
            dir = %dir.display(),
            removed,
            "removed the snapshot files of an earlier release (no longer kept)"
        );
    }
    Ok(())
}

fn apply_command(
    store: &mut Store<'_>,
    txn: &WriteTransaction,
    cmd: Command,
) -> Result<CommandResponse> {
    let res = match cmd {
        Command::Batch(cmds) => {
            let mut out = Vec::with_capacity(cmds.len());
            for cmd in cmds {
                out.push(match cmd {
                    Command::Batch(_) => CommandResponse::Failed(EtcdError::Internal(
                        "nested batch of requests".into(),
                    )),
                    cmd => apply_command(store, txn, cmd)?,
                });
            }
            return Ok(CommandResponse::Batch(out));
        }
        Command::Put(p) => store.put(&p).map(CommandResponse::Put),
        Command::DeleteRange(d) => store.delete_range(&d).map(CommandResponse::DeleteRange),
        Command::Txn(t) => store.txn(&t).map(CommandResponse::Txn),
        Command::Compact { revision } => store.compact(revision).map(CommandResponse::Compact),
        Command::LeaseGrant { id, ttl } => store.lease_grant(id, ttl).map(|_| done(store)),
        Command::LeaseRevoke { id } => store.lease_revoke(id).map(|_| done(store)),
        Command::Alarm {
            activate,
            member_id,
            alarm,
        } => {
            let mut t = txn.open_table(ALARMS)?;
            if activate {
                t.insert((member_id, alarm), ())?;
            } else {
                t.retain(|(m, a), _| !((member_id == 0 || m == member_id) && a == alarm))?;
            }
            Ok(done(store))
        }
        Command::PublishMember {
            id,
            name,
            client_urls,
        } => {
            let attrs = MemberAttrs { name, client_urls };
            txn.open_table(MEMBERS)?
                .insert(id, encode(&attrs).as_slice())?;
            Ok(done(store))
        }
        Command::SetPendingVoter { id, pending } => {
            let mut list: Vec<u64> = match store.get_meta(META_PENDING_VOTERS)? {
                Some(v) => decode("pending voters", &v)?,
                None => Vec::new(),
            };
            list.retain(|x| *x != id);
            if pending {
                list.push(id);
            }
            store.set_meta(META_PENDING_VOTERS, &encode(&list))?;
            Ok(done(store))
        }
        Command::ForgetMember { id } => {
            txn.open_table(MEMBERS)?.remove(id)?;
            txn.open_table(ALARMS)?.retain(|(m, _), _| m != id)?;
            Ok(done(store))
        }
    };
    match res {
        Ok(r) => {
            let rev = store.finish_request()?;
            Ok(match r {
                CommandResponse::Done { .. } => CommandResponse::Done { revision: rev },
                other => other,
            })
        }
        Err(Error::Etcd(e)) => Ok(CommandResponse::Failed(e)),
        Err(other) => Err(other),
    }
}

fn done(store: &Store<'_>) -> CommandResponse {
    CommandResponse::Done {
        revision: store.revs().current,
    }
}

fn snap_write(e: openraft::AnyError) -> StorageIOError<u64> {
    StorageIOError::write_snapshot(None, e)
}

fn snap_read(e: openraft::AnyError) -> StorageIOError<u64> {
    StorageIOError::read_snapshot(None, e)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
}

/// Decrements [`SmShared::other_writers`] when dropped.
struct OtherWriter<'a>(&'a AtomicUsize);

impl Drop for OtherWriter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Requests applied on the runtime's thread at most; an apply of more, or a durable one, goes
/// to the blocking pool.
const INLINE_APPLY_MAX: usize = 8;

/// The etcd requests an entry carries.
fn requests_in(e: &Entry) -> usize {
    match &e.payload {
        EntryPayload::Normal(Command::Batch(cmds)) => cmds.len(),
        _ => 1,
    }
}

/// The state machine handed to openraft.
pub struct StateMachine {
    shared: Arc<SmShared>,
}

impl StateMachine {
    /// A state machine over shared state.
    pub fn new(shared: Arc<SmShared>) -> Self {
        StateMachine { shared }
    }
}

/// A snapshot handed to openraft: the metadata, and the bytes to write on demand.
fn to_snapshot(
    shared: &SmShared,
    (meta, txn): (SnapshotMeta, ReadTransaction),
) -> Snapshot<TypeConfig> {
    Snapshot {
        snapshot: Box::new(SnapshotData::pending(txn, encode(&meta), &shared.snap_dir)),
        meta,
    }
}

/// Takes snapshots while applies go on.
pub struct SnapshotBuilder {
    shared: Arc<SmShared>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let shared = self.shared.clone();
        let taken = blocking(move || shared.build_snapshot_blocking())
            .await
            .map_err(|e| sto_err(StorageIOError::read_state_machine, e))?;
        Ok(to_snapshot(&self.shared, taken))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let shared = self.shared.clone();
        blocking(move || shared.applied_state())
            .await
            .map_err(|e| sto_err(StorageIOError::read_state_machine, e))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let durable = self.shared.claim_durable();
        let requests: usize = entries.iter().map(requests_in).sum();
        let res = if durable || requests > INLINE_APPLY_MAX || !self.shared.apply_inline_ok() {
            let shared = self.shared.clone();
            blocking(move || shared.apply_entries(entries, durable)).await
        } else {
            // A non-durable commit of a few requests takes about 0.1 ms: done on this task's
            // thread, not handed to the blocking pool and back (two thread switches, on an idle
            // member as much CPU as the apply itself).
            self.shared.apply_entries(entries, false)
        };
        res.map_err(|e| sto_err(StorageIOError::write_state_machine, e))
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError> {
        SnapshotData::receiving(&self.shared.snap_dir)
            .map(Box::new)
            .map_err(|e| sto_err(snap_write, e))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError> {
        // Normally the file the chunks were received into; any handle is read from its start.
        let file = snapshot
            .into_file()
            .await
            .map_err(|e| sto_err(snap_read, e))?;
        let shared = self.shared.clone();
        let meta = meta.clone();
        blocking(move || shared.install_blocking(meta, file))
            .await
            .map_err(|e| sto_err(StorageIOError::write_state_machine, e))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let shared = self.shared.clone();
        let taken = blocking(move || shared.snapshot_blocking())
            .await
            .map_err(|e| sto_err(snap_read, e))?;
        // Nothing applied, no snapshot.
        Ok(taken
            .0
            .last_log_id
            .is_some()
            .then(|| to_snapshot(&self.shared, taken)))
    }
}
