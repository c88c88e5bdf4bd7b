//! [`Store`]: applying etcd write requests to the key space inside one redb write transaction.
//!
//! Callers validate requests first ([`super::txn::validate`] and the checks here run before any
//! mutation), so a request either applies whole or changes nothing. After each request,
//! [`Store::finish_request`] commits its revision: a request that changed nothing does not
//! bump it.

use redb::{ReadableTable, Table, WriteTransaction};

use super::Span;
use super::read::{self, Revs, Version, Versions, get_latest};
use super::tables::*;
use super::txn::compare_holds;
use crate::error::{EtcdError, Result};
use crate::pb::mvccpb::{Event, event::EventType};
use crate::pb::{
    CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, KeyValue, PutRequest, PutResponse,
    RangeRequest, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse, request_op,
    response_op,
};

/// The largest lease TTL etcd accepts, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// The key space opened for writing.
pub struct Store<'t> {
    latest: Table<'t, &'static [u8], &'static [u8]>,
    history: Table<'t, (&'static [u8], u64), &'static [u8]>,
    rev_index: Table<'t, (u64, u32), &'static [u8]>,
    meta: Table<'t, &'static str, &'static [u8]>,
    leases: Table<'t, i64, &'static [u8]>,
    lease_keys: Table<'t, (i64, &'static [u8]), ()>,
    revision: i64,
    compact: i64,
    /// The revision and next sub-revision of the request being applied, once it wrote.
    pending: Option<(i64, u32)>,
    /// Events produced since the store was opened, in order.
    pub events: Vec<Event>,
}

impl<'t> Store<'t> {
    /// Open every table of the key space in `txn`.
    pub fn open(txn: &'t WriteTransaction) -> Result<Self> {
        let meta = txn.open_table(META)?;
        let revision = meta_i64(&meta, META_REVISION)?.max(1);
        let compact = meta_i64(&meta, META_COMPACT)?;
        Ok(Store {
            latest: txn.open_table(KV_LATEST)?,
            history: txn.open_table(KV_HISTORY)?,
            rev_index: txn.open_table(REV_INDEX)?,
            meta,
            leases: txn.open_table(LEASES)?,
            lease_keys: txn.open_table(LEASE_KEYS)?,
            revision,
            compact,
            pending: None,
            events: Vec::new(),
        })
    }

    /// The revisions reads inside the current request see.
    pub fn revs(&self) -> Revs {
        Revs {
            current: self.pending.map_or(self.revision, |(r, _)| r),
            compact: self.compact,
        }
    }

    /// The committed main revision.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The compaction point.
    pub fn compact_revision(&self) -> i64 {
        self.compact
    }

    /// Read a META row.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Write a META row.
    pub fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.meta.insert(key, value)?;
        Ok(())
    }

    /// Close the current request: if it wrote, its revision becomes the store's.
    pub fn finish_request(&mut self) -> Result<i64> {
        if let Some((rev, _)) = self.pending.take() {
            self.revision = rev;
            self.meta
                .insert(META_REVISION, rev.to_be_bytes().as_slice())?;
        }
        Ok(self.revision)
    }

    fn next_slot(&mut self) -> (i64, u32) {
        let revision = self.revision;
        let slot = self.pending.get_or_insert((revision + 1, 0));
        let out = *slot;
        slot.1 += 1;
        out
    }

    fn header(&self) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            revision: self.revs().current,
            ..Default::default()
        })
    }

    /// Range inside the transaction (sees the request's own earlier writes).
    pub fn range(&self, req: &RangeRequest) -> Result<crate::pb::RangeResponse> {
        read::range(&self.latest, &self.history, self.revs(), req)
    }

    fn check_put(&self, req: &PutRequest) -> Result<()> {
        if req.key.is_empty() {
            return Err(EtcdError::KeyNotProvided.into());
        }
        if (req.ignore_value || req.ignore_lease) && self.latest.get(req.key.as_slice())?.is_none()
        {
            return Err(EtcdError::KeyNotFound.into());
        }
        if !req.ignore_lease && req.lease != 0 && self.leases.get(req.lease)?.is_none() {
            return Err(EtcdError::LeaseNotFound.into());
        }
        Ok(())
    }

    /// Apply a put.
    pub fn put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        self.check_put(req)?;
        let prev = get_latest(&self.latest, &req.key)?;
        let (rev, sub) = self.next_slot();
        let value = match (&prev, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        };
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value,
            lease,
        };
        let bytes = encode_kv(&kv);
        // The superseded version moves to history; the live one is stored in KV_LATEST only.
        if let Some(old) = self.latest.insert(req.key.as_slice(), bytes.as_slice())?
            && let Some(p) = &prev
        {
            self.history
                .insert((req.key.as_slice(), p.mod_revision as u64), old.value())?;
        }
        self.rev_index
            .insert((rev as u64, sub), req.key.as_slice())?;
        let old_lease = prev.as_ref().map_or(0, |p| p.lease);
        if old_lease != 0 && old_lease != lease {
            self.lease_keys.remove((old_lease, req.key.as_slice()))?;
        }
        if lease != 0 {
            self.lease_keys.insert((lease, req.key.as_slice()), ())?;
        }
        self.events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: prev.clone(),
        });
        Ok(PutResponse {
            header: self.header(),
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    /// Apply a delete-range.
    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        if req.key.is_empty() {
            return Err(EtcdError::KeyNotProvided.into());
        }
        let span = Span::new(&req.key, &req.range_end);
        let (victims, _) = read::scan_latest(&self.latest, &span, usize::MAX)?;
        for prev in &victims {
            self.delete_key(prev)?;
        }
        Ok(DeleteRangeResponse {
            header: self.header(),
            deleted: victims.len() as i64,
            prev_kvs: if req.prev_kv { victims } else { Vec::new() },
        })
    }

    fn delete_key(&mut self, prev: &KeyValue) -> Result<()> {
        let (rev, sub) = self.next_slot();
        let tomb = KeyValue {
            key: prev.key.clone(),
            mod_revision: rev,
            ..Default::default()
        };
        if let Some(old) = self.latest.remove(prev.key.as_slice())? {
            self.history
                .insert((prev.key.as_slice(), prev.mod_revision as u64), old.value())?;
        }
        self.history.insert(
            (prev.key.as_slice(), rev as u64),
            encode_kv(&tomb).as_slice(),
        )?;
        self.rev_index
            .insert((rev as u64, sub), prev.key.as_slice())?;
        if prev.lease != 0 {
            self.lease_keys.remove((prev.lease, prev.key.as_slice()))?;
        }
        self.events.push(Event {
            r#type: EventType::Delete as i32,
            kv: Some(tomb),
            prev_kv: Some(prev.clone()),
        });
        Ok(())
    }

    /// Apply a txn (validated by [`super::txn::validate`]).
    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse> {
        let mut succeeded = true;
        for c in &req.compare {
            if !compare_holds(&self.latest, c)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        self.check_ops(ops)?;
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(self.apply_op(op)?);
        }
        let header = self.header();
        // Inner responses report the revision the txn ends at.
        for r in &mut responses {
            set_inner_revision(r, header.as_ref().map_or(0, |h| h.revision));
        }
        Ok(TxnResponse {
            header,
            succeeded,
            responses,
        })
    }

    /// Everything that can make an op fail, checked before the txn writes anything. Nested
    /// txns have both branches checked, since which runs is decided mid-way.
    fn check_ops(&self, ops: &[RequestOp]) -> Result<()> {
        for op in ops {
            match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    self.revs().resolve(r.revision)?;
                }
                Some(request_op::Request::RequestPut(p)) => self.check_put(p)?,
                Some(request_op::Request::RequestTxn(t)) => {
                    self.check_ops(&t.success)?;
                    self.check_ops(&t.failure)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn apply_op(&mut self, op: &RequestOp) -> Result<ResponseOp> {
        use response_op::Response as R;
        let response = match &op.request {
            Some(request_op::Request::RequestRange(r)) => R::ResponseRange(self.range(r)?),
            Some(request_op::Request::RequestPut(p)) => R::ResponsePut(self.put(p)?),
            Some(request_op::Request::RequestDeleteRange(d)) => {
                R::ResponseDeleteRange(self.delete_range(d)?)
            }
            Some(request_op::Request::RequestTxn(t)) => R::ResponseTxn(self.txn(t)?),
            None => R::ResponseRange(Default::default()),
        };
        Ok(ResponseOp {
            response: Some(response),
        })
    }

    /// Compact history up to `rev`.
    pub fn compact(&mut self, rev: i64) -> Result<CompactionResponse> {
        if rev <= self.compact {
            return Err(EtcdError::Compacted.into());
        }
        if rev > self.revision {
            return Err(EtcdError::FutureRev.into());
        }
        let at = rev as u64;
        // For each key keep the newest version at or below `rev` when it is live (or is the
        // tombstone written exactly at `rev`, which watchers starting there still replay), and
        // every version after `rev`. A live version in KV_LATEST is never removed.
        let mut doomed: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut group: Vec<Version> = Vec::new();
        let mut close = |group: &mut Vec<Version>| -> Result<()> {
            if let Some(last) = group.last() {
                let keep_last = last.rev == at || last.decode()?.version > 0;
                let n = group.len() - usize::from(keep_last);
                doomed.extend(group.drain(..n).map(|v| (v.key, v.rev)));
            }
            group.clear();
            Ok(())
        };
        for v in Versions::new(&self.latest, &self.history, &Span::new(&[0], &[0]))? {
            let v = v?;
            if group.first().is_some_and(|g| g.key != v.key) {
                close(&mut group)?;
            }
            if v.rev <= at {
                group.push(v);
            }
        }
        close(&mut group)?;
        for (key, r) in &doomed {
            self.history.remove((key.as_slice(), *r))?;
        }
        self.rev_index.retain_in(..(at, 0u32), |_, _| false)?;
        self.compact = rev;
        self.meta
            .insert(META_COMPACT, rev.to_be_bytes().as_slice())?;
        Ok(CompactionResponse {
            header: self.header(),
        })
    }

    /// Grant a lease with a caller-chosen id.
    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<()> {
        if ttl > MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge.into());
        }
        if self.leases.get(id)?.is_some() {
            return Err(EtcdError::LeaseExists.into());
        }
        self.leases
            .insert(id, encode(&LeaseRecord { ttl }).as_slice())?;
        Ok(())
    }

    /// Revoke a lease, deleting every key attached to it.
    pub fn lease_revoke(&mut self, id: i64) -> Result<()> {
        if self.leases.remove(id)?.is_none() {
            return Err(EtcdError::LeaseNotFound.into());
        }
        let mut keys = Vec::new();
        for item in self.lease_keys.range((id, &[][..])..)? {
            let (k, _) = item?;
            let (lid, key) = k.value();
            if lid != id {
                break;
            }
            keys.push(key.to_vec());
        }
        for key in keys {
            if let Some(prev) = get_latest(&self.latest, &key)? {
                self.delete_key(&prev)?;
            }
            self.lease_keys.remove((id, key.as_slice()))?;
        }
        Ok(())
    }
}

/// Put each (key, value) as a request of its own in `txn`: how tests fill a store.
#[cfg(test)]
pub fn put_each<K: Into<Vec<u8>>, V: Into<Vec<u8>>>(
    txn: &WriteTransaction,
    pairs: impl IntoIterator<Item = (K, V)>,
) {
    let mut s = Store::open(txn).unwrap();
    for (k, v) in pairs {
        s.put(&PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        })
        .unwrap();
        s.finish_request().unwrap();
    }
}

fn set_inner_revision(r: &mut ResponseOp, rev: i64) {
    use response_op::Response as R;
    let h = Some(ResponseHeader {
        revision: rev,
        ..Default::default()
    });
    match &mut r.response {
        Some(R::ResponsePut(p)) => p.header = h,
        Some(R::ResponseDeleteRange(d)) => d.header = h,
        Some(R::ResponseTxn(t)) => t.header = h,
        Some(R::ResponseRange(_)) | None => {}
    }
}
