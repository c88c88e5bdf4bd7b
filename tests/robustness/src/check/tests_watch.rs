//! Tests of the watch guarantees: one valid history, then one broken guarantee at a time.

use super::history::{History, KeyValue, Request, Response, TxnOp, TxnOpResult, WatchSpec};
use super::testgen::*;
use super::{Status, check};

/// Revisions 2..=6: put a, put b, put a, delete b, txn put a + put b; a read at the end.
fn base() -> History {
    let txn = Request::Txn {
        compare: Vec::new(),
        success: vec![
            TxnOp::Put {
                key: b("a"),
                value: b("3"),
                lease: 0,
            },
            TxnOp::Put {
                key: b("b"),
                value: b("2"),
                lease: 0,
            },
        ],
        failure: Vec::new(),
    };
    let operations = vec![
        op(1, 10, 20, put("a", "1"), Response::Put { revision: 2 }),
        op(1, 30, 40, put("b", "1"), Response::Put { revision: 3 }),
        op(1, 50, 60, put("a", "2"), Response::Put { revision: 4 }),
        op(
            1,
            70,
            80,
            Request::DeleteRange {
                key: b("b"),
                range_end: Vec::new(),
            },
            Response::DeleteRange {
                revision: 5,
                deleted: 1,
            },
        ),
        op(
            1,
            90,
            100,
            txn,
            Response::Txn {
                revision: 6,
                succeeded: true,
                results: vec![TxnOpResult::Put, TxnOpResult::Put],
            },
        ),
        op(1, 110, 120, get("a"), read(6, vec![kv("a", "3", 2, 6, 3)])),
    ];
    let spec = WatchSpec {
        prev_kv: true,
        progress_notify: true,
        ..all_keys()
    };
    let responses = vec![
        events_at(21, vec![put_event(kv("a", "1", 2, 2, 1), None)]),
        events_at(41, vec![put_event(kv("b", "1", 3, 3, 1), None)]),
        events_at(
            61,
            vec![put_event(
                kv("a", "2", 2, 4, 2),
                Some(kv("a", "1", 2, 2, 1)),
            )],
        ),
        events_at(81, vec![delete_event("b", 5, Some(kv("b", "1", 3, 3, 1)))]),
        events_at(
            101,
            vec![
                put_event(kv("a", "3", 2, 6, 3), Some(kv("a", "2", 2, 4, 2))),
                put_event(kv("b", "2", 6, 6, 1), None),
            ],
        ),
        progress(130, 6),
    ];
    let only_a = WatchSpec {
        key: b("a"),
        ..WatchSpec::default()
    };
    let a_events = vec![
        events_at(62, vec![put_event(kv("a", "2", 2, 4, 2), None)]),
        events_at(102, vec![put_event(kv("a", "3", 2, 6, 3), None)]),
    ];
    let mut created = progress(45, 3);
    created.created = true;
    let a_watch = record(only_a, std::iter::once(created).chain(a_events).collect());
    History {
        operations,
        watches: vec![record(spec, responses), a_watch],
    }
}

fn fails(history: &History, name: &str, needle: &str) {
    let report = check(history);
    let v = report
        .verdict(name)
        .unwrap_or_else(|| panic!("no verdict {name}"));
    assert_eq!(v.status, Status::Failed, "{report}");
    assert!(
        v.message.contains(needle),
        "{name}: {:?} lacks {needle:?}",
        v.message
    );
}

fn events_of(h: &mut History, watch: usize) -> &mut Vec<super::history::WatchResponse> {
    &mut h.watches[watch].responses
}

#[test]
fn a_valid_history_passes_every_watch_check() {
    let report = check(&base());
    assert!(report.passed(), "{report}");
    assert_eq!(report.verdicts.len(), 14, "{report}");
}

#[test]
fn a_silent_jump_over_revisions_breaks_reliable() {
    // The bug hunted: after a snapshot install a member's stream goes from r to r+k.
    let mut h = base();
    events_of(&mut h, 0).remove(2);
    fails(&h, "watch reliable", "missing event put \"a\"=\"2\"@4");
    fails(&h, "watch reliable", "the stream went from revision 3 to 5");
}

#[test]
fn a_gap_is_found_by_comparing_watches_when_linearization_fails() {
    let mut h = base();
    events_of(&mut h, 0).remove(2);
    h.operations[5].response = read(6, vec![kv("a", "wrong", 2, 6, 3)]);
    let report = check(&h);
    assert_eq!(
        report.verdict("linearizable").map(|v| v.status),
        Some(Status::Failed)
    );
    fails(&h, "watch reliable", "missing event put \"a\"=\"2\"@4");
}

#[test]
fn a_duplicated_event_breaks_unique() {
    let mut h = base();
    let again = events_of(&mut h, 0)[1].clone();
    events_of(&mut h, 0).insert(2, again);
    fails(&h, "watch unique", "received twice");
}

#[test]
fn a_reordered_event_breaks_ordered() {
    let mut h = base();
    events_of(&mut h, 0).swap(1, 2);
    fails(
        &h,
        "watch ordered",
        "at revision 3 after an event at revision 4",
    );
}

#[test]
fn a_revision_split_across_responses_breaks_atomic() {
    let mut h = base();
    let second = events_of(&mut h, 0)[4].events.pop();
    events_of(&mut h, 0).insert(5, events_at(102, second.into_iter().collect()));
    fails(&h, "watch atomic", "revision 6 split");
}

#[test]
fn an_event_at_or_below_a_progress_notification_breaks_bookmarkable() {
    let mut h = base();
    events_of(&mut h, 0).insert(2, progress(50, 4));
    fails(
        &h,
        "watch bookmarkable",
        "after a progress notification at revision 4",
    );
}

#[test]
fn a_wrong_creation_mark_breaks_is_create() {
    let mut h = base();
    // b was deleted at 5, so the put at 6 creates it; claim it did not.
    let b2 = &mut events_of(&mut h, 0)[4].events[1].kv;
    (b2.create_revision, b2.version) = (3, 2);
    fails(
        &h,
        "watch is_create",
        "the key was created but the event does not say so",
    );
}

#[test]
fn a_wrong_previous_value_breaks_prev_kv() {
    let mut h = base();
    events_of(&mut h, 0)[2].events[0].prev_kv = Some(kv("a", "0", 2, 2, 1));
    fails(&h, "watch prev_kv", "wrong prev_kv, want \"a\"=\"1\"@2");
    let mut h = base();
    events_of(&mut h, 1)[1].events[0].prev_kv = Some(kv("a", "1", 2, 2, 1));
    fails(&h, "watch prev_kv", "prev_kv sent though not asked for");
}

#[test]
fn an_event_outside_the_filter_is_reported() {
    let mut h = base();
    events_of(&mut h, 1).push(events_at(103, vec![delete_event("b", 7, None)]));
    fails(&h, "watch filter", "key outside the watched range");
    let mut h = base();
    h.watches[0].spec.no_delete = true;
    fails(&h, "watch filter", "delete event on a no_delete watch");
}

#[test]
fn a_resumed_watch_must_start_at_the_first_event_from_its_revision() {
    let mut h = base();
    let spec = WatchSpec {
        key: b("a"),
        start_revision: 3,
        ..WatchSpec::default()
    };
    let late = vec![events_at(105, vec![put_event(kv("a", "3", 2, 6, 3), None)])];
    h.watches.push(record(spec.clone(), late));
    fails(
        &h,
        "watch resumable",
        "the first event at or after revision 3 is put \"a\"=\"2\"@4",
    );
    let mut h = base();
    let right = vec![
        events_at(105, vec![put_event(kv("a", "2", 2, 4, 2), None)]),
        events_at(106, vec![put_event(kv("a", "3", 2, 6, 3), None)]),
    ];
    h.watches.push(record(spec, right));
    let report = check(&h);
    assert!(report.passed(), "{report}");
}

#[test]
fn a_cancel_for_compaction_needs_a_compacted_revision() {
    let mut h = base();
    h.operations.push(op(
        2,
        125,
        126,
        Request::Compact { revision: 4 },
        Response::Compact { revision: 6 },
    ));
    let mut cancel = progress(127, 6);
    (cancel.canceled, cancel.compact_revision) = (true, 4);
    let spec = |start| WatchSpec {
        key: b("a"),
        start_revision: start,
        ..WatchSpec::default()
    };
    h.watches.push(record(spec(2), vec![cancel.clone()]));
    let report = check(&h);
    assert!(report.passed(), "{report}");
    h.watches.push(record(spec(5), vec![cancel]));
    fails(
        &h,
        "watch canceled",
        "canceled for compaction at revision 4 although it needed revision 5",
    );
}

#[test]
fn an_event_that_never_happened_is_unexpected() {
    let mut h = base();
    let extra = put_event(
        KeyValue {
            lease: 0,
            ..kv("c", "9", 4, 4, 1)
        },
        None,
    );
    events_of(&mut h, 0)[2].events.push(extra);
    fails(&h, "watch reliable", "unexpected event put \"c\"=\"9\"@4");
}

#[test]
fn a_generated_history_with_a_gap_in_its_watch_fails() {
    let mut h = generate(&Shape {
        clients: 5,
        operations: 1000,
        keys: 4,
        unknown: 0,
        seed: 5,
    });
    let responses = &mut h.watches[0].responses;
    let middle = responses
        .iter()
        .position(|r| r.events.first().is_some_and(|e| e.kv.mod_revision > 100));
    let removed = responses.remove(middle.unwrap_or(0));
    let report = check(&h);
    assert_eq!(
        report.verdict("linearizable").map(|v| v.status),
        Some(Status::Passed),
        "{report}"
    );
    let reliable = report
        .verdict("watch reliable")
        .map(|v| v.message.clone())
        .unwrap_or_default();
    let revision = removed.events[0].kv.mod_revision;
    assert!(
        reliable.contains(&format!("at revision {revision}")),
        "{report}"
    );
}

#[test]
fn a_put_applied_twice_breaks_applied_once() {
    // One request's entry committed and the same request sent again: two revisions.
    let mut h = base();
    let again = events_at(
        65,
        vec![put_event(
            kv("a", "2", 2, 5, 3),
            Some(kv("a", "2", 2, 4, 2)),
        )],
    );
    events_of(&mut h, 0).insert(3, again);
    fails(
        &h,
        "applied once",
        "put \"a\"=\"2\" applied at revisions [4, 5], by 1 request(s)",
    );
}

#[test]
fn the_same_value_written_by_two_requests_is_no_double_apply() {
    let mut h = base();
    h.operations[2].request = put("a", "1");
    h.watches[0].responses[2].events[0].kv.value = b("1");
    h.watches[1].responses[1].events[0].kv.value = b("1");
    let report = check(&h);
    let v = report.verdict("applied once").unwrap();
    assert_eq!(v.status, Status::Passed, "{report}");
}
