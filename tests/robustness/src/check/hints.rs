//! Watch events as hints for the linearizability search. When a watch saw what revision r
//! did, a step that makes revision r must produce those events; this cuts a wrong guess about
//! which Unknown write made r at once, instead of many operations later (a delete of the wrong
//! key fits every revision count). The hints assume the watches are right: a search that fails
//! with them is run again without, so a broken watch is reported by the watch checkers, never
//! as a linearizability violation.

use std::collections::HashMap;

use super::history::{EventKind, History, WatchEvent};
use super::history::{Request, Response};
use super::model::State;

/// A key a revision changed, and the event watches agree it had (`None` where they disagree).
type Hint = (Vec<u8>, Option<WatchEvent>);

/// The events watches agree a revision had, by revision and key.
#[derive(Clone, Debug, Default)]
pub struct Hints {
    /// `None` where two watches disagree on the event.
    seen: HashMap<i64, Vec<Hint>>,
    /// The highest revision a watch response showed.
    last: i64,
}

impl Hints {
    /// Collects every watch event of `history`.
    pub fn new(history: &History) -> Hints {
        let mut seen: HashMap<i64, Vec<Hint>> = HashMap::new();
        let mut last = 1;
        for resp in history.watches.iter().flat_map(|w| &w.responses) {
            last = last.max(resp.revision);
            for e in &resp.events {
                let at = seen.entry(e.kv.mod_revision).or_default();
                let bare = WatchEvent {
                    prev_kv: None,
                    ..e.clone()
                };
                match at.iter_mut().find(|(k, _)| *k == e.kv.key) {
                    Some((_, known)) => {
                        if known.as_ref().is_some_and(|k| !same(k, &bare)) {
                            *known = None;
                        }
                    }
                    None => at.push((e.kv.key.clone(), Some(bare))),
                }
                last = last.max(e.kv.mod_revision);
            }
        }
        Hints { seen, last }
    }

    /// The highest revision a watch response showed (1 when none).
    pub fn last_revision(&self) -> i64 {
        self.last
    }

    /// Whether no watch saw anything.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Whether stepping `before` by `request` into a state at `after_revision` agrees with
    /// what the watches saw at that revision.
    pub fn allow(
        &self,
        before: &State,
        request: &Request,
        observed: &Response,
        after_revision: i64,
    ) -> bool {
        if after_revision == before.revision() {
            return true;
        }
        let Some(hinted) = self.seen.get(&after_revision) else {
            return true;
        };
        let mut events = Vec::new();
        before.apply(request, observed, Some(&mut events));
        hinted.iter().all(|(key, hint)| {
            let Some(hint) = hint else { return true };
            events.iter().any(|e| e.kv.key == *key && same(e, hint))
        })
    }
}

/// Same kind and key; for a put also the same key-value. (Deletes carry nothing else that
/// every store fills the same way.)
fn same(a: &WatchEvent, b: &WatchEvent) -> bool {
    a.kind == b.kind && a.kv.key == b.kv.key && (a.kind == EventKind::Delete || a.kv == b.kv)
}
