//! Every write request is applied at most once. The runner's values are unique per request, so
//! a (key, value) the watches saw put at more distinct revisions than there are requests that
//! write it was applied twice: a member retried a request that had already reached the log.
//! The linearizability search also fails on such a history, but only after a long search and
//! with a message about a read; this check names the write.

use std::collections::{BTreeSet, HashMap};

use super::describe;
use super::history::{EventKind, History, Request, TxnOp};

/// The (key, value) pairs one request may write.
fn writes(r: &Request) -> Vec<(&[u8], &[u8])> {
    fn put(op: &TxnOp) -> Option<(&[u8], &[u8])> {
        match op {
            TxnOp::Put { key, value, .. } => Some((key, value)),
            _ => None,
        }
    }
    match r {
        Request::Put { key, value, .. } => vec![(key, value)],
        Request::Txn {
            success, failure, ..
        } => {
            // One branch runs: a pair written by both branches still counts once.
            let pairs: BTreeSet<_> = success.iter().chain(failure).filter_map(put).collect();
            pairs.into_iter().collect()
        }
        _ => Vec::new(),
    }
}

/// The first (key, value) put at more revisions than requests write it, described.
pub fn applied_once(history: &History) -> Option<String> {
    let mut requests: HashMap<(&[u8], &[u8]), Vec<usize>> = HashMap::new();
    for (i, op) in history.operations.iter().enumerate() {
        for pair in writes(&op.request) {
            requests.entry(pair).or_default().push(i);
        }
    }
    let mut seen: HashMap<(&[u8], &[u8]), BTreeSet<i64>> = HashMap::new();
    for w in &history.watches {
        for e in w.responses.iter().flat_map(|r| &r.events) {
            if e.kind == EventKind::Put {
                let pair = (e.kv.key.as_slice(), e.kv.value.as_slice());
                seen.entry(pair).or_default().insert(e.kv.mod_revision);
            }
        }
    }
    let mut twice: Vec<_> = seen
        .into_iter()
        .filter(|(pair, revs)| revs.len() > requests.get(pair).map_or(0, Vec::len))
        .collect();
    let ((key, value), revs) = twice
        .drain(..)
        .min_by_key(|(_, revs)| revs.first().copied())?;
    let by: Vec<String> = requests
        .get(&(key, value))
        .into_iter()
        .flatten()
        .map(|&i| describe::operation(i, &history.operations[i]))
        .collect();
    Some(format!(
        "put {}={} applied at revisions {:?}, by {} request(s): {}",
        describe::bytes(key),
        describe::bytes(value),
        revs.iter().collect::<Vec<_>>(),
        by.len(),
        if by.is_empty() {
            "none".to_string()
        } else {
            by.join(" | ")
        }
    ))
}
