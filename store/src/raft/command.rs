//! The replicated command: one Raft entry per etcd write request, and what applying it returns.

use serde::{Deserialize, Serialize};

use crate::error::EtcdError;
use crate::pb::{
    CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    TxnRequest, TxnResponse,
};

/// A write request as it travels through the Raft log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// `KV.Put`.
    Put(PutRequest),
    /// `KV.DeleteRange`.
    DeleteRange(DeleteRangeRequest),
    /// `KV.Txn`.
    Txn(TxnRequest),
    /// `KV.Compact`.
    Compact {
        /// Compact up to this revision.
        revision: i64,
    },
    /// `Lease.LeaseGrant` with the id already chosen.
    LeaseGrant {
        /// Lease id.
        id: i64,
        /// TTL in seconds.
        ttl: i64,
    },
    /// `Lease.LeaseRevoke` (also used for expiry).
    LeaseRevoke {
        /// Lease id.
        id: i64,
    },
    /// `Maintenance.Alarm` ACTIVATE / DEACTIVATE.
    Alarm {
        /// True to raise, false to clear.
        activate: bool,
        /// The member the alarm is about (0 = all, for DEACTIVATE).
        member_id: u64,
        /// `AlarmType`.
        alarm: i32,
    },
    /// A started member publishes its name and client URLs.
    PublishMember {
        /// Member id.
        id: u64,
        /// `--name`.
        name: String,
        /// Client URLs.
        client_urls: Vec<String>,
    },
    /// Mark (or unmark) members that should become voters once caught up.
    SetPendingVoter {
        /// Member id.
        id: u64,
        /// Whether it waits for promotion.
        pending: bool,
    },
    /// Forget everything kept about a removed member.
    ForgetMember {
        /// Member id.
        id: u64,
    },
    /// Requests proposed together (see [`super::proposer`]): applied in order, each as its own
    /// request with its own revision. Never nested.
    Batch(Vec<Command>),
}

impl Command {
    /// Roughly its encoded size in bytes, without encoding it (keys and values dominate).
    pub fn approx_size(&self) -> usize {
        match self {
            Command::Put(p) => 16 + p.key.len() + p.value.len(),
            Command::DeleteRange(d) => 16 + d.key.len() + d.range_end.len(),
            Command::Txn(t) => prost::Message::encoded_len(t),
            Command::Batch(cmds) => cmds.iter().map(Command::approx_size).sum(),
            _ => 64,
        }
    }
}

/// What applying a command returned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CommandResponse {
    /// A put.
    Put(PutResponse),
    /// A delete-range.
    DeleteRange(DeleteRangeResponse),
    /// A txn.
    Txn(TxnResponse),
    /// A compaction.
    Compact(CompactionResponse),
    /// Any other command: the revision after it.
    Done {
        /// Revision after applying.
        revision: i64,
    },
    /// The command was refused at apply (deterministically on every member).
    Failed(EtcdError),
    /// Blank and membership entries.
    Empty,
    /// A batch: one response per request, in order.
    Batch(Vec<CommandResponse>),
}
