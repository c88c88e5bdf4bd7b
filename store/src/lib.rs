//! kvstore: a Raft-replicated, etcd v3 compatible key-value store.
//!
//! How it's structured:
//! - [`mvcc`]: the multi-version key space over redb tables (revisions, ranges, txns, compaction).
//! - [`raft`]: openraft glue: the replicated command, the redb log store and state machine,
//!   the peer network and its gRPC service.
//! - [`node`]: one member's handle on the cluster: proposing (forwarded to the leader),
//!   linearizable reads (batched read index), membership changes.
//! - [`api`]: the etcd v3 gRPC services on the client port.
//! - [`server`]: opens storage, bootstraps or rejoins, starts both ports.
//!
//! How a write flows: an etcd request reaches [`api`], is validated, wrapped in a
//! [`raft::Command`] and proposed through [`node::Node::propose`]; a follower forwards it to the
//! leader over the peer port; once committed, every member applies it in
//! [`raft::state_machine`], which runs [`mvcc`] in one redb write transaction and returns the etcd
//! response to the proposer.
//!
//! How a read flows: a serializable range reads a redb snapshot directly; a linearizable one first
//! waits for a read index (one leader heartbeat round shared by all reads waiting at that moment).

pub mod api;
pub mod cli;
pub mod config;
pub mod data_dir;
pub mod disk;
pub mod error;
pub mod gateway;
pub mod ids;
pub mod lessor;
pub mod metrics;
pub mod mvcc;
pub mod node;
pub mod pb;
pub mod raft;
pub mod restore;
pub mod server;

pub use error::{Error, Result};

/// The etcd API version this server reports (`Status.version`, `/version`).
pub const ETCD_VERSION: &str = "3.5.17";
/// The kvstore release.
pub const KVSTORE_VERSION: &str = env!("CARGO_PKG_VERSION");
