//! Ranges over the key space at the current revision or a past one.
//!
//! Pure functions over any readable redb tables, so they serve serializable reads from a
//! read transaction and the reads inside a txn from the write transaction alike.

use std::ops::Bound;

use redb::ReadableTable;

use super::Span;
use super::tables::decode_kv;
use crate::error::{EtcdError, Result};
use crate::pb::{KeyValue, RangeRequest, RangeResponse, ResponseHeader, range_request};

/// Readable `KV_LATEST`.
pub trait LatestTable: ReadableTable<&'static [u8], &'static [u8]> {}
impl<T: ReadableTable<&'static [u8], &'static [u8]>> LatestTable for T {}
/// Readable `KV_HISTORY`.
pub trait HistoryTable: ReadableTable<(&'static [u8], u64), &'static [u8]> {}
impl<T: ReadableTable<(&'static [u8], u64), &'static [u8]>> HistoryTable for T {}

/// The revisions a read is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Revs {
    /// The current main revision.
    pub current: i64,
    /// The compaction point.
    pub compact: i64,
}

impl Revs {
    /// The revision a request for `rev` reads at (`rev <= 0` = current), or etcd's error.
    pub fn resolve(&self, rev: i64) -> Result<i64> {
        if rev <= 0 {
            return Ok(self.current);
        }
        if rev > self.current {
            return Err(EtcdError::FutureRev.into());
        }
        if rev < self.compact {
            return Err(EtcdError::Compacted.into());
        }
        Ok(rev)
    }
}

/// Serve a `RangeRequest` (the header carries only the revision).
pub fn range(
    latest: &impl LatestTable,
    history: &impl HistoryTable,
    revs: Revs,
    req: &RangeRequest,
) -> Result<RangeResponse> {
    let rev = revs.resolve(req.revision)?;
    let span = Span::new(&req.key, &req.range_end);
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let sorted = req.sort_order != range_request::SortOrder::None as i32
        || req.sort_target != range_request::SortTarget::Key as i32;
    // Without sorting or filters the first `limit + 1` keys decide `more`.
    let keep = if sorted || filtered || req.limit <= 0 {
        usize::MAX
    } else {
        req.limit as usize + 1
    };
    let keep = if req.count_only { 0 } else { keep };
    let (mut kvs, count) = if rev == revs.current {
        scan_latest(latest, &span, keep)?
    } else {
        scan_history(history, &span, rev, keep)?
    };
    if filtered {
        kvs.retain(|kv| {
            (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
                && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
        });
    }
    if sorted {
        sort(&mut kvs, req.sort_target, req.sort_order);
    }
    let mut more = false;
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse {
        header: Some(ResponseHeader {
            revision: revs.current,
            ..Default::default()
        }),
        kvs,
        more,
        count: count as i64,
    })
}

fn sort(kvs: &mut [KeyValue], target: i32, order: i32) {
    use range_request::{SortOrder, SortTarget};
    let target = SortTarget::try_from(target).unwrap_or(SortTarget::Key);
    let mut order = SortOrder::try_from(order).unwrap_or(SortOrder::None);
    if order == SortOrder::None {
        if target == SortTarget::Key {
            return;
        }
        order = SortOrder::Ascend;
    }
    kvs.sort_by(|a, b| {
        let o = match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        };
        if order == SortOrder::Descend {
            o.reverse()
        } else {
            o
        }
    });
}

/// Live keys in `span` at the current revision: up to `keep` decoded, and the total count.
pub fn scan_latest(
    latest: &impl LatestTable,
    span: &Span,
    keep: usize,
) -> Result<(Vec<KeyValue>, usize)> {
    let mut out = Vec::new();
    match span {
        Span::Single(key) => {
            if let Some(v) = latest.get(key.as_slice())? {
                if keep > 0 {
                    out.push(decode_kv(v.value())?);
                }
                return Ok((out, 1));
            }
            Ok((out, 0))
        }
        Span::Range { start, end } => {
            let end = match end {
                Bound::Excluded(e) => Bound::Excluded(e.as_slice()),
                _ => Bound::Unbounded,
            };
            let mut count = 0;
            for item in latest.range::<&[u8]>((Bound::Included(start.as_slice()), end))? {
                let (_, v) = item?;
                if out.len() < keep {
                    out.push(decode_kv(v.value())?);
                }
                count += 1;
            }
            Ok((out, count))
        }
    }
}

/// Keys in `span` as they were at revision `rev`: up to `keep` decoded, and the total count.
pub fn scan_history(
    history: &impl HistoryTable,
    span: &Span,
    rev: i64,
    keep: usize,
) -> Result<(Vec<KeyValue>, usize)> {
    let rev = rev as u64;
    let mut out = Vec::new();
    let mut count = 0;
    match span {
        Span::Single(key) => {
            let k = key.as_slice();
            if let Some(item) = history.range((k, 0u64)..=(k, rev))?.next_back() {
                let (_, v) = item?;
                let kv = decode_kv(v.value())?;
                if kv.version > 0 {
                    count = 1;
                    if keep > 0 {
                        out.push(kv);
                    }
                }
            }
        }
        Span::Range { start, end } => {
            let lo = Bound::Included((start.as_slice(), 0u64));
            let hi = match end {
                Bound::Excluded(e) => Bound::Excluded((e.as_slice(), 0u64)),
                _ => Bound::Unbounded,
            };
            // Walk versions in (key, revision) order; remember the newest version of the
            // current key that is not after `rev`.
            let mut current: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
            let flush = |cur: Option<(Vec<u8>, Option<Vec<u8>>)>,
                         out: &mut Vec<KeyValue>,
                         count: &mut usize|
             -> Result<()> {
                if let Some((_, Some(bytes))) = cur {
                    let kv = decode_kv(&bytes)?;
                    if kv.version > 0 {
                        *count += 1;
                        if out.len() < keep {
                            out.push(kv);
                        }
                    }
                }
                Ok(())
            };
            for item in history.range((lo, hi))? {
                let (k, v) = item?;
                let (key, r) = k.value();
                let same = current.as_ref().is_some_and(|(ck, _)| ck.as_slice() == key);
                if !same {
                    flush(current.take(), &mut out, &mut count)?;
                    current = Some((key.to_vec(), None));
                }
                if r <= rev
                    && let Some((_, slot)) = current.as_mut()
                {
                    *slot = Some(v.value().to_vec());
                }
            }
            flush(current.take(), &mut out, &mut count)?;
        }
    }
    Ok((out, count))
}

/// The live record of one key at the current revision.
pub fn get_latest(latest: &impl LatestTable, key: &[u8]) -> Result<Option<KeyValue>> {
    latest.get(key)?.map(|v| decode_kv(v.value())).transpose()
}
