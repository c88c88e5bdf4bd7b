//! Pruning for the linearizability search: two rules that cut only branches which cannot end
//! in a linearization, or which mirror a branch the search explores anyway.
//!
//! **Revision owners.** A step that changes the revision raises it by exactly one, so in any
//! linearization each revision above 1 is made by exactly one step. Some answers say which
//! step that is: a Put answered with revision r, a DeleteRange that deleted keys at r, a Txn
//! whose results hold a Put or a DeleteRange that deleted keys, a Txn patched to `Persisted`
//! (the branch that ran holds a put). The model accepts such an answer only in state r - 1,
//! and the step leaves the state at r. The operation is required, so every linearization has
//! it make r, and no other step can: a branch in which another operation makes r can never
//! place the owner. The search cuts such a branch at once, instead of when the owner's return
//! is reached, which may be thousands of steps of interleavings later. In particular, at a
//! node whose next revision has an owner no optional write is tried at all: an optional write
//! is placed only where it makes the next revision.
//!
//! Without this rule a long run blows up. An Unknown delete of a key that never happened (the
//! member was down) stays optional to the end of the run, and its effect (a Delete event with
//! only a key and a revision) fits every later revision at which the key is deleted, so the
//! search lets it steal the revision of the acknowledged delete, and explores the interleavings
//! up to that delete's return once for every such never-happened delete of the key (and once
//! for every combination, when several keys are deleted close together). A 21-minute run
//! timed out that way 135 s in: 22 such deletes of one key and 13 of another were pending
//! where two acknowledged deletes made consecutive revisions. There, required writes own
//! 67,000 of the 70,000 revisions.
//!
//! **Twins.** Two optional writes with the same request are interchangeable once both have
//! been called: they change every state the same way, and neither has a return. Take a
//! linearization that places the later-called twin B at a point where the earlier-called twin
//! A is not placed yet. Swapping the two (A at B's point, B at A's later point, or nowhere if A
//! was not placed) gives a linearization too, as A was called before B and B before A's point.
//! So the search only tries the earliest-called unplaced member of each class, and the placed
//! members of a class are always its earliest-called ones (which also makes the memo cache see
//! one set where it saw one per choice of twins).

use std::collections::HashMap;

use super::history::{Operation, Request, Response, TxnOp, TxnOpResult};
use super::roles::Role;

/// Who makes a revision, by the answers of required writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// One required operation (its index).
    One(usize),
    /// Several: no linearization exists, and none of them is preferred over the others.
    Contested,
}

/// The revisions required writes say they made.
#[derive(Clone, Debug, Default)]
pub struct Owners {
    by_revision: HashMap<i64, Owner>,
}

impl Owners {
    /// The owners among `ops`, whose roles are `roles`.
    pub fn new(ops: &[Operation], roles: &[Role]) -> Owners {
        let mut by_revision = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            if roles[i] != Role::Required {
                continue;
            }
            if let Some(r) = made_revision(&op.request, &op.response) {
                by_revision
                    .entry(r)
                    .and_modify(|o| *o = Owner::Contested)
                    .or_insert(Owner::One(i));
            }
        }
        Owners { by_revision }
    }

    /// Whether a required write says it made `revision`.
    pub fn is_owned(&self, revision: i64) -> bool {
        self.by_revision.contains_key(&revision)
    }

    /// Whether operation `op` may make `revision`. A contested revision rules out every
    /// linearization; it rules out optional writes here, and leaves the search to find that
    /// its claimants cannot all be placed (so the violation names one of them).
    pub fn may_make(&self, op: usize, optional: bool, revision: i64) -> bool {
        match self.by_revision.get(&revision) {
            None => true,
            Some(Owner::One(owner)) => *owner == op,
            Some(Owner::Contested) => !optional,
        }
    }
}

/// The revision an answer says its write made, if it says so (see the module header).
pub fn made_revision(request: &Request, response: &Response) -> Option<i64> {
    match (request, response) {
        (Request::Put { .. }, Response::Put { revision }) => Some(*revision),
        (Request::DeleteRange { .. }, Response::DeleteRange { revision, deleted }) => {
            (*deleted > 0).then_some(*revision)
        }
        (
            Request::Txn { .. },
            Response::Txn {
                revision, results, ..
            },
        ) => results
            .iter()
            .any(|r| match r {
                TxnOpResult::Put => true,
                TxnOpResult::DeleteRange { deleted } => *deleted > 0,
                TxnOpResult::Range { .. } => false,
            })
            .then_some(*revision),
        (
            Request::Txn {
                success, failure, ..
            },
            Response::Persisted {
                revision,
                succeeded,
            },
        ) => {
            let branch = if *succeeded { success } else { failure };
            branch
                .iter()
                .any(|t| matches!(t, TxnOp::Put { .. }))
                .then_some(*revision)
        }
        _ => None,
    }
}

/// Classes of optional writes with the same request, and how many of each are placed.
#[derive(Clone, Debug, Default)]
pub struct Twins {
    /// Class of each optional write (by its position in the call-sorted optional list).
    class: Vec<usize>,
    /// Its rank within the class, by call.
    rank: Vec<usize>,
    /// Members of each class placed now (always those of the lowest ranks).
    placed: Vec<usize>,
}

impl Twins {
    /// The classes of `optional`: indices into `ops`, sorted by call.
    pub fn new(ops: &[Operation], optional: &[usize]) -> Twins {
        let mut classes: HashMap<&Request, usize> = HashMap::new();
        let mut sizes: Vec<usize> = Vec::new();
        let (mut class, mut rank) = (Vec::new(), Vec::new());
        for &i in optional {
            let next = classes.len();
            let c = *classes.entry(&ops[i].request).or_insert(next);
            if c == sizes.len() {
                sizes.push(0);
            }
            class.push(c);
            rank.push(sizes[c]);
            sizes[c] += 1;
        }
        Twins {
            class,
            rank,
            placed: vec![0; sizes.len()],
        }
    }

    /// Whether optional write `p` is the earliest-called unplaced member of its class.
    pub fn is_next(&self, p: usize) -> bool {
        self.placed[self.class[p]] == self.rank[p]
    }

    /// Records that `p` (which [`Twins::is_next`]) was placed.
    pub fn place(&mut self, p: usize) {
        debug_assert!(self.is_next(p));
        self.placed[self.class[p]] += 1;
    }

    /// Records that `p`, the last placed of its class, was taken back.
    pub fn unplace(&mut self, p: usize) {
        self.placed[self.class[p]] -= 1;
        debug_assert!(self.is_next(p));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testgen::{op, put, unknown};
    use super::*;

    fn delete(key: &str) -> Request {
        Request::DeleteRange {
            key: key.as_bytes().to_vec(),
            range_end: Vec::new(),
        }
    }

    #[test]
    fn acknowledged_writes_own_their_revisions() {
        let deleted = |deleted| Response::DeleteRange {
            revision: 4,
            deleted,
        };
        assert_eq!(
            made_revision(&put("a", "1"), &Response::Put { revision: 3 }),
            Some(3)
        );
        assert_eq!(made_revision(&delete("a"), &deleted(1)), Some(4));
        assert_eq!(made_revision(&delete("a"), &deleted(0)), None);
        let revoke = Request::LeaseRevoke { id: 1 };
        let revoked = Response::LeaseRevoke { revision: 4 };
        assert_eq!(made_revision(&revoke, &revoked), None, "keys unknown");
    }

    #[test]
    fn an_owned_revision_is_made_by_its_owner_only() {
        let ops = vec![
            op(1, 0, 10, put("a", "1"), Response::Put { revision: 2 }),
            op(2, 0, 10, put("b", "1"), Response::Put { revision: 3 }),
            op(3, 0, 10, put("c", "1"), Response::Put { revision: 3 }),
            op(4, 0, 10, delete("a"), unknown()),
        ];
        let roles = super::super::roles::roles(&ops);
        let owners = Owners::new(&ops, &roles);
        assert!(owners.may_make(0, false, 2) && !owners.may_make(1, false, 2));
        assert!(!owners.may_make(3, true, 2) && owners.may_make(3, true, 4));
        assert!(owners.may_make(1, false, 3) && owners.may_make(2, false, 3));
        assert!(!owners.may_make(3, true, 3), "contested");
        assert!(owners.is_owned(3) && !owners.is_owned(4));
    }

    #[test]
    fn only_the_earliest_unplaced_twin_is_tried() {
        let ops = vec![
            op(1, 0, 10, delete("a"), unknown()),
            op(2, 5, 10, delete("b"), unknown()),
            op(3, 7, 10, delete("a"), unknown()),
        ];
        let mut twins = Twins::new(&ops, &[0, 1, 2]);
        assert!(twins.is_next(0) && twins.is_next(1) && !twins.is_next(2));
        twins.place(0);
        assert!(twins.is_next(2) && twins.is_next(1));
        twins.place(2);
        twins.unplace(2);
        twins.unplace(0);
        assert!(twins.is_next(0) && !twins.is_next(2));
    }
}
