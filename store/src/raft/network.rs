//! The client side of the peer port: openraft's network over tonic, plus the typed calls a
//! member makes to another one (forwarded writes, read index, membership, cluster info).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{NetworkError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

use super::typ::{RPCError, RaftError};
use super::{PeerNode, TypeConfig};
use crate::error::{Error, EtcdError, Result};
use crate::mvcc::tables::{decode, encode};
use crate::pb::kvraftpb::RaftMessage;
use crate::pb::kvraftpb::raft_peer_client::RaftPeerClient;

/// A membership change asked of the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MemberOp {
    /// `MemberAdd`.
    Add {
        /// Peer URLs of the new member.
        peer_urls: Vec<String>,
        /// Add as a learner (else: learner first, promoted once caught up).
        is_learner: bool,
    },
    /// `MemberRemove`.
    Remove {
        /// Member id.
        id: u64,
    },
    /// `MemberUpdate`.
    Update {
        /// Member id.
        id: u64,
        /// New peer URLs.
        peer_urls: Vec<String>,
    },
    /// `MemberPromote`.
    Promote {
        /// Member id.
        id: u64,
    },
}

/// What a member tells one that is joining.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The cluster id.
    pub cluster_id: u64,
    /// Every member known to Raft.
    pub members: Vec<(u64, PeerNode)>,
    /// Members that have started at least once (they published their attributes). A member
    /// among them with an empty data dir has lost its data and must not rejoin under its id.
    pub started: Vec<u64>,
}

/// Channels to peers, by URL, shared by every caller on this member.
#[derive(Clone, Default)]
pub struct Peers {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    cluster_id: Arc<std::sync::atomic::AtomicU64>,
}

impl Peers {
    /// Peers of the cluster `cluster_id` (0 while still unknown).
    pub fn new(cluster_id: u64) -> Self {
        let p = Peers::default();
        p.set_cluster_id(cluster_id);
        p
    }

    /// Set the cluster id sent with every request.
    pub fn set_cluster_id(&self, id: u64) {
        self.cluster_id
            .store(id, std::sync::atomic::Ordering::Release);
    }

    /// The cluster id sent with every request.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A client for the peer at `url`.
    pub fn client(&self, url: &str) -> Result<RaftPeerClient<Channel>> {
        let mut map = self.channels.lock().expect("peer channel map poisoned");
        if let Some(ch) = map.get(url) {
            return Ok(RaftPeerClient::new(ch.clone()).max_decoding_message_size(usize::MAX));
        }
        let ch = Endpoint::from_shared(url.to_string())
            .map_err(|e| Error::Config(format!("bad peer url {url}: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            // A peer whose pod went away (its address gone, no reset sent) is noticed within
            // about three seconds, not HTTP/2's default 20.
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true)
            .connect_lazy();
        map.insert(url.to_string(), ch.clone());
        Ok(RaftPeerClient::new(ch).max_decoding_message_size(usize::MAX))
    }

    /// Drop the channel to `url`: the next call dials again, resolving the name afresh (a
    /// restarted pod may be back under another address while the old connection hangs).
    pub fn forget(&self, url: &str) {
        self.channels
            .lock()
            .expect("peer channel map poisoned")
            .remove(url);
    }

    fn message<T: Serialize>(&self, v: &T) -> RaftMessage {
        RaftMessage {
            cluster_id: self.cluster_id(),
            payload: encode(v),
        }
    }

    /// Forward a command to the leader at `url`: its response and the log index it was applied
    /// at.
    pub async fn propose(
        &self,
        url: &str,
        cmd: &super::Command,
        timeout: Duration,
    ) -> Result<Result<(super::CommandResponse, u64), EtcdError>, tonic::Status> {
        let mut req = tonic::Request::new(self.message(cmd));
        req.set_timeout(timeout);
        let mut c = self
            .client(url)
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let resp = c.propose(req).await?.into_inner();
        decode("propose response", &resp.payload)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }

    /// Ask the leader at `url` for a read index.
    pub async fn read_index(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<Result<u64, EtcdError>, tonic::Status> {
        let mut req = tonic::Request::new(self.message(&()));
        req.set_timeout(timeout);
        let mut c = self
            .client(url)
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let resp = c.read_index(req).await?.into_inner();
        decode("read index", &resp.payload).map_err(|e| tonic::Status::internal(e.to_string()))
    }

    /// Forward a membership change to the leader at `url`.
    pub async fn change_membership(
        &self,
        url: &str,
        op: &MemberOp,
        timeout: Duration,
    ) -> Result<Result<u64, EtcdError>, tonic::Status> {
        let mut req = tonic::Request::new(self.message(op));
        req.set_timeout(timeout);
        let mut c = self
            .client(url)
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let resp = c.change_membership(req).await?.into_inner();
        decode("membership response", &resp.payload)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }

    /// Ask a member at `url` for the cluster it belongs to.
    pub async fn cluster_info(&self, url: &str) -> Result<ClusterInfo, tonic::Status> {
        let mut req = tonic::Request::new(RaftMessage {
            cluster_id: 0,
            payload: encode(&()),
        });
        req.set_timeout(Duration::from_secs(2));
        let mut c = self
            .client(url)
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let resp = c.cluster_info(req).await?.into_inner();
        decode("cluster info", &resp.payload).map_err(|e| tonic::Status::internal(e.to_string()))
    }

    /// Ask the leader at `url` a lease question.
    pub async fn lease(
        &self,
        url: &str,
        op: crate::lessor::LeaseOp,
    ) -> Result<Result<i64, EtcdError>, tonic::Status> {
        let mut req = tonic::Request::new(self.message(&op));
        req.set_timeout(Duration::from_secs(3));
        let mut c = self
            .client(url)
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let resp = c.lease(req).await?.into_inner();
        decode("lease response", &resp.payload).map_err(|e| tonic::Status::internal(e.to_string()))
    }

    /// Ask the member at `url` whether it would vote for a candidate (a pre-vote).
    pub async fn pre_vote(
        &self,
        url: &str,
        req: &super::prevote::PreVote,
    ) -> Result<bool, tonic::Status> {
        let mut r = tonic::Request::new(self.message(req));
        r.set_timeout(Duration::from_millis(500));
        let mut c = self
            .client(url)
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let resp = tokio::time::timeout(Duration::from_millis(500), c.pre_vote(r))
            .await
            .map_err(|_| {
                self.forget(url);
                tonic::Status::deadline_exceeded("pre-vote timed out")
            })??
            .into_inner();
        decode("pre-vote response", &resp.payload)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }

    /// Ask the member at `url` to campaign for leadership.
    pub async fn campaign(&self, url: &str) -> Result<(), tonic::Status> {
        let mut req = tonic::Request::new(self.message(&()));
        req.set_timeout(Duration::from_secs(2));
        let mut c = self
            .client(url)
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        c.campaign(req).await?;
        Ok(())
    }
}

/// Bytes of entries sent in one AppendEntries call (at least one entry is always sent).
pub const APPEND_BUDGET: u64 = 1024 * 1024;

/// openraft's network factory.
#[derive(Clone)]
pub struct NetworkFactory {
    peers: Peers,
}

impl NetworkFactory {
    /// A factory over shared peer channels.
    pub fn new(peers: Peers) -> Self {
        NetworkFactory { peers }
    }
}

/// A connection to one peer, as openraft uses it: AppendEntries go over one long-lived
/// stream (see [`AppendStream`]), votes and snapshot chunks as unary calls.
pub struct PeerConn {
    peers: Peers,
    target: u64,
    url: String,
    stream: Option<AppendStream>,
    /// The peer answered that it has no append stream (an older release): unary calls only.
    unary_only: bool,
}

/// An open `AppendStream` call: requests go in through `tx`, replies come back in order.
struct AppendStream {
    tx: tokio::sync::mpsc::Sender<RaftMessage>,
    rx: tonic::Streaming<RaftMessage>,
    /// A request was sent and its reply not read: the call was given up half way (openraft
    /// dropped it at a timeout), so the next reply on this stream is that request's.
    waiting: bool,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConn;

    async fn new_client(&mut self, target: u64, node: &PeerNode) -> PeerConn {
        PeerConn {
            peers: self.peers.clone(),
            target,
            url: node.peer_urls.first().cloned().unwrap_or_default(),
            stream: None,
            unary_only: false,
        }
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl PeerConn {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<E>>
    where
        Req: Serialize,
        Resp: for<'de> Deserialize<'de>,
        E: std::error::Error + for<'de> Deserialize<'de>,
    {
        let msg = self.peers.message(req);
        let to = crate::metrics::ToLabel(format!("{:x}", self.target));
        let m = &crate::metrics::METRICS;
        m.peer_sent_bytes
            .get_or_create(&to)
            .inc_by(msg.payload.len() as u64);
        let start = std::time::Instant::now();
        let res = match rpc {
            Rpc::Append if !self.unary_only => {
                let deadline = tokio::time::Instant::now() + option.hard_ttl();
                match self.open_stream(deadline).await {
                    Ok(()) => self.on_stream(msg, deadline).await,
                    Err(status) if status.code() == tonic::Code::Unimplemented => {
                        tracing::info!(
                            peer = %format!("{:x}", self.target),
                            "peer has no append stream (an older release): unary AppendEntries"
                        );
                        self.unary_only = true;
                        self.unary(rpc, msg, option.hard_ttl()).await
                    }
                    Err(status) => Err(status),
                }
            }
            _ => self.unary(rpc, msg, option.hard_ttl()).await,
        };
        match &res {
            Ok(_) => m
                .peer_rtt
                .get_or_create(&to)
                .observe(start.elapsed().as_secs_f64()),
            Err(_) => {
                m.peer_sent_failures.get_or_create(&to).inc();
            }
        }
        let resp = match res {
            Ok(r) => r,
            Err(status) => {
                let err = std::io::Error::other(status.to_string());
                return Err(match status.code() {
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                        self.peers.forget(&self.url);
                        RPCError::Unreachable(Unreachable::new(&err))
                    }
                    _ => RPCError::Network(NetworkError::new(&err)),
                });
            }
        };
        let out: Result<Resp, RaftError<E>> = decode("raft response", &resp.payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        out.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// One unary call.
    async fn unary(
        &self,
        rpc: Rpc,
        msg: RaftMessage,
        timeout: Duration,
    ) -> Result<RaftMessage, tonic::Status> {
        let mut client = self
            .peers
            .client(&self.url)
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut request = tonic::Request::new(msg);
        request.set_timeout(timeout);
        let res = match rpc {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        res.map(tonic::Response::into_inner)
    }

    /// Open the append stream unless one is open and usable.
    async fn open_stream(&mut self, deadline: tokio::time::Instant) -> Result<(), tonic::Status> {
        if let Some(s) = self.stream.as_mut()
            && s.waiting
        {
            // The last call was given up (openraft's own timeout dropped it) before its reply
            // came: the peer answers in order, so read that reply and drop it. Opening a new
            // stream instead would not be faster, as the peer is still busy with that request.
            match tokio::time::timeout_at(deadline, s.rx.message()).await {
                Ok(Ok(Some(_))) => s.waiting = false,
                other => {
                    tracing::debug!(peer = %format!("{:x}", self.target), result = ?other.map(|r| r.map(|_| ())), "append stream closed after a call given up");
                    self.stream = None;
                }
            }
        }
        if self.stream.is_some() {
            return Ok(());
        }
        let mut client = self
            .peers
            .client(&self.url)
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let call = client.append_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
        let replies = tokio::time::timeout_at(deadline, call)
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("opening the append stream timed out"))??
            .into_inner();
        self.stream = Some(AppendStream {
            tx,
            rx: replies,
            waiting: false,
        });
        tracing::debug!(peer = %format!("{:x}", self.target), "append stream opened");
        crate::metrics::METRICS
            .peer_append_streams
            .get_or_create(&crate::metrics::ToLabel(format!("{:x}", self.target)))
            .inc();
        Ok(())
    }

    /// One request and its reply on the open append stream. Any failure closes the stream;
    /// the next call opens a new one.
    async fn on_stream(
        &mut self,
        msg: RaftMessage,
        deadline: tokio::time::Instant,
    ) -> Result<RaftMessage, tonic::Status> {
        let Some(s) = self.stream.as_mut() else {
            return Err(tonic::Status::unavailable("no append stream"));
        };
        s.waiting = true;
        let exchange = async {
            s.tx.send(msg)
                .await
                .map_err(|_| tonic::Status::unavailable("append stream closed"))?;
            s.rx.message()
                .await?
                .ok_or_else(|| tonic::Status::unavailable("append stream ended by the peer"))
        };
        let res = tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("append timed out")));
        match &res {
            Ok(_) => s.waiting = false,
            Err(e) => {
                tracing::debug!(peer = %format!("{:x}", self.target), error = %e, "append stream closed");
                self.stream = None;
            }
        }
        res
    }
}

impl RaftNetwork<TypeConfig> for PeerConn {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError> {
        // openraft bounds every AppendEntries by a short deadline: ship at most
        // APPEND_BUDGET bytes per call (always at least one entry) and report the rest as not
        // sent yet, so big values never turn into endless retries.
        let mut size = 0u64;
        let mut keep = rpc.entries.len();
        for (i, e) in rpc.entries.iter().enumerate() {
            size += bincode::serialized_size(e).unwrap_or(0);
            if i > 0 && size > APPEND_BUDGET {
                keep = i;
                break;
            }
        }
        let partial = keep < rpc.entries.len();
        rpc.entries.truncate(keep);
        let last = rpc.entries.last().map(|e| e.log_id);
        let resp: AppendEntriesResponse<u64> = self.call(Rpc::Append, &rpc, &option).await?;
        Ok(match resp {
            AppendEntriesResponse::Success if partial => {
                AppendEntriesResponse::PartialSuccess(last)
            }
            other => other,
        })
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<openraft::error::InstallSnapshotError>> {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError> {
        self.call(Rpc::Vote, &rpc, &option).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
