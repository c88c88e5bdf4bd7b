//! The linearizability search: Wing & Gong's algorithm with Lowe's memo cache, as porcupine
//! runs it, made iterative. Operations become call and return entries in a doubly linked list
//! sorted by time (`timeline`); the search linearizes a pending call whose step fits the
//! model, unlinks its entries and starts over, and backtracks when the earliest pending return
//! is reached. Differences from porcupine: an Unknown write is optional (it may have happened
//! at any time after its call, or never), so it gets no return entry and is tried only after
//! every required candidate failed at a node; an operation that leaves the state unchanged (a
//! read) is linearized as soon as it fits and never reconsidered at that node (doing it first
//! dominates doing it later); the linearized set is hashed with 128-bit Zobrist keys. Two
//! rules of `prune` (which says why they are sound) keep a long run tractable: no operation
//! may make a revision a required write says it made, and of identical optional writes only
//! the earliest-called unplaced one is tried. An optional write the watches rule out is
//! rejected by `Hints::admits` before the model is stepped.

use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::hints::Hints;
use super::history::{Operation, Response};
use super::model::State;
use super::prune::{Owners, Twins};
use super::roles::{Role, roles};
use super::timeline::Timeline;

/// Limits of one search.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Most search steps (step attempts and backtracks).
    pub max_steps: u64,
    /// Most wall-clock time.
    pub max_time: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_steps: 200_000_000,
            max_time: Duration::from_secs(300),
        }
    }
}

/// Where the search got stuck furthest.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The longest sequence of operations (indices) that could be linearized.
    pub prefix: Vec<usize>,
    /// The operation whose return came before it could be placed after that prefix.
    pub blocked: usize,
    /// The model state after the prefix.
    pub state: State,
    /// What the model would have answered `blocked` in that state.
    pub expected: Response,
}

/// The result of a search.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A linearization: operation indices in order (Optional ones only if placed).
    Linearizable {
        /// The order.
        order: Vec<usize>,
    },
    /// None exists.
    Violation(Box<Violation>),
    /// The budget ran out first.
    TimedOut {
        /// Steps taken.
        steps: u64,
        /// Most operations linearized at once.
        depth: usize,
    },
}

/// Most memo cache entries: past it the cache starts again empty. Forgetting what failed only
/// costs time, while a cache that grows with every state tried can exhaust the memory of a
/// search that runs for minutes (a hint-free search of a 20-minute run took 24 GB).
const MEMO_LIMIT: usize = 1 << 20;

#[derive(Clone, Copy)]
enum Slot {
    Main(usize),
    Optional(usize),
}

struct Frame {
    op: usize,
    slot: Slot,
    state: State,
    set: u128,
    forced: bool,
}

struct Link {
    op: usize,
    prev: Option<Rc<Link>>,
}

impl Drop for Link {
    /// Unlinks the chain in a loop: the default drop recurses once per link, which overflows
    /// the stack of a debug build on the linearization of a long run.
    fn drop(&mut self) {
        let mut prev = self.prev.take();
        while let Some(link) = prev {
            prev = Rc::try_unwrap(link).ok().and_then(|mut l| l.prev.take());
        }
    }
}

/// Searches for a linearization of `ops` (indices refer to `ops`).
///
/// An Unknown write is placed only where it makes a new revision no higher than the last
/// revision any answer or watch event showed: a write past that is seen by nothing, and a
/// revision-less effect (a compaction, revoking a lease without keys) would be tried at every
/// dead end while almost nothing can tell where it belongs.
pub fn linearize(ops: &[Operation], budget: &Budget) -> Outcome {
    Search::new(ops, None).run(budget)
}

/// Searches for a linearization of `ops` whose revisions also produce the events `hints` hold.
pub fn linearize_with(ops: &[Operation], budget: &Budget, hints: &Hints) -> Outcome {
    Search::new(ops, Some(hints)).run(budget)
}

struct Search<'a> {
    ops: &'a [Operation],
    hints: Option<&'a Hints>,
    /// The highest revision any answer or event showed.
    ceiling: i64,
    timeline: Timeline,
    /// Optional operations by call; `twins` knows which are placed.
    optional: Vec<usize>,
    twins: Twins,
    owners: Owners,
    keys: Vec<u128>,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [Operation], hints: Option<&'a Hints>) -> Search<'a> {
        let roles = roles(ops);
        let mut optional: Vec<usize> = (0..ops.len())
            .filter(|&i| roles[i] == Role::Optional)
            .collect();
        optional.sort_by_key(|&i| (ops[i].call, i));
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let keys = (0..ops.len())
            .map(|_| (u128::from(splitmix(&mut seed)) << 64) | u128::from(splitmix(&mut seed)))
            .collect();
        let ceiling = ops
            .iter()
            .filter_map(|op| op.response.revision())
            .chain(hints.map(Hints::last_revision))
            .max()
            .unwrap_or(1);
        Search {
            ops,
            hints,
            ceiling,
            timeline: Timeline::new(ops, &roles),
            twins: Twins::new(ops, &optional),
            owners: Owners::new(ops, &roles),
            optional,
            keys,
        }
    }

    fn run(mut self, budget: &Budget) -> Outcome {
        let started = Instant::now();
        let mut cache: HashSet<(u128, State)> = HashSet::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut path: Option<Rc<Link>> = None;
        let mut state = State::new();
        let mut set = 0u128;
        let mut left = self.timeline.operations();
        let mut best: Option<(usize, Option<Rc<Link>>, usize, State)> = None;
        let mut steps = 0u64;
        let mut cursor = Some(Slot::Main(self.timeline.first()));
        loop {
            steps += 1;
            if steps.is_multiple_of(1024)
                && (steps > budget.max_steps || started.elapsed() > budget.max_time)
            {
                let depth = best.as_ref().map_or(stack.len(), |b| b.0);
                return Outcome::TimedOut { steps, depth };
            }
            if left == 0 {
                return Outcome::Linearizable {
                    order: stack.iter().map(|f| f.op).collect(),
                };
            }
            // Find the next candidate at this node, if any.
            let candidate = match cursor {
                Some(Slot::Main(e)) if self.timeline.is_call(e) => Some((e, Slot::Main(e))),
                // An optional write must make the next revision: not if a required one does.
                Some(_) if self.owners.is_owned(state.revision() + 1) => None,
                Some(Slot::Main(e)) => {
                    let bound = self.timeline.time(e);
                    self.next_optional(0, bound)
                        .map(|p| (self.optional[p], Slot::Optional(p)))
                }
                Some(Slot::Optional(p)) => {
                    let bound = self.timeline.time(self.timeline.first_return());
                    self.next_optional(p, bound)
                        .map(|p| (self.optional[p], Slot::Optional(p)))
                }
                None => None,
            };
            let Some((_, slot)) = candidate else {
                // Dead end: remember the deepest, then backtrack.
                if best.as_ref().is_none_or(|b| stack.len() > b.0) {
                    let blocked = self.timeline.op(self.timeline.first_return());
                    best = Some((stack.len(), path.clone(), blocked, state.clone()));
                }
                let resumed = loop {
                    let Some(frame) = stack.pop() else { break None };
                    path = path.and_then(|l| l.prev.clone());
                    state = frame.state;
                    set = frame.set;
                    match frame.slot {
                        Slot::Main(e) => {
                            self.timeline.unlift(e);
                            left += 1;
                        }
                        Slot::Optional(p) => self.twins.unplace(p),
                    }
                    if !frame.forced {
                        break Some(frame.slot);
                    }
                };
                cursor = match resumed {
                    None => return self.violation(best),
                    Some(Slot::Main(e)) => Some(Slot::Main(self.timeline.next(e))),
                    Some(Slot::Optional(p)) => Some(Slot::Optional(p + 1)),
                };
                continue;
            };
            let op = match slot {
                Slot::Main(e) => self.timeline.op(e),
                Slot::Optional(p) => self.optional[p],
            };
            let (request, response) = (&self.ops[op].request, &self.ops[op].response);
            let advance = |slot| match slot {
                Slot::Main(e) => Some(Slot::Main(self.timeline.next(e))),
                Slot::Optional(p) => Some(Slot::Optional(p + 1)),
            };
            let optional = matches!(slot, Slot::Optional(_));
            let next_revision = state.revision() + 1;
            if optional
                && !self
                    .hints
                    .is_none_or(|h| h.admits(&state, request, next_revision))
            {
                // Most optional writes are rejected here, without a step of the model.
                cursor = advance(slot);
                continue;
            }
            let tried = state.step(request, response).filter(|a| {
                let made = a.state.revision();
                (made == state.revision() || self.owners.may_make(op, optional, made))
                    && self
                        .hints
                        .is_none_or(|h| h.allow(&state, request, response, made))
            });
            let Some(applied) = tried else {
                cursor = advance(slot);
                continue;
            };
            let made = applied.state.revision();
            if optional && (made == state.revision() || made > self.ceiling) {
                // An Unknown write is placed only where it makes a revision some answer or
                // event can pin down; see `roles` for what its other effects may explain.
                cursor = advance(slot);
                continue;
            }
            let new_set = set ^ self.keys[op];
            if cache.len() >= MEMO_LIMIT {
                cache.clear();
            }
            if !cache.insert((new_set, applied.state.clone())) {
                // Seen and failed. For a no-op that fits, this node fails too.
                cursor = if applied.changed { advance(slot) } else { None };
                continue;
            }
            let forced = !applied.changed;
            let old = std::mem::replace(&mut state, applied.state);
            stack.push(Frame {
                op,
                slot,
                state: old,
                set,
                forced,
            });
            path = Some(Rc::new(Link {
                op,
                prev: path.take(),
            }));
            set = new_set;
            match slot {
                Slot::Main(e) => {
                    self.timeline.lift(e);
                    left -= 1;
                }
                Slot::Optional(p) => self.twins.place(p),
            }
            cursor = Some(Slot::Main(self.timeline.first()));
        }
    }

    /// The first optional operation at or after `p` called no later than `bound` that is the
    /// earliest-called unplaced one of its twins.
    fn next_optional(&self, mut p: usize, bound: u64) -> Option<usize> {
        while p < self.optional.len() && self.ops[self.optional[p]].call <= bound {
            if self.twins.is_next(p) {
                return Some(p);
            }
            p += 1;
        }
        None
    }

    fn violation(&self, best: Option<(usize, Option<Rc<Link>>, usize, State)>) -> Outcome {
        let Some((_, path, blocked, state)) = best else {
            unreachable!("a failed search has met a dead end")
        };
        let mut prefix = Vec::new();
        let mut link = path;
        while let Some(l) = link {
            prefix.push(l.op);
            link = l.prev.clone();
        }
        prefix.reverse();
        let op = &self.ops[blocked];
        let expected = state.apply(&op.request, &op.response, None).response;
        Outcome::Violation(Box::new(Violation {
            prefix,
            blocked,
            state,
            expected,
        }))
    }
}

fn splitmix(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_prefix_is_dropped_without_recursion_and_a_shared_tail_survives() {
        let mut path = None;
        let mut middle = None;
        for op in 0..1_000_000 {
            path = Some(Rc::new(Link {
                op,
                prev: path.take(),
            }));
            if op == 500_000 {
                middle = path.clone();
            }
        }
        drop(path);
        let mut length = 0;
        let mut link = middle.as_ref();
        while let Some(l) = link {
            length += 1;
            link = l.prev.as_ref();
        }
        assert_eq!(length, 500_001);
    }
}
