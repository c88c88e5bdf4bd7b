//! Fetch step: what the cluster looks like, asked of the members themselves (Status and
//! MemberList over the etcd API), not only of pod readiness.

use k8s_openapi::api::core::v1::{ContainerState, Pod};
use kvstore::server::EXIT_DATA_LOST;

use super::build::statefulset::TEMPLATE_HASH;
use super::member_api::MemberApi;
use super::members::{Observed, PodFacts, RaftMember};
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

/// Ask member `ordinal` for its status.
pub async fn report(api: &dyn MemberApi, v: &Validated, ordinal: i32) -> Option<MemberReport> {
    let url = v.client_url(&v.member(ordinal));
    let s = match api.status(&url).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(member = %v.member(ordinal), error = %e, "no status from member");
            return None;
        }
    };
    Some(MemberReport {
        ordinal,
        id: s.id,
        cluster_id: s.cluster_id,
        leader: s.leader,
        raft_index: s.raft_index,
        db_size: s.db_size,
        version: s.version,
        learner: s.learner,
    })
}

/// The ordinal of the pod a peer URL points at (`http://<name>-<k>.<peer svc>...`).
pub fn ordinal_of(v: &Validated, peer_url: &str) -> Option<i32> {
    let host = peer_url.split("://").nth(1)?.split(['.', ':']).next()?;
    host.strip_prefix(&format!("{}-", v.name))?.parse().ok()
}

/// What the pods show (pure): readiness, whether each runs the current template, and whether
/// its store refused to start because its data is lost.
pub fn pod_facts(v: &Validated, pods: &[Pod], template_hash: &str) -> Vec<PodFacts> {
    pods.iter()
        .filter_map(|p| {
            let name = p.metadata.name.as_deref()?;
            let ordinal: i32 = name.strip_prefix(&format!("{}-", v.name))?.parse().ok()?;
            let status = p.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let current = p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(TEMPLATE_HASH))
                .is_some_and(|h| h == template_hash);
            let lost_data = status
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.name == "kvstore"))
                .is_some_and(|c| {
                    let running = c.state.as_ref().is_some_and(|s| s.running.is_some());
                    let code = |st: Option<&ContainerState>| {
                        st.and_then(|s| s.terminated.as_ref()).map(|t| t.exit_code)
                    };
                    !running
                        && (code(c.state.as_ref()) == Some(EXIT_DATA_LOST)
                            || code(c.last_state.as_ref()) == Some(EXIT_DATA_LOST))
                });
            Some(PodFacts {
                ordinal,
                ready,
                current,
                lost_data,
            })
        })
        .collect()
}

/// Observe the cluster: the reports of every member that answers and the Raft membership as
/// the first of them lists it, with what the pods show.
pub async fn observe(
    api: &dyn MemberApi,
    v: &Validated,
    slots: i32,
    pods: Vec<PodFacts>,
) -> (Observed, Vec<MemberReport>) {
    let mut reports = Vec::new();
    for k in 0..slots {
        if let Some(r) = report(api, v, k).await {
            reports.push(r);
        }
    }
    let leader = reports.iter().map(|r| r.leader).find(|l| *l != 0);
    let mut members = Vec::new();
    for r in &reports {
        if let Ok(list) = api.member_list(&v.client_url(&v.member(r.ordinal))).await {
            for m in list {
                if let Some(ordinal) = m.peer_urls.first().and_then(|u| ordinal_of(v, u)) {
                    members.push(RaftMember {
                        id: m.id,
                        ordinal,
                        learner: m.learner,
                        started: !m.name.is_empty(),
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
        answered: reports
            .iter()
            .filter(|r| r.leader != 0)
            .map(|r| r.id)
            .collect(),
        pods,
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
