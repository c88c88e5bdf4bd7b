//! openraft glue: the type configuration (declared once), the replicated command, storage, the
//! peer network and its gRPC service.

pub mod command;
pub mod log_store;
pub mod network;
pub mod prevote;
pub mod proposer;
pub mod service;
pub mod snapshot;
pub mod snapshot_data;
pub mod state_machine;
pub mod wal;

#[cfg(test)]
mod power_loss_tests;
#[cfg(test)]
mod snapshot_tests;

use serde::{Deserialize, Serialize};

pub use command::{Command, CommandResponse};

/// What Raft knows about a member: enough to reach it, plus the bootstrap name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNode {
    /// The member's `--name` when known at the time it was added (bootstrap members).
    pub name: String,
    /// Peer URLs (`--initial-advertise-peer-urls`).
    pub peer_urls: Vec<String>,
}

openraft::declare_raft_types!(
    /// The Raft type configuration of kvstore.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = u64,
        Node = PeerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = snapshot_data::SnapshotData,
        AsyncRuntime = openraft::TokioRuntime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

/// Member ids are etcd's 64-bit member ids.
pub type NodeId = u64;
/// The Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;

/// Short aliases for openraft's generic types.
pub mod typ {
    use super::{PeerNode, TypeConfig};

    /// A log id.
    pub type LogId = openraft::LogId<u64>;
    /// A vote.
    pub type Vote = openraft::Vote<u64>;
    /// A log entry.
    pub type Entry = openraft::Entry<TypeConfig>;
    /// Stored membership.
    pub type StoredMembership = openraft::StoredMembership<u64, PeerNode>;
    /// Snapshot metadata.
    pub type SnapshotMeta = openraft::SnapshotMeta<u64, PeerNode>;
    /// A snapshot.
    pub type Snapshot = openraft::Snapshot<TypeConfig>;
    /// Storage error.
    pub type StorageError = openraft::StorageError<u64>;
    /// Raft metrics.
    pub type RaftMetrics = openraft::RaftMetrics<u64, PeerNode>;
    /// Raft error with an API error.
    pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<u64, E>;
    /// RPC error.
    pub type RPCError<E = openraft::error::Infallible> =
        openraft::error::RPCError<u64, PeerNode, RaftError<E>>;
    /// Client-write error.
    pub type ClientWriteError = openraft::error::ClientWriteError<u64, PeerNode>;
    /// Check-is-leader error.
    pub type CheckIsLeaderError = openraft::error::CheckIsLeaderError<u64, PeerNode>;
}

/// Turn any error into an openraft storage IO error.
pub(crate) fn sto_err(
    make: fn(openraft::AnyError) -> openraft::StorageIOError<u64>,
    e: impl std::error::Error + 'static,
) -> typ::StorageError {
    make(openraft::AnyError::new(&e)).into()
}

#[cfg(test)]
mod suite {
    //! openraft's storage conformance suite on our WAL log store and redb state machine.
    use openraft::testing::{StoreBuilder, Suite};

    use super::log_store::LogStore;
    use super::state_machine::{SmShared, StateMachine};
    use super::{TypeConfig, typ::StorageError};

    /// Stores as a member builds them; `member_id`, when set, makes every entry of the suite
    /// another leader's, so appends are written inline as a follower's are.
    struct Builder {
        member_id: Option<u64>,
    }

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut log = LogStore::open(dir.path(), Default::default()).expect("log store");
            if let Some(id) = self.member_id {
                log.set_member_id(id);
            }
            let sm = SmShared::open(dir.path()).expect("state machine");
            Ok((dir, log, StateMachine::new(sm)))
        }
    }

    #[test]
    fn openraft_storage_suite() {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        if let Err(e) = Suite::test_all(Builder { member_id: None }) {
            panic!("storage suite failed: {e}");
        }
    }

    /// The suite again with every append written on the caller's thread (the suite's entries
    /// name leaders 0 to 3, never this member).
    #[test]
    fn openraft_storage_suite_with_follower_appends_inline() {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        if let Err(e) = Suite::test_all(Builder {
            member_id: Some(u64::MAX),
        }) {
            panic!("storage suite failed: {e}");
        }
    }
}
