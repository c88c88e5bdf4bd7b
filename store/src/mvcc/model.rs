//! A reference model of etcd's MVCC semantics (a map of version lists) and property tests
//! that drive the redb implementation and the model with the same random operations.

use std::collections::BTreeMap;

use proptest::prelude::*;
use redb::{Database, Durability, ReadableDatabase};

use super::Span;
use super::events::events_between;
use super::hash::hash_kv;
use super::read::{self, Revs};
use super::tables::*;
use super::write::Store;
use crate::error::{Error, EtcdError};
use crate::pb::mvccpb::{Event, event::EventType};
use crate::pb::{
    Compare, DeleteRangeRequest, KeyValue, PutRequest, RangeRequest, RequestOp, TxnRequest,
    compare, request_op,
};

/// The model: every version of every key, tombstones as `None`.
#[derive(Default, Debug)]
struct Model {
    rev: i64,
    compact: i64,
    versions: BTreeMap<Vec<u8>, Vec<(i64, Option<KeyValue>)>>,
}

impl Model {
    fn new() -> Self {
        Model {
            rev: 1,
            ..Default::default()
        }
    }

    fn live(&self, key: &[u8]) -> Option<KeyValue> {
        self.versions
            .get(key)
            .and_then(|v| v.last())
            .and_then(|(_, kv)| kv.clone())
    }

    fn put(&mut self, key: &[u8], value: &[u8], rev: i64) -> Option<KeyValue> {
        let prev = self.live(key);
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: value.to_vec(),
            lease: 0,
        };
        self.versions
            .entry(key.to_vec())
            .or_default()
            .push((rev, Some(kv)));
        prev
    }

    fn delete(&mut self, span: &Span, rev: i64) -> Vec<KeyValue> {
        let keys: Vec<Vec<u8>> = self
            .versions
            .keys()
            .filter(|k| span.contains(k))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for k in keys {
            if let Some(prev) = self.live(&k) {
                self.versions.get_mut(&k).unwrap().push((rev, None));
                out.push(prev);
            }
        }
        out
    }

    fn range(&self, span: &Span, at: i64) -> Result<Vec<KeyValue>, EtcdError> {
        let at = if at <= 0 { self.rev } else { at };
        if at > self.rev {
            return Err(EtcdError::FutureRev);
        }
        if at < self.compact {
            return Err(EtcdError::Compacted);
        }
        Ok(self
            .versions
            .iter()
            .filter(|(k, _)| span.contains(k))
            .filter_map(|(_, vs)| {
                vs.iter()
                    .rev()
                    .find(|(r, _)| *r <= at)
                    .and_then(|(_, kv)| kv.clone())
            })
            .collect())
    }

    /// The versions a store keeps after the compactions so far, in (key, revision) order, as
    /// (key, revision, record) with tombstones as etcd writes them.
    fn kept(&self) -> Vec<(Vec<u8>, i64, KeyValue)> {
        let mut out = Vec::new();
        for (k, vs) in &self.versions {
            let newest_compacted = vs.iter().rposition(|(r, _)| *r <= self.compact);
            for (i, (r, kv)) in vs.iter().enumerate() {
                if *r <= self.compact {
                    // Of the compacted versions only the newest stays, if live or at the point.
                    let keep = Some(i) == newest_compacted && (kv.is_some() || *r == self.compact);
                    if !keep {
                        continue;
                    }
                }
                let record = kv.clone().unwrap_or_else(|| KeyValue {
                    key: k.clone(),
                    mod_revision: *r,
                    ..Default::default()
                });
                out.push((k.clone(), *r, record));
            }
        }
        out
    }

    /// `HashKV` at the current revision over [`Self::kept`].
    fn hash(&self) -> u32 {
        let mut crc = 0u32;
        for (k, r, kv) in self.kept() {
            crc = crc32c::crc32c_append(crc, &k);
            crc = crc32c::crc32c_append(crc, &(r as u64).to_be_bytes());
            crc = crc32c::crc32c_append(crc, &encode_kv(&kv));
        }
        crc
    }

    /// The events of revisions `from..=self.rev`, in (revision, key) order (the order of
    /// sub-revisions in the operations the tests make).
    fn events(&self, from: i64) -> Vec<Event> {
        let kept = self.kept();
        let mut out: Vec<(i64, Vec<u8>, Event)> = Vec::new();
        for (i, (k, r, kv)) in kept.iter().enumerate() {
            if *r < from {
                continue;
            }
            let prev = (i > 0 && kept[i - 1].0 == *k)
                .then(|| kept[i - 1].2.clone())
                .filter(|p| p.version > 0);
            let r#type = if kv.version > 0 {
                EventType::Put
            } else {
                EventType::Delete
            };
            let event = Event {
                r#type: r#type as i32,
                kv: Some(kv.clone()),
                prev_kv: prev,
            };
            out.push((*r, k.clone(), event));
        }
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        out.into_iter().map(|(_, _, e)| e).collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Delete(u8, Option<u8>),
    /// If key `k` has `version`, put (k2, v) else delete k2.
    Txn {
        k: u8,
        version: i64,
        k2: u8,
        v: u8,
    },
    Compact(i64),
    Range(u8, Option<u8>, i64),
}

fn key(i: u8) -> Vec<u8> {
    vec![b'a' + (i % 6)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 0u8..4).prop_map(|(k, v)| Op::Put(k, v)),
        1 => (0u8..6, proptest::option::of(0u8..7)).prop_map(|(k, e)| Op::Delete(k, e)),
        1 => (0u8..6, 0i64..3, 0u8..6, 0u8..4).prop_map(|(k, version, k2, v)| Op::Txn { k, version, k2, v }),
        1 => (0i64..40).prop_map(Op::Compact),
        2 => (0u8..6, proptest::option::of(0u8..7), -1i64..40).prop_map(|(k, e, r)| Op::Range(k, e, r)),
    ]
}

fn end(e: Option<u8>) -> Vec<u8> {
    match e {
        None => Vec::new(),
        Some(6) => vec![0],
        Some(i) => key(i),
    }
}

fn etcd(e: Error) -> EtcdError {
    match e {
        Error::Etcd(e) => e,
        other => panic!("storage error: {other}"),
    }
}

fn read_all(db: &Database, rev: i64) -> Result<(Vec<KeyValue>, i64), EtcdError> {
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    let revs = Revs {
        current: meta_i64(&meta, META_REVISION).unwrap().max(1),
        compact: meta_i64(&meta, META_COMPACT).unwrap(),
    };
    let latest = txn.open_table(KV_LATEST).unwrap();
    let history = txn.open_table(KV_HISTORY).unwrap();
    let req = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        revision: rev,
        ..Default::default()
    };
    let r = read::range(&latest, &history, revs, &req).map_err(etcd)?;
    Ok((r.kvs, r.count))
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("s.redb")).unwrap();
    {
        let txn = db.begin_write().unwrap();
        Store::open(&txn).unwrap();
        txn.commit().unwrap();
    }
    let mut m = Model::new();
    for op in ops {
        let mut txn = db.begin_write().unwrap();
        txn.set_durability(Durability::None).unwrap();
        {
            let mut s = Store::open(&txn).unwrap();
            let next = m.rev + 1;
            match &op {
                Op::Put(k, v) => {
                    let req = PutRequest {
                        key: key(*k),
                        value: vec![*v],
                        prev_kv: true,
                        ..Default::default()
                    };
                    let r = s.put(&req).unwrap();
                    let prev = m.put(&key(*k), &[*v], next);
                    m.rev = next;
                    assert_eq!(r.prev_kv, prev);
                    assert_eq!(r.header.unwrap().revision, m.rev);
                }
                Op::Delete(k, e) => {
                    let req = DeleteRangeRequest {
                        key: key(*k),
                        range_end: end(*e),
                        prev_kv: true,
                    };
                    let r = s.delete_range(&req).unwrap();
                    let gone = m.delete(&Span::new(&key(*k), &end(*e)), next);
                    if !gone.is_empty() {
                        m.rev = next;
                    }
                    assert_eq!(r.prev_kvs, gone);
                    assert_eq!(r.deleted, gone.len() as i64);
                }
                Op::Txn { k, version, k2, v } => {
                    let cmp = Compare {
                        result: compare::CompareResult::Equal as i32,
                        target: compare::CompareTarget::Version as i32,
                        key: key(*k),
                        target_union: Some(compare::TargetUnion::Version(*version)),
                        range_end: Vec::new(),
                    };
                    let put = RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: key(*k2),
                            value: vec![*v],
                            ..Default::default()
                        })),
                    };
                    let del = RequestOp {
                        request: Some(request_op::Request::RequestDeleteRange(
                            DeleteRangeRequest {
                                key: key(*k2),
                                ..Default::default()
                            },
                        )),
                    };
                    let req = TxnRequest {
                        compare: vec![cmp],
                        success: vec![put],
                        failure: vec![del],
                    };
                    let r = s.txn(&req).unwrap();
                    let ok = m.live(&key(*k)).map_or(0, |kv| kv.version) == *version;
                    assert_eq!(r.succeeded, ok);
                    if ok {
                        m.put(&key(*k2), &[*v], next);
                        m.rev = next;
                    } else if !m.delete(&Span::Single(key(*k2)), next).is_empty() {
                        m.rev = next;
                    }
                }
                Op::Compact(c) => {
                    let r = s.compact(*c).map_err(etcd);
                    let expect = if *c <= m.compact {
                        Err(EtcdError::Compacted)
                    } else if *c > m.rev {
                        Err(EtcdError::FutureRev)
                    } else {
                        m.compact = *c;
                        Ok(())
                    };
                    assert_eq!(r.map(|_| ()), expect);
                }
                Op::Range(k, e, rev) => {
                    let req = RangeRequest {
                        key: key(*k),
                        range_end: end(*e),
                        revision: *rev,
                        ..Default::default()
                    };
                    let got = s.range(&req).map(|r| r.kvs).map_err(etcd);
                    assert_eq!(got, m.range(&Span::new(&key(*k), &end(*e)), *rev));
                }
            }
            s.finish_request().unwrap();
        }
        txn.commit().unwrap();
        // Every readable revision agrees with the model after every step.
        for rev in (m.compact.max(1))..=m.rev {
            let got = read_all(&db, rev).map(|(kvs, _)| kvs);
            assert_eq!(
                got,
                m.range(&Span::new(&[0], &[0]), rev),
                "at revision {rev} after {op:?}"
            );
        }
        if m.compact > 1 {
            assert_eq!(
                read_all(&db, m.compact - 1).map(|_| ()),
                Err(EtcdError::Compacted)
            );
        }
        assert_eq!(
            read_all(&db, m.rev + 1).map(|_| ()),
            Err(EtcdError::FutureRev)
        );
        // The digest and the replayed events depend on the versions alone.
        let txn = db.begin_read().unwrap();
        let revs = Revs {
            current: m.rev,
            compact: m.compact,
        };
        assert_eq!(
            hash_kv(&txn, revs, 0).unwrap().0,
            m.hash(),
            "HashKV after {op:?}"
        );
        let from = m.compact + 1;
        let (events, _) = events_between(&txn, from, m.rev, usize::MAX, &|_| true).unwrap();
        assert_eq!(events, m.events(from), "events from {from} after {op:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn mvcc_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
