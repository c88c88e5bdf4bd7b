//! Client snapshots as files: verifying them (`snapshot status`) and restoring one into a fresh
//! data directory that starts a **new** cluster (new cluster id, fresh Raft state) holding the
//! snapshot's keys, as `etcdctl snapshot restore` does.
//!
//! A client snapshot is the state-machine dump of [`crate::raft::snapshot`], zero-padded to a
//! multiple of 512 bytes, followed by the 32-byte SHA-256 of everything before it.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::parse_initial_cluster;
use crate::error::{Error, Result};
use crate::mvcc::tables::*;
use crate::raft::log_store::LogStore;
use crate::raft::snapshot::{Record, clear_tables, load_records, read_header, read_record};
use crate::raft::state_machine::SmShared;
use crate::server::{Identity, member_dir, members_of, write_identity};

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
    read_header(&mut r)?;
    let mut hash = 0u32;
    let mut revision = 0;
    let mut total_keys = 0;
    loop {
        match read_record(&mut r)? {
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
}

/// What a restore produced.
#[derive(Debug, Clone)]
pub struct RestoreSummary {
    /// The new cluster id.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// The revision restored.
    pub revision: i64,
}

/// Build a fresh data directory from a snapshot.
pub fn restore(opts: &RestoreOptions) -> Result<RestoreSummary> {
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
    std::fs::create_dir_all(&dir)?;
    let result = (|| {
        let sm = SmShared::open(&dir)?;
        let mut r = BufReader::new(std::fs::File::open(&opts.snapshot)?);
        read_header(&mut r)?;
        let txn = sm.begin_write()?;
        clear_tables(&txn)?;
        load_records(&txn, &mut r)?;
        // The new cluster has none of the old one's members, alarms or pending promotions.
        txn.open_table(MEMBERS)?.retain(|_, _| false)?;
        txn.open_table(ALARMS)?.retain(|_, _| false)?;
        txn.open_table(META)?.remove(META_PENDING_VOTERS)?;
        let revision = meta_i64(&txn.open_table(META)?, META_REVISION)?.max(1);
        txn.commit()?;
        let log_db = Arc::new(crate::raft::log_store::open_log_db(&dir.join("raft.redb"))?);
        LogStore::new(log_db.clone())?;
        write_identity(
            &log_db,
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
            revision,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&opts.data_dir);
    }
    result
}
