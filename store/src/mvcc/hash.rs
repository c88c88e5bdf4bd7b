//! `Hash` and `HashKV`: CRC-32C digests that agree on every member at the same revision.

use redb::{ReadTransaction, ReadableTable};

use super::Span;
use super::read::{Revs, Versions};
use super::tables::*;
use crate::error::Result;

/// CRC-32C over every version of every key with a mod revision at or below `rev` (after
/// compaction this is the same on every member that applied the same entries).
pub fn hash_kv(txn: &ReadTransaction, revs: Revs, rev: i64) -> Result<(u32, i64)> {
    let rev = revs.resolve(rev)?;
    let history = txn.open_table(KV_HISTORY)?;
    let latest = txn.open_table(KV_LATEST)?;
    let mut crc = 0u32;
    // Every version in (key, revision) order, wherever it is stored: the digest depends on the
    // versions only, not on the layout of the tables.
    for v in Versions::new(&latest, &history, &Span::new(&[0], &[0]))? {
        let v = v?;
        if v.rev as i64 > rev {
            continue;
        }
        crc = crc32c::crc32c_append(crc, &v.key);
        crc = crc32c::crc32c_append(crc, &v.rev.to_be_bytes());
        crc = crc32c::crc32c_append(crc, &v.bytes);
    }
    Ok((crc, rev))
}

/// CRC-32C over the whole replicated key space: live keys, history, leases and the revisions.
pub fn hash_all(txn: &ReadTransaction, revs: Revs) -> Result<u32> {
    let (mut crc, _) = hash_kv(txn, revs, 0)?;
    let latest = txn.open_table(KV_LATEST)?;
    for item in latest.iter()? {
        let (k, v) = item?;
        crc = crc32c::crc32c_append(crc, k.value());
        crc = crc32c::crc32c_append(crc, v.value());
    }
    let leases = txn.open_table(LEASES)?;
    for item in leases.iter()? {
        let (k, v) = item?;
        crc = crc32c::crc32c_append(crc, &k.value().to_be_bytes());
        crc = crc32c::crc32c_append(crc, v.value());
    }
    crc = crc32c::crc32c_append(crc, &revs.current.to_be_bytes());
    crc = crc32c::crc32c_append(crc, &revs.compact.to_be_bytes());
    Ok(crc)
}
