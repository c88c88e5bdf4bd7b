//! The store's error type and the one place that maps errors to etcd's gRPC codes and texts.
//!
//! etcd clients rebuild typed errors from the status *message*, so every variant that has an
//! etcd counterpart carries etcd's exact text.

use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

/// Result alias for the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors that etcd defines and that clients match on. They are serializable because a
/// state-machine apply can produce them on every member and return them to the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum EtcdError {
    /// An empty key.
    #[error("etcdserver: key is not provided")]
    KeyNotProvided,
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// More operations in one txn branch than allowed.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// Overlapping writes in one txn.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A revision at or below the compaction point.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// A revision above the current one.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    /// Quota exceeded: the NOSPACE alarm is active.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// Unknown lease.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// Lease id in use.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// TTL too large.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// Duplicate member id.
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    /// Duplicate peer URLs.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// Unknown member.
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// Promote of a voter.
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    /// Promote of a learner that lags.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// Too many learners.
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// Removing a member would lose quorum of started members.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    /// Request larger than `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// Auth is off.
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// No leader.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// Leader changed during the request.
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    /// Timed out.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The member is stopping.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// Not the leader.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// Leader transfer target is not suitable.
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// A learner cannot serve this RPC.
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// The cluster detected corruption.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// A bad argument with its own text.
    #[error("{0}")]
    InvalidArgument(String),
    /// Anything without an etcd counterpart.
    #[error("{0}")]
    Internal(String),
}

impl EtcdError {
    /// The gRPC code etcd uses for this error.
    pub fn code(&self) -> Code {
        use EtcdError::*;
        match self {
            KeyNotProvided | KeyNotFound | TooManyOps | DuplicateKey | RequestTooLarge
            | InvalidArgument(_) => Code::InvalidArgument,
            Compacted | FutureRev | LeaseTtlTooLarge => Code::OutOfRange,
            NoSpace => Code::ResourceExhausted,
            LeaseNotFound | MemberNotFound => Code::NotFound,
            LeaseExists
            | MemberExists
            | PeerUrlExists
            | MemberNotLearner
            | LearnerNotReady
            | TooManyLearners
            | NotEnoughStartedMembers
            | AuthNotEnabled
            | NotLeader
            | BadLeaderTransferee => Code::FailedPrecondition,
            NoLeader | LeaderChanged | Timeout | Stopped | NotSupportedForLearner => {
                Code::Unavailable
            }
            Corrupt => Code::DataLoss,
            Internal(_) => Code::Internal,
        }
    }
}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}

/// Errors of the store as a whole.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error etcd clients know.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// redb failed.
    #[error("storage failed: {0}")]
    Storage(#[from] redb::Error),
    /// File IO failed.
    #[error("io failed: {0}")]
    Io(#[from] std::io::Error),
    /// The Raft log's WAL failed.
    #[error("raft log: {0}")]
    Wal(#[from] crate::raft::wal::WalError),
    /// Another process holds this member directory.
    #[error("data dir {} is in use by another kvstore", .0.parent().unwrap_or(.0).display())]
    InUse(std::path::PathBuf),
    /// An encoded record could not be decoded.
    #[error("failed to decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// Startup configuration is wrong.
    #[error("{0}")]
    Config(String),
    /// This member ran before, but its data dir is empty: it must be removed and re-added.
    #[error("{0}")]
    DataLost(String),
    /// A peer RPC failed.
    #[error("peer rpc failed: {0}")]
    Peer(String),
    /// The Raft core stopped on its own: the member can serve nothing more.
    #[error("the Raft core stopped: {0}; exiting so that the member restarts from its data")]
    RaftStopped(String),
}

impl Error {
    /// A decode error.
    pub fn decode(what: &'static str, reason: impl ToString) -> Self {
        Error::Decode {
            what,
            reason: reason.to_string(),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Storage(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError
);

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Etcd(e) => e.into(),
            other => Status::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_texts_and_codes() {
        let s: Status = EtcdError::Compacted.into();
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s: Status = EtcdError::KeyNotProvided.into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "etcdserver: key is not provided");
        let s: Status = Error::from(EtcdError::NoLeader).into();
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(s.message(), "etcdserver: no leader");
    }
}
