//! The pending required operations of the linearizability search, as porcupine keeps them:
//! a call entry and a return entry per operation in a doubly linked list sorted by time. The
//! search walks the calls before the first return (the candidates), lifts an operation's two
//! entries out when it linearizes it and puts them back, in reverse order, when it backtracks.

use super::history::Operation;
use super::roles::Role;

/// The end of the list.
pub const END: usize = usize::MAX;

struct Entry {
    op: usize,
    time: u64,
    call: bool,
    pair: usize,
}

/// Call and return entries of the required operations, linked in time order.
pub struct Timeline {
    entries: Vec<Entry>,
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl Timeline {
    /// The entries of the operations of `ops` whose role is [`Role::Required`].
    pub fn new(ops: &[Operation], roles: &[Role]) -> Timeline {
        let mut entries = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if roles[i] != Role::Required {
                continue;
            }
            let (call, ret) = (op.call, op.ret.max(op.call));
            for (time, call) in [(call, true), (ret, false)] {
                entries.push(Entry {
                    op: i,
                    time,
                    call,
                    pair: END,
                });
            }
        }
        // Calls before returns at equal times: touching operations count as concurrent.
        entries.sort_by_key(|e| (e.time, !e.call, e.op));
        let mut call_at = vec![END; ops.len()];
        for i in 0..entries.len() {
            if entries[i].call {
                call_at[entries[i].op] = i;
            } else {
                let c = call_at[entries[i].op];
                entries[c].pair = i;
                entries[i].pair = c;
            }
        }
        // The head sentinel is index `entries.len()`.
        let n = entries.len();
        let mut next: Vec<usize> = (1..=n).map(|i| if i < n { i } else { END }).collect();
        next.push(if n == 0 { END } else { 0 });
        let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { n } else { i - 1 }).collect();
        prev.push(END);
        Timeline {
            entries,
            next,
            prev,
        }
    }

    /// How many operations the timeline holds (linked or not).
    pub fn operations(&self) -> usize {
        self.entries.len() / 2
    }

    /// The first linked entry, [`END`] when none is left.
    pub fn first(&self) -> usize {
        self.next[self.entries.len()]
    }

    /// The linked entry after `e`.
    pub fn next(&self, e: usize) -> usize {
        self.next[e]
    }

    /// The operation of entry `e`.
    pub fn op(&self, e: usize) -> usize {
        self.entries[e].op
    }

    /// The time of entry `e`.
    pub fn time(&self, e: usize) -> u64 {
        self.entries[e].time
    }

    /// Whether entry `e` is a call.
    pub fn is_call(&self, e: usize) -> bool {
        self.entries[e].call
    }

    /// The first linked return entry, [`END`] when none is left.
    pub fn first_return(&self) -> usize {
        let mut e = self.first();
        while e != END && self.entries[e].call {
            e = self.next[e];
        }
        e
    }

    /// Unlinks a call and its return (the return last, so that [`Timeline::unlift`] relinks
    /// it first).
    pub fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.entries[call].pair);
    }

    /// Undoes the last [`Timeline::lift`] still in effect, of `call`.
    pub fn unlift(&mut self, call: usize) {
        self.relink(self.entries[call].pair);
        self.relink(call);
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        if n != END {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        if n != END {
            self.prev[n] = e;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::roles::roles;
    use super::super::testgen::{get, op, put, read, unknown};
    use super::*;
    use crate::check::history::Response;

    #[test]
    fn entries_are_in_time_order_and_lifting_is_undone() {
        let ops = vec![
            op(1, 0, 30, put("a", "1"), Response::Put { revision: 2 }),
            op(2, 10, 20, get("a"), read(1, vec![])),
            op(3, 5, 50, put("b", "1"), unknown()),
        ];
        let mut t = Timeline::new(&ops, &roles(&ops));
        assert_eq!(t.operations(), 2, "the Unknown write has no entries");
        let walk = |t: &Timeline| {
            let mut e = t.first();
            let mut seen = Vec::new();
            while e != END {
                seen.push((t.op(e), t.is_call(e), t.time(e)));
                e = t.next(e);
            }
            seen
        };
        let all = vec![(0, true, 0), (1, true, 10), (1, false, 20), (0, false, 30)];
        assert_eq!(walk(&t), all);
        assert_eq!(t.op(t.first_return()), 1);
        let second = t.next(t.first());
        t.lift(second);
        assert_eq!(walk(&t), vec![(0, true, 0), (0, false, 30)]);
        t.unlift(second);
        assert_eq!(walk(&t), all);
    }
}
