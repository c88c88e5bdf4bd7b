//! etcd's watch guarantees (<https://etcd.io/docs/v3.6/learning/api_guarantees/#watch-apis>), as
//! etcd's tests/robustness/validate/watch.go checks them, per watch record. This file holds the
//! checks a record can fail on its own (ordered, unique, atomic, bookmarkable, filter, the
//! compaction cancel) and the entry point; the checks against the expected events (reliable,
//! resumable, is_create, prev_kv) are in `expected.rs`.

use std::collections::HashSet;

use super::describe;
use super::expected::Expected;
use super::history::{EventKind, History, WatchEvent, WatchRecord, in_range};

/// One guarantee checked over every record: its name and the first failure, if any.
pub type WatchVerdict = (&'static str, Option<String>);

/// A record's events in order, with the index of the response that carried each.
pub(crate) fn events(record: &WatchRecord) -> impl Iterator<Item = (usize, &WatchEvent)> {
    record
        .responses
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.events.iter().map(move |e| (i, e)))
}

/// Where in a record something was seen: the watch, then the response.
pub(crate) fn place(index: usize, record: &WatchRecord, response: usize) -> String {
    let what = describe::watch(index, record.member, &record.spec);
    match record.responses.get(response) {
        Some(r) => format!(
            "{what}, response {response} (received {:.3} ms, header revision {})",
            r.time as f64 / 1e6,
            r.revision
        ),
        None => what,
    }
}

/// Checks every guarantee on every record of `history` against `expected`.
pub fn check_watches(history: &History, expected: &Expected) -> Vec<WatchVerdict> {
    type Check = fn(usize, &WatchRecord, &Expected) -> Option<String>;
    let checks: [(&'static str, Check); 10] = [
        ("watch ordered", |i, w, _| ordered(i, w)),
        ("watch unique", |i, w, _| unique(i, w)),
        ("watch atomic", |i, w, _| atomic(i, w)),
        ("watch bookmarkable", |i, w, _| bookmarkable(i, w)),
        ("watch filter", |i, w, _| filter(i, w)),
        ("watch canceled", |i, w, _| canceled(i, w)),
        ("watch reliable", |i, w, x| x.reliable(i, w)),
        ("watch resumable", |i, w, x| x.resumable(i, w)),
        ("watch is_create", |i, w, x| x.is_create(i, w)),
        ("watch prev_kv", |i, w, x| x.prev_kv(i, w)),
    ];
    checks
        .iter()
        .map(|(name, check)| {
            let mut failure = history
                .watches
                .iter()
                .enumerate()
                .find_map(|(i, w)| check(i, w, expected));
            if *name == "watch reliable" && failure.is_none() {
                failure = expected.conflict().map(str::to_string);
            }
            (*name, failure)
        })
        .collect()
}

/// Event revisions never go down.
fn ordered(index: usize, record: &WatchRecord) -> Option<String> {
    let mut last = 0;
    for (r, e) in events(record) {
        if e.kv.mod_revision < last {
            return Some(format!(
                "{}: event {} at revision {} after an event at revision {last}",
                place(index, record, r),
                describe::event(e),
                e.kv.mod_revision
            ));
        }
        last = e.kv.mod_revision;
    }
    None
}

/// No (revision, key) twice.
fn unique(index: usize, record: &WatchRecord) -> Option<String> {
    let mut seen = HashSet::new();
    for (r, e) in events(record) {
        if !seen.insert((e.kv.mod_revision, &e.kv.key)) {
            return Some(format!(
                "{}: event {} received twice",
                place(index, record, r),
                describe::event(e)
            ));
        }
    }
    None
}

/// All events of one revision come in one response.
fn atomic(index: usize, record: &WatchRecord) -> Option<String> {
    let mut last: Option<(usize, i64)> = None;
    for (i, resp) in record.responses.iter().enumerate() {
        let (Some(first), Some(end)) = (resp.events.first(), resp.events.last()) else {
            continue;
        };
        if let Some((prev, rev)) = last
            && first.kv.mod_revision == rev
        {
            return Some(format!(
                "{}: revision {rev} split: its events came in responses {prev} and {i}",
                place(index, record, i)
            ));
        }
        last = Some((i, end.kv.mod_revision));
    }
    None
}

/// After a progress notification at r, no event at or below r; a notification never goes
/// below an event already received or an earlier notification.
fn bookmarkable(index: usize, record: &WatchRecord) -> Option<String> {
    let (mut notified, mut last_event) = (0, 0);
    for (i, resp) in record.responses.iter().enumerate() {
        for e in &resp.events {
            if e.kv.mod_revision <= notified {
                return Some(format!(
                    "{}: event {} at revision {} after a progress notification at revision {notified}",
                    place(index, record, i),
                    describe::event(e),
                    e.kv.mod_revision
                ));
            }
            last_event = e.kv.mod_revision;
        }
        if resp.is_progress_notify() {
            if resp.revision < notified || resp.revision < last_event {
                return Some(format!(
                    "{}: progress notification at revision {} after revision {}",
                    place(index, record, i),
                    resp.revision,
                    notified.max(last_event)
                ));
            }
            notified = resp.revision;
        }
    }
    None
}

/// Only events the watch asked for.
fn filter(index: usize, record: &WatchRecord) -> Option<String> {
    let spec = &record.spec;
    for (r, e) in events(record) {
        let why = if !in_range(&e.kv.key, &spec.key, &spec.range_end) {
            "key outside the watched range"
        } else if spec.no_put && e.kind == EventKind::Put {
            "put event on a no_put watch"
        } else if spec.no_delete && e.kind == EventKind::Delete {
            "delete event on a no_delete watch"
        } else {
            continue;
        };
        return Some(format!(
            "{}: {why}: {}",
            place(index, record, r),
            describe::event(e)
        ));
    }
    None
}

/// The revision a record needs next after its last event or notification (or at its start).
pub(crate) fn resume_point(record: &WatchRecord) -> i64 {
    let mut next = record.spec.start_revision;
    for resp in &record.responses {
        if resp.created && next == 0 && resp.revision > 0 {
            next = resp.revision + 1;
        }
        if resp.is_progress_notify() {
            next = next.max(resp.revision + 1);
        }
        if let Some(e) = resp.events.last() {
            next = next.max(e.kv.mod_revision + 1);
        }
    }
    next
}

/// A watch is canceled for compaction only when the revision it needs is compacted.
fn canceled(index: usize, record: &WatchRecord) -> Option<String> {
    let (i, resp) = record
        .responses
        .iter()
        .enumerate()
        .find(|(_, r)| r.canceled && r.compact_revision > 0)?;
    let before = WatchRecord {
        responses: record.responses[..i].to_vec(),
        ..WatchRecord::default()
    };
    let needed = resume_point(&WatchRecord {
        spec: record.spec.clone(),
        ..before
    });
    (needed >= resp.compact_revision).then(|| {
        format!(
            "{}: canceled for compaction at revision {} although it needed revision {needed}",
            place(index, record, i),
            resp.compact_revision
        )
    })
}

/// The first revision a record must have seen everything from.
pub(crate) fn first_expected(record: &WatchRecord) -> i64 {
    if record.spec.start_revision != 0 {
        return record.spec.start_revision;
    }
    match record.responses.first() {
        Some(r) if r.created || r.is_progress_notify() => r.revision + 1,
        Some(r) => r.events.first().map_or(0, |e| e.kv.mod_revision),
        None => 0,
    }
}

/// The last revision a record is known to have seen everything up to.
pub(crate) fn last_seen(record: &WatchRecord) -> i64 {
    record
        .responses
        .iter()
        .rev()
        .find_map(|r| {
            if r.is_progress_notify() {
                Some(r.revision)
            } else {
                r.events.last().map(|e| e.kv.mod_revision)
            }
        })
        .unwrap_or(0)
}
