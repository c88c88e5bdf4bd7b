//! Tests on generated histories: valid ones of every size pass (the 20,000-operation one in
//! seconds), a corrupted one fails, a tiny budget times out (and the verdict still says where
//! the search with watch hints failed), and histories survive JSON.

use std::time::{Duration, Instant};

use super::history::{EventKind, History};
use super::linearizable::Budget;
use super::testgen::{Shape, b, generate, last_read_kvs};
use super::tests_linearizable::failure;
use super::{Options, Status, check, check_with};

#[test]
fn the_search_reports_a_timeout_as_its_own_verdict() {
    let history = generate(&Shape {
        clients: 5,
        operations: 2000,
        keys: 5,
        unknown: 0,
        seed: 3,
    });
    let budget = Budget {
        max_steps: 1500,
        max_time: Duration::from_secs(60),
    };
    let report = check_with(&history, &Options { budget });
    assert_eq!(
        report.verdict("linearizable").map(|v| v.status),
        Some(Status::TimedOut),
        "{report}"
    );
    assert!(!report.passed());
}

#[test]
fn a_timeout_without_hints_says_where_the_search_with_hints_failed() {
    let mut history = generate(&Shape {
        clients: 4,
        operations: 3000,
        keys: 5,
        unknown: 0,
        seed: 5,
    });
    // The watch over every key misreports the first put, so the hinted search fails there.
    let events = history.watches[0]
        .responses
        .iter_mut()
        .flat_map(|r| &mut r.events);
    if let Some(first) = events.into_iter().find(|e| e.kind == EventKind::Put) {
        first.kv.value = b("misreported");
    }
    let budget = Budget {
        max_steps: 1024,
        max_time: Duration::from_secs(60),
    };
    let report = check_with(&history, &Options { budget });
    let v = report.verdict("linearizable");
    assert_eq!(v.map(|v| v.status), Some(Status::TimedOut), "{report}");
    let message = v.map(|v| v.message.as_str()).unwrap_or_default();
    assert!(message.contains("(with watch hints: op #"), "{message}");
}

#[test]
fn generated_histories_pass_and_survive_json() {
    for seed in 1..=20 {
        let history = generate(&Shape {
            clients: 4,
            operations: 300,
            keys: 3,
            unknown: 80,
            seed,
        });
        let report = check(&history);
        assert!(report.passed(), "seed {seed}: {report}");
        assert_eq!(
            History::from_json(&history.to_json()).ok().as_ref(),
            Some(&history)
        );
    }
}

#[test]
fn a_corrupted_read_in_a_generated_history_fails() {
    let mut history = generate(&Shape {
        clients: 4,
        operations: 400,
        keys: 3,
        unknown: 0,
        seed: 9,
    });
    if let Some(kvs) = last_read_kvs(&mut history) {
        kvs[0].value = b("corrupted");
    }
    failure(&history, "linearizable");
}

#[test]
fn twenty_thousand_operations_from_ten_clients_check_in_seconds() {
    let history = generate(&Shape {
        clients: 10,
        operations: 20_000,
        keys: 10,
        unknown: 30,
        seed: 42,
    });
    let started = Instant::now();
    let report = check(&history);
    let took = started.elapsed();
    eprintln!("20k operations checked in {took:.2?}\n{report}");
    assert!(report.passed(), "{report}");
    assert!(
        report.counts.unknown > 300 && report.counts.patched > 100,
        "{report}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}
