//! The etcd v3 gRPC services on the client port, one service per module, sharing [`Api`].

pub mod auth;
pub mod cluster;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod snapshot_stream;
pub mod watch;

use std::sync::Arc;

use prost::Message;
use tonic::Status;

use crate::error::EtcdError;
use crate::node::Node;
use crate::pb::ResponseHeader;
use crate::raft::CommandResponse;

/// Shared state of the client-facing services.
#[derive(Clone)]
pub struct Api {
    /// The member.
    pub node: Arc<Node>,
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// `--max-txn-ops`.
    pub max_txn_ops: usize,
    /// The backend quota in bytes.
    pub quota: u64,
    /// The shortest lease TTL granted, in seconds.
    pub min_lease_ttl: i64,
    /// Interval of progress notifications for watchers that asked for them.
    pub watch_progress_interval: std::time::Duration,
}

impl Api {
    /// Refuse requests larger than `--max-request-bytes`, as etcd does.
    pub fn check_size(&self, req: &impl Message) -> Result<(), Status> {
        if req.encoded_len() > self.max_request_bytes {
            return Err(EtcdError::RequestTooLarge.into());
        }
        Ok(())
    }

    /// Refuse writes that grow the database while the NOSPACE alarm is active, and raise the
    /// alarm when this member's database has outgrown the quota.
    pub async fn check_space(&self) -> Result<(), Status> {
        let alarms = self.node.sm.alarms().map_err(Status::from)?;
        if alarms
            .iter()
            .any(|(_, a)| *a == crate::pb::AlarmType::Nospace as i32)
        {
            return Err(EtcdError::NoSpace.into());
        }
        if self.node.sm.db_size() as u64 > self.quota {
            let cmd = crate::raft::Command::Alarm {
                activate: true,
                member_id: self.node.id,
                alarm: crate::pb::AlarmType::Nospace as i32,
            };
            let _ = self.node.propose(cmd).await;
            return Err(EtcdError::NoSpace.into());
        }
        Ok(())
    }

    /// Fill the cluster fields of a header that carries a revision.
    pub fn fill(&self, h: Option<ResponseHeader>) -> Option<ResponseHeader> {
        Some(self.node.header_at(h.map_or(0, |h| h.revision)))
    }

    /// Propose a command; apply-time refusals become etcd errors.
    pub async fn propose(&self, cmd: crate::raft::Command) -> Result<CommandResponse, Status> {
        match self.node.propose(cmd).await? {
            CommandResponse::Failed(e) => Err(e.into()),
            other => Ok(other),
        }
    }
}

/// Every client-facing service, built once and shared by gRPC and the HTTP gateway.
#[derive(Clone)]
pub struct Services {
    /// KV.
    pub kv: kv::KvService,
    /// Watch.
    pub watch: watch::WatchService,
    /// Lease.
    pub lease: lease::LeaseService,
    /// Cluster.
    pub cluster: cluster::ClusterService,
    /// Maintenance.
    pub maintenance: maintenance::MaintenanceService,
    /// Auth.
    pub auth: auth::AuthService,
    /// The shared state.
    pub api: Api,
}

impl Services {
    /// Build every service over `api`.
    pub fn new(api: Api) -> Self {
        Services {
            kv: kv::KvService::new(api.clone()),
            watch: watch::WatchService::new(api.clone()),
            lease: lease::LeaseService::new(api.clone()),
            cluster: cluster::ClusterService::new(api.clone()),
            maintenance: maintenance::MaintenanceService::new(api.clone()),
            auth: auth::AuthService::new(api.clone()),
            api,
        }
    }
}

/// A response of an unexpected kind from the state machine.
pub fn unexpected(r: &CommandResponse) -> Status {
    Status::internal(format!("unexpected apply response {r:?}"))
}
