//! One member's handle on the cluster: proposing writes (forwarded to the leader when needed),
//! linearizable reads through a batched read index, membership changes, and the facts every
//! response header carries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::error::EtcdError;
use crate::ids;
use crate::pb::{Member, ResponseHeader};
use crate::raft::log_store::Leaders;
use crate::raft::network::{ClusterInfo, MemberOp, Peers};
use crate::raft::proposer::{ProposeError, Proposer};
use crate::raft::state_machine::SmShared;
use crate::raft::typ::{CheckIsLeaderError, RaftMetrics};
use crate::raft::{Command, CommandResponse, PeerNode, Raft};

/// Settings a node needs at run time.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// `--name`.
    pub name: String,
    /// Advertised client URLs.
    pub client_urls: Vec<String>,
    /// `--initial-cluster-token` (salts ids of members added at run time).
    pub token: String,
    /// How long a request may wait for a leader or a commit.
    pub request_timeout: Duration,
}

type ReadWaiter = oneshot::Sender<Result<(), EtcdError>>;

/// A running member.
pub struct Node {
    /// This member's id.
    pub id: u64,
    /// The cluster id.
    pub cluster_id: u64,
    /// The Raft handle.
    pub raft: Raft,
    /// The state machine's shared state (the read side).
    pub sm: Arc<SmShared>,
    /// Channels to other members.
    pub peers: Peers,
    /// Run-time settings.
    pub settings: NodeSettings,
    reads: mpsc::UnboundedSender<ReadWaiter>,
    /// Submits this member's proposals to Raft, batching those that wait together.
    proposer: Proposer,
    /// Lease deadlines, while leader.
    pub(crate) lessor: crate::lessor::Lessor,
    /// True while this leader hands leadership over: proposals and read-index rounds wait, so
    /// that nothing renews the followers' lease on it.
    quiet: watch::Sender<bool>,
}

impl Node {
    /// Wrap a started Raft and spawn the node's background tasks (read batching, attribute
    /// publishing, promotion of caught-up members).
    pub fn start(
        id: u64,
        cluster_id: u64,
        raft: Raft,
        leaders: Leaders,
        sm: Arc<SmShared>,
        peers: Peers,
        settings: NodeSettings,
    ) -> Arc<Node> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (quiet, quiet_rx) = watch::channel(false);
        let proposer = Proposer::start(raft.clone(), id, leaders, quiet_rx);
        let node = Arc::new(Node {
            quiet,
            id,
            cluster_id,
            proposer,
            raft,
            sm,
            peers,
            settings,
            reads: tx,
            lessor: Default::default(),
        });
        tokio::spawn(read_batcher(Arc::downgrade(&node), rx));
        tokio::spawn(publish_attributes(Arc::downgrade(&node)));
        tokio::spawn(promote_caught_up(Arc::downgrade(&node)));
        tokio::spawn(crate::lessor::expiry_loop(Arc::downgrade(&node)));
        tokio::spawn(count_leader_changes(node.raft.metrics()));
        node
    }

    /// Current Raft metrics.
    pub fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow().clone()
    }

    /// The header for a response at revision `revision` (0 = current).
    pub fn header_at(&self, revision: i64) -> ResponseHeader {
        let term = self.raft.metrics().borrow().current_term;
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.id,
            revision: if revision > 0 {
                revision
            } else {
                self.sm.revs().current
            },
            raft_term: term,
        }
    }

    /// The header for a response at the current revision.
    pub fn header(&self) -> ResponseHeader {
        self.header_at(0)
    }

    /// The leader's id and peer URL, if one is known.
    pub fn leader_url(&self) -> Option<(u64, String)> {
        self.leader()
    }

    /// The leader's peer URL and id, if one is known.
    fn leader(&self) -> Option<(u64, String)> {
        let m = self.raft.metrics().borrow().clone();
        let lid = m.current_leader?;
        let node = m.membership_config.membership().get_node(&lid)?.clone();
        Some((lid, node.peer_urls.first()?.clone()))
    }

    /// Propose a command and wait until it is applied here or at the leader.
    pub async fn propose(&self, cmd: Command) -> Result<CommandResponse, EtcdError> {
        let m = &crate::metrics::METRICS;
        m.proposals_pending.inc();
        let res = self.propose_inner(cmd).await;
        m.proposals_pending.dec();
        if res.is_err() {
            m.proposals_failed.inc();
        }
        res
    }

    async fn propose_inner(&self, cmd: Command) -> Result<CommandResponse, EtcdError> {
        let deadline = Instant::now() + self.settings.request_timeout;
        loop {
            match self.proposer.write(cmd.clone()).await {
                Ok((resp, _)) => return Ok(resp),
                Err(ProposeError::NotLeader(leader)) => {
                    if let Some(url) = leader.and_then(|n| n.peer_urls.first().cloned()) {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match self
                            .peers
                            .propose(&url, &cmd, left.max(Duration::from_millis(100)))
                            .await
                        {
                            // Answer once this member has applied it too, as etcd does: a
                            // read or watch here right after sees the write.
                            Ok(Ok((r, index))) => {
                                let left = deadline.saturating_duration_since(Instant::now());
                                return self
                                    .raft
                                    .wait(Some(left))
                                    .applied_index_at_least(Some(index), "forwarded write")
                                    .await
                                    .map(|_| r)
                                    .map_err(|_| EtcdError::Timeout);
                            }
                            // Refused before it reached the leader's log: safe to send again.
                            Ok(Err(EtcdError::NotLeader)) => {}
                            Ok(Err(e)) => return Err(e),
                            Err(s) if never_sent(&s) => {}
                            Err(s) if s.code() == tonic::Code::DeadlineExceeded => {
                                return Err(EtcdError::Timeout);
                            }
                            // The request may have reached the leader (a broken connection, a
                            // keep-alive timeout while it was paused): its entry may still
                            // commit, so sending it again could apply it twice. etcd answers
                            // such requests with a retryable error and leaves it to the client.
                            Err(s) => {
                                tracing::info!(status = %s, "a forwarded proposal's fate is unknown: answered 'leader changed'");
                                return Err(EtcdError::LeaderChanged);
                            }
                        }
                    }
                }
                Err(e) => return Err(propose_error(e)),
            }
            if Instant::now() >= deadline {
                return Err(if self.leader().is_some() {
                    EtcdError::Timeout
                } else {
                    EtcdError::NoLeader
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Propose as the leader only.
    pub async fn propose_local(&self, cmd: Command) -> Result<CommandResponse, EtcdError> {
        self.propose_forwarded(cmd).await.map(|(resp, _)| resp)
    }

    /// Propose as the leader only, for a follower that forwarded the write: the response and
    /// the log index it was applied at, for the follower to wait for.
    pub async fn propose_forwarded(
        &self,
        cmd: Command,
    ) -> Result<(CommandResponse, u64), EtcdError> {
        self.proposer.write(cmd).await.map_err(propose_error)
    }

    /// Wait until this member has applied everything committed before the call: after it, a
    /// local read is linearizable. Concurrent callers share one read-index round.
    pub async fn linearize(&self) -> Result<(), EtcdError> {
        let (tx, rx) = oneshot::channel();
        self.reads.send(tx).map_err(|_| EtcdError::Stopped)?;
        rx.await.map_err(|_| EtcdError::Stopped)?
    }

    /// The read index as the leader (one heartbeat round), for this member or a follower.
    pub async fn read_index_local(&self) -> Result<u64, EtcdError> {
        // A read-index round sends heartbeats: it waits while leadership is handed over.
        let _ = self.quiet.subscribe().wait_for(|q| !*q).await;
        match self.raft.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map_or(0, |l| l.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
                Err(EtcdError::NotLeader)
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(EtcdError::Timeout)
            }
            Err(RaftError::Fatal(_)) => Err(EtcdError::Stopped),
        }
    }

    async fn read_index(&self) -> Result<u64, EtcdError> {
        let deadline = Instant::now() + self.settings.request_timeout;
        loop {
            let res = match self.read_index_local().await {
                Err(EtcdError::NotLeader) => match self.leader() {
                    Some((lid, url)) if lid != self.id => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match self
                            .peers
                            .read_index(&url, left.max(Duration::from_millis(100)))
                            .await
                        {
                            Ok(r) => r,
                            Err(_) => Err(EtcdError::NotLeader),
                        }
                    }
                    _ => Err(EtcdError::NotLeader),
                },
                other => other,
            };
            match res {
                Ok(i) => return Ok(i),
                Err(EtcdError::NotLeader) | Err(EtcdError::Timeout)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(EtcdError::NotLeader) => {
                    return Err(if self.leader().is_some() {
                        EtcdError::Timeout
                    } else {
                        EtcdError::NoLeader
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn read_round(&self) -> Result<(), EtcdError> {
        let index = self.read_index().await?;
        self.raft
            .wait(Some(self.settings.request_timeout))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|_| EtcdError::Timeout)
    }

    /// Every member, as etcd lists them.
    pub fn members(&self) -> Vec<Member> {
        let m = self.metrics();
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let attrs: BTreeMap<u64, _> = self
            .sm
            .member_attrs()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let pending: BTreeSet<u64> = self
            .sm
            .pending_voters()
            .unwrap_or_default()
            .into_iter()
            .collect();
        membership
            .nodes()
            .map(|(id, node)| {
                let a = attrs.get(id);
                Member {
                    id: *id,
                    name: a.map_or_else(|| node.name.clone(), |a| a.name.clone()),
                    peer_ur_ls: node.peer_urls.clone(),
                    client_ur_ls: a.map(|a| a.client_urls.clone()).unwrap_or_default(),
                    is_learner: !voters.contains(id) && !pending.contains(id),
                }
            })
            .collect()
    }

    /// What this member tells one that joins.
    pub fn cluster_info(&self) -> ClusterInfo {
        let m = self.metrics();
        ClusterInfo {
            cluster_id: self.cluster_id,
            members: m
                .membership_config
                .membership()
                .nodes()
                .map(|(i, n)| (*i, n.clone()))
                .collect(),
            started: self
                .sm
                .member_attrs()
                .unwrap_or_default()
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
        }
    }

    /// Run a membership change at the leader (forwarding it there if needed). Returns the
    /// affected member id.
    pub async fn member_op(&self, op: MemberOp) -> Result<u64, EtcdError> {
        let deadline = Instant::now() + self.settings.request_timeout;
        // Whether an earlier attempt may have taken effect without its answer arriving (the
        // leader removing itself steps down as it commits).
        let mut maybe_done = false;
        loop {
            let res = match self.leader() {
                Some((lid, _)) if lid == self.id => self.member_op_local(op.clone()).await,
                Some((_, url)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match self
                        .peers
                        .change_membership(&url, &op, left.max(Duration::from_millis(100)))
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => {
                            maybe_done = true;
                            Err(EtcdError::NotLeader)
                        }
                    }
                }
                None => Err(EtcdError::NotLeader),
            };
            if let (MemberOp::Remove { id }, Err(EtcdError::MemberNotFound), true) =
                (&op, &res, maybe_done)
            {
                return Ok(*id);
            }
            match res {
                Err(EtcdError::NotLeader) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(EtcdError::NotLeader) => return Err(EtcdError::NoLeader),
                other => return other,
            }
        }
    }

    /// Run a membership change here, as the leader.
    pub async fn member_op_local(&self, op: MemberOp) -> Result<u64, EtcdError> {
        let m = self.metrics();
        if m.current_leader != Some(self.id) {
            return Err(EtcdError::NotLeader);
        }
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let node_of = |id: u64| membership.get_node(&id).cloned();
        match op {
            MemberOp::Add {
                peer_urls,
                is_learner,
            } => {
                for url in &peer_urls {
                    url::Url::parse(url).map_err(|e| {
                        EtcdError::InvalidArgument(format!(
                            "etcdserver: invalid peer URL {url:?}: {e}"
                        ))
                    })?;
                }
                if membership
                    .nodes()
                    .any(|(_, n)| n.peer_urls.iter().any(|u| peer_urls.contains(u)))
                {
                    return Err(EtcdError::PeerUrlExists);
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let id = ids::member_id(&peer_urls, &self.settings.token, Some(now));
                if node_of(id).is_some() {
                    return Err(EtcdError::MemberExists);
                }
                let node = PeerNode {
                    name: String::new(),
                    peer_urls,
                };
                self.change(|| self.raft.add_learner(id, node.clone(), false))
                    .await?;
                if !is_learner {
                    self.propose_local(Command::SetPendingVoter { id, pending: true })
                        .await?;
                }
                Ok(id)
            }
            MemberOp::Promote { id } => {
                if node_of(id).is_none() {
                    return Err(EtcdError::MemberNotFound);
                }
                if voters.contains(&id) {
                    return Err(EtcdError::MemberNotLearner);
                }
                if !learner_caught_up(&m, id) {
                    return Err(EtcdError::LearnerNotReady);
                }
                self.promote(id).await?;
                Ok(id)
            }
            MemberOp::Remove { id } => {
                if node_of(id).is_none() {
                    return Err(EtcdError::MemberNotFound);
                }
                let mut ids = BTreeSet::new();
                ids.insert(id);
                if voters.contains(&id) {
                    if voters.len() == 1 {
                        return Err(EtcdError::NotEnoughStartedMembers);
                    }
                    self.change(|| {
                        self.raft
                            .change_membership(ChangeMembers::RemoveVoters(ids.clone()), false)
                    })
                    .await?;
                } else {
                    self.change(|| {
                        self.raft
                            .change_membership(ChangeMembers::RemoveNodes(ids.clone()), false)
                    })
                    .await?;
                }
                // The removed member may have been us: the rest is best effort.
                let _ = self
                    .propose(Command::SetPendingVoter { id, pending: false })
                    .await;
                let _ = self.propose(Command::ForgetMember { id }).await;
                Ok(id)
            }
            MemberOp::Update { id, peer_urls } => {
                let Some(old) = node_of(id) else {
                    return Err(EtcdError::MemberNotFound);
                };
                if membership
                    .nodes()
                    .any(|(i, n)| *i != id && n.peer_urls.iter().any(|u| peer_urls.contains(u)))
                {
                    return Err(EtcdError::PeerUrlExists);
                }
                let mut nodes = BTreeMap::new();
                nodes.insert(
                    id,
                    PeerNode {
                        name: old.name,
                        peer_urls,
                    },
                );
                self.change(|| {
                    self.raft
                        .change_membership(ChangeMembers::SetNodes(nodes.clone()), false)
                })
                .await?;
                Ok(id)
            }
        }
    }

    /// Hand leadership to `target`. openraft 0.9 has no transfer: this leader goes quiet (no
    /// heartbeats, proposals and read-index rounds held back) until the target has its whole
    /// log, and asks the target to campaign until it wins or the request times out. Held
    /// requests then go on, to the new leader.
    pub async fn transfer_leadership(&self, target: u64) -> Result<(), EtcdError> {
        let m = self.metrics();
        let url = m
            .membership_config
            .membership()
            .get_node(&target)
            .and_then(|n| n.peer_urls.first().cloned())
            .ok_or(EtcdError::BadLeaderTransferee)?;
        let cfg = self.raft.config();
        let round = Duration::from_millis(cfg.election_timeout_max);
        let deadline = Instant::now() + self.settings.request_timeout.max(round * 4);
        // Undone on every way out, a cancelled request included.
        struct Quiet<'a>(&'a Node);
        impl Drop for Quiet<'_> {
            fn drop(&mut self) {
                self.0.quiet.send_replace(false);
                self.0.raft.runtime_config().heartbeat(true);
            }
        }
        self.raft.runtime_config().heartbeat(false);
        self.quiet.send_replace(true);
        let quiet = Quiet(self);
        // With nothing new to send, the target catches up with this leader's log; then it
        // campaigns. This leader grants it its vote at once (a leader's own lease is not held
        // against a candidate with its whole log); a follower does only once the lease it last
        // heard of lapsed (one election timeout), so where this leader's vote is not
        // enough for a quorum (five members or more) the first campaigns may fail until then.
        // The target is asked again after half an election timeout: votes come back within a
        // round trip, and a leader that stepped down for a candidate it then refused (a log it
        // had not seen yet) grants the next one. The target's campaign skips the pre-vote (the
        // leader asked for it, as etcd's TimeoutNow).
        let caught_up = Instant::now() + round;
        while Instant::now() < caught_up {
            // Entries already proposed finish first (the log's metrics may lag behind them).
            if self.proposer.idle() {
                let m = self.metrics();
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&target).cloned().flatten())
                    .map(|l| l.index);
                if m.last_log_index.is_some() && matched == m.last_log_index {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut won = false;
        'rounds: while Instant::now() < deadline {
            let _ = self.peers.campaign(&url).await;
            let until = Instant::now() + Duration::from_millis(cfg.election_timeout_min / 2);
            while Instant::now() < until.min(deadline) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let leader = self.raft.metrics().borrow().current_leader;
                if leader == Some(target) {
                    won = true;
                    break 'rounds;
                }
                if leader.is_some() && leader != Some(self.id) {
                    break 'rounds;
                }
            }
        }
        drop(quiet);
        if won { Ok(()) } else { Err(EtcdError::Timeout) }
    }

    async fn promote(&self, id: u64) -> Result<(), EtcdError> {
        let mut ids = BTreeSet::new();
        ids.insert(id);
        self.change(|| {
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(ids.clone()), false)
        })
        .await?;
        self.propose_local(Command::SetPendingVoter { id, pending: false })
            .await?;
        Ok(())
    }

    /// Run a membership call, retrying while another change is in progress.
    async fn change<F, Fut>(&self, f: F) -> Result<(), EtcdError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<
                Output = Result<
                    openraft::raft::ClientWriteResponse<crate::raft::TypeConfig>,
                    RaftError<u64, ClientWriteError<u64, PeerNode>>,
                >,
            >,
    {
        let deadline = Instant::now() + self.settings.request_timeout;
        loop {
            match f().await {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_),
                ))) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::LearnerNotFound(_),
                ))) => return Err(EtcdError::MemberNotFound),
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::EmptyMembership(_),
                ))) => return Err(EtcdError::NotEnoughStartedMembers),
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                    return Err(EtcdError::Internal(format!("etcdserver: {e}")));
                }
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                    return Err(EtcdError::NotLeader);
                }
                Err(RaftError::Fatal(_)) => return Err(EtcdError::Stopped),
            }
        }
    }
}

/// The etcd error for a proposal without a response.
fn propose_error(e: ProposeError) -> EtcdError {
    match e {
        ProposeError::NotLeader(_) => EtcdError::NotLeader,
        // etcd's answer to a proposal whose fate is unknown after a leader change.
        ProposeError::Lost => EtcdError::LeaderChanged,
        ProposeError::Raft(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            EtcdError::Internal(e.to_string())
        }
        ProposeError::Raft(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
            EtcdError::LeaderChanged
        }
        ProposeError::Raft(RaftError::Fatal(_)) => EtcdError::Stopped,
    }
}

/// Whether a failed peer call certainly never reached the peer: the connection could not be
/// made. Anything else (a reset or timed-out connection, even one tonic calls `Unavailable`)
/// may have delivered the request.
fn never_sent(s: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = source {
        if e.is::<tonic::ConnectError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Whether the leader's view says learner `id` has (nearly) all of the log: etcd's rule is
/// 90 % of the leader's progress.
fn learner_caught_up(m: &RaftMetrics, id: u64) -> bool {
    let Some(last) = m.last_log_index else {
        return true;
    };
    let matched = m
        .replication
        .as_ref()
        .and_then(|r| r.get(&id).cloned().flatten())
        .map(|l| l.index);
    match matched {
        Some(i) => i as f64 >= last as f64 * 0.9 && last.saturating_sub(i) < 1000,
        None => false,
    }
}

async fn count_leader_changes(mut rx: tokio::sync::watch::Receiver<RaftMetrics>) {
    let mut last = rx.borrow().current_leader;
    while rx.changed().await.is_ok() {
        let now = rx.borrow().current_leader;
        if now != last {
            if now.is_some() {
                crate::metrics::METRICS.leader_changes.inc();
            }
            last = now;
        }
    }
}

async fn read_batcher(node: std::sync::Weak<Node>, mut rx: mpsc::UnboundedReceiver<ReadWaiter>) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let Some(n) = node.upgrade() else { return };
        let res = n.read_round().await;
        drop(n);
        for w in waiters {
            let _ = w.send(res.clone());
        }
    }
}

async fn publish_attributes(node: std::sync::Weak<Node>) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(n) = node.upgrade() else { return };
        let mine =
            n.sm.member_attrs()
                .unwrap_or_default()
                .into_iter()
                .find(|(id, _)| *id == n.id);
        let up_to_date = mine.is_some_and(|(_, a)| {
            a.name == n.settings.name && a.client_urls == n.settings.client_urls
        });
        if up_to_date {
            return;
        }
        let in_cluster = n
            .metrics()
            .membership_config
            .membership()
            .get_node(&n.id)
            .is_some();
        if !in_cluster || n.leader().is_none() {
            continue;
        }
        let cmd = Command::PublishMember {
            id: n.id,
            name: n.settings.name.clone(),
            client_urls: n.settings.client_urls.clone(),
        };
        if let Err(e) = n.propose(cmd).await {
            tracing::warn!(error = %e, "failed to publish member attributes; retrying");
        }
    }
}

async fn promote_caught_up(node: std::sync::Weak<Node>) {
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Some(n) = node.upgrade() else { return };
        let m = n.metrics();
        if m.current_leader != Some(n.id) {
            continue;
        }
        let membership = m.membership_config.membership().clone();
        for id in n.sm.pending_voters().unwrap_or_default() {
            let voter = membership.voter_ids().any(|v| v == id);
            let known = membership.get_node(&id).is_some();
            if voter || !known {
                let _ = n
                    .propose_local(Command::SetPendingVoter { id, pending: false })
                    .await;
            } else if learner_caught_up(&m, id) {
                match n.promote(id).await {
                    Ok(()) => {
                        tracing::info!(member = %format!("{id:x}"), "promoted caught-up member to voter")
                    }
                    Err(e) => {
                        tracing::warn!(member = %format!("{id:x}"), error = %e, "failed to promote member")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::never_sent;

    #[test]
    fn only_a_failed_connect_counts_as_never_sent() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let connect = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))));
        assert_eq!(connect.code(), tonic::Code::Unavailable);
        assert!(never_sent(&connect));
        // tonic maps a keep-alive timeout (the peer paused mid-request) to Unavailable too,
        // with no source: the request may have arrived.
        assert!(!never_sent(&tonic::Status::unavailable(
            "keep-alive timed out"
        )));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(!never_sent(&tonic::Status::from_error(Box::new(reset))));
    }
}
