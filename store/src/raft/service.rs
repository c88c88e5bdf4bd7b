//! The peer-port gRPC service: Raft RPCs from other members, and the calls followers make to
//! the leader. Requests from another cluster (a different cluster id) are refused.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::{Stream, StreamExt};

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tonic::{Request, Response, Status, Streaming};

use super::network::MemberOp;
use super::prevote::{LeaderContact, PreVote, grant};
use super::{Command, CommandResponse, Raft, TypeConfig};
use crate::error::EtcdError;
use crate::mvcc::tables::{decode, encode};
use crate::node::Node;
use crate::pb::kvraftpb::RaftMessage;
use crate::pb::kvraftpb::raft_peer_server::RaftPeer;

/// The peer service. Raft RPCs work as soon as Raft exists; the rest once the node is up.
#[derive(Clone)]
pub struct PeerService {
    raft: Raft,
    cluster_id: u64,
    node: Arc<OnceLock<Arc<Node>>>,
    /// When a leader was last heard.
    contact: Arc<LeaderContact>,
}

impl PeerService {
    /// A service for `raft` in cluster `cluster_id`; `node` is filled in once started.
    pub fn new(raft: Raft, cluster_id: u64, node: Arc<OnceLock<Arc<Node>>>) -> Self {
        PeerService {
            raft,
            cluster_id,
            node,
            contact: Arc::default(),
        }
    }

    /// When this member last heard from a leader (for the election driver).
    pub fn contact(&self) -> Arc<LeaderContact> {
        self.contact.clone()
    }

    fn check(&self, msg: &RaftMessage) -> Result<(), Status> {
        if msg.cluster_id != self.cluster_id {
            tracing::warn!(
                theirs = %format!("{:x}", msg.cluster_id),
                ours = %format!("{:x}", self.cluster_id),
                "refused a peer request from another cluster"
            );
            return Err(Status::failed_precondition(format!(
                "cluster id mismatch: this member belongs to cluster {:x}, the request to {:x}",
                self.cluster_id, msg.cluster_id
            )));
        }
        Ok(())
    }

    fn node(&self) -> Result<Arc<Node>, Status> {
        self.node
            .get()
            .cloned()
            .ok_or_else(|| Status::unavailable("member is starting"))
    }
}

/// A reply message holding `v`.
fn message<T: serde::Serialize>(v: &T) -> RaftMessage {
    RaftMessage {
        cluster_id: 0,
        payload: encode(v),
    }
}

fn reply<T: serde::Serialize>(v: &T) -> Result<Response<RaftMessage>, Status> {
    Ok(Response::new(message(v)))
}

fn payload<T: for<'de> serde::Deserialize<'de>>(msg: &RaftMessage) -> Result<T, Status> {
    decode("peer request", &msg.payload).map_err(|e| Status::invalid_argument(e.to_string()))
}

impl PeerService {
    /// Handle one AppendEntries message (unary or on a stream).
    async fn append(&self, msg: RaftMessage) -> Result<RaftMessage, Status> {
        self.check(&msg)?;
        let rpc: AppendEntriesRequest<TypeConfig> = payload(&msg)?;
        // The leader this member follows (or a newer one) is heard when its message arrives,
        // not only once its entries are on disk: a slow fsync is no sign of a lost leader.
        if rpc.vote.is_committed() && rpc.vote >= self.raft.metrics().borrow().vote {
            self.contact.touch();
        }
        let res = self.raft.append_entries(rpc).await;
        if res
            .as_ref()
            .is_ok_and(|r| !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_)))
        {
            self.contact.touch();
        }
        Ok(message(&res))
    }
}

/// Responses of an append stream, in the order of its requests.
type AppendReplies = Pin<Box<dyn Stream<Item = Result<RaftMessage, Status>> + Send>>;

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.append(req.into_inner()).await.map(Response::new)
    }

    type AppendStreamStream = AppendReplies;

    async fn append_stream(
        &self,
        req: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<AppendReplies>, Status> {
        // Each request is handled when the response stream is polled for its reply, so the
        // stream needs no task of its own, and one stream's requests never overlap. The first
        // error (a refused request, a broken stream) ends it; the leader opens a new one.
        let svc = self.clone();
        let replies = req
            .into_inner()
            .then(move |msg| {
                let svc = svc.clone();
                async move { svc.append(msg?).await }
            })
            .scan(false, |failed, r| {
                let end = *failed;
                *failed = r.is_err();
                futures::future::ready((!end).then_some(r))
            });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let msg = req.into_inner();
        self.check(&msg)?;
        let rpc: VoteRequest<u64> = payload(&msg)?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let msg = req.into_inner();
        self.check(&msg)?;
        let rpc: InstallSnapshotRequest<TypeConfig> = payload(&msg)?;
        let res = self.raft.install_snapshot(rpc).await;
        if res.is_ok() {
            self.contact.touch();
        }
        reply(&res)
    }

    async fn propose(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let msg = req.into_inner();
        self.check(&msg)?;
        let cmd: Command = payload(&msg)?;
        // A member still starting is no leader: the follower may send the write elsewhere.
        let Ok(node) = self.node() else {
            return reply(&Err::<(CommandResponse, u64), _>(EtcdError::NotLeader));
        };
        reply(&node.propose_forwarded(cmd).await)
    }

    async fn read_index(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let msg = req.into_inner();
        self.check(&msg)?;
        reply(&self.node()?.read_index_local().await)
    }

    async fn change_membership(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let msg = req.into_inner();
        self.check(&msg)?;
        let op: MemberOp = payload(&msg)?;
        reply(&self.node()?.member_op_local(op).await)
    }

    async fn cluster_info(
        &self,
        _req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        reply(&self.node()?.cluster_info())
    }

    async fn lease(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let msg = req.into_inner();
        self.check(&msg)?;
        let op: crate::lessor::LeaseOp = payload(&msg)?;
        reply(&self.node()?.lease_local(op))
    }

    async fn pre_vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let msg = req.into_inner();
        self.check(&msg)?;
        let pv: PreVote = payload(&msg)?;
        let m = self.raft.metrics().borrow().clone();
        // The lease for which openraft refuses a real vote after hearing a leader.
        let timeout = Duration::from_millis(self.raft.config().election_timeout_max);
        reply(&grant(&pv, &m, self.contact.since(), timeout))
    }

    async fn campaign(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let msg = req.into_inner();
        self.check(&msg)?;
        let res: Result<(), EtcdError> = self
            .raft
            .trigger()
            .elect()
            .await
            .map_err(|_| EtcdError::Stopped);
        reply(&res)
    }
}
