//! Client snapshots as files: verifying them (`snapshot status`) and restoring one into a fresh
//! data directory that starts a **new** cluster (new cluster id, fresh Raft state) holding the
//! snapshot's keys, as `etcdctl snapshot restore` does.
//!
//! Clients of the old cluster (a Kubernetes informer, any watch that resumes from the last
//! revision it saw) must not mistake the restored history for theirs: with a revision below
//! theirs, a resumed watch would count as a future one and later hand out events of another
//! history. So a restore can, as `etcdutl snapshot restore --bump-revision N --mark-compacted`,
//! raise the revision by `N` and make the new revision the compaction point: every old
//! revision is then refused as compacted (clients relist) and every new one is above any a
//! client saw. The snapshot's keys, values and history rows stay as they are.
//!
//! A client snapshot is the state-machine dump of [`crate::raft::snapshot`], zero-padded to a
//! multiple of 512 bytes, followed by the 32-byte SHA-256 of everything before it.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use redb::WriteTransaction;
use sha2::{Digest, Sha256};

use crate::config::parse_initial_cluster;
use crate::data_dir::{Identity, member_dir, write_identity};
use crate::error::{Error, Result};
use crate::mvcc::tables::*;
use crate::raft::log_store::LogStore;
use crate::raft::snapshot::{Record, clear_tables, load_records, read_header, read_record};
use crate::raft::state_machine::SmShared;
use crate::server::members_of;

/// What a snapshot file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// CRC-32C over every key-value record.
    pub hash: u32,
    /// The store revision in the snapshot.
    pub revision: i64,
    /// Live keys.
    pub total_keys: u64,
    /// File size in bytes.
    pub total_size: u64,
}

/// Check a snapshot file's SHA-256 trailer; returns the payload length.
pub fn verify(path: &Path) -> Result<u64> {
    let bad = |why: String| Error::Config(format!("snapshot {}: {why}", path.display()));
    let mut f = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let len = f.metadata()?.len();
    if len < 32 || (len - 32) % 512 != 0 {
        return Err(bad(format!(
            "size {len} is not a multiple of 512 plus a 32-byte checksum: the file is truncated or \
             not a snapshot"
        )));
    }
    let payload = len - 32;
    let mut sha = Sha256::new();
    let mut left = payload;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let n = (buf.len() as u64).min(left) as usize;
        f.read_exact(&mut buf[..n])?;
        sha.update(&buf[..n]);
        left -= n as u64;
    }
    let mut trailer = [0u8; 32];
    f.read_exact(&mut trailer)?;
    if sha.finalize().as_slice() != trailer {
        return Err(bad(
            "SHA-256 checksum mismatch: the file is corrupted".into()
        ));
    }
    Ok(payload)
}

/// Read a snapshot file's summary (after verifying its checksum).
pub fn status(path: &Path) -> Result<SnapshotStatus> {
    verify(path)?;
    let total_size = std::fs::metadata(path)?.len();
    let mut r = BufReader::new(std::fs::File::open(path)?);
    let header = read_header(&mut r)?;
    let mut hash = 0u32;
    let mut revision = 0;
    let mut total_keys = 0;
    loop {
        match read_record(&mut r, &header)? {
            Record::Latest(k, v) => {
                total_keys += 1;
                hash = crc32c::crc32c_append(hash, &k);
                hash = crc32c::crc32c_append(hash, &v);
            }
            Record::Meta(k, v) if k == META_REVISION => {
                let b: [u8; 8] = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::decode("revision", "size"))?;
                revision = i64::from_be_bytes(b);
            }
            Record::End => break,
            _ => {}
        }
    }
    Ok(SnapshotStatus {
        hash,
        revision: revision.max(1),
        total_keys,
        total_size,
    })
}

/// Where and as whom to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// The data directory to create (must not exist or be empty).
    pub data_dir: PathBuf,
    /// This member's name.
    pub name: String,
    /// `name=peerURL,...` of the new cluster.
    pub initial_cluster: String,
    /// Token of the new cluster.
    pub initial_cluster_token: String,
    /// This member's peer URLs.
    pub initial_advertise_peer_urls: Vec<String>,
    /// Skip the checksum (for a snapshot without trailer).
    pub skip_hash_check: bool,
    /// Raise the snapshot's revision by this much (0: keep it); needs `mark_compacted`.
    pub bump_revision: u64,
    /// Make the (raised) revision the compaction point, so that reads and watches at any older
    /// revision are refused as compacted; needs a `bump_revision` above 0.
    pub mark_compacted: bool,
}

/// What a restore produced.
#[derive(Debug, Clone)]
pub struct RestoreSummary {
    /// The new cluster id.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// The revision the snapshot holds.
    pub snapshot_revision: i64,
    /// The revision the restored store starts at (the snapshot's plus the bump).
    pub revision: i64,
    /// The restored store's compaction point.
    pub compact_revision: i64,
}

/// Why a restore refuses `--bump-revision` and `--mark-compacted` given one without the other.
pub const BUMP_NEEDS_MARK: &str = "--bump-revision and --mark-compacted go together: \
                                   --mark-compacted is required if --bump-revision > 0 and \
                                   refused otherwise";

/// Refuse a bump without marking it compacted (watches in the gap would wait on revisions that
/// never get events) and marking compacted without a bump (which would only cut the
/// snapshot's history), as etcdutl does.
pub fn check_bump(bump_revision: u64, mark_compacted: bool) -> Result<()> {
    if (bump_revision > 0) != mark_compacted {
        return Err(Error::Config(BUMP_NEEDS_MARK.into()));
    }
    Ok(())
}

/// The revisions of a restored store.
struct Revisions {
    /// The snapshot's.
    snapshot: i64,
    /// The store's current revision.
    current: i64,
    /// Its compaction point.
    compact: i64,
}

/// Apply `--bump-revision` / `--mark-compacted` to the META rows loaded from the snapshot.
/// Nothing else changes: no history row is written for the skipped revisions (none is
/// readable, they are all at or below the compaction point), and the rows below it stay until
/// the next compaction removes them.
fn bump_revision(txn: &WriteTransaction, opts: &RestoreOptions) -> Result<Revisions> {
    let mut meta = txn.open_table(META)?;
    let from = meta_i64(&meta, META_REVISION)?.max(1);
    let compact = meta_i64(&meta, META_COMPACT)?;
    if opts.bump_revision == 0 {
        return Ok(Revisions {
            snapshot: from,
            current: from,
            compact,
        });
    }
    let to = i64::try_from(opts.bump_revision)
        .ok()
        .and_then(|b| from.checked_add(b))
        .ok_or_else(|| {
            Error::Config(format!(
                "--bump-revision {} takes revision {from} past the largest revision ({})",
                opts.bump_revision,
                i64::MAX
            ))
        })?;
    meta.insert(META_REVISION, to.to_be_bytes().as_slice())?;
    let compact = if opts.mark_compacted { to } else { compact };
    meta.insert(META_COMPACT, compact.to_be_bytes().as_slice())?;
    Ok(Revisions {
        snapshot: from,
        current: to,
        compact,
    })
}

/// Build a fresh data directory from a snapshot.
pub fn restore(opts: &RestoreOptions) -> Result<RestoreSummary> {
    check_bump(opts.bump_revision, opts.mark_compacted)?;
    if opts.data_dir.exists() && std::fs::read_dir(&opts.data_dir)?.next().is_some() {
        return Err(Error::Config(format!(
            "data-dir {:?} exists and is not empty: restore needs a fresh directory",
            opts.data_dir
        )));
    }
    if !opts.skip_hash_check {
        verify(&opts.snapshot)?;
    }
    let initial = parse_initial_cluster(&opts.initial_cluster)?;
    let Some((_, my_urls)) = initial.iter().find(|(n, _)| *n == opts.name) else {
        return Err(Error::Config(format!(
            "--initial-cluster has no member named {:?}",
            opts.name
        )));
    };
    if !opts.initial_advertise_peer_urls.is_empty() && *my_urls != opts.initial_advertise_peer_urls
    {
        return Err(Error::Config(format!(
            "--initial-advertise-peer-urls {:?} do not match {:?} given for {} in --initial-cluster",
            opts.initial_advertise_peer_urls, my_urls, opts.name
        )));
    }
    let (cluster_id, members) = members_of(&initial, &opts.initial_cluster_token);
    let member_id = *members
        .iter()
        .find(|(_, n)| n.name == opts.name)
        .map(|(id, _)| id)
        .expect("named member");

    let dir = member_dir(&opts.data_dir);
    let result = (|| {
        let lock = crate::data_dir::lock(&dir)?;
        crate::data_dir::prepare(&dir, &lock)?;
        let sm = SmShared::open(&dir)?;
        let mut r = BufReader::new(std::fs::File::open(&opts.snapshot)?);
        let header = read_header(&mut r)?;
        let txn = sm.begin_write()?;
        clear_tables(&txn)?;
        load_records(&txn, &header, &mut r)?;
        // The new cluster has none of the old one's members, alarms or pending promotions.
        txn.open_table(MEMBERS)?.retain(|_, _| false)?;
        txn.open_table(ALARMS)?.retain(|_, _| false)?;
        txn.open_table(META)?.remove(META_PENDING_VOTERS)?;
        let revs = bump_revision(&txn, opts)?;
        txn.commit()?;
        LogStore::open(&dir, Default::default())?;
        write_identity(
            &dir,
            &Identity {
                cluster_id,
                member_id,
                bootstrapped: true,
                bootstrap: Some(members.clone()),
            },
        )?;
        Ok(RestoreSummary {
            cluster_id,
            member_id,
            snapshot_revision: revs.snapshot,
            revision: revs.current,
            compact_revision: revs.compact,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&opts.data_dir);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::events::events_between;
    use crate::mvcc::hash::hash_kv;
    use crate::mvcc::read::{self, Revs};
    use crate::mvcc::write::Store;
    use crate::pb::{PutRequest, RangeRequest};
    use crate::raft::snapshot::write_snapshot;

    const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

    fn put(store: &mut Store<'_>, key: &str, value: &str) -> i64 {
        store
            .put(&PutRequest {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            })
            .unwrap();
        store.finish_request().unwrap()
    }

    /// A client snapshot (padded, SHA-256 trailer) of a store at revision 5, compacted at 3:
    /// a=1@2, b=2@3, a=3@4, c=4@5.
    fn snapshot_file(dir: &Path) -> PathBuf {
        let src = dir.join("src");
        std::fs::create_dir_all(&src).unwrap();
        let sm = SmShared::open(&src).unwrap();
        let txn = sm.begin_write().unwrap();
        {
            let mut store = Store::open(&txn).unwrap();
            for (k, v) in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4")] {
                put(&mut store, k, v);
            }
            store.compact(3).unwrap();
        }
        txn.commit().unwrap();
        let mut body = Vec::new();
        write_snapshot(&sm.read().unwrap(), Vec::new(), &mut body).unwrap();
        body.resize(body.len().div_ceil(512) * 512, 0);
        let sha = Sha256::digest(&body);
        body.extend_from_slice(&sha);
        let path = dir.join("snap.db");
        std::fs::write(&path, body).unwrap();
        path
    }

    fn options(dir: &Path, bump_revision: u64, mark_compacted: bool) -> RestoreOptions {
        RestoreOptions {
            snapshot: snapshot_file(dir),
            data_dir: dir.join("restored"),
            name: "m0".into(),
            initial_cluster: "m0=http://127.0.0.1:2380".into(),
            initial_cluster_token: "t".into(),
            initial_advertise_peer_urls: Vec::new(),
            skip_hash_check: false,
            bump_revision,
            mark_compacted,
        }
    }

    fn range(txn: &redb::ReadTransaction, revs: Revs, key: &str, rev: i64) -> Result<Vec<String>> {
        let latest = txn.open_table(KV_LATEST)?;
        let history = txn.open_table(KV_HISTORY)?;
        let req = RangeRequest {
            key: key.into(),
            range_end: vec![0],
            revision: rev,
            ..Default::default()
        };
        Ok(read::range(&latest, &history, revs, &req)?
            .kvs
            .iter()
            .map(|kv| {
                format!(
                    "{}={}@{}",
                    String::from_utf8_lossy(&kv.key),
                    String::from_utf8_lossy(&kv.value),
                    kv.mod_revision
                )
            })
            .collect())
    }

    #[test]
    fn without_flags_the_snapshots_revision_and_compaction_point_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path(), 0, false);
        let s = restore(&opts).unwrap();
        assert_eq!(
            (s.snapshot_revision, s.revision, s.compact_revision),
            (5, 5, 3)
        );
        let sm = SmShared::open(&member_dir(&opts.data_dir)).unwrap();
        let revs = sm.revs();
        assert_eq!((revs.current, revs.compact), (5, 3));
        let txn = sm.read().unwrap();
        // The old history is still readable from the compaction point on.
        assert_eq!(range(&txn, revs, "", 3).unwrap(), ["a=1@2", "b=2@3"]);
    }

    #[test]
    fn a_bump_marked_compacted_starts_the_store_above_every_old_revision() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path(), 1000, true);
        let s = restore(&opts).unwrap();
        assert_eq!(
            (s.snapshot_revision, s.revision, s.compact_revision),
            (5, 1005, 1005)
        );
        let sm = SmShared::open(&member_dir(&opts.data_dir)).unwrap();
        let revs = sm.revs();
        assert_eq!((revs.current, revs.compact), (1005, 1005));

        let txn = sm.read().unwrap();
        assert_eq!(SmShared::revs_in(&txn).unwrap().compact, 1005);
        // Every revision of the old history, and of the gap, is compacted away.
        for rev in [3, 5, 6, 1004] {
            let e = range(&txn, revs, "", rev).unwrap_err();
            assert_eq!(e.to_string(), COMPACTED, "range at {rev}");
        }
        // The keys are the snapshot's, with their revisions; at the new revision too.
        let keys = ["a=3@4", "b=2@3", "c=4@5"];
        assert_eq!(range(&txn, revs, "", 0).unwrap(), keys);
        assert_eq!(range(&txn, revs, "", 1005).unwrap(), keys);
        assert_eq!(hash_kv(&txn, revs, 0).unwrap().1, 1005);
        assert_eq!(hash_kv(&txn, revs, 5).unwrap_err().to_string(), COMPACTED);
        drop(txn);

        // The next write gets the revision after the new one; a compaction at the compaction
        // point is refused, one above it works.
        let txn = sm.begin_write().unwrap();
        {
            let mut store = Store::open(&txn).unwrap();
            assert_eq!(put(&mut store, "d", "5"), 1006);
            assert_eq!(store.compact(1005).unwrap_err().to_string(), COMPACTED);
            store.compact(1006).unwrap();
        }
        txn.commit().unwrap();
        // A watch from the compaction point sees only the new write: the gap holds no events.
        let txn = sm.read().unwrap();
        let (events, scanned) = events_between(&txn, 1005, 1006, usize::MAX, &|_| true).unwrap();
        let revs: Vec<i64> = events
            .iter()
            .map(|e| e.kv.as_ref().unwrap().mod_revision)
            .collect();
        assert_eq!((revs, scanned), (vec![1006], 1006));
    }

    #[test]
    fn a_bump_and_mark_compacted_come_together() {
        for (bump, mark) in [(0, true), (1000, false)] {
            let dir = tempfile::tempdir().unwrap();
            let opts = options(dir.path(), bump, mark);
            let e = restore(&opts).unwrap_err();
            assert_eq!(e.to_string(), BUMP_NEEDS_MARK, "bump {bump}, mark {mark}");
            assert!(!opts.data_dir.exists(), "a refused restore left a data dir");
        }
        assert!(check_bump(0, false).is_ok());
        assert!(check_bump(1, true).is_ok());
    }

    #[test]
    fn a_bump_past_the_largest_revision_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path(), i64::MAX as u64, true);
        let e = restore(&opts).unwrap_err();
        assert!(e.to_string().contains("past the largest revision"), "{e}");
        assert!(!opts.data_dir.exists(), "a refused restore left a data dir");
    }
}
