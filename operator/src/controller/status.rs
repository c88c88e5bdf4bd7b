//! Status step: the KVCluster's status computed from what was observed (pure), then written
//! with server-side apply only when it changed.

use kv_crds::v1alpha1::{Condition, KVClusterStatus, MemberStatus, OperationStatus};

use super::members::{Observed, Step};
use super::observe::MemberReport;
use super::validate::Validated;

fn condition(
    prev: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    let status = if ok { "True" } else { "False" }.to_string();
    // Keep the transition time while the status stays the same: status changes only when
    // something changed.
    let last = prev
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| k8s_openapi::jiff::Timestamp::now().to_string());
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        last_transition_time: Some(last),
        observed_generation: generation,
    }
}

/// The status for this round.
pub fn compute(
    v: &Validated,
    generation: Option<i64>,
    prev: Option<&KVClusterStatus>,
    o: &Observed,
    reports: &[MemberReport],
    ready_pods: &[String],
    step: &Step,
) -> KVClusterStatus {
    let prev_conditions = prev.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let voters = o.members.iter().filter(|m| !m.learner).count() as i32;
    let learners = o.members.len() as i32 - voters;
    let leader_report = reports.iter().find(|r| o.leader == Some(r.id));
    let leader_index = leader_report.map_or(0, |r| r.raft_index);
    let members: Vec<MemberStatus> = o
        .members
        .iter()
        .map(|m| {
            let name = v.member(m.ordinal);
            let r = reports.iter().find(|r| r.id == m.id);
            MemberStatus {
                member_id: Some(format!("{:x}", m.id)),
                role: Some(
                    if o.leader == Some(m.id) {
                        "Leader"
                    } else if m.learner {
                        "Learner"
                    } else {
                        "Follower"
                    }
                    .into(),
                ),
                ready: ready_pods.contains(&name),
                healthy: r.is_some_and(|r| r.leader != 0),
                raft_index: r.map_or(0, |r| r.raft_index),
                lag: r.map_or(0, |r| leader_index.saturating_sub(r.raft_index)),
                db_size: r.map_or(0, |r| r.db_size),
                version: r.map(|r| r.version.clone()),
                name,
            }
        })
        .collect();
    let healthy_voters = members
        .iter()
        .filter(|m| m.healthy && m.role.as_deref() != Some("Learner"))
        .count() as i32;
    let quorum = voters / 2 + 1;
    let available = o.leader.is_some();
    let all_ready = !members.is_empty() && members.iter().all(|m| m.ready && m.healthy);
    let progressing = !matches!(step, Step::Done);
    let degraded = available && !all_ready;
    let prev_op = prev.and_then(|p| p.operation.as_ref());
    let scaling = o.members.len() as i32 > o.desired;
    let op = match step {
        Step::AddLearner { ordinal } => Some(("ScaleUp", v.member(*ordinal), "AddLearner")),
        Step::SetSlots(n) => Some(("Resize", format!("{n} pods"), "SetPods")),
        Step::Promote { id } => Some(("ScaleUp", format!("{id:x}"), "Promote")),
        Step::MoveLeader { from, .. } if scaling => {
            Some(("ScaleDown", format!("{from:x}"), "MoveLeader"))
        }
        Step::MoveLeader { from, .. } => Some(("Roll", format!("{from:x}"), "MoveLeader")),
        Step::Remove { id } => Some(("ScaleDown", format!("{id:x}"), "RemoveMember")),
        Step::Replace { id } => Some(("Replace", format!("{id:x}"), "RemoveMember")),
        Step::Restart { ordinal } => Some(("Roll", v.member(*ordinal), "RestartPod")),
        Step::Bootstrap | Step::Done => None,
        Step::Wait(_) => prev_op.map(|p| (p.type_.as_str(), p.member.clone(), p.step.as_str())),
    };
    let operation = op.map(|(t, member, step_name)| {
        // An operation keeps its start time over its steps (and over waits between them).
        let started_at = prev_op
            .filter(|p| p.type_ == t)
            .and_then(|p| p.started_at.clone())
            .unwrap_or_else(|| k8s_openapi::jiff::Timestamp::now().to_string());
        OperationStatus {
            type_: t.into(),
            member,
            step: step_name.into(),
            started_at: Some(started_at),
            message: match step {
                Step::Wait(why) => Some((*why).into()),
                _ => None,
            },
        }
    });
    let phase = if !o.bootstrapped {
        "Creating"
    } else if !available {
        "Unavailable"
    } else if let Some(op) = &operation {
        match op.type_.as_str() {
            "Roll" => "Updating",
            "Replace" => "Repairing",
            _ => "Scaling",
        }
    } else if degraded {
        "Degraded"
    } else {
        "Running"
    };
    let conditions = vec![
        condition(
            prev_conditions,
            "Available",
            available,
            if available {
                "QuorumHealthy"
            } else {
                "QuorumLost"
            },
            format!("{healthy_voters} of {voters} voters healthy (quorum {quorum})"),
            generation,
        ),
        condition(
            prev_conditions,
            "Progressing",
            progressing,
            if progressing {
                "MembershipChange"
            } else {
                "Stable"
            },
            format!("{step:?}"),
            generation,
        ),
        condition(
            prev_conditions,
            "Degraded",
            degraded,
            if degraded {
                "MembersUnhealthy"
            } else {
                "AllHealthy"
            },
            format!(
                "{} of {} members ready and healthy",
                members.iter().filter(|m| m.ready && m.healthy).count(),
                members.len()
            ),
            generation,
        ),
        condition(
            prev_conditions,
            "MembersReady",
            all_ready,
            if all_ready {
                "AllMembersReady"
            } else {
                "NotAllMembersReady"
            },
            String::new(),
            generation,
        ),
    ];
    // Conditions owned by other parts of the controller (BackupReady) are kept as they were.
    let mut conditions = conditions;
    conditions.extend(
        prev_conditions
            .iter()
            .filter(|c| !conditions.iter().any(|n| n.type_ == c.type_))
            .cloned()
            .collect::<Vec<_>>(),
    );
    KVClusterStatus {
        observed_generation: generation,
        phase: Some(phase.into()),
        replicas: o.slots,
        ready_replicas: ready_pods.len() as i32,
        voters,
        learners,
        selector: Some(v.selector_string()),
        cluster_id: reports
            .iter()
            .map(|r| r.cluster_id)
            .find(|c| *c != 0)
            .map(|c| format!("{c:x}")),
        leader: o
            .leader
            .and_then(|l| o.members.iter().find(|m| m.id == l))
            .map(|m| v.member(m.ordinal)),
        failure_tolerance: (healthy_voters - quorum).max(0),
        members,
        operation,
        conditions,
        // Backup and restore progress is the backup controller's to write; kept as it was.
        backup: prev.and_then(|p| p.backup.clone()),
        restore: prev.and_then(|p| p.restore.clone()),
    }
}
