//! Fetch step: what the cluster looks like, asked of the members themselves (Status and
//! MemberList over the etcd API), not only of pod readiness.

use std::time::Duration;

use kvstore::pb::cluster_client::ClusterClient;
use kvstore::pb::maintenance_client::MaintenanceClient;
use kvstore::pb::{MemberListRequest, StatusRequest};

use super::members::{Observed, RaftMember};
use super::validate::Validated;

/// What one member said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberReport {
    /// Pod ordinal.
    pub ordinal: i32,
    /// Member id.
    pub id: u64,
    /// Cluster id.
    pub cluster_id: u64,
    /// The leader it knows (0 = none).
    pub leader: u64,
    /// Raft index.
    pub raft_index: u64,
    /// Database size.
    pub db_size: i64,
    /// Version.
    pub version: String,
    /// Learner.
    pub learner: bool,
}

const RPC_TIMEOUT: Duration = Duration::from_secs(2);

async fn channel(url: &str) -> Option<tonic::transport::Channel> {
    tonic::transport::Endpoint::from_shared(url.to_string())
        .ok()?
        .connect_timeout(RPC_TIMEOUT)
        .timeout(RPC_TIMEOUT)
        .connect()
        .await
        .ok()
}

/// Ask member `ordinal` for its status.
pub async fn report(v: &Validated, ordinal: i32) -> Option<MemberReport> {
    let ch = channel(&v.client_url(&v.member(ordinal))).await?;
    let s = MaintenanceClient::new(ch)
        .status(StatusRequest {})
        .await
        .ok()?
        .into_inner();
    let h = s.header.unwrap_or_default();
    Some(MemberReport {
        ordinal,
        id: h.member_id,
        cluster_id: h.cluster_id,
        leader: s.leader,
        raft_index: s.raft_index,
        db_size: s.db_size,
        version: s.version,
        learner: s.is_learner,
    })
}

/// The ordinal of the pod a peer URL points at (`http://<name>-<k>.<peer svc>...`).
pub fn ordinal_of(v: &Validated, peer_url: &str) -> Option<i32> {
    let host = peer_url.split("://").nth(1)?.split(['.', ':']).next()?;
    host.strip_prefix(&format!("{}-", v.name))?.parse().ok()
}

/// Observe the cluster: the reports of every member that answers and the Raft membership as
/// the first of them lists it.
pub async fn observe(v: &Validated, slots: i32) -> (Observed, Vec<MemberReport>) {
    let mut reports = Vec::new();
    for k in 0..slots {
        if let Some(r) = report(v, k).await {
            reports.push(r);
        }
    }
    let leader = reports.iter().map(|r| r.leader).find(|l| *l != 0);
    let mut members = Vec::new();
    for r in &reports {
        let Some(ch) = channel(&v.client_url(&v.member(r.ordinal))).await else {
            continue;
        };
        let req = MemberListRequest { linearizable: true };
        if let Ok(list) = ClusterClient::new(ch).member_list(req).await {
            for m in list.into_inner().members {
                let ordinal = m.peer_ur_ls.first().and_then(|u| ordinal_of(v, u));
                if let Some(ordinal) = ordinal {
                    members.push(RaftMember {
                        id: m.id,
                        ordinal,
                        learner: m.is_learner,
                    });
                }
            }
            break;
        }
    }
    let observed = Observed {
        desired: v.spec.replicas,
        slots,
        bootstrapped: reports.iter().any(|r| r.cluster_id != 0),
        leader,
        members,
    };
    (observed, reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::build::tests::fixture;
    use crate::controller::validate::validate;

    #[test]
    fn ordinals_from_peer_urls() {
        let v = validate(&fixture("demo", 3)).unwrap();
        assert_eq!(ordinal_of(&v, &v.peer_url("demo-4")), Some(4));
        assert_eq!(ordinal_of(&v, "http://other-1.x:2380"), None);
    }
}
