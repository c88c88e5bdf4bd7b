//! Tests of the model, the linearizability search and the read checks, on hand-made histories
//! and on large generated ones.

use super::etcd::{ERR_COMPACTED, ERR_LEASE_NOT_FOUND};
use super::history::{
    Compare, CompareResult, CompareTarget, History, Request, Response, TxnOp, TxnOpResult,
};
use super::model::State;
use super::testgen::*;
use super::{Status, check};

fn ops_only(operations: Vec<super::history::Operation>) -> History {
    History {
        operations,
        watches: Vec::new(),
    }
}

pub(super) fn failure(history: &History, name: &str) -> String {
    let report = check(history);
    let v = report
        .verdict(name)
        .unwrap_or_else(|| panic!("no verdict {name}"));
    assert_eq!(v.status, Status::Failed, "{report}");
    v.message.clone()
}

fn passes(history: &History) {
    let report = check(history);
    assert!(report.passed(), "{report}");
}

#[test]
fn a_sequential_history_passes() {
    passes(&ops_only(vec![
        op(1, 0, 10, get("a"), read(1, vec![])),
        op(1, 20, 30, put("a", "1"), Response::Put { revision: 2 }),
        op(2, 25, 40, get("a"), read(2, vec![kv("a", "1", 2, 2, 1)])),
        op(1, 50, 60, put("a", "2"), Response::Put { revision: 3 }),
        op(2, 70, 80, get("a"), read(3, vec![kv("a", "2", 2, 3, 2)])),
    ]));
}

#[test]
fn concurrent_writes_may_take_effect_in_either_order() {
    passes(&ops_only(vec![
        op(1, 0, 100, put("a", "1"), Response::Put { revision: 3 }),
        op(2, 10, 90, put("a", "2"), Response::Put { revision: 2 }),
        op(3, 120, 130, get("a"), read(3, vec![kv("a", "1", 2, 3, 2)])),
    ]));
}

#[test]
fn a_stale_linearizable_read_fails() {
    let message = failure(
        &ops_only(vec![
            op(1, 0, 10, put("a", "1"), Response::Put { revision: 2 }),
            op(1, 20, 30, put("a", "2"), Response::Put { revision: 3 }),
            op(2, 40, 50, get("a"), read(2, vec![kv("a", "1", 2, 2, 1)])),
        ]),
        "linearizable",
    );
    assert!(message.contains("op #2 client 2"), "{message}");
    assert!(message.contains("the model answers rev 3"), "{message}");
}

#[test]
fn a_lost_acknowledged_write_fails() {
    let message = failure(
        &ops_only(vec![
            op(1, 0, 10, put("a", "1"), Response::Put { revision: 2 }),
            op(2, 20, 30, get("a"), read(1, vec![])),
        ]),
        "linearizable",
    );
    assert!(message.contains("get \"a\""), "{message}");
}

#[test]
fn a_write_with_a_wrong_revision_fails() {
    let message = failure(
        &ops_only(vec![
            op(1, 0, 10, put("a", "1"), Response::Put { revision: 2 }),
            op(1, 20, 30, put("b", "1"), Response::Put { revision: 2 }),
        ]),
        "linearizable",
    );
    assert!(message.contains("put \"b\"=\"1\" -> rev 2"), "{message}");
}

fn cas(key: &str, expect: &str, value: &str) -> Request {
    Request::Txn {
        compare: vec![Compare {
            key: b(key),
            result: CompareResult::Equal,
            target: CompareTarget::Value(b(expect)),
        }],
        success: vec![TxnOp::Put {
            key: b(key),
            value: b(value),
            lease: 0,
        }],
        failure: vec![TxnOp::Range {
            key: b(key),
            range_end: Vec::new(),
        }],
    }
}

#[test]
fn a_txn_whose_outcome_contradicts_the_state_fails() {
    let first = op(1, 0, 10, put("a", "1"), Response::Put { revision: 2 });
    let good = Response::Txn {
        revision: 3,
        succeeded: true,
        results: vec![TxnOpResult::Put],
    };
    passes(&ops_only(vec![
        first.clone(),
        op(1, 20, 30, cas("a", "1", "2"), good),
    ]));
    let bad = Response::Txn {
        revision: 2,
        succeeded: false,
        results: vec![TxnOpResult::Range {
            kvs: vec![kv("a", "1", 2, 2, 1)],
            count: 1,
        }],
    };
    let message = failure(
        &ops_only(vec![first, op(1, 20, 30, cas("a", "1", "2"), bad)]),
        "linearizable",
    );
    assert!(message.contains("succeeded true"), "{message}");
}

#[test]
fn a_value_compare_on_a_missing_key_is_false_even_for_not_equal() {
    let mut txn = cas("a", "x", "1");
    if let Request::Txn { compare, .. } = &mut txn {
        compare[0].result = CompareResult::NotEqual;
    }
    let applied = State::new().apply(&txn, &unknown(), None);
    assert!(matches!(
        applied.response,
        Response::Txn {
            succeeded: false,
            revision: 1,
            ..
        }
    ));
}

#[test]
fn refusals_must_match_the_model() {
    let lease_put = Request::Put {
        key: b("a"),
        value: b("1"),
        lease: 7,
    };
    let refused = Response::Refused(ERR_LEASE_NOT_FOUND.to_string());
    passes(&ops_only(vec![op(
        1,
        0,
        10,
        lease_put.clone(),
        refused.clone(),
    )]));
    let grant = op(
        1,
        0,
        10,
        Request::LeaseGrant { ttl: 60 },
        Response::LeaseGrant { revision: 1, id: 7 },
    );
    let message = failure(
        &ops_only(vec![grant, op(1, 20, 30, lease_put, refused)]),
        "linearizable",
    );
    assert!(message.contains("requested lease not found"), "{message}");
}

#[test]
fn revoking_a_lease_deletes_its_keys_at_one_revision() {
    let grant = op(
        1,
        0,
        10,
        Request::LeaseGrant { ttl: 60 },
        Response::LeaseGrant { revision: 1, id: 7 },
    );
    let mut history = ops_only(vec![
        grant,
        op(
            1,
            20,
            30,
            Request::Put {
                key: b("a"),
                value: b("1"),
                lease: 7,
            },
            Response::Put { revision: 2 },
        ),
        op(
            1,
            40,
            50,
            Request::Put {
                key: b("b"),
                value: b("1"),
                lease: 7,
            },
            Response::Put { revision: 3 },
        ),
        op(
            1,
            60,
            70,
            Request::LeaseRevoke { id: 7 },
            Response::LeaseRevoke { revision: 4 },
        ),
        op(1, 80, 90, get("a"), read(4, vec![])),
    ]);
    passes(&history);
    history.operations[3].response = Response::LeaseRevoke { revision: 5 };
    failure(&history, "linearizable");
}

#[test]
fn reads_at_past_revisions_are_checked_against_the_replay() {
    let writes = vec![
        op(1, 0, 10, put("a", "1"), Response::Put { revision: 2 }),
        op(1, 20, 30, put("a", "2"), Response::Put { revision: 3 }),
        op(
            1,
            30,
            35,
            Request::Compact { revision: 2 },
            Response::Compact { revision: 3 },
        ),
    ];
    let mut good = writes.clone();
    good.push(op(
        2,
        40,
        50,
        get_at("a", 2, false),
        read(3, vec![kv("a", "1", 2, 2, 1)]),
    ));
    good.push(op(
        2,
        60,
        70,
        get_at("a", 1, false),
        Response::Refused(ERR_COMPACTED.to_string()),
    ));
    good.push(op(
        3,
        40,
        50,
        get("a"),
        read(3, vec![kv("a", "2", 2, 3, 2)]),
    ));
    passes(&ops_only(good));
    let mut bad = writes;
    bad.push(op(
        2,
        40,
        50,
        get_at("a", 2, true),
        read(3, vec![kv("a", "2", 2, 3, 2)]),
    ));
    let message = failure(&ops_only(bad), "stale reads");
    assert!(message.contains("data at revision 2 differs"), "{message}");
}

#[test]
fn a_serializable_read_may_be_stale_but_not_from_the_future() {
    let mut ops = vec![
        op(1, 0, 10, put("a", "1"), Response::Put { revision: 2 }),
        op(1, 20, 30, put("a", "2"), Response::Put { revision: 3 }),
        op(
            2,
            40,
            50,
            get_at("a", 0, true),
            read(2, vec![kv("a", "1", 2, 2, 1)]),
        ),
    ];
    passes(&ops_only(ops.clone()));
    ops[2] = op(
        2,
        5,
        8,
        get_at("a", 0, true),
        read(3, vec![kv("a", "2", 2, 3, 2)]),
    );
    let message = failure(&ops_only(ops), "stale reads");
    assert!(
        message.contains("called after the read returned"),
        "{message}"
    );
}

#[test]
fn unknown_writes_that_did_or_did_not_happen_pass() {
    let happened = ops_only(vec![
        op(1, 0, 10, put("a", "1"), unknown()),
        op(2, 20, 30, get("a"), read(2, vec![kv("a", "1", 2, 2, 1)])),
    ]);
    passes(&happened);
    let lost = ops_only(vec![
        op(1, 0, 10, put("a", "1"), unknown()),
        op(2, 20, 30, get("a"), read(1, vec![])),
    ]);
    passes(&lost);
    // Applied long after the client gave up.
    let late = ops_only(vec![
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
        op(2, 20, 30, put("a", "1"), Response::Put { revision: 2 }),
        op(2, 40, 50, get("a"), read(3, vec![])),
    ]);
    passes(&late);
}
