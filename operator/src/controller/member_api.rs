//! The calls the controller makes to the store's members over the etcd API (gRPC), behind a
//! trait so that reconcile tests can play the members while a mocked API server plays
//! Kubernetes.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use kvstore::pb::cluster_client::ClusterClient;
use kvstore::pb::maintenance_client::MaintenanceClient;
use kvstore::pb::{
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    MoveLeaderRequest, StatusRequest,
};

/// Why a call to a member failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The member could not be reached: another member may answer instead.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The member answered with an error.
    #[error("{0}")]
    Refused(String),
}

/// What a member says about itself (`Maintenance.Status`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusReport {
    /// Member id.
    pub id: u64,
    /// Cluster id (0 before bootstrap).
    pub cluster_id: u64,
    /// The leader it knows (0 = none).
    pub leader: u64,
    /// Raft index.
    pub raft_index: u64,
    /// Raft term.
    pub raft_term: u64,
    /// Database size in bytes.
    pub db_size: i64,
    /// Store version.
    pub version: String,
    /// A learner.
    pub learner: bool,
}

/// A member as `Cluster.MemberList` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedMember {
    /// Member id.
    pub id: u64,
    /// Its name; empty until it has started once.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// A learner.
    pub learner: bool,
}

/// The membership calls, each addressed to one member's client URL.
#[async_trait::async_trait]
pub trait MemberApi: Send + Sync {
    /// `Maintenance.Status`.
    async fn status(&self, url: &str) -> Result<StatusReport, CallError>;
    /// `Cluster.MemberList` (linearizable).
    async fn member_list(&self, url: &str) -> Result<Vec<ListedMember>, CallError>;
    /// `Cluster.MemberAdd` as a learner; the new member id.
    async fn add_learner(&self, url: &str, peer_url: &str) -> Result<u64, CallError>;
    /// `Cluster.MemberPromote`.
    async fn promote(&self, url: &str, id: u64) -> Result<(), CallError>;
    /// `Cluster.MemberRemove`.
    async fn remove(&self, url: &str, id: u64) -> Result<(), CallError>;
    /// `Maintenance.MoveLeader`.
    async fn move_leader(&self, url: &str, to: u64) -> Result<(), CallError>;
    /// `Maintenance.Snapshot`: the revision it holds and its bytes, streamed.
    async fn snapshot(&self, url: &str) -> Result<Snapshot, CallError>;
}

/// A snapshot being streamed from a member.
pub struct Snapshot {
    /// The store revision it holds.
    pub revision: i64,
    /// Its bytes, in chunks; an error ends the stream.
    pub chunks: BoxStream<'static, Result<Bytes, String>>,
}

const RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// Membership changes wait for Raft; give them longer than a status call.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(15);
/// A snapshot stream may take long; each message must come within this.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(600);

/// The real members, over gRPC.
#[derive(Debug, Default, Clone, Copy)]
pub struct GrpcMembers;

async fn channel(url: &str, timeout: Duration) -> Result<tonic::transport::Channel, CallError> {
    tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| CallError::Refused(format!("bad member URL {url}: {e}")))?
        .connect_timeout(RPC_TIMEOUT)
        .timeout(timeout)
        .connect()
        .await
        .map_err(|e| CallError::Unreachable(format!("{url}: {e}")))
}

fn refused(s: tonic::Status) -> CallError {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
            CallError::Unreachable(s.message().into())
        }
        _ => CallError::Refused(s.message().into()),
    }
}

#[async_trait::async_trait]
impl MemberApi for GrpcMembers {
    async fn status(&self, url: &str) -> Result<StatusReport, CallError> {
        let ch = channel(url, RPC_TIMEOUT).await?;
        let s = MaintenanceClient::new(ch)
            .status(StatusRequest {})
            .await
            .map_err(refused)?
            .into_inner();
        let h = s.header.unwrap_or_default();
        Ok(StatusReport {
            id: h.member_id,
            cluster_id: h.cluster_id,
            leader: s.leader,
            raft_index: s.raft_index,
            raft_term: s.raft_term,
            db_size: s.db_size,
            version: s.version,
            learner: s.is_learner,
        })
    }

    async fn member_list(&self, url: &str) -> Result<Vec<ListedMember>, CallError> {
        let ch = channel(url, RPC_TIMEOUT).await?;
        let list = ClusterClient::new(ch)
            .member_list(MemberListRequest { linearizable: true })
            .await
            .map_err(refused)?
            .into_inner();
        Ok(list
            .members
            .into_iter()
            .map(|m| ListedMember {
                id: m.id,
                name: m.name,
                peer_urls: m.peer_ur_ls,
                learner: m.is_learner,
            })
            .collect())
    }

    async fn add_learner(&self, url: &str, peer_url: &str) -> Result<u64, CallError> {
        let ch = channel(url, CHANGE_TIMEOUT).await?;
        let req = MemberAddRequest {
            peer_ur_ls: vec![peer_url.to_string()],
            is_learner: true,
        };
        let resp = ClusterClient::new(ch)
            .member_add(req)
            .await
            .map_err(refused)?;
        Ok(resp.into_inner().member.map_or(0, |m| m.id))
    }

    async fn promote(&self, url: &str, id: u64) -> Result<(), CallError> {
        let ch = channel(url, CHANGE_TIMEOUT).await?;
        ClusterClient::new(ch)
            .member_promote(MemberPromoteRequest { id })
            .await
            .map_err(refused)?;
        Ok(())
    }

    async fn remove(&self, url: &str, id: u64) -> Result<(), CallError> {
        let ch = channel(url, CHANGE_TIMEOUT).await?;
        ClusterClient::new(ch)
            .member_remove(MemberRemoveRequest { id })
            .await
            .map_err(refused)?;
        Ok(())
    }

    async fn move_leader(&self, url: &str, to: u64) -> Result<(), CallError> {
        let ch = channel(url, CHANGE_TIMEOUT).await?;
        MaintenanceClient::new(ch)
            .move_leader(MoveLeaderRequest { target_id: to })
            .await
            .map_err(refused)?;
        Ok(())
    }

    async fn snapshot(&self, url: &str) -> Result<Snapshot, CallError> {
        let ch = channel(url, SNAPSHOT_TIMEOUT).await?;
        let mut stream = MaintenanceClient::new(ch)
            .snapshot(kvstore::pb::SnapshotRequest {})
            .await
            .map_err(refused)?
            .into_inner();
        let first = stream
            .message()
            .await
            .map_err(refused)?
            .ok_or_else(|| CallError::Refused("the snapshot stream was empty".into()))?;
        let revision = first.header.as_ref().map_or(0, |h| h.revision);
        let rest = stream.map(|m| {
            m.map(|m| Bytes::from(m.blob))
                .map_err(|s| format!("{}: {}", s.code(), s.message()))
        });
        let chunks = futures::stream::once(async move { Ok(Bytes::from(first.blob)) })
            .chain(rest)
            .boxed();
        Ok(Snapshot { revision, chunks })
    }
}
