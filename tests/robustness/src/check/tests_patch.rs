//! Tests of history patching with watch events.

use super::history::{History, Operation, Request, Response, TxnOp};
use super::patch::patch;
use super::testgen::*;

fn txn_put(key: &str, on_success: &str, on_failure: &str) -> Request {
    Request::Txn {
        compare: Vec::new(),
        success: vec![TxnOp::Put {
            key: b(key),
            value: b(on_success),
            lease: 0,
        }],
        failure: vec![TxnOp::Put {
            key: b(key),
            value: b(on_failure),
            lease: 0,
        }],
    }
}

fn history(operations: Vec<Operation>, events: Vec<(u64, super::history::KeyValue)>) -> History {
    let responses = events
        .into_iter()
        .map(|(t, kv)| events_at(t, vec![put_event(kv, None)]))
        .collect();
    History {
        operations,
        watches: vec![record(all_keys(), responses)],
    }
}

#[test]
fn an_unknown_put_seen_in_a_watch_becomes_known() {
    let h = history(
        vec![op(1, 0, 10, put("a", "1"), unknown())],
        vec![(25, kv("a", "1", 2, 2, 1))],
    );
    let p = patch(&h);
    assert_eq!((p.patched, p.dropped), (1, 0));
    let op = &p.history.operations[0];
    assert_eq!(op.response, Response::Put { revision: 2 });
    assert_eq!(op.ret, 25, "it took effect before the watch received it");
}

#[test]
fn an_unknown_put_no_full_watch_saw_is_dropped() {
    let h = history(
        vec![
            op(1, 0, 10, put("a", "1"), unknown()),
            op(2, 0, 10, put("a", "2"), Response::Put { revision: 2 }),
        ],
        vec![(12, kv("a", "2", 2, 2, 1))],
    );
    let p = patch(&h);
    assert!(p.full_watch);
    assert_eq!(
        (p.patched, p.dropped, p.history.operations.len()),
        (0, 1, 1)
    );
}

#[test]
fn without_a_gap_free_watch_an_unseen_put_stays_unknown() {
    // The watch missed revision 2: it cannot vouch for what did not happen.
    let h = history(
        vec![
            op(1, 0, 10, put("a", "1"), unknown()),
            op(2, 0, 10, put("b", "2"), Response::Put { revision: 2 }),
            op(2, 20, 30, put("b", "3"), Response::Put { revision: 3 }),
        ],
        vec![(32, kv("b", "3", 2, 3, 2))],
    );
    let p = patch(&h);
    assert!(!p.full_watch);
    assert_eq!((p.patched, p.dropped), (0, 0));
    assert!(p.history.operations[0].response.is_unknown());
}

#[test]
fn an_unknown_txn_is_resolved_by_the_branch_whose_put_was_seen() {
    let h = history(
        vec![op(1, 0, 10, txn_put("a", "s", "f"), unknown())],
        vec![(40, kv("a", "f", 2, 2, 1))],
    );
    let p = patch(&h);
    assert_eq!(
        p.history.operations[0].response,
        Response::Persisted {
            revision: 2,
            succeeded: false
        }
    );
}

#[test]
fn a_txn_that_may_have_written_unseen_stays_unknown() {
    let txn = Request::Txn {
        compare: Vec::new(),
        success: vec![TxnOp::Put {
            key: b("a"),
            value: b("s"),
            lease: 0,
        }],
        failure: vec![TxnOp::DeleteRange {
            key: b("a"),
            range_end: Vec::new(),
        }],
    };
    let p = patch(&history(vec![op(1, 0, 10, txn, unknown())], Vec::new()));
    assert!(p.full_watch);
    assert_eq!((p.patched, p.dropped), (0, 0));
}

#[test]
fn a_value_written_twice_is_not_used() {
    let h = history(
        vec![
            op(1, 0, 10, put("a", "1"), unknown()),
            op(2, 0, 10, put("a", "1"), Response::Put { revision: 2 }),
        ],
        vec![(12, kv("a", "1", 2, 2, 1))],
    );
    let p = patch(&h);
    assert_eq!((p.patched, p.dropped), (0, 0));
}

#[test]
fn other_unknown_operations_are_left_alone() {
    let ops = vec![
        op(
            1,
            0,
            10,
            Request::DeleteRange {
                key: b("a"),
                range_end: Vec::new(),
            },
            unknown(),
        ),
        op(2, 0, 10, get("a"), unknown()),
        op(3, 0, 10, Request::Compact { revision: 1 }, unknown()),
    ];
    let p = patch(&history(ops.clone(), Vec::new()));
    assert_eq!(p.history.operations, ops);
}

#[test]
fn unknown_puts_that_did_and_did_not_happen_both_pass_the_whole_check() {
    let ops = vec![
        op(1, 0, 10, put("a", "1"), unknown()),
        op(2, 5, 15, put("b", "1"), unknown()),
        op(3, 40, 50, get("a"), read(2, vec![kv("a", "1", 2, 2, 1)])),
        op(3, 60, 70, get("b"), read(2, vec![])),
    ];
    let h = history(ops, vec![(30, kv("a", "1", 2, 2, 1))]);
    let report = super::check(&h);
    assert!(report.passed(), "{report}");
    assert_eq!(
        (
            report.counts.unknown,
            report.counts.patched,
            report.counts.dropped
        ),
        (2, 1, 1)
    );
}
