//! etcd's rules that need no store: its error texts and which refusal each is, how a Txn
//! compare is evaluated, and whether an observed answer fits the one the model gives (some
//! fields are not checked: a Compact's header, a past-revision read's data, a keep-alive's
//! exact ttl).

use super::history::{Compare, CompareResult, CompareTarget, KeyValue, Request, Response};

/// etcd's answer to a read or compaction below the compact revision.
pub const ERR_COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
/// etcd's answer to a read or compaction above the current revision.
pub const ERR_FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
/// etcd's answer when a lease named by a request does not exist.
pub const ERR_LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
/// etcd's answer when a granted lease id is already in use.
pub const ERR_LEASE_EXISTS: &str = "etcdserver: lease already exists";

/// The kinds of refusal the model can produce; any other text is outside the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Revision compacted.
    Compacted,
    /// Revision in the future.
    FutureRevision,
    /// Lease not found.
    LeaseNotFound,
    /// Lease id in use.
    LeaseExists,
    /// Anything else (too many requests, request too large …): not modelled.
    Other,
}

/// Which refusal an error text is.
pub fn refusal(text: &str) -> Refusal {
    if text.contains("required revision has been compacted") {
        Refusal::Compacted
    } else if text.contains("required revision is a future revision") {
        Refusal::FutureRevision
    } else if text.contains("requested lease not found") {
        Refusal::LeaseNotFound
    } else if text.contains("lease already exists") {
        Refusal::LeaseExists
    } else {
        Refusal::Other
    }
}

/// Whether a Txn compare holds for a key (None: the key does not exist), as etcd's
/// `applyCompare` decides it.
pub fn holds(kv: Option<&KeyValue>, c: &Compare) -> bool {
    let missing = KeyValue::default();
    let ord = match &c.target {
        CompareTarget::Value(v) => match kv {
            // etcd: a value compare on a missing key is false whatever the relation.
            None => return false,
            Some(kv) => kv.value.as_slice().cmp(v.as_slice()),
        },
        CompareTarget::Version(v) => kv.unwrap_or(&missing).version.cmp(v),
        CompareTarget::CreateRevision(v) => kv.unwrap_or(&missing).create_revision.cmp(v),
        CompareTarget::ModRevision(v) => kv.unwrap_or(&missing).mod_revision.cmp(v),
        CompareTarget::Lease(v) => kv.unwrap_or(&missing).lease.cmp(v),
    };
    match c.result {
        CompareResult::Equal => ord.is_eq(),
        CompareResult::NotEqual => ord.is_ne(),
        CompareResult::Greater => ord.is_gt(),
        CompareResult::Less => ord.is_lt(),
    }
}

/// Whether `observed` is what etcd could have answered when the model answers `expected`.
pub fn matches(request: &Request, observed: &Response, expected: &Response) -> bool {
    match (observed, expected) {
        (Response::Unknown(_), _) => true,
        (Response::Refused(got), Response::Refused(want)) => refusal(got) == refusal(want),
        (Response::Refused(_), _) | (_, Response::Refused(_)) => false,
        (
            Response::Persisted {
                revision,
                succeeded,
            },
            want,
        ) => {
            want.revision() == Some(*revision)
                && match want {
                    Response::Txn { succeeded: s, .. } => s == succeeded,
                    _ => true,
                }
        }
        (Response::Range { revision, .. }, Response::Range { revision: want, .. }) if matches!(request, Request::Range { revision: r, .. } if *r > 0 && r < want) => {
            revision == want
        }
        (Response::LeaseKeepAlive { ttl }, Response::LeaseKeepAlive { ttl: want }) => {
            (*ttl > 0) == (*want > 0)
        }
        (Response::Compact { .. }, Response::Compact { .. }) => true,
        (got, want) => got == want,
    }
}
