//! `Hash` and `HashKV`: CRC-32C digests that agree on every member at the same revision.

use redb::{ReadTransaction, ReadableTable};

use super::read::Revs;
use super::tables::*;
use crate::error::Result;

/// CRC-32C over every version of every key with a mod revision at or below `rev` (after
/// compaction this is the same on every member that applied the same entries).
pub fn hash_kv(txn: &ReadTransaction, revs: Revs, rev: i64) -> Result<(u32, i64)> {
    let rev = revs.resolve(rev)?;
    let history = txn.open_table(KV_HISTORY)?;
    let mut crc = 0u32;
    for item in history.iter()? {
        let (k, v) = item?;
        let (key, r) = k.value();
        if r as i64 > rev {
            continue;
        }
        crc = crc32c::crc32c_append(crc, key);
        crc = crc32c::crc32c_append(crc, &r.to_be_bytes());
        crc = crc32c::crc32c_append(crc, v.value());
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
