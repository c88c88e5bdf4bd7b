//! The reference model of etcd's KV semantics: one store state (revision, compact revision,
//! keys, leases) and what a request does to it. The linearizability search steps it millions
//! of times, so the maps are persistent (`imbl`: a clone shares everything, an update copies a
//! path) and the state keeps an incremental fingerprint so the memo cache hashes it in O(1).

use std::hash::{DefaultHasher, Hash, Hasher};

use imbl::{OrdMap, OrdSet};

use super::etcd::{
    ERR_COMPACTED, ERR_FUTURE_REV, ERR_LEASE_EXISTS, ERR_LEASE_NOT_FOUND, holds, matches,
};
use super::history::{EventKind, KeyValue, Request, Response, TxnOp, TxnOpResult, WatchEvent};

/// One state of the store.
#[derive(Clone, Debug)]
pub struct State {
    revision: i64,
    compact_revision: i64,
    kvs: OrdMap<Vec<u8>, KeyValue>,
    leases: OrdMap<i64, OrdSet<Vec<u8>>>,
    fingerprint: u64,
}

/// What applying a request did.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The state after it.
    pub state: State,
    /// The response the model would give.
    pub response: Response,
    /// Whether the state changed (a no-op can be linearized anywhere it fits).
    pub changed: bool,
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        self.revision == other.revision
            && self.compact_revision == other.compact_revision
            && self.fingerprint == other.fingerprint
            && self.kvs == other.kvs
            && self.leases == other.leases
    }
}

impl Eq for State {}

impl Hash for State {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self.revision, self.compact_revision, self.fingerprint).hash(h);
    }
}

fn mix(tag: u8, f: impl FnOnce(&mut DefaultHasher)) -> u64 {
    let mut h = DefaultHasher::new();
    tag.hash(&mut h);
    f(&mut h);
    h.finish()
}

impl State {
    /// An empty store: revision 1, nothing compacted (etcd accepts a compaction at 0, so the
    /// compact revision starts below it).
    pub fn new() -> State {
        State {
            revision: 1,
            compact_revision: -1,
            kvs: OrdMap::new(),
            leases: OrdMap::new(),
            fingerprint: 0,
        }
    }

    /// The store revision.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The compact revision (-1 before any compaction).
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// A key, if it exists.
    pub fn get(&self, key: &[u8]) -> Option<&KeyValue> {
        self.kvs.get(key)
    }

    /// Whether a lease exists.
    pub fn lease_exists(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// The keys of `[key, range_end)` in key order, at most `limit` (0: all), and how many
    /// there are in all.
    pub fn range(&self, key: &[u8], range_end: &[u8], limit: i64) -> (Vec<KeyValue>, i64) {
        let found: Vec<&KeyValue> = match range_end {
            [] => self.kvs.get(key).into_iter().collect(),
            [0] => self.kvs.range(key.to_vec()..).map(|(_, v)| v).collect(),
            end if end <= key => Vec::new(),
            end => self
                .kvs
                .range(key.to_vec()..end.to_vec())
                .map(|(_, v)| v)
                .collect(),
        };
        let count = i64::try_from(found.len()).unwrap_or(i64::MAX);
        let take = usize::try_from(limit)
            .ok()
            .filter(|&l| l > 0)
            .unwrap_or(usize::MAX);
        (found.into_iter().take(take).cloned().collect(), count)
    }

    /// Steps the state by `request` if `observed` is a response it could have given; `None` if
    /// not. An Unknown response always fits (the caller decides whether the op happened).
    pub fn step(&self, request: &Request, observed: &Response) -> Option<Applied> {
        // Cheap rejection first: most attempts in the search fail on the header revision.
        if let Some(h) = observed.revision() {
            let ok = match request {
                Request::Range { .. } | Request::LeaseGrant { .. } => h == self.revision,
                Request::Put { .. } => h == self.revision + 1,
                Request::Compact { .. } => true,
                _ => h == self.revision || h == self.revision + 1,
            };
            if !ok {
                return None;
            }
        }
        let applied = self.apply(request, observed, None);
        matches(request, observed, &applied.response).then_some(applied)
    }

    /// Applies `request` and says what etcd would answer. `observed` only supplies the lease
    /// id a LeaseGrant got. Events of the change are appended to `events` when given.
    pub fn apply(
        &self,
        request: &Request,
        observed: &Response,
        events: Option<&mut Vec<WatchEvent>>,
    ) -> Applied {
        let mut sink = Vec::new();
        let events = events.unwrap_or(&mut sink);
        let refuse = |text: &str| Applied {
            state: self.clone(),
            response: Response::Refused(text.to_string()),
            changed: false,
        };
        let mut next = self.clone();
        let new_rev = self.revision + 1;
        let response = match request {
            Request::Range {
                key,
                range_end,
                revision,
                limit,
                ..
            } => {
                let r = *revision;
                if r > self.revision {
                    return refuse(ERR_FUTURE_REV);
                }
                if r > 0 && r < self.compact_revision {
                    return refuse(ERR_COMPACTED);
                }
                if r > 0 && r < self.revision {
                    // The model keeps no history: data at past revisions is checked against
                    // the replay of the linearization instead.
                    Response::Range {
                        revision: self.revision,
                        kvs: Vec::new(),
                        count: 0,
                    }
                } else {
                    let (kvs, count) = self.range(key, range_end, *limit);
                    Response::Range {
                        revision: self.revision,
                        kvs,
                        count,
                    }
                }
            }
            Request::Put { key, value, lease } => {
                if *lease != 0 && !self.lease_exists(*lease) {
                    return refuse(ERR_LEASE_NOT_FOUND);
                }
                next.put(key, value, *lease, new_rev, events);
                next.revision = new_rev;
                Response::Put { revision: new_rev }
            }
            Request::DeleteRange { key, range_end } => {
                let deleted = next.delete_range(key, range_end, new_rev, events);
                if deleted > 0 {
                    next.revision = new_rev;
                }
                Response::DeleteRange {
                    revision: next.revision,
                    deleted,
                }
            }
            Request::Txn {
                compare,
                success,
                failure,
            } => {
                let succeeded = compare.iter().all(|c| holds(self.kvs.get(&c.key), c));
                let ops = if succeeded { success } else { failure };
                let missing_lease = ops.iter().any(
                    |op| matches!(op, TxnOp::Put { lease, .. } if *lease != 0 && !self.lease_exists(*lease)),
                );
                if missing_lease {
                    return refuse(ERR_LEASE_NOT_FOUND);
                }
                let results = next.txn_ops(ops, new_rev, events);
                Response::Txn {
                    revision: next.revision,
                    succeeded,
                    results,
                }
            }
            Request::LeaseGrant { .. } => {
                let Response::LeaseGrant { id, .. } = observed else {
                    // The id is unknown: nobody can use the lease, so nothing changes.
                    return refuse("lease id unknown");
                };
                if self.lease_exists(*id) {
                    return refuse(ERR_LEASE_EXISTS);
                }
                next.leases.insert(*id, OrdSet::new());
                next.fingerprint ^= mix(1, |h| id.hash(h));
                Response::LeaseGrant {
                    revision: self.revision,
                    id: *id,
                }
            }
            Request::LeaseRevoke { id } => {
                let Some(keys) = self.leases.get(id) else {
                    return refuse(ERR_LEASE_NOT_FOUND);
                };
                for key in keys {
                    next.delete_key(key, new_rev, events);
                }
                if !keys.is_empty() {
                    next.revision = new_rev;
                }
                next.leases.remove(id);
                next.fingerprint ^= mix(1, |h| id.hash(h));
                Response::LeaseRevoke {
                    revision: next.revision,
                }
            }
            Request::LeaseKeepAlive { id } => Response::LeaseKeepAlive {
                ttl: i64::from(self.lease_exists(*id)),
            },
            Request::Compact { revision } => {
                if *revision <= self.compact_revision {
                    return refuse(ERR_COMPACTED);
                }
                if *revision > self.revision {
                    return refuse(ERR_FUTURE_REV);
                }
                next.compact_revision = *revision;
                Response::Compact {
                    revision: self.revision,
                }
            }
        };
        let changed = next.revision != self.revision
            || next.compact_revision != self.compact_revision
            || next.fingerprint != self.fingerprint;
        Applied {
            state: if changed { next } else { self.clone() },
            response,
            changed,
        }
    }

    fn txn_ops(
        &mut self,
        ops: &[TxnOp],
        new_rev: i64,
        events: &mut Vec<WatchEvent>,
    ) -> Vec<TxnOpResult> {
        let mut wrote = false;
        let results = ops
            .iter()
            .map(|op| match op {
                TxnOp::Range { key, range_end } => {
                    let (kvs, count) = self.range(key, range_end, 0);
                    TxnOpResult::Range { kvs, count }
                }
                TxnOp::Put { key, value, lease } => {
                    self.put(key, value, *lease, new_rev, events);
                    wrote = true;
                    TxnOpResult::Put
                }
                TxnOp::DeleteRange { key, range_end } => {
                    let deleted = self.delete_range(key, range_end, new_rev, events);
                    wrote |= deleted > 0;
                    TxnOpResult::DeleteRange { deleted }
                }
            })
            .collect();
        // All writes of a txn share one revision.
        if wrote {
            self.revision = new_rev;
        }
        results
    }

    fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        lease: i64,
        rev: i64,
        events: &mut Vec<WatchEvent>,
    ) {
        let prev = self.kvs.get(key).cloned();
        if let Some(p) = &prev {
            self.detach(p);
            self.fingerprint ^= kv_hash(p);
        }
        let kv = KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease,
        };
        if let Some(keys) = self.leases.get_mut(&lease) {
            keys.insert(key.to_vec());
        }
        self.fingerprint ^= kv_hash(&kv);
        self.kvs.insert(key.to_vec(), kv.clone());
        events.push(WatchEvent {
            kind: EventKind::Put,
            kv,
            prev_kv: prev,
        });
    }

    fn delete_range(
        &mut self,
        key: &[u8],
        end: &[u8],
        rev: i64,
        events: &mut Vec<WatchEvent>,
    ) -> i64 {
        let (doomed, _) = self.range(key, end, 0);
        for kv in &doomed {
            self.delete_key(&kv.key, rev, events);
        }
        i64::try_from(doomed.len()).unwrap_or(i64::MAX)
    }

    fn delete_key(&mut self, key: &[u8], rev: i64, events: &mut Vec<WatchEvent>) {
        if let Some(prev) = self.kvs.remove(key) {
            self.detach(&prev);
            self.fingerprint ^= kv_hash(&prev);
            let kv = KeyValue {
                key: key.to_vec(),
                mod_revision: rev,
                ..KeyValue::default()
            };
            events.push(WatchEvent {
                kind: EventKind::Delete,
                kv,
                prev_kv: Some(prev),
            });
        }
    }

    fn detach(&mut self, kv: &KeyValue) {
        if let Some(keys) = self.leases.get_mut(&kv.lease) {
            keys.remove(&kv.key);
        }
    }
}

fn kv_hash(kv: &KeyValue) -> u64 {
    mix(0, |h| kv.hash(h))
}
