//! The replay of a linearization through the model: the store state at every revision and the
//! watch events of every revision, which the read and watch checkers compare against. A
//! revision made by an Unknown write is in doubt (the search picked one of possibly several
//! explanations) unless a watch over every key saw exactly its events. Past a revision in
//! doubt, [`Taint`] says which keys Unknown writes may have touched, so that the checkers only
//! demand what is pinned down.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use super::history::{
    EventKind, Operation, Request, TxnOp, WatchEvent, WatchRecord, in_range, ranges_overlap,
};
use super::model::State;
use super::roles::{Role, roles};
use super::watch::{first_expected, last_seen};

/// The change that made one revision.
#[derive(Clone, Debug)]
pub struct Change {
    /// The revision.
    pub revision: i64,
    /// Index of the operation that made it.
    pub op: usize,
    /// Whether that operation had a definite response (else it was an Unknown write the
    /// search chose to place here).
    pub certain: bool,
    /// Whether a watch over every key saw exactly these events at this revision (so it is
    /// known even if the operation is not).
    pub verified: bool,
    /// Its events in etcd's order, each with the previous key-value (if the key existed).
    pub events: Vec<WatchEvent>,
}

impl Change {
    /// Whether the change is known: made by a known operation or seen whole by a watch.
    pub fn known(&self) -> bool {
        self.certain || self.verified
    }
}

/// States and changes along a linearization.
#[derive(Clone, Debug)]
pub struct Replay {
    /// `states[r]` is the store at revision `r`; index 0 repeats the empty store.
    states: Vec<State>,
    /// `changes[r]` made revision `r`; indices 0 and 1 are empty.
    changes: Vec<Option<Change>>,
    /// `doubt[r]`: the last revision at or below `r` whose change is not known (0: none).
    doubt: Vec<i64>,
    /// Operations placed, in order.
    order: Vec<usize>,
}

impl Replay {
    /// Replays `order` (indices into `ops`).
    pub fn new(ops: &[Operation], order: &[usize]) -> Replay {
        Replay::with_watches(ops, order, &[])
    }

    /// Replays `order` (indices into `ops`); a change made by an Unknown write is known if an
    /// unfiltered watch over every key in `watches` received exactly its events.
    pub fn with_watches(ops: &[Operation], order: &[usize], watches: &[WatchRecord]) -> Replay {
        let mut state = State::new();
        let mut states = vec![state.clone(), state.clone()];
        let mut changes = vec![None, None];
        let witnesses = Witnesses::new(watches);
        for &i in order {
            let op = &ops[i];
            let mut events = Vec::new();
            let applied = state.apply(&op.request, &op.response, Some(&mut events));
            let revision = applied.state.revision();
            if revision != state.revision() {
                let certain = !op.response.is_unknown();
                let verified = !certain && witnesses.saw(revision, &events);
                changes.push(Some(Change {
                    revision,
                    op: i,
                    certain,
                    verified,
                    events,
                }));
                states.push(applied.state.clone());
            }
            state = applied.state;
        }
        let mut doubt = Vec::with_capacity(changes.len());
        let mut last = 0;
        for (r, change) in changes.iter().enumerate() {
            if change.as_ref().is_some_and(|c| !c.known()) {
                last = i64::try_from(r).unwrap_or(i64::MAX);
            }
            doubt.push(last);
        }
        Replay {
            states,
            changes,
            doubt,
            order: order.to_vec(),
        }
    }

    /// The last revision made.
    pub fn last_revision(&self) -> i64 {
        i64::try_from(self.states.len()).map_or(i64::MAX, |n| n - 1)
    }

    /// The store at `revision`, if the replay reached it.
    pub fn state_at(&self, revision: i64) -> Option<&State> {
        usize::try_from(revision)
            .ok()
            .and_then(|r| self.states.get(r))
    }

    /// The change that made `revision`.
    pub fn change(&self, revision: i64) -> Option<&Change> {
        usize::try_from(revision)
            .ok()
            .and_then(|r| self.changes.get(r))
            .and_then(Option::as_ref)
    }

    /// Whether every change up to `revision` is known, so the store there is exactly
    /// `state_at(revision)`. Otherwise only keys no Unknown write can have touched are (see
    /// [`Taint`]).
    pub fn settled(&self, revision: i64) -> bool {
        usize::try_from(revision)
            .ok()
            .and_then(|r| self.doubt.get(r))
            .is_some_and(|&d| d == 0)
    }

    /// The operations placed, in order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

/// One watch's first and last covered revision, and its events by revision.
type Witness<'a> = (i64, i64, HashMap<i64, Vec<&'a WatchEvent>>);

/// The events of every unfiltered watch over every key, by revision, with the revisions it
/// covered; a change seen whole by one of them is known.
struct Witnesses<'a> {
    watches: Vec<Witness<'a>>,
}

impl<'a> Witnesses<'a> {
    fn new(watches: &'a [WatchRecord]) -> Witnesses<'a> {
        let whole = watches.iter().filter(|w| {
            let s = &w.spec;
            (s.key.is_empty() || s.key == [0]) && s.range_end == [0] && !s.no_put && !s.no_delete
        });
        let watches = whole
            .map(|w| {
                let mut by_revision: HashMap<i64, Vec<&WatchEvent>> = HashMap::new();
                for e in w.responses.iter().flat_map(|r| &r.events) {
                    by_revision.entry(e.kv.mod_revision).or_default().push(e);
                }
                (first_expected(w), last_seen(w), by_revision)
            })
            .collect();
        Witnesses { watches }
    }

    /// Whether one of them covered `revision` and received exactly `events` there.
    fn saw(&self, revision: i64, events: &[WatchEvent]) -> bool {
        self.watches.iter().any(|(first, last, by_revision)| {
            let got = by_revision.get(&revision).map_or(&[][..], Vec::as_slice);
            (*first..=*last).contains(&revision)
                && got.len() == events.len()
                && events.iter().all(|e| {
                    got.iter().any(|g| {
                        g.kind == e.kind
                            && g.kv.key == e.kv.key
                            && (e.kind == EventKind::Delete || g.kv == e.kv)
                    })
                })
        })
    }
}

/// A key range `(key, range_end)`.
type Range = (Vec<u8>, Vec<u8>);

/// Where Unknown writes may have struck: for each, the keys it may touch and its call time.
#[derive(Clone, Debug, Default)]
pub struct Taint {
    spots: Vec<(Vec<u8>, Vec<u8>, u64)>,
    /// Earliest call time of a spot touching a range, by range (a key is `(key, [])`).
    earliest: RefCell<HashMap<Range, u64>>,
}

impl Taint {
    /// Collects the Unknown writes of `ops` (those that are optional in the search).
    pub fn new(ops: &[Operation]) -> Taint {
        let mut spots = Vec::new();
        let roles = roles(ops);
        let unknown: Vec<&Operation> = ops
            .iter()
            .zip(&roles)
            .filter(|(_, r)| **r == Role::Optional)
            .map(|(op, _)| op)
            .collect();
        let revoked: HashSet<i64> = unknown
            .iter()
            .filter_map(|op| match op.request {
                Request::LeaseRevoke { id } => Some(id),
                _ => None,
            })
            .collect();
        // Keys ever put with a lease an Unknown revoke names may vanish with it.
        let mut lease_keys: Vec<(i64, Vec<u8>)> = Vec::new();
        for op in ops {
            for (key, lease) in puts(&op.request) {
                if revoked.contains(&lease) {
                    lease_keys.push((lease, key.to_vec()));
                }
            }
        }
        for op in unknown {
            let at = op.call;
            match &op.request {
                Request::Put { key, .. } => spots.push((key.clone(), Vec::new(), at)),
                Request::DeleteRange { key, range_end } => {
                    spots.push((key.clone(), range_end.clone(), at));
                }
                Request::Txn {
                    success, failure, ..
                } => {
                    for t in success.iter().chain(failure) {
                        match t {
                            TxnOp::Put { key, .. } => spots.push((key.clone(), Vec::new(), at)),
                            TxnOp::DeleteRange { key, range_end } => {
                                spots.push((key.clone(), range_end.clone(), at));
                            }
                            TxnOp::Range { .. } => {}
                        }
                    }
                }
                Request::LeaseRevoke { id } => {
                    for (_, key) in lease_keys.iter().filter(|(l, _)| l == id) {
                        spots.push((key.clone(), Vec::new(), at));
                    }
                }
                _ => {}
            }
        }
        Taint {
            spots,
            earliest: RefCell::default(),
        }
    }

    /// Whether an Unknown write that may touch `key` was called before `time`.
    pub fn key(&self, key: &[u8], time: u64) -> bool {
        self.range(key, &[], time)
    }

    /// Whether an Unknown write that may touch `[key, range_end)` was called before `time`.
    pub fn range(&self, key: &[u8], range_end: &[u8], time: u64) -> bool {
        if self.spots.is_empty() {
            return false;
        }
        let mut cache = self.earliest.borrow_mut();
        let earliest = cache
            .entry((key.to_vec(), range_end.to_vec()))
            .or_insert_with(|| {
                self.spots
                    .iter()
                    .filter(|(k, end, _)| {
                        if range_end.is_empty() {
                            in_range(key, k, end)
                        } else {
                            ranges_overlap((key, range_end), (k, end))
                        }
                    })
                    .map(|s| s.2)
                    .min()
                    .unwrap_or(u64::MAX)
            });
        *earliest < time
    }
}

/// The (key, lease) of every Put a request carries, in both Txn branches.
pub fn puts(request: &Request) -> Vec<(&[u8], i64)> {
    match request {
        Request::Put { key, lease, .. } => vec![(key.as_slice(), *lease)],
        Request::Txn {
            success, failure, ..
        } => success
            .iter()
            .chain(failure)
            .filter_map(|t| match t {
                TxnOp::Put { key, lease, .. } => Some((key.as_slice(), *lease)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
