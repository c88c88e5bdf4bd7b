//! History patching with watch events, as etcd's validate/patch_history.go does before the
//! search. The runner writes a unique value with every put, so a put event in any watch tells
//! whether an Unknown write happened and at which revision: such a write becomes a known one
//! (a Put response, or `Persisted` for a Txn) whose return time is when the event was first
//! received. An Unknown write that could only have had an effect through its unique puts, and
//! whose puts no watch saw, is dropped, but only when a watch over every key saw every
//! revision up to the last one of the run. Other Unknown writes stay optional.

use std::collections::HashMap;

use super::history::{EventKind, History, Operation, Request, Response, TxnOp, in_range};

/// A patched history and what patching did.
#[derive(Clone, Debug)]
pub struct Patched {
    /// The history with Unknown writes resolved where the watches allow it.
    pub history: History,
    /// Unknown writes turned into known ones.
    pub patched: usize,
    /// Unknown writes dropped as never applied.
    pub dropped: usize,
    /// Whether a gap-free watch over every key covered the whole run.
    pub full_watch: bool,
}

/// Where a unique put was first seen: its revision and the earliest time a watch received it.
type Sightings = HashMap<(Vec<u8>, Vec<u8>), (i64, u64)>;

/// Resolves the Unknown writes of `history` with its watch events.
pub fn patch(history: &History) -> Patched {
    let mut puts_per_value: HashMap<(&[u8], &[u8]), usize> = HashMap::new();
    for op in &history.operations {
        for (key, value) in put_values(&op.request) {
            *puts_per_value.entry((key, value)).or_default() += 1;
        }
    }
    let mut seen: Sightings = HashMap::new();
    for record in &history.watches {
        for resp in &record.responses {
            for e in resp.events.iter().filter(|e| e.kind == EventKind::Put) {
                let at = seen
                    .entry((e.kv.key.clone(), e.kv.value.clone()))
                    .or_insert((e.kv.mod_revision, resp.time));
                at.1 = at.1.min(resp.time);
            }
        }
    }
    let full_watch = full_watch(history);
    let unique = |key: &[u8], value: &[u8]| puts_per_value.get(&(key, value)) == Some(&1);
    let mut out = History {
        operations: Vec::new(),
        watches: history.watches.clone(),
    };
    let (mut patched, mut dropped) = (0, 0);
    for op in &history.operations {
        if !op.response.is_unknown() {
            out.operations.push(op.clone());
            continue;
        }
        let sighting = |key: &[u8], value: &[u8]| {
            if unique(key, value) {
                seen.get(&(key.to_vec(), value.to_vec())).copied()
            } else {
                None
            }
        };
        let resolved = match &op.request {
            Request::Put { key, value, .. } => match sighting(key, value) {
                Some((revision, time)) => Some(Some((Response::Put { revision }, time))),
                None if full_watch && unique(key, value) => Some(None),
                None => None,
            },
            Request::Txn {
                success, failure, ..
            } => {
                let in_branch = |ops: &[TxnOp]| {
                    ops.iter().find_map(|t| match t {
                        TxnOp::Put { key, value, .. } => sighting(key, value),
                        _ => None,
                    })
                };
                let visible = |ops: &[TxnOp]| {
                    ops.iter().all(|t| matches!(t, TxnOp::Range { .. }))
                        || ops.iter().any(
                            |t| matches!(t, TxnOp::Put { key, value, .. } if unique(key, value)),
                        )
                };
                match (in_branch(success), in_branch(failure)) {
                    (Some((revision, time)), _) => Some(Some((
                        Response::Persisted {
                            revision,
                            succeeded: true,
                        },
                        time,
                    ))),
                    (None, Some((revision, time))) => Some(Some((
                        Response::Persisted {
                            revision,
                            succeeded: false,
                        },
                        time,
                    ))),
                    (None, None) if full_watch && visible(success) && visible(failure) => {
                        Some(None)
                    }
                    (None, None) => None,
                }
            }
            _ => None,
        };
        match resolved {
            None => out.operations.push(op.clone()),
            Some(None) => dropped += 1,
            Some(Some((response, time))) => {
                patched += 1;
                out.operations.push(Operation {
                    response,
                    ret: time.max(op.call),
                    ..op.clone()
                });
            }
        }
    }
    Patched {
        history: out,
        patched,
        dropped,
        full_watch,
    }
}

/// The (key, value) of every put a request carries, in both Txn branches.
fn put_values(request: &Request) -> Vec<(&[u8], &[u8])> {
    match request {
        Request::Put { key, value, .. } => vec![(key.as_slice(), value.as_slice())],
        Request::Txn {
            success, failure, ..
        } => success
            .iter()
            .chain(failure)
            .filter_map(|t| match t {
                TxnOp::Put { key, value, .. } => Some((key.as_slice(), value.as_slice())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The last revision anything in the history showed.
pub fn final_revision(history: &History) -> i64 {
    let ops = history
        .operations
        .iter()
        .filter_map(|op| op.response.revision());
    let watches = history
        .watches
        .iter()
        .flat_map(|w| &w.responses)
        .flat_map(|r| {
            std::iter::once(r.revision).chain(r.events.iter().map(|e| e.kv.mod_revision))
        });
    ops.chain(watches).max().unwrap_or(1).max(1)
}

/// Whether one watch, unfiltered and over every key written, received events of every
/// revision from 2 to the final revision: then a put it did not see never happened (before
/// the end of the run).
fn full_watch(history: &History) -> bool {
    let last = final_revision(history);
    let written: Vec<&[u8]> = history
        .operations
        .iter()
        .flat_map(|op| put_values(&op.request))
        .map(|(key, _)| key)
        .collect();
    history.watches.iter().any(|w| {
        let s = &w.spec;
        if s.no_put || s.no_delete || !written.iter().all(|k| in_range(k, &s.key, &s.range_end)) {
            return false;
        }
        let mut revisions: Vec<i64> = w
            .responses
            .iter()
            .flat_map(|r| &r.events)
            .map(|e| e.kv.mod_revision)
            .collect();
        revisions.dedup();
        revisions.sort_unstable();
        revisions.dedup();
        revisions.len() == usize::try_from(last - 1).unwrap_or(0)
            && revisions.first().is_none_or(|&r| r == 2)
            && revisions.last().is_none_or(|&r| r == last)
    })
}
