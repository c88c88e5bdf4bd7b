//! The restore step of a reconcile: acts on a new `spec.restore.requestId` once, driving the
//! state machine of [`crate::backup::restore`] one action per round, and records every phase
//! in `status.restore`. While a restore runs, membership changes wait; the plan it returns
//! says how many pods run, whether client traffic is stopped, and what the first member
//! restores.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams};
use kv_crds::v1alpha1::{BackupSpec, KVCluster, RestoreStatus};

use super::backup::{open, take};
use super::build::restore::{REVISION_BUMP, RestoreInit};
use super::build::service::TRAFFIC_STOPPED;
use super::members::Observed as MembersObserved;
use super::observe::MemberReport;
use super::validate::Validated;
use crate::backup::objects::Backups;
use crate::backup::restore::{Action, Observed, Phase, advance};
use crate::backup::timestamp;
use crate::backup::upload::verify;
use crate::context::Context;

/// What the rest of the reconcile does during a restore.
pub struct RestoreRound {
    /// The new `status.restore`.
    pub status: RestoreStatus,
    /// Pods to run, when the restore decides (`None`: the membership machinery decides).
    pub slots: Option<i32>,
    /// Keep client traffic stopped.
    pub traffic_stopped: bool,
    /// The first member restores this.
    pub init: Option<RestoreInit>,
    /// Events: warning, reason, note.
    pub events: Vec<(bool, &'static str, String)>,
}

/// Why a restore may not start now: a membership operation in flight, or a learner not yet
/// promoted.
fn busy(kvc: &KVCluster, o: &MembersObserved) -> Option<String> {
    if let Some(op) = kvc.status.as_ref().and_then(|s| s.operation.as_ref()) {
        return Some(format!(
            "a membership operation is in progress ({} of {}, step {})",
            op.type_, op.member, op.step
        ));
    }
    o.members
        .iter()
        .any(|m| m.learner)
        .then(|| "a member is still a learner".to_string())
}

/// Resolve a source (a name, `latest`, or a URI in the store) and check it end to end.
pub async fn resolve(b: &Backups, source: &str) -> Result<(String, String, i64), String> {
    let name = if source == "latest" {
        latest(b).await?
    } else {
        b.name_of(source).ok_or_else(|| {
            format!(
                "source {source:?} is neither a backup name, latest, nor a URI under {}",
                b.base_uri
            )
        })?
    };
    let meta = verify(b, &name).await.map_err(|e| e.to_string())?;
    Ok((b.uri(&meta.object), meta.sha256, meta.revision))
}

async fn latest(b: &Backups) -> Result<String, String> {
    use futures::StreamExt;
    let prefix = object_store::path::Path::from(b.prefix.clone());
    let mut list = b.store.list(Some(&prefix));
    let mut best: Option<(DateTime<Utc>, String)> = None;
    while let Some(o) = list.next().await {
        let o = o.map_err(|e| e.to_string())?;
        let Some(file) = o.location.filename() else {
            continue;
        };
        if let (Some(name), true) = (b.name_of(file), file.ends_with(".json"))
            && best.as_ref().is_none_or(|(t, _)| o.last_modified > *t)
        {
            best = Some((o.last_modified, name));
        }
    }
    best.map(|(_, n)| n)
        .ok_or_else(|| format!("no complete backup under {}", b.base_uri))
}

/// The last failed run of the first member's restore step: its exit code and message.
fn restore_step_failure(pods: &[Pod], first: &str) -> Option<(i32, String)> {
    let p = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(first))?;
    let s = p.status.as_ref()?.init_container_statuses.as_ref()?;
    let c = s.iter().find(|c| c.name == "restore")?;
    [c.state.as_ref(), c.last_state.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|st| st.terminated.as_ref())
        .find(|t| t.exit_code != 0)
        .map(|t| {
            let msg = t.message.as_deref().map(str::trim).unwrap_or_default();
            let msg = if msg.is_empty() {
                format!("the restore step exited with {}", t.exit_code)
            } else {
                msg.to_string()
            };
            (t.exit_code, msg)
        })
}

/// Run the restore step, if a restore is asked for and not finished.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    ctx: &Context,
    kvc: &KVCluster,
    v: &Validated,
    backup: Option<&BackupSpec>,
    o: &MembersObserved,
    reports: &[MemberReport],
    pods: &[Pod],
    now: DateTime<Utc>,
) -> Option<RestoreRound> {
    let spec = kvc.spec.restore.as_ref()?;
    let req = spec.request_id.clone()?;
    let prev = kvc.status.as_ref().and_then(|s| s.restore.clone());
    let mut events = Vec::new();
    let mut st = match prev {
        Some(p) if p.request_id == req => {
            if matches!(
                Phase::parse(&p.phase),
                Some(Phase::Complete | Phase::Failed)
            ) {
                return None;
            }
            p
        }
        _ => {
            // A restore never starts in the middle of a membership change.
            if let Some(why) = busy(kvc, o) {
                let why = format!(
                    "restore {req} refused: {why}; set a new requestId once status.operation is empty"
                );
                let st = RestoreStatus {
                    request_id: req.clone(),
                    phase: Phase::Failed.name().into(),
                    started_at: Some(timestamp(now)),
                    finished_at: Some(timestamp(now)),
                    message: Some(why.clone()),
                    ..Default::default()
                };
                return Some(round(
                    st,
                    None,
                    false,
                    None,
                    vec![(true, "RestoreFailed", why)],
                ));
            }
            events.push((false, "RestoreStarted", format!("restore {req} started")));
            RestoreStatus {
                request_id: req.clone(),
                phase: Phase::Verifying.name().into(),
                started_at: Some(timestamp(now)),
                previous_cluster_id: reports
                    .iter()
                    .map(|r| r.cluster_id)
                    .find(|c| *c != 0)
                    .map(|c| format!("{c:x}")),
                ..Default::default()
            }
        }
    };
    let phase = Phase::parse(&st.phase).unwrap_or(Phase::Verifying);
    let fail = |st: &mut RestoreStatus, events: &mut Vec<_>, why: String| {
        st.phase = Phase::Failed.name().into();
        st.finished_at = Some(timestamp(now));
        st.message = Some(why.clone());
        events.push((true, "RestoreFailed", why));
    };
    let Some(backup) = backup else {
        fail(
            &mut st,
            &mut events,
            "spec.restore needs spec.backup.store to read the backup from".into(),
        );
        return Some(round(st, None, false, None, events));
    };
    let b = match open(ctx, v, backup).await {
        Ok(b) => b,
        Err(why) => {
            fail(
                &mut st,
                &mut events,
                format!("the backup store cannot be used: {why}"),
            );
            return Some(round(st, None, false, None, events));
        }
    };
    let client_svc: Api<Service> = Api::namespaced(ctx.client.clone(), &v.namespace);
    let traffic_stopped = client_svc
        .get_opt(&v.client_service)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.spec?.selector)
        .is_some_and(|s| s.contains_key(TRAFFIC_STOPPED));
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &v.namespace);
    let other_claims: Vec<String> = pvcs
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| {
            n.strip_prefix(&format!("data-{}-", v.name))
                .and_then(|k| k.parse::<i32>().ok())
                .is_some_and(|k| k >= 1)
        })
        .collect();
    let previous = st.previous_cluster_id.clone();
    let first = v.member(0);
    let step_failure = restore_step_failure(pods, &first);
    let mut obs = Observed {
        verified: None,
        safety_wanted: spec.safety_backup,
        safety_backup: st.safety_backup.clone(),
        traffic_stopped,
        pods: pods.len() as i32,
        other_volumes: other_claims.len() as i32,
        first_restored: reports.iter().any(|r| {
            r.ordinal == 0 && r.cluster_id != 0 && Some(format!("{:x}", r.cluster_id)) != previous
        }),
        first_failed: step_failure
            .as_ref()
            .filter(|(code, _)| *code == i32::from(kvstore::cli::fetch::EXIT_SOURCE_REFUSED))
            .map(|(_, msg)| msg.clone()),
        voters: o.members.iter().filter(|m| !m.learner).count() as i32,
        desired: v.spec.replicas,
    };
    if phase == Phase::Verifying {
        let source = spec.source.clone().unwrap_or_else(|| "latest".into());
        match resolve(&b, &source).await {
            Ok((uri, sha, rev)) => {
                st.source = Some(uri);
                st.sha256 = Some(sha);
                st.restored_revision = Some(rev);
                obs.verified = Some(Ok(()));
            }
            Err(why) => obs.verified = Some(Err(why)),
        }
    }
    if phase <= Phase::SafetyBackup
        && obs.safety_wanted
        && obs.safety_backup.is_none()
        && obs.verified.as_ref().is_none_or(|r| r.is_ok())
    {
        match take(&*ctx.members, v, &b, backup, reports, now, "safety").await {
            Ok(rec) => {
                st.safety_backup = Some(rec.uri.clone());
                obs.safety_backup = Some(rec.uri);
            }
            Err(why) => {
                fail(
                    &mut st,
                    &mut events,
                    format!("the safety backup failed, nothing was changed: {why}"),
                );
                return Some(round(st, None, false, None, events));
            }
        }
    }
    let (next, action, why) = advance(phase, &obs);
    st.phase = next.name().into();
    if let Some(why) = why {
        fail(&mut st, &mut events, why);
        return Some(round(st, None, traffic_stopped, None, events));
    }
    if next != phase {
        events.push((
            false,
            "RestoreProgress",
            format!("restore {req}: {}", next.name()),
        ));
    }
    if action == Action::DeleteOtherVolumes {
        for name in &other_claims {
            if let Err(e) = pvcs.delete(name, &DeleteParams::default()).await {
                tracing::warn!(pvc = %name, error = %e, "deleting a member volume failed");
            }
        }
    }
    if next == Phase::Starting {
        // A step that failed for a reason worth another try (the store unreachable, say) is
        // run again by the kubelet; the message says why it is taking long.
        st.message = step_failure
            .map(|(_, msg)| format!("the restore step failed and is tried again: {msg}"));
    } else if phase == Phase::Starting && next != Phase::Failed {
        st.message = None;
    }
    let init = (next == Phase::Starting).then(|| RestoreInit {
        uri: st.source.clone().unwrap_or_default(),
        sha256: st.sha256.clone().unwrap_or_default(),
        marker: format!("restore-{req}"),
        token: format!("{}-{req}", v.token),
        store: backup.store.clone(),
        // The cluster's clients (kube-apiservers, informers) hold revisions of the history
        // being replaced, possibly above the backup's: raise the revision past all of them and
        // compact below it, so their watches are canceled and they relist.
        bump_revision: REVISION_BUMP,
    });
    let slots = match next {
        Phase::StoppingMembers | Phase::Restoring => Some(0),
        Phase::Starting => Some(1),
        _ => None,
    };
    let stopped = matches!(
        next,
        Phase::StoppingTraffic
            | Phase::StoppingMembers
            | Phase::Restoring
            | Phase::Starting
            | Phase::AddingMembers
    );
    if next == Phase::Complete {
        st.finished_at = Some(timestamp(now));
        st.cluster_id = reports
            .iter()
            .find(|r| r.ordinal == 0)
            .map(|r| format!("{:x}", r.cluster_id));
        st.message = Some(format!(
            "restored revision {} from {}, raised by {REVISION_BUMP} with every older revision \
             compacted",
            st.restored_revision.unwrap_or_default(),
            st.source.clone().unwrap_or_default()
        ));
        events.push((
            false,
            "RestoreComplete",
            st.message.clone().unwrap_or_default(),
        ));
    }
    Some(round(st, slots, stopped, init, events))
}

fn round(
    status: RestoreStatus,
    slots: Option<i32>,
    traffic_stopped: bool,
    init: Option<RestoreInit>,
    events: Vec<(bool, &'static str, String)>,
) -> RestoreRound {
    RestoreRound {
        status,
        slots,
        traffic_stopped,
        init,
        events,
    }
}

/// The request id recorded for a cluster started from a backup.
pub const BOOTSTRAP: &str = "bootstrap";

/// For a cluster not bootstrapped yet whose spec says `bootstrap.fromBackup`: what its first
/// member restores (resolved and verified once, then taken from `status.restore`), or the
/// status saying why it cannot start.
pub async fn bootstrap(
    ctx: &Context,
    kvc: &KVCluster,
    v: &Validated,
    now: DateTime<Utc>,
) -> Option<Result<(RestoreInit, RestoreStatus), RestoreStatus>> {
    let source = kvc.spec.bootstrap.as_ref()?.from_backup.clone()?;
    let prev = kvc
        .status
        .as_ref()
        .and_then(|s| s.restore.clone())
        .filter(|r| r.request_id == BOOTSTRAP);
    let mut st = prev.clone().unwrap_or_else(|| RestoreStatus {
        request_id: BOOTSTRAP.into(),
        phase: Phase::Verifying.name().into(),
        started_at: Some(timestamp(now)),
        ..Default::default()
    });
    let failed = |mut st: RestoreStatus, why: String| {
        st.phase = Phase::Failed.name().into();
        st.message = Some(why);
        st.finished_at = Some(timestamp(now));
        Some(Err(st))
    };
    let Some(backup) = kvc.spec.backup.as_ref() else {
        return failed(st, "bootstrap.fromBackup needs spec.backup.store".into());
    };
    let resolved = match (&prev, &st.source, &st.sha256) {
        (Some(p), Some(uri), Some(sha)) if p.phase != Phase::Failed.name() => {
            Ok((uri.clone(), sha.clone()))
        }
        _ => match open(ctx, v, backup).await {
            Err(why) => Err(format!("the backup store cannot be used: {why}")),
            Ok(b) => resolve(&b, &source).await.map(|(uri, sha, rev)| {
                st.restored_revision = Some(rev);
                (uri, sha)
            }),
        },
    };
    match resolved {
        Err(why) => failed(
            st,
            format!("the cluster does not start: its backup was refused: {why}"),
        ),
        Ok((uri, sha)) => {
            st.source = Some(uri.clone());
            st.sha256 = Some(sha.clone());
            st.phase = Phase::Starting.name().into();
            st.message = None;
            st.finished_at = None;
            let init = RestoreInit {
                uri,
                sha256: sha,
                marker: BOOTSTRAP.into(),
                token: v.token.clone(),
                store: backup.store.clone(),
                // Needed here too. A cluster bootstrapped from a backup is new, but the usual
                // reason to make one is a lost cluster recreated under the same name: its
                // client Service keeps its DNS name, and the clients of the lost cluster (a
                // kube-apiserver's watch cache, informers) reconnect and resume from revisions
                // of the lost history, above the backup's. A brand-new cluster loses nothing
                // by it: its revisions start higher and the backup's history is not readable,
                // which none of its own clients can have needed.
                bump_revision: REVISION_BUMP,
            };
            Some(Ok((init, st)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, restore: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"initContainerStatuses": [restore]},
        }))
        .unwrap()
    }

    #[test]
    fn the_restore_steps_last_failure_is_read_from_the_pod() {
        let refused = pod(
            "c-0",
            serde_json::json!({"name": "restore", "ready": false, "restartCount": 0, "image": "i",
                "imageID": "", "state": {"terminated": {"exitCode": 7, "message": "checksum\n"}}}),
        );
        assert_eq!(
            restore_step_failure(&[refused], "c-0"),
            Some((7, "checksum".into()))
        );
        // Running again after an unreachable store: the last run's failure counts.
        let retried = pod(
            "c-0",
            serde_json::json!({"name": "restore", "ready": false, "restartCount": 1, "image": "i",
                "imageID": "", "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 2}}}),
        );
        assert_eq!(
            restore_step_failure(std::slice::from_ref(&retried), "c-0"),
            Some((2, "the restore step exited with 2".into()))
        );
        assert_eq!(restore_step_failure(&[retried], "c-1"), None);
        let done = pod(
            "c-0",
            serde_json::json!({"name": "restore", "ready": true, "restartCount": 0, "image": "i",
                "imageID": "", "state": {"terminated": {"exitCode": 0}}}),
        );
        assert_eq!(restore_step_failure(&[done], "c-0"), None);
    }
}
