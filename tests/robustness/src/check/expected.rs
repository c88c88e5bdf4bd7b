//! The events each revision should carry, and the watch guarantees checked against them:
//! reliable (nothing missing, extra or altered between the first and last revision a record
//! saw), resumable (a watch from revision s starts with the first event at or after s),
//! is_create and prev_kv. Revisions made by known writes come from the replay of the
//! linearization and are complete; the others (made by Unknown writes, or every revision when
//! linearization failed) are known only through what the watches received, which must agree.
//! Only what is known is demanded: a check never fails on a revision nobody can vouch for.

use std::collections::BTreeMap;

use super::describe;
use super::history::{EventKind, History, Operation, Request, WatchEvent, WatchRecord, in_range};
use super::replay::{Replay, Taint};
use super::watch::{events, first_expected, last_seen, place};

/// One expected event.
#[derive(Clone, Debug)]
struct RefEvent {
    /// The event; from the replay its `prev_kv` is the key before the revision.
    event: WatchEvent,
    /// An Unknown write may have touched the key before: its version, create revision and
    /// previous value are not known.
    loose: bool,
    /// The watch and response it was first seen in, when it comes from the watches.
    seen: Option<(usize, usize)>,
}

#[derive(Clone, Debug, Default)]
struct Rev {
    /// From the replay: these are all the revision's events.
    complete: bool,
    events: Vec<RefEvent>,
}

/// What the watches should have received.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    revs: BTreeMap<i64, Rev>,
    /// No revision above this can exist (None: unknown).
    max_revision: Option<i64>,
    /// Two watches disagreeing on an event.
    conflict: Option<String>,
    /// A compaction was asked for: etcd may then leave out a prev_kv.
    compacted: bool,
}

fn same(want: &RefEvent, got: &WatchEvent) -> bool {
    let (w, g) = (&want.event.kv, &got.kv);
    want.event.kind == got.kind
        && w.key == g.key
        && w.mod_revision == g.mod_revision
        && (got.kind == EventKind::Delete
            || (w.value == g.value
                && w.lease == g.lease
                && (want.loose
                    || (w.create_revision == g.create_revision && w.version == g.version))))
}

fn wanted(record: &WatchRecord, e: &WatchEvent) -> bool {
    let s = &record.spec;
    in_range(&e.kv.key, &s.key, &s.range_end)
        && !(s.no_put && e.kind == EventKind::Put)
        && !(s.no_delete && e.kind == EventKind::Delete)
}

impl Expected {
    /// From the replay of a linearization of `history`'s operations, completed by the
    /// watches; `unplaced` Unknown writes were left out of the linearization.
    pub fn from_replay(
        history: &History,
        replay: &Replay,
        taint: &Taint,
        unplaced: usize,
    ) -> Expected {
        let ops: &[Operation] = &history.operations;
        let mut revs = BTreeMap::new();
        for r in 2..=replay.last_revision() {
            let Some(change) = replay.change(r).filter(|c| c.known()) else {
                continue;
            };
            let settled = if change.certain {
                ops[change.op].ret
            } else {
                u64::MAX
            };
            let doubt = !replay.settled(r);
            let events = change
                .events
                .iter()
                .map(|e| RefEvent {
                    loose: doubt && taint.key(&e.kv.key, settled),
                    event: e.clone(),
                    seen: None,
                })
                .collect();
            revs.insert(
                r,
                Rev {
                    complete: true,
                    events,
                },
            );
        }
        let max = replay
            .last_revision()
            .saturating_add(i64::try_from(unplaced).unwrap_or(i64::MAX));
        let mut expected = Expected {
            revs,
            max_revision: Some(max),
            ..Expected::default()
        };
        expected.add_observed(history);
        expected
    }

    /// From the watches alone (when there is no linearization).
    pub fn from_watches(history: &History) -> Expected {
        let mut expected = Expected::default();
        expected.add_observed(history);
        expected
    }

    fn add_observed(&mut self, history: &History) {
        self.compacted = history
            .operations
            .iter()
            .any(|op| matches!(op.request, Request::Compact { .. }));
        for (wi, w) in history.watches.iter().enumerate() {
            for (ri, e) in events(w) {
                let rev = self.revs.entry(e.kv.mod_revision).or_default();
                if rev.complete {
                    continue;
                }
                match rev.events.iter().find(|x| x.event.kv.key == e.kv.key) {
                    Some(known) if !same(known, e) => {
                        let (a, ar) = known.seen.unwrap_or((wi, ri));
                        let first = &history.watches[a];
                        self.conflict.get_or_insert_with(|| {
                            format!(
                                "watches disagree at revision {}: {} got {}, {} got {}",
                                e.kv.mod_revision,
                                place(a, first, ar),
                                describe::event(&known.event),
                                place(wi, w, ri),
                                describe::event(e)
                            )
                        });
                    }
                    Some(_) => {}
                    None => rev.events.push(RefEvent {
                        event: WatchEvent {
                            prev_kv: None,
                            ..e.clone()
                        },
                        loose: false,
                        seen: Some((wi, ri)),
                    }),
                }
            }
        }
    }

    /// The first disagreement between watches, if any.
    pub fn conflict(&self) -> Option<&str> {
        self.conflict.as_deref()
    }

    fn find(&self, e: &WatchEvent) -> Option<(&Rev, &RefEvent)> {
        let rev = self.revs.get(&e.kv.mod_revision)?;
        rev.events
            .iter()
            .find(|x| x.event.kv.key == e.kv.key)
            .map(|x| (rev, x))
    }

    /// Nothing missing, extra or altered between the first and last revision `record` saw.
    pub fn reliable(&self, index: usize, record: &WatchRecord) -> Option<String> {
        let mut got: BTreeMap<i64, Vec<(usize, &WatchEvent)>> = BTreeMap::new();
        for (r, e) in events(record) {
            if self.max_revision.is_some_and(|max| e.kv.mod_revision > max) {
                return Some(format!(
                    "{}: event {} beyond the last revision the history can have made ({})",
                    place(index, record, r),
                    describe::event(e),
                    self.max_revision.unwrap_or_default()
                ));
            }
            got.entry(e.kv.mod_revision).or_default().push((r, e));
        }
        let (first, last) = (first_expected(record), last_seen(record));
        if first == 0 || last < first {
            return None;
        }
        for (&revision, rev) in self.revs.range(first..=last) {
            let here = got.get(&revision).map_or(&[][..], Vec::as_slice);
            for want in rev.events.iter().filter(|x| wanted(record, &x.event)) {
                match here.iter().find(|(_, g)| g.kv.key == want.event.kv.key) {
                    None => {
                        let before = got.range(..revision).next_back().map(|(r, v)| (*r, v[0].0));
                        let after = got.range(revision + 1..).next().map(|(r, v)| (*r, v[0].0));
                        let went = match (before, after) {
                            (Some((a, _)), Some((b, resp))) => format!(
                                "the stream went from revision {a} to {b} ({})",
                                response(record, resp)
                            ),
                            _ => "nothing was received around it".to_string(),
                        };
                        return Some(format!(
                            "{}: missing event {} at revision {revision}: {went}",
                            describe::watch(index, record.member, &record.spec),
                            bare(&want.event)
                        ));
                    }
                    Some((r, g)) if !same(want, g) => {
                        return Some(format!(
                            "{}: event {} differs from the expected {}",
                            place(index, record, *r),
                            describe::event(g),
                            bare(&want.event)
                        ));
                    }
                    Some(_) => {}
                }
            }
            if rev.complete {
                let extra = here
                    .iter()
                    .find(|(_, g)| !rev.events.iter().any(|x| x.event.kv.key == g.kv.key));
                if let Some((r, g)) = extra {
                    return Some(format!(
                        "{}: unexpected event {}: revision {revision} changed nothing of the kind",
                        place(index, record, *r),
                        describe::event(g)
                    ));
                }
            }
        }
        None
    }

    /// A watch from revision s starts with the first expected event at or after s.
    pub fn resumable(&self, index: usize, record: &WatchRecord) -> Option<String> {
        let start = record.spec.start_revision;
        let (r, first) = events(record).next()?;
        if start == 0 {
            return None;
        }
        let at = first.kv.mod_revision;
        if at < start {
            return Some(format!(
                "{}: first event {} is below the start revision {start}",
                place(index, record, r),
                describe::event(first)
            ));
        }
        let skipped = self
            .revs
            .range(start..=at)
            .flat_map(|(_, rev)| &rev.events)
            .find(|x| wanted(record, &x.event))
            .filter(|x| !same(x, first));
        skipped.map(|x| {
            format!(
                "{}: first event is {}, but the first event at or after revision {start} is {}",
                place(index, record, r),
                describe::event(first),
                bare(&x.event)
            )
        })
    }

    /// A put event marks a creation (create == mod revision, version 1) exactly when the key
    /// did not exist before.
    pub fn is_create(&self, index: usize, record: &WatchRecord) -> Option<String> {
        for (r, g) in events(record).filter(|(_, g)| g.kind == EventKind::Put) {
            let says = g.kv.create_revision == g.kv.mod_revision;
            let fail = |why: &str| {
                Some(format!(
                    "{}: {why}: {}",
                    place(index, record, r),
                    describe::event(g)
                ))
            };
            if says != (g.kv.version == 1) {
                return fail("create revision and version disagree on whether the key was created");
            }
            let known = self.find(g).filter(|(rev, want)| {
                rev.complete && !want.loose && want.event.kind == EventKind::Put
            });
            if let Some((_, want)) = known
                && says != (want.event.kv.version == 1)
            {
                return fail(if says {
                    "marked as a creation but the key existed"
                } else {
                    "the key was created but the event does not say so"
                });
            }
        }
        None
    }

    /// prev_kv is the key just before the event when asked for (etcd may omit it once
    /// something was compacted), and absent when not asked for.
    pub fn prev_kv(&self, index: usize, record: &WatchRecord) -> Option<String> {
        for (r, g) in events(record) {
            let fail = |why: String| {
                Some(format!(
                    "{}: {why}: {}",
                    place(index, record, r),
                    describe::event(g)
                ))
            };
            if !record.spec.prev_kv {
                if g.prev_kv.is_some() {
                    return fail("prev_kv sent though not asked for".to_string());
                }
                continue;
            }
            let Some((rev, want)) = self.find(g) else {
                continue;
            };
            if !rev.complete || want.loose {
                continue;
            }
            match (&g.prev_kv, &want.event.prev_kv) {
                (Some(got), Some(w)) if got != w => {
                    return fail(format!("wrong prev_kv, want {}", describe::kv(w)));
                }
                (Some(_), None) => {
                    return fail("prev_kv given but the key did not exist".to_string());
                }
                (None, Some(w)) if !self.compacted => {
                    return fail(format!("prev_kv missing, want {}", describe::kv(w)));
                }
                _ => {}
            }
        }
        None
    }
}

/// An expected event without its previous key-value (reliable and resumable do not look at it).
fn bare(e: &WatchEvent) -> String {
    describe::event(&WatchEvent {
        prev_kv: None,
        ..e.clone()
    })
}

/// Which response of a record, and when it came.
fn response(record: &WatchRecord, i: usize) -> String {
    let r = &record.responses[i];
    format!("response {i}, received {:.3} ms", r.time as f64 / 1e6)
}
