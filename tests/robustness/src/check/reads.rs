//! Reads that are not checked by the search: serializable reads (served from one member's
//! state, possibly stale) and reads at a past revision (the search checks only their header
//! revision). Their data must equal the replayed store at the revision they read, and a
//! serializable read must not see a revision that did not exist yet when it returned. As in
//! etcd's validate/operations.go, but also for serializable reads at the latest revision.

use super::describe;
use super::history::{Operation, Request, Response};
use super::replay::{Replay, Taint};

/// What the read check found.
#[derive(Clone, Debug, Default)]
pub struct ReadsResult {
    /// Reads compared with the replay.
    pub checked: usize,
    /// Reads left unchecked because Unknown writes make the expected data uncertain.
    pub unchecked: usize,
    /// The first bad read.
    pub failure: Option<String>,
}

/// Checks the stale and serializable reads of `ops` against `replay`. `unplaced_writes` is the
/// number of Unknown writes the linearization left out (revisions beyond the replay may be
/// theirs).
pub fn check_reads(
    ops: &[Operation],
    replay: &Replay,
    taint: &Taint,
    unplaced_writes: usize,
) -> ReadsResult {
    let mut result = ReadsResult::default();
    for (i, op) in ops.iter().enumerate() {
        let (
            Request::Range {
                key,
                range_end,
                revision: at,
                limit,
                serializable,
            },
            Response::Range {
                revision: header,
                kvs,
                count,
            },
        ) = (&op.request, &op.response)
        else {
            continue;
        };
        if !*serializable && *at == 0 {
            continue;
        }
        let fail = |why: String| Some(format!("{why}: {}", describe::operation(i, op)));
        let last = replay.last_revision();
        if *serializable {
            if *at > *header {
                result.failure = result.failure.or_else(|| {
                    fail(format!(
                        "read at revision {at} answered with header revision {header}"
                    ))
                });
                continue;
            }
            if *header > last {
                if unplaced_writes == 0 {
                    result.failure = result.failure.or_else(|| {
                        fail(format!(
                            "header revision {header} beyond the last revision {last}"
                        ))
                    });
                } else {
                    result.unchecked += 1;
                }
                continue;
            }
            if let Some(change) = replay.change(*header) {
                let maker = &ops[change.op];
                if change.certain && maker.call > op.ret {
                    result.failure = result.failure.or_else(|| {
                        fail(format!(
                            "saw revision {header}, made by {} called after the read returned",
                            describe::operation(change.op, maker)
                        ))
                    });
                    continue;
                }
            }
        }
        let read_at = if *at != 0 { *at } else { *header };
        let Some(state) = replay.state_at(read_at) else {
            result.unchecked += 1;
            continue;
        };
        let settled = match replay.change(read_at) {
            Some(change) if change.certain => ops[change.op].ret,
            Some(_) => u64::MAX,
            None => 0,
        };
        if !replay.settled(read_at) && taint.range(key, range_end, settled) {
            result.unchecked += 1;
            continue;
        }
        result.checked += 1;
        let (want, want_count) = state.range(key, range_end, *limit);
        if want != *kvs || want_count != *count {
            let wanted = Response::Range {
                revision: *header,
                kvs: want,
                count: want_count,
            };
            result.failure = result.failure.or_else(|| {
                fail(format!(
                    "data at revision {read_at} differs: want {}",
                    describe::response(&wanted)
                ))
            });
        }
    }
    result
}
