//! Which operations the linearizability search must place, may place, or leaves out, and
//! why: an Unknown write may or may not have happened; reads that cannot be checked against
//! one store state (serializable ones, keep-alives) and answers the model does not know are
//! left out, as are refusals an Unknown write's invisible effect could explain.

use super::etcd::{Refusal, refusal};
use super::history::{Operation, Request, Response, TxnOp};
use super::replay::puts;

/// How an operation takes part in the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Took effect between its call and return: must be linearized.
    Required,
    /// An Unknown write: may be linearized after its call, or not at all.
    Optional,
    /// Not part of the search (an Unknown read, a serializable read, a keep-alive, a refusal
    /// the model does not know).
    Skipped,
}

/// Whether a request can change the store.
pub fn is_write(request: &Request) -> bool {
    match request {
        Request::Put { .. }
        | Request::DeleteRange { .. }
        | Request::LeaseRevoke { .. }
        | Request::Compact { .. } => true,
        Request::Txn {
            success, failure, ..
        } => success
            .iter()
            .chain(failure)
            .any(|op| !matches!(op, TxnOp::Range { .. })),
        Request::Range { .. } | Request::LeaseGrant { .. } | Request::LeaseKeepAlive { .. } => {
            false
        }
    }
}

/// The role of each operation in the search.
///
/// The search places an Unknown write only where it makes a revision (see [`super::linearizable::linearize`]).
/// So an Unknown compaction is left out, and so is every refusal that an Unknown write's
/// revision-less effect could explain: "compacted" at or below an Unknown compaction's
/// revision, "lease not found" for a lease an Unknown revoke names, answered after its call.
pub fn roles(ops: &[Operation]) -> Vec<Role> {
    let lost: Vec<(&Request, u64)> = ops
        .iter()
        .filter(|op| op.response.is_unknown())
        .map(|op| (&op.request, op.call))
        .collect();
    let compacted = |op: &Operation, revision: i64| {
        lost.iter().any(|&(r, call)| {
            matches!(r, Request::Compact { revision: c } if revision <= *c) && call < op.ret
        })
    };
    let revoked = |op: &Operation| {
        let leases: Vec<i64> = match &op.request {
            Request::LeaseRevoke { id } => vec![*id],
            request => puts(request).into_iter().map(|(_, lease)| lease).collect(),
        };
        lost.iter().any(|&(r, call)| {
            matches!(r, Request::LeaseRevoke { id } if leases.contains(id)) && call < op.ret
        })
    };
    ops.iter()
        .map(|op| match (&op.request, &op.response) {
            (
                Request::LeaseKeepAlive { .. }
                | Request::Range {
                    serializable: true, ..
                },
                _,
            )
            | (Request::LeaseGrant { .. } | Request::Compact { .. }, Response::Unknown(_))
            | (Request::LeaseGrant { .. }, Response::Refused(_)) => Role::Skipped,
            (request, Response::Unknown(_)) if is_write(request) => Role::Optional,
            (_, Response::Unknown(_)) => Role::Skipped,
            (_, Response::Refused(text)) => match (refusal(text), &op.request) {
                (Refusal::Other, _) => Role::Skipped,
                (
                    Refusal::Compacted,
                    Request::Range { revision, .. } | Request::Compact { revision },
                ) if compacted(op, *revision) => Role::Skipped,
                (Refusal::LeaseNotFound, _) if revoked(op) => Role::Skipped,
                _ => Role::Required,
            },
            _ => Role::Required,
        })
        .collect()
}
