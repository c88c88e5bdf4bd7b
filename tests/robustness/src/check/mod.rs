//! The checkers, behind one entry point: [`check`] patches a recorded history with its watch
//! events, searches for a linearization of its operations, replays that linearization to
//! check stale and serializable reads, and checks every watch record against etcd's watch
//! guarantees. The result is a [`Report`] with one verdict per checker.

pub mod describe;
pub mod etcd;
pub mod events;
pub mod expected;
pub mod hints;
pub mod history;
pub mod keys;
pub mod linearizable;
pub mod model;
pub mod once;
pub mod patch;
pub mod prune;
pub mod reads;
pub mod replay;
pub mod roles;
pub mod timeline;
pub mod watch;

#[cfg(test)]
mod testgen;
#[cfg(test)]
mod tests_generated;
#[cfg(test)]
mod tests_linearizable;
#[cfg(test)]
mod tests_outage;
#[cfg(test)]
mod tests_patch;
#[cfg(test)]
mod tests_watch;

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use history::History;
use linearizable::{Budget, Outcome};
use roles::{Role, roles};

/// How a checker ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The guarantee holds.
    Passed,
    /// The guarantee is broken; the message says where.
    Failed,
    /// The checker ran out of budget: no verdict.
    TimedOut,
    /// The checker could not run (it needs a linearization).
    Skipped,
}

/// One checker's verdict.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// Checker name, e.g. "linearizable" or "watch reliable".
    pub name: &'static str,
    /// How it ended.
    pub status: Status,
    /// Why it failed (or a short summary when it passed).
    pub message: String,
}

/// What the history held and what the checkers did with it.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Client operations recorded.
    pub operations: usize,
    /// Operations without a definite answer.
    pub unknown: usize,
    /// Unknown writes resolved by watch events.
    pub patched: usize,
    /// Unknown writes dropped as never applied.
    pub dropped: usize,
    /// Operations placed in the linearization.
    pub linearized: usize,
    /// Watch records.
    pub watches: usize,
    /// Watch events received.
    pub watch_events: usize,
    /// Stale and serializable reads compared with the replay.
    pub reads_checked: usize,
    /// Such reads left unchecked because Unknown writes blur their data.
    pub reads_unchecked: usize,
}

/// The verdicts on one history.
#[derive(Clone, Debug)]
pub struct Report {
    /// One per checker, in the order they ran.
    pub verdicts: Vec<Verdict>,
    /// Counts.
    pub counts: Counts,
    /// The patched history the search ran on.
    pub patched: History,
    /// The linearization found (indices into `patched.operations`).
    pub linearization: Option<Vec<usize>>,
}

impl Report {
    /// Whether every checker passed.
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.status == Status::Passed)
    }

    /// The verdict of the named checker.
    pub fn verdict(&self, name: &str) -> Option<&Verdict> {
        self.verdicts.iter().find(|v| v.name == name)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "{} operations ({} unknown: {} patched, {} dropped; {} linearized), {} watches with {} events, {} stale/serializable reads checked ({} unchecked)",
            c.operations,
            c.unknown,
            c.patched,
            c.dropped,
            c.linearized,
            c.watches,
            c.watch_events,
            c.reads_checked,
            c.reads_unchecked
        )?;
        for v in &self.verdicts {
            let status = match v.status {
                Status::Passed => "passed",
                Status::Failed => "FAILED",
                Status::TimedOut => "TIMED OUT",
                Status::Skipped => "skipped",
            };
            let line = format!("{status:>9}  {:<20} {}", v.name, v.message);
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Checker settings.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Limits of the linearizability search.
    pub budget: Budget,
}

/// Checks `history` with default settings.
pub fn check(history: &History) -> Report {
    check_with(history, &Options::default())
}

fn verdict(name: &'static str, failure: Option<String>, summary: String) -> Verdict {
    match failure {
        Some(message) => Verdict {
            name,
            status: Status::Failed,
            message,
        },
        None => Verdict {
            name,
            status: Status::Passed,
            message: summary,
        },
    }
}

/// Checks `history`.
pub fn check_with(history: &History, options: &Options) -> Report {
    let mut counts = Counts {
        operations: history.operations.len(),
        unknown: history
            .operations
            .iter()
            .filter(|op| op.response.is_unknown())
            .count(),
        watches: history.watches.len(),
        watch_events: history
            .watches
            .iter()
            .flat_map(|w| &w.responses)
            .map(|r| r.events.len())
            .sum(),
        ..Counts::default()
    };
    let mut verdicts = vec![
        verdict("history", assumptions(history), String::new()),
        verdict("applied once", once::applied_once(history), String::new()),
    ];
    let patched = patch::patch(history);
    (counts.patched, counts.dropped) = (patched.patched, patched.dropped);
    let ops = &patched.history.operations;
    let started = Instant::now();
    let hints = hints::Hints::new(&patched.history);
    let mut outcome = linearizable::linearize_with(ops, &options.budget, &hints);
    let mut hinted = None;
    if matches!(outcome, Outcome::Violation(_)) && !hints.is_empty() {
        // The hints trust the watches; without them a broken watch cannot fail this check.
        let without = linearizable::linearize(ops, &options.budget);
        hinted = Some(std::mem::replace(&mut outcome, without));
    }
    let took = started.elapsed();
    let Outcome::Linearizable { order } = outcome else {
        let mut failed = failed_search(outcome, ops, took);
        if let (Status::TimedOut, Some(hinted)) = (failed.status, hinted) {
            // No verdict, but say where the search that trusts the watches got stuck.
            let with = failed_search(hinted, ops, took).message;
            failed.message = format!("{} (with watch hints: {with})", failed.message);
        }
        verdicts.push(failed);
        verdicts.push(skipped("stale reads"));
        let expected = expected::Expected::from_watches(&patched.history);
        verdicts.extend(watch_verdicts(&patched.history, &expected));
        return Report {
            verdicts,
            counts,
            patched: patched.history,
            linearization: None,
        };
    };
    counts.linearized = order.len();
    verdicts.push(verdict("linearizable", None, format!("in {took:.2?}")));
    let replay = replay::Replay::with_watches(ops, &order, &patched.history.watches);
    let taint = replay::Taint::new(ops);
    let roles = roles(ops);
    let optional = roles.iter().filter(|&&r| r == Role::Optional).count();
    let unplaced = optional
        - order
            .iter()
            .filter(|&&i| roles[i] == Role::Optional)
            .count();
    let reads = reads::check_reads(ops, &replay, &taint, unplaced);
    (counts.reads_checked, counts.reads_unchecked) = (reads.checked, reads.unchecked);
    verdicts.push(verdict("stale reads", reads.failure, String::new()));
    let expected = expected::Expected::from_replay(&patched.history, &replay, &taint, unplaced);
    verdicts.extend(watch_verdicts(&patched.history, &expected));
    Report {
        verdicts,
        counts,
        patched: patched.history,
        linearization: Some(order),
    }
}

fn watch_verdicts(history: &History, expected: &expected::Expected) -> Vec<Verdict> {
    watch::check_watches(history, expected)
        .into_iter()
        .map(|(name, failure)| verdict(name, failure, String::new()))
        .collect()
}

/// The verdict of a search that found no linearization.
fn failed_search(outcome: Outcome, ops: &[history::Operation], took: Duration) -> Verdict {
    let name = "linearizable";
    match outcome {
        Outcome::Violation(v) => {
            let tail: Vec<String> = v.prefix[v.prefix.len().saturating_sub(5)..]
                .iter()
                .map(|&i| describe::operation(i, &ops[i]))
                .collect();
            let message = format!(
                "{} cannot be placed after the longest linearizable prefix ({} operations, \
                 store at revision {}); the model answers {}; the prefix ends with: {}",
                describe::operation(v.blocked, &ops[v.blocked]),
                v.prefix.len(),
                v.state.revision(),
                describe::response(&v.expected),
                tail.join(" | ")
            );
            Verdict {
                name,
                status: Status::Failed,
                message,
            }
        }
        Outcome::TimedOut { steps, depth } => Verdict {
            name,
            status: Status::TimedOut,
            message: format!(
                "timed out after {took:.2?} and {steps} steps; deepest prefix {depth} operations"
            ),
        },
        Outcome::Linearizable { .. } => verdict(name, None, String::new()),
    }
}

fn skipped(name: &'static str) -> Verdict {
    Verdict {
        name,
        status: Status::Skipped,
        message: "needs a linearization".to_string(),
    }
}

/// The search's assumptions: a client has one call in flight, and nothing returns before it
/// is called.
fn assumptions(history: &History) -> Option<String> {
    let mut by_client: HashMap<u32, Vec<(usize, &history::Operation)>> = HashMap::new();
    for (i, op) in history.operations.iter().enumerate() {
        if op.ret < op.call {
            return Some(format!(
                "returns before its call: {}",
                describe::operation(i, op)
            ));
        }
        by_client.entry(op.client).or_default().push((i, op));
    }
    for list in by_client.values_mut() {
        list.sort_by_key(|(_, op)| op.call);
        for pair in list.windows(2) {
            let ((a, x), (b, y)) = (pair[0], pair[1]);
            if y.call < x.ret {
                return Some(format!(
                    "client {} has two calls in flight: {} and {}",
                    x.client,
                    describe::operation(a, x),
                    describe::operation(b, y)
                ));
            }
        }
    }
    None
}
