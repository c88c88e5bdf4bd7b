//! Events from history: the changes between two revisions, rebuilt from `REV_INDEX`,
//! `KV_HISTORY` and `KV_LATEST`, for watchers that start in the past or fell behind.

use redb::ReadTransaction;

use super::tables::*;
use crate::error::Result;
use crate::pb::KeyValue;
use crate::pb::mvccpb::{Event, event::EventType};

/// Events with revision in `[from, to]` whose key `wanted` accepts, up to about `limit_bytes`
/// revisions' worth (all events of the last revision included). Returns the events and the
/// last revision scanned.
pub fn events_between(
    txn: &ReadTransaction,
    from: i64,
    to: i64,
    limit_bytes: usize,
    wanted: &dyn Fn(&[u8]) -> bool,
) -> Result<(Vec<Event>, i64)> {
    let index = txn.open_table(REV_INDEX)?;
    let history = txn.open_table(KV_HISTORY)?;
    let latest = txn.open_table(KV_LATEST)?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut scanned = from - 1;
    let lo = (from.max(1) as u64, 0u32);
    let hi = (to.max(0) as u64, u32::MAX);
    for item in index.range(lo..=hi)? {
        let (k, v) = item?;
        let (rev, _) = k.value();
        let rev = rev as i64;
        if rev != scanned && bytes >= limit_bytes {
            break;
        }
        scanned = rev;
        let key = v.value();
        if !wanted(key) {
            continue;
        }
        // The version written at `rev`: in history once superseded, else the live one.
        let kv = match history.get((key, rev as u64))? {
            Some(rec) => decode_kv(rec.value())?,
            None => match latest.get(key)? {
                Some(rec) => decode_kv(rec.value())?,
                None => continue,
            },
        };
        if kv.mod_revision != rev {
            continue;
        }
        let prev = history
            .range((key, 0u64)..(key, rev as u64))?
            .next_back()
            .transpose()?
            .map(|(_, v)| decode_kv(v.value()))
            .transpose()?
            .filter(|p: &KeyValue| p.version > 0);
        bytes += kv.key.len() + kv.value.len() + prev.as_ref().map_or(0, |p| p.value.len()) + 64;
        let r#type = if kv.version == 0 {
            EventType::Delete
        } else {
            EventType::Put
        };
        out.push(Event {
            r#type: r#type as i32,
            kv: Some(kv),
            prev_kv: prev,
        });
    }
    if bytes < limit_bytes {
        scanned = to;
    }
    Ok((out, scanned))
}
