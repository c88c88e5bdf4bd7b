//! The shape that made the search blow up on a 21-minute run: early on, a member was down and
//! its clients' deletes failed (Unknown, never applied); they stay optional to the end of the
//! run, and a watch's Delete event carries only a key and a revision, so each of them fits
//! every later revision at which its key is deleted. Without `prune`, the search let them make
//! the revisions of acknowledged deletes (and of Unknown deletes that did happen) and explored
//! the interleavings up to the next return once per choice of ghost, and per combination of
//! ghosts when deletes came close together.

use std::time::{Duration, Instant};

use super::history::{History, Request};
use super::linearizable::Budget;
use super::testgen::{Shape, b, generate, last_read_kvs, op, unknown};
use super::{Options, Status, check_with};

/// A generated run (some Unknown writes, some of which happened) and, in its first
/// milliseconds, `per_key` deletes of every key that never happened: half of them alike
/// (`delete k`), half each written its own way (`delete [k, k\0…\0)`, which deletes the same).
fn after_an_outage(operations: usize, per_key: usize, seed: u64) -> History {
    let mut history = generate(&Shape {
        clients: 8,
        operations,
        keys: 3,
        unknown: 30,
        seed,
    });
    for k in 0..3 {
        for g in 0..per_key {
            let key = b(&format!("k{k}"));
            let range_end = if g % 2 == 0 {
                Vec::new()
            } else {
                [key.as_slice(), &vec![0; g / 2 + 1]].concat()
            };
            let call = u64::try_from(g * 3 + k).unwrap_or_default();
            let client = u32::try_from(100 + k * per_key + g).unwrap_or_default();
            let request = Request::DeleteRange { key, range_end };
            history
                .operations
                .push(op(client, call, call + 2, request, unknown()));
        }
    }
    history
}

/// Checks `history` with a budget of `steps`; the verdict and how long it took.
fn search(history: &History, steps: u64) -> (Status, String, Duration) {
    let budget = Budget {
        max_steps: steps,
        max_time: Duration::from_secs(60),
    };
    let started = Instant::now();
    let report = check_with(history, &Options { budget });
    let took = started.elapsed();
    let v = report.verdict("linearizable").cloned();
    let v = v.unwrap_or_else(|| panic!("no linearizable verdict: {report}"));
    (v.status, v.message, took)
}

#[test]
fn deletes_that_never_happened_do_not_blow_up_the_search() {
    // Before `prune`, the search on seed 1 ran out of 20 million steps (20 s in a debug
    // build) with a deepest prefix of 75 operations; now each seed needs under 200,000.
    for seed in 1..=3 {
        let history = after_an_outage(2000, 50, seed);
        let (status, message, took) = search(&history, 200_000);
        assert_eq!(status, Status::Passed, "seed {seed}: {message}");
        eprintln!("seed {seed}: checked in {took:.2?}");
    }
}

#[test]
fn a_wrong_read_after_the_outage_still_fails() {
    let mut history = after_an_outage(1000, 20, 1);
    let Some(kvs) = last_read_kvs(&mut history) else {
        panic!("no read returned a key");
    };
    kvs[0].version += 1;
    // Before `prune`: timed out after 5 million steps (18 s in a debug build).
    let (status, message, _) = search(&history, 5_000_000);
    assert_eq!(status, Status::Failed, "{message}");
}
