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
        scan_history(latest, history, &span, rev, keep)?
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
    latest: &impl LatestTable,
    history: &impl HistoryTable,
    span: &Span,
    rev: i64,
    keep: usize,
) -> Result<(Vec<KeyValue>, usize)> {
    let rev = rev as u64;
    let mut out = Vec::new();
    let mut count = 0;
    let mut take = |kv: KeyValue, out: &mut Vec<KeyValue>| {
        if kv.version > 0 {
            count += 1;
            if out.len() < keep {
                out.push(kv);
            }
        }
    };
    match span {
        Span::Single(key) => {
            if let Some(kv) = version_at(latest, history, key, rev)? {
                take(kv, &mut out);
            }
        }
        Span::Range { .. } => {
            // Versions come in (key, revision) order: the newest one of each key that is not
            // after `rev` is what the key was at `rev`.
            let mut current: Option<Version> = None;
            for v in Versions::new(latest, history, span)? {
                let v = v?;
                if current.as_ref().is_some_and(|c| c.key != v.key) {
                    take(current.take().expect("checked").decode()?, &mut out);
                }
                if v.rev <= rev {
                    current = Some(v);
                }
            }
            if let Some(c) = current {
                take(c.decode()?, &mut out);
            }
        }
    }
    Ok((out, count))
}

/// The record of `key` at revision `rev` (a tombstone has `version == 0`), if it had one.
fn version_at(
    latest: &impl LatestTable,
    history: &impl HistoryTable,
    key: &[u8],
    rev: u64,
) -> Result<Option<KeyValue>> {
    if let Some(v) = latest.get(key)? {
        let kv = decode_kv(v.value())?;
        if kv.mod_revision as u64 <= rev {
            return Ok(Some(kv));
        }
    }
    history
        .range((key, 0u64)..=(key, rev))?
        .next_back()
        .transpose()?
        .map(|(_, v)| decode_kv(v.value()))
        .transpose()
}

/// One version of a key: its mod revision and its encoded `KeyValue`.
#[derive(Debug)]
pub struct Version {
    /// The key.
    pub key: Vec<u8>,
    /// Its mod revision.
    pub rev: u64,
    /// The encoded record (`version == 0`: a tombstone).
    pub bytes: Vec<u8>,
}

impl Version {
    /// The decoded record.
    pub fn decode(&self) -> Result<KeyValue> {
        decode_kv(&self.bytes)
    }
}

/// Every version of the keys in a span, in (key, revision) order: the superseded ones and
/// tombstones from `KV_HISTORY`, merged with the live one from `KV_LATEST` (each value is
/// stored once: a live version is in `KV_LATEST` only, and moves to `KV_HISTORY` when a
/// later write supersedes it).
pub struct Versions<'a> {
    latest: redb::Range<'a, &'static [u8], &'static [u8]>,
    history: redb::Range<'a, (&'static [u8], u64), &'static [u8]>,
    next_latest: Option<Version>,
    next_history: Option<Version>,
}

impl<'a> Versions<'a> {
    /// The versions of the keys in `span`.
    pub fn new(
        latest: &'a impl LatestTable,
        history: &'a impl HistoryTable,
        span: &Span,
    ) -> Result<Self> {
        let (start, end) = match span {
            Span::Single(k) => (k.as_slice(), Bound::Included(k.as_slice())),
            Span::Range { start, end } => (
                start.as_slice(),
                match end {
                    Bound::Excluded(e) => Bound::Excluded(e.as_slice()),
                    _ => Bound::Unbounded,
                },
            ),
        };
        let history_end = match end {
            Bound::Included(k) => Bound::Included((k, u64::MAX)),
            Bound::Excluded(k) => Bound::Excluded((k, 0u64)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut versions = Versions {
            latest: latest.range::<&[u8]>((Bound::Included(start), end))?,
            history: history.range((Bound::Included((start, 0u64)), history_end))?,
            next_latest: None,
            next_history: None,
        };
        versions.next_latest = versions.pull_latest()?;
        versions.next_history = versions.pull_history()?;
        Ok(versions)
    }

    fn pull_latest(&mut self) -> Result<Option<Version>> {
        let Some(item) = self.latest.next() else {
            return Ok(None);
        };
        let (k, v) = item?;
        let rev = decode_kv(v.value())?.mod_revision as u64;
        Ok(Some(Version {
            key: k.value().to_vec(),
            rev,
            bytes: v.value().to_vec(),
        }))
    }

    fn pull_history(&mut self) -> Result<Option<Version>> {
        let Some(item) = self.history.next() else {
            return Ok(None);
        };
        let (k, v) = item?;
        let (key, rev) = k.value();
        Ok(Some(Version {
            key: key.to_vec(),
            rev,
            bytes: v.value().to_vec(),
        }))
    }

    fn step(&mut self) -> Result<Option<Version>> {
        loop {
            let from_history = match (&self.next_latest, &self.next_history) {
                (None, None) => return Ok(None),
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(l), Some(h)) => {
                    match (h.key.as_slice(), h.rev).cmp(&(l.key.as_slice(), l.rev)) {
                        std::cmp::Ordering::Less => true,
                        std::cmp::Ordering::Greater => false,
                        std::cmp::Ordering::Equal => {
                            // A copy of the live version (as stores before format 3 kept one).
                            self.next_history = self.pull_history()?;
                            continue;
                        }
                    }
                }
            };
            return if from_history {
                let next = self.pull_history()?;
                Ok(std::mem::replace(&mut self.next_history, next))
            } else {
                let next = self.pull_latest()?;
                Ok(std::mem::replace(&mut self.next_latest, next))
            };
        }
    }
}

impl Iterator for Versions<'_> {
    type Item = Result<Version>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}

/// The live record of one key at the current revision.
pub fn get_latest(latest: &impl LatestTable, key: &[u8]) -> Result<Option<KeyValue>> {
    latest.get(key)?.map(|v| decode_kv(v.value())).transpose()
}
