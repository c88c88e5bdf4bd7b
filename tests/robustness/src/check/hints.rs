//! Watch events as hints for the linearizability search. When a watch saw what revision r
//! did, a step that makes revision r must produce those events; this cuts a wrong guess about
//! which Unknown write made r at once, instead of many operations later (a delete of the wrong
//! key fits every revision count). The hints assume the watches are right: a search that fails
//! with them is run again without, so a broken watch is reported by the watch checkers, never
//! as a linearizability violation. Thousands of optional writes can be pending at once in a
//! long run, so the search first asks `admits`, which reads the request without stepping the
//! model and rules out most of them.

use std::collections::HashMap;

use super::history::{EventKind, History, WatchEvent};
use super::history::{Request, Response, TxnOp, in_range};
use super::model::State;

/// A key a revision changed, and the event watches agree it had (`None` where they disagree).
type Hint = (Vec<u8>, Option<WatchEvent>);

/// The events watches agree a revision had, by revision and key.
#[derive(Clone, Debug, Default)]
pub struct Hints {
    /// `None` where two watches disagree on the event.
    seen: HashMap<i64, Vec<Hint>>,
    /// The highest revision a watch response showed.
    last: i64,
}

impl Hints {
    /// Collects every watch event of `history`.
    pub fn new(history: &History) -> Hints {
        let mut seen: HashMap<i64, Vec<Hint>> = HashMap::new();
        let mut last = 1;
        for resp in history.watches.iter().flat_map(|w| &w.responses) {
            last = last.max(resp.revision);
            for e in &resp.events {
                let at = seen.entry(e.kv.mod_revision).or_default();
                let bare = WatchEvent {
                    prev_kv: None,
                    ..e.clone()
                };
                match at.iter_mut().find(|(k, _)| *k == e.kv.key) {
                    Some((_, known)) => {
                        if known.as_ref().is_some_and(|k| !same(k, &bare)) {
                            *known = None;
                        }
                    }
                    None => at.push((e.kv.key.clone(), Some(bare))),
                }
                last = last.max(e.kv.mod_revision);
            }
        }
        Hints { seen, last }
    }

    /// The highest revision a watch response showed (1 when none).
    pub fn last_revision(&self) -> i64 {
        self.last
    }

    /// Whether no watch saw anything.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Whether stepping `before` by `request` into a state at `after_revision` agrees with
    /// what the watches saw at that revision.
    pub fn allow(
        &self,
        before: &State,
        request: &Request,
        observed: &Response,
        after_revision: i64,
    ) -> bool {
        if after_revision == before.revision() {
            return true;
        }
        let Some(hinted) = self.seen.get(&after_revision) else {
            return true;
        };
        let mut events = Vec::new();
        before.apply(request, observed, Some(&mut events));
        hinted.iter().all(|(key, hint)| {
            let Some(hint) = hint else { return true };
            events.iter().any(|e| e.kv.key == *key && same(e, hint))
        })
    }

    /// A cheap necessary condition for [`Hints::allow`] of a step by `request` from `before`
    /// that makes `revision`, without stepping the model: the request could produce every
    /// event the watches agree on at `revision` (a put of that key and value, in either Txn
    /// branch; a delete of that key by a range, in either branch, or by revoking the lease
    /// the key has in `before`). The search asks it of every optional write it considers.
    pub fn admits(&self, before: &State, request: &Request, revision: i64) -> bool {
        let Some(hinted) = self.seen.get(&revision) else {
            return true;
        };
        hinted.iter().all(|(key, hint)| match (hint, request) {
            (None, _) => true,
            (Some(e), _) if e.kind == EventKind::Put => writes(request, |op| match op {
                Write::Put(k, v) => k == key.as_slice() && v == e.kv.value.as_slice(),
                Write::Delete(..) => false,
            }),
            (Some(_), Request::LeaseRevoke { id }) => {
                before.get(key).is_some_and(|kv| kv.lease == *id)
            }
            (Some(_), _) => writes(request, |op| match op {
                Write::Delete(k, end) => in_range(key, k, end),
                Write::Put(..) => false,
            }),
        })
    }
}

/// A write a request may do: a put of a key and value, or a delete of a range.
enum Write<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8], &'a [u8]),
}

/// Whether a write of a Put, a DeleteRange or either Txn branch satisfies `f`.
fn writes(request: &Request, f: impl Fn(Write<'_>) -> bool) -> bool {
    let txn_op = |op: &TxnOp| match op {
        TxnOp::Put { key, value, .. } => f(Write::Put(key, value)),
        TxnOp::DeleteRange { key, range_end } => f(Write::Delete(key, range_end)),
        TxnOp::Range { .. } => false,
    };
    match request {
        Request::Put { key, value, .. } => f(Write::Put(key, value)),
        Request::DeleteRange { key, range_end } => f(Write::Delete(key, range_end)),
        Request::Txn {
            success, failure, ..
        } => success.iter().chain(failure).any(txn_op),
        _ => false,
    }
}

/// Same kind and key; for a put also the same key-value. (Deletes carry nothing else that
/// every store fills the same way.)
fn same(a: &WatchEvent, b: &WatchEvent) -> bool {
    a.kind == b.kind && a.kv.key == b.kv.key && (a.kind == EventKind::Delete || a.kv == b.kv)
}

#[cfg(test)]
mod tests {
    use super::super::testgen::{
        all_keys, b, delete_event, events_at, kv, put, put_event, record, unknown,
    };
    use super::*;

    fn delete(key: &str, range_end: &str) -> Request {
        Request::DeleteRange {
            key: b(key),
            range_end: b(range_end),
        }
    }

    #[test]
    fn admits_what_the_watches_saw_and_everything_allow_allows() {
        let watched = vec![
            events_at(10, vec![put_event(kv("a", "1", 2, 2, 1), None)]),
            events_at(20, vec![delete_event("a", 3, None)]),
        ];
        let hints = Hints::new(&History {
            operations: Vec::new(),
            watches: vec![record(all_keys(), watched)],
        });
        let grant = Response::LeaseGrant { revision: 1, id: 7 };
        let leased = State::new()
            .apply(&Request::LeaseGrant { ttl: 60 }, &grant, None)
            .state;
        let on_lease = Request::Put {
            key: b("a"),
            value: b("1"),
            lease: 7,
        };
        let with_a = leased.apply(&on_lease, &unknown(), None).state;
        let revoke = |id| Request::LeaseRevoke { id };
        let cases = [
            (&leased, put("a", "1"), 2, true),
            (&leased, put("a", "2"), 2, false),
            (&leased, delete("a", ""), 2, false),
            (&with_a, delete("a", ""), 3, true),
            (&with_a, delete("", "\0"), 3, true),
            (&with_a, delete("b", "c"), 3, false),
            (&with_a, revoke(7), 3, true),
            (&with_a, revoke(8), 3, false),
            (&with_a, put("z", "9"), 4, true),
        ];
        for (state, request, revision, admitted) in cases {
            let allowed = hints.allow(state, &request, &unknown(), revision);
            let admits = hints.admits(state, &request, revision);
            assert_eq!(admits, admitted, "{request:?} at {revision}");
            assert!(admits || !allowed, "{request:?} allowed but not admitted");
        }
    }
}
