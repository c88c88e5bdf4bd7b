//! Start a member: open its data directory, bootstrap or rejoin, serve the peer and client
//! ports, and shut down cleanly on SIGTERM or Ctrl-C.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::api::{Api, Services};
use crate::config::{ClusterState, ServerConfig, listen_addr};
use crate::data_dir::{read_identity, write_identity};
use crate::error::{Error, Result};
use crate::gateway;
use crate::ids;
use crate::node::{Node, NodeSettings};
use crate::pb;
use crate::raft::log_store::LogStore;
use crate::raft::network::{NetworkFactory, Peers};
use crate::raft::service::PeerService;
use crate::raft::state_machine::{SmShared, StateMachine};
use crate::raft::{PeerNode, Raft};

pub use crate::data_dir::{Identity, member_dir};

/// Members and cluster id described by the bootstrap flags.
pub fn bootstrap_members(cfg: &ServerConfig) -> Result<(u64, BTreeMap<u64, PeerNode>)> {
    Ok(members_of(
        &cfg.initial_members()?,
        &cfg.initial_cluster_token,
    ))
}

/// Member ids and the cluster id of an initial cluster, as etcd derives them.
pub fn members_of(
    initial: &[(String, Vec<String>)],
    token: &str,
) -> (u64, BTreeMap<u64, PeerNode>) {
    let mut members = BTreeMap::new();
    for (name, urls) in initial {
        let id = ids::member_id(urls, token, None);
        members.insert(
            id,
            PeerNode {
                name: name.clone(),
                peer_urls: urls.clone(),
            },
        );
    }
    let ids: Vec<u64> = members.keys().copied().collect();
    (ids::cluster_id(&ids, token), members)
}

fn raft_config(cfg: &ServerConfig) -> Result<Arc<openraft::Config>> {
    let c = openraft::Config {
        cluster_name: cfg.initial_cluster_token.clone(),
        // openraft also uses the heartbeat interval as the deadline of every AppendEntries
        // (payload and the follower's fsync included): keep it at half an election timeout at
        // least, so large entries and slow disks do not turn into retries. Elections still
        // follow --election-timeout.
        heartbeat_interval: cfg.heartbeat_interval.max(cfg.election_timeout / 2),
        // openraft's election timer is off in clusters of more than one voter (elections run
        // through the pre-vote, which draws from one to two timeouts itself); the maximum is
        // also the lease for which a follower refuses votes after hearing a leader, which is
        // one election timeout in etcd.
        election_timeout_min: cfg.election_timeout,
        election_timeout_max: cfg.election_timeout + 1,
        install_snapshot_timeout: 10_000,
        max_payload_entries: 1000,
        // Snapshots follow --snapshot-count in requests (see `snapshot_when_due`): an entry
        // may carry a batch of them.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: cfg.snapshot_count.clamp(1, 5000),
        purge_batch_size: 256,
        ..Default::default()
    };
    Ok(Arc::new(c.validate().map_err(|e| {
        Error::Config(format!("raft settings: {e}"))
    })?))
}

/// Work out who we are: from the data directory if it has been used, else from the flags.
async fn identity(cfg: &ServerConfig, member: &Path, peers: &Peers) -> Result<Identity> {
    if let Some(id) = read_identity(member)? {
        if cfg.initial_cluster_state == ClusterState::New
            && cfg.initial_cluster.is_some()
            && id.bootstrapped
        {
            let (expected, _) = bootstrap_members(cfg)?;
            if expected != id.cluster_id {
                return Err(Error::Config(format!(
                    "data dir {} belongs to cluster {:x}, but --initial-cluster and \
                     --initial-cluster-token describe cluster {:x}; refusing to start \
                     (start with an empty --data-dir to join another cluster)",
                    cfg.data_dir(),
                    id.cluster_id,
                    expected
                )));
            }
        }
        return Ok(id);
    }
    let named = cfg.initial_members()?.iter().any(|(n, _)| *n == cfg.name);
    let state = match cfg.initial_cluster_state {
        ClusterState::Auto if named => ClusterState::New,
        ClusterState::Auto => ClusterState::Auto,
        other => other,
    };
    match state {
        ClusterState::New => {
            let (cluster_id, members) = bootstrap_members(cfg)?;
            let member_id = ids::member_id(
                &cfg.initial_advertise_peer_urls,
                &cfg.initial_cluster_token,
                None,
            );
            let me = members
                .iter()
                .find(|(_, n)| n.name == cfg.name)
                .map(|(id, _)| *id)
                .unwrap_or(member_id);
            Ok(Identity {
                cluster_id,
                member_id: me,
                bootstrapped: true,
                bootstrap: Some(members),
            })
        }
        ClusterState::Existing | ClusterState::Auto => {
            let mine = &cfg.initial_advertise_peer_urls;
            let others: Vec<String> = cfg
                .initial_members()?
                .into_iter()
                .flat_map(|(_, u)| u)
                .filter(|u| !mine.contains(u))
                .collect();
            if others.is_empty() {
                return Err(Error::Config(
                    "--initial-cluster-state existing needs --initial-cluster to name other members".into(),
                ));
            }
            for attempt in 0.. {
                for url in &others {
                    match peers.cluster_info(url).await {
                        Ok(info) => {
                            let found = info
                                .members
                                .iter()
                                .find(|(_, n)| n.peer_urls.iter().any(|u| mine.contains(u)));
                            match found {
                                Some((id, _)) if info.started.contains(id) => {
                                    return Err(Error::DataLost(format!(
                                        "member {id:x} ({}) of cluster {:x} has run before, but its data dir {} is empty: \
                                         its data is lost and it must not rejoin under the same id; remove it and add it \
                                         again (etcdctl member remove {id:x}; etcdctl member add {} --peer-urls={})",
                                        mine.join(","),
                                        info.cluster_id,
                                        cfg.data_dir(),
                                        cfg.name,
                                        mine.join(",")
                                    )));
                                }
                                Some((id, _)) => {
                                    return Ok(Identity {
                                        cluster_id: info.cluster_id,
                                        member_id: *id,
                                        bootstrapped: false,
                                        bootstrap: None,
                                    });
                                }
                                None if state == ClusterState::Auto => {
                                    if attempt % 10 == 0 {
                                        tracing::info!(cluster = %format!("{:x}", info.cluster_id), "waiting to be added to the cluster");
                                    }
                                }
                                None => {
                                    return Err(Error::Config(format!(
                                        "cluster {:x} has no member with peer URLs {mine:?}: add it first \
                                         (etcdctl member add {} --peer-urls={})",
                                        info.cluster_id,
                                        cfg.name,
                                        mine.join(",")
                                    )));
                                }
                            }
                        }
                        Err(e) => {
                            if attempt % 10 == 0 {
                                tracing::warn!(peer = %url, error = %e.message(), "waiting for the cluster to answer");
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            unreachable!("the join loop only returns")
        }
    }
}

/// The exit status of `kvstore` when its data dir is empty but the cluster knows it as a member
/// that has run before (its data was lost). The operator reads it to replace the member.
pub const EXIT_DATA_LOST: i32 = 3;

/// A started member: its node and the tasks serving it.
pub struct Server {
    /// The node.
    pub node: Arc<Node>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The data dir's lock, released when the server is dropped.
    _lock: crate::data_dir::DirLock,
}

impl Server {
    /// Stop serving and shut Raft down.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.node.raft.shutdown().await;
        if let Err(e) = self.node.sm.flush() {
            tracing::warn!(error = %e, "failed to flush the state machine at shutdown");
        }
    }
}

/// Open the data directory, bootstrap or rejoin, and serve both ports.
pub async fn start(cfg: ServerConfig) -> Result<Server> {
    cfg.validate()?;
    let data_dir = PathBuf::from(cfg.data_dir());
    let dir = member_dir(&data_dir);
    // Locked first: a second kvstore on this data dir stops here, before it reads anything.
    let lock = crate::data_dir::lock(&dir)?;
    crate::data_dir::prepare(&dir, &lock)?;
    let mut log_store = LogStore::open(
        &dir,
        crate::raft::wal::WalOptions {
            segment_size: cfg.wal_segment_size,
        },
    )?;
    let peers = Peers::new(0);
    // Bind the peer port first so a joining member can be reached while it asks who it is.
    let mut peer_listeners = Vec::new();
    for u in &cfg.listen_peer_urls {
        let addr = listen_addr(u)?;
        let l = TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::Config(format!("failed to listen on peer URL {u}: {e}")))?;
        peer_listeners.push(l);
    }
    let mut client_listeners = Vec::new();
    for u in &cfg.listen_client_urls {
        let addr = listen_addr(u)?;
        let l = TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::Config(format!("failed to listen on client URL {u}: {e}")))?;
        client_listeners.push(l);
    }
    let ident = identity(&cfg, &dir, &peers).await?;
    write_identity(&dir, &ident)?;
    log_store.set_member_id(ident.member_id);
    peers.set_cluster_id(ident.cluster_id);
    tracing::info!(
        name = %cfg.name,
        member = %format!("{:x}", ident.member_id),
        cluster = %format!("{:x}", ident.cluster_id),
        data_dir = %data_dir.display(),
        "starting member"
    );

    let sm = SmShared::open(&dir)?;
    // A lone voter resumes at once; otherwise (or when the membership applied before the
    // crash is not known yet) a restarted leader leaves the choice to an election, as etcd does.
    let voters: Vec<u64> = sm.applied_state()?.1.membership().voter_ids().collect();
    let lone = voters == [ident.member_id];
    if !lone && log_store.step_down(ident.member_id).await? {
        tracing::info!("was the leader before this restart: starting as a follower");
    }
    let leaders = log_store.leaders();
    let raft = Raft::new(
        ident.member_id,
        raft_config(&cfg)?,
        NetworkFactory::new(peers.clone()),
        log_store,
        StateMachine::new(sm.clone()),
    )
    .await
    .map_err(|e| Error::Config(format!("failed to start raft: {e}")))?;

    let node_cell: Arc<OnceLock<Arc<Node>>> = Arc::new(OnceLock::new());
    let mut tasks = Vec::new();
    let peer_svc = PeerService::new(raft.clone(), ident.cluster_id, node_cell.clone());
    tokio::spawn(snapshot_when_due(
        raft.clone(),
        sm.clone(),
        cfg.snapshot_count.max(1),
    ));
    tokio::spawn(crate::raft::prevote::run(
        raft.clone(),
        peers.clone(),
        peer_svc.contact(),
    ));
    for l in peer_listeners {
        let svc = pb::kvraftpb::raft_peer_server::RaftPeerServer::new(peer_svc.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        tasks.push(tokio::spawn(async move {
            let r = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(svc)
                .serve_with_incoming(
                    tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true)),
                )
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "peer server stopped");
            }
        }));
    }

    // Initialize Raft once with the bootstrap membership; the stamp is kept until it took.
    if let Some(members) = &ident.bootstrap {
        let initialized = raft.is_initialized().await.unwrap_or(true);
        if !initialized && let Err(e) = raft.initialize(members.clone()).await {
            tracing::debug!(error = %e, "raft already initialized");
        }
    }
    // Data behind a log that was never purged: a restored member (also one that stopped before
    // it sealed it), or a young member that has not purged yet (harmless there).
    if sm.revs().current > 1 && raft.metrics().borrow().purged.is_none() {
        tokio::spawn(seal_restored_state(raft.clone()));
    }

    let settings = NodeSettings {
        name: cfg.name.clone(),
        client_urls: cfg.advertise_client_urls.clone(),
        token: cfg.initial_cluster_token.clone(),
        request_timeout: cfg.request_timeout(),
    };
    let node = Node::start(
        ident.member_id,
        ident.cluster_id,
        raft,
        leaders,
        sm,
        peers,
        settings,
    );
    let _ = node_cell.set(node.clone());

    let api = Api {
        node: node.clone(),
        max_request_bytes: cfg.max_request_bytes,
        max_txn_ops: cfg.max_txn_ops,
        quota: cfg.quota(),
        min_lease_ttl: ((cfg.election_timeout * 3).div_ceil(2 * 1000)).max(1) as i64,
        watch_progress_interval: cfg.watch_progress_notify_interval,
    };
    crate::metrics::METRICS
        .quota_backend_bytes
        .set(cfg.quota() as i64);
    let app = client_router(&api).await;
    for l in client_listeners {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = gateway::serve(l, app).await {
                tracing::error!(error = %e, "client server stopped");
            }
        }));
    }
    Ok(Server {
        node,
        tasks,
        _lock: lock,
    })
}

/// The client-port router: etcd's gRPC services plus the HTTP gateway and health routes.
async fn client_router(api: &Api) -> axum::Router {
    let max = api.max_request_bytes + 512 * 1024;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let s = Services::new(api.clone());
    let routes = tonic::service::Routes::new(health)
        .add_service(pb::kv_server::KvServer::new(s.kv.clone()).max_decoding_message_size(max))
        .add_service(pb::watch_server::WatchServer::new(s.watch.clone()))
        .add_service(pb::lease_server::LeaseServer::new(s.lease.clone()))
        .add_service(pb::cluster_server::ClusterServer::new(s.cluster.clone()))
        .add_service(
            pb::maintenance_server::MaintenanceServer::new(s.maintenance.clone())
                .max_decoding_message_size(max),
        )
        .add_service(pb::auth_server::AuthServer::new(s.auth.clone()));
    gateway::router(routes, s)
}

/// Take a Raft snapshot (and so let the log be purged) every `count` applied requests, as
/// etcd's `--snapshot-count` does. Runs until Raft shuts down.
async fn snapshot_when_due(raft: Raft, sm: Arc<SmShared>, count: u64) {
    let mut rx = raft.metrics();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if rx.borrow_and_update().running_state.is_err() {
            return;
        }
        if sm.applied_since_snapshot() >= count {
            let before = rx.borrow().snapshot;
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
            // One at a time: wait until it is built (or a while, if building failed).
            let _ = tokio::time::timeout(
                Duration::from_secs(60),
                rx.wait_for(|m| m.snapshot != before),
            )
            .await;
        }
    }
}

/// A member started from a restored snapshot holds data that its Raft log does not: once an
/// entry is applied it takes a Raft snapshot and purges the log up to it, so that members added
/// later receive the data as that snapshot instead of replaying a log that lacks it.
async fn seal_restored_state(raft: Raft) {
    let mut rx = raft.metrics();
    let applied = match rx.wait_for(|m| m.last_applied.is_some()).await {
        Ok(m) => m.last_applied.map_or(0, |l| l.index),
        Err(_) => return,
    };
    if raft.trigger().snapshot().await.is_err() {
        return;
    }
    let snapped = rx
        .wait_for(|m| m.snapshot.is_some_and(|s| s.index >= applied))
        .await
        .is_ok();
    if snapped && raft.trigger().purge_log(applied).await.is_ok() {
        tracing::info!(
            index = applied,
            "data sealed into a raft snapshot; members added later receive it"
        );
    }
}

/// Run a member until SIGTERM or Ctrl-C.
pub async fn run(cfg: ServerConfig) -> Result<()> {
    let server = start(cfg).await?;
    // The two watchers of the Raft metrics run as tasks: the metrics change several times per
    // write, and a watcher in this future would wake the main thread (parked outside the
    // runtime's workers) each time, a thread switch per change; here only their end wakes it.
    let removed = tokio::spawn(watch_removal(server.node.clone()));
    let stopped = tokio::spawn(raft_stopped(server.node.raft.clone()));
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("received shutdown signal"),
        _ = removed => tracing::warn!("this member has been removed from the cluster; stopping"),
        why = stopped => {
            let why = why.unwrap_or_else(|e| format!("its watcher failed: {e}"));
            tracing::error!(error = %why, "the Raft core stopped; exiting");
            return Err(Error::RaftStopped(why));
        }
    }
    server.shutdown().await;
    Ok(())
}

/// Resolves, with the reason, when the Raft core stops on its own (openraft turns a panic or a
/// storage error into a fatal stop). Such a member would still answer health checks from its
/// state machine while taking part in nothing, so the process ends and its supervisor restarts
/// it from its durable state, as etcd's process does on a Raft panic.
async fn raft_stopped(raft: Raft) -> String {
    let mut rx = raft.metrics();
    loop {
        if let Err(fatal) = &rx.borrow().running_state {
            return fatal.to_string();
        }
        if rx.changed().await.is_err() {
            return "it ended (a panic or a storage error, logged above)".into();
        }
    }
}

async fn watch_removal(node: Arc<Node>) {
    let mut rx = node.raft.metrics();
    let mut was_member = false;
    loop {
        let is_member = rx
            .borrow()
            .membership_config
            .membership()
            .get_node(&node.id)
            .is_some();
        if is_member {
            was_member = true;
        } else if was_member {
            // Let the answer to the removal itself reach the client first.
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("failed to install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
