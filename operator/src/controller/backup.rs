//! The backup step of a reconcile: decides whether a backup is due (schedule or a new
//! `trigger`), takes it from a healthy, caught-up follower (the leader only when no follower
//! qualifies), applies retention, and reports `status.backup`, the `BackupReady` condition,
//! Events and metrics. A failing backup never touches the serving cluster: it is recorded and
//! retried at the next reconcile.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kv_crds::v1alpha1::{BackupRecord, BackupSpec, BackupStatus, Condition, KVCluster};
use object_store::ObjectStoreExt;

use super::member_api::MemberApi;
use super::observe::MemberReport;
use super::validate::Validated;
use crate::backup::objects::{Backups, backup_name};
use crate::backup::retention::{Stored, parse_age, to_delete};
use crate::backup::schedule::Schedule;
use crate::backup::timestamp;
use crate::backup::upload::{Source, upload};
use crate::context::Context;

/// How long past a scheduled time a backup may still be missing before `BackupReady` is False.
fn grace() -> chrono::Duration {
    chrono::Duration::minutes(2)
}

/// A member whose lag behind the leader is at most this is caught up enough to back up.
const MAX_LAG: u64 = 100;

/// What the backup step decided this round.
pub struct Outcome {
    /// The new `status.backup`.
    pub status: BackupStatus,
    /// `BackupReady`: ok, reason, message.
    pub ready: (bool, &'static str, String),
    /// Events to publish: warning, reason, note.
    pub events: Vec<(bool, &'static str, String)>,
}

/// Pick the member to back up from: a caught-up follower (lowest ordinal), else the leader.
pub fn pick_member(reports: &[MemberReport]) -> Option<&MemberReport> {
    let leader = reports.iter().find(|r| r.leader != 0 && r.id == r.leader)?;
    reports
        .iter()
        .filter(|r| r.id != leader.id && !r.learner && r.leader == leader.id)
        .filter(|r| leader.raft_index.saturating_sub(r.raft_index) <= MAX_LAG)
        .min_by_key(|r| r.ordinal)
        .or(Some(leader))
}

fn parse_ts(s: &Option<String>) -> Option<DateTime<Utc>> {
    s.as_deref().and_then(|s| s.parse().ok())
}

/// Run the backup step for a cluster whose spec has `backup`. `sources` are the restore and
/// bootstrap sources the resource names: retention never deletes them.
pub async fn run(
    ctx: &Context,
    kvc: &KVCluster,
    v: &Validated,
    spec: &BackupSpec,
    reports: &[MemberReport],
    sources: &[String],
    now: DateTime<Utc>,
) -> Outcome {
    let prev = kvc
        .status
        .as_ref()
        .and_then(|s| s.backup.clone())
        .unwrap_or_default();
    let mut st = prev.clone();
    let mut events = Vec::new();
    let fail = |st: &mut BackupStatus, events: &mut Vec<_>, why: String| {
        st.last_failure_time = Some(timestamp(now));
        st.last_failure_reason = Some(why.clone());
        events.push((true, "BackupFailed", why));
    };
    let created = kvc
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| t.0.to_string().parse().ok())
        .unwrap_or(now);
    let schedule = match spec.schedule.as_deref() {
        Some(expr) => match Schedule::parse(expr, spec.time_zone.as_deref()) {
            Ok(s) => Some(s),
            Err(e) => {
                let why = e.to_string();
                return Outcome {
                    status: st,
                    ready: (false, "InvalidSchedule", why.clone()),
                    events: vec![(true, "InvalidSchedule", why)],
                };
            }
        },
        None => None,
    };
    let since = parse_ts(&prev.last_schedule_time).unwrap_or(created);
    let scheduled = schedule
        .as_ref()
        .filter(|_| !spec.suspend)
        .and_then(|s| s.due(since, now));
    let triggered = spec
        .trigger
        .as_ref()
        .filter(|t| prev.last_trigger.as_ref() != Some(*t));
    st.next_schedule_time = schedule
        .as_ref()
        .filter(|_| !spec.suspend)
        .and_then(|s| s.next_after(now))
        .map(timestamp);

    let due = scheduled.is_some() || triggered.is_some();
    // A due run is recorded as run even when it fails: the next one comes with the schedule
    // (or a new trigger), not at every reconcile.
    if let Some(t) = scheduled {
        st.last_schedule_time = Some(timestamp(t));
    }
    if let Some(t) = triggered {
        st.last_trigger = Some(t.clone());
    }
    let backups = match open(ctx, v, spec).await {
        Ok(b) => Some(b),
        Err(why) => {
            if due {
                ctx.metrics.backup_failed(&v.namespace, &v.name);
                fail(&mut st, &mut events, why);
            }
            None
        }
    };
    if let (Some(b), true) = (&backups, due) {
        let kind = if triggered.is_some() {
            "manual"
        } else {
            "scheduled"
        };
        match take(&*ctx.members, v, b, spec, reports, now, kind).await {
            Ok(rec) => {
                events.push((
                    false,
                    "BackupSucceeded",
                    format!(
                        "backup {} at revision {} ({} bytes) in {:.1} s",
                        rec.name, rec.revision, rec.size, rec.duration_seconds
                    ),
                ));
                ctx.metrics.backup_succeeded(&v.namespace, &v.name, &rec);
                st.last_successful = Some(rec);
            }
            Err(why) => {
                ctx.metrics.backup_failed(&v.namespace, &v.name);
                fail(&mut st, &mut events, why);
            }
        }
    }
    if let Some(b) = &backups {
        let pinned: Vec<String> = sources.iter().filter_map(|s| b.name_of(s)).collect();
        match retain(b, spec, &pinned, now).await {
            Ok(kept) => st.kept = kept,
            Err(why) => tracing::warn!(error = %why, "backup retention failed"),
        }
    }
    let last_ok = st
        .last_successful
        .as_ref()
        .and_then(|r| r.time.parse::<DateTime<Utc>>().ok());
    let last_failed = parse_ts(&st.last_failure_time);
    let ready = if let Some(f) = last_failed.filter(|f| last_ok.is_none_or(|ok| *f > ok)) {
        let why = st.last_failure_reason.clone().unwrap_or_default();
        (
            false,
            "BackupFailed",
            format!("the last backup failed at {}: {why}", timestamp(f)),
        )
    } else if let Some(due) = schedule
        .as_ref()
        .filter(|_| !spec.suspend)
        .and_then(|s| s.overdue(created, last_ok, now, grace()))
    {
        (
            false,
            "BackupOverdue",
            format!("no backup since the one due at {}", timestamp(due)),
        )
    } else if let Some(ok) = &st.last_successful {
        (
            true,
            "BackupSucceeded",
            format!("last backup {} at {}", ok.name, ok.time),
        )
    } else {
        (true, "NoBackupDue", "no backup has been due yet".into())
    };
    Outcome {
        status: st,
        ready,
        events,
    }
}

/// Open the backup store of `spec`, reading its credentials Secret.
pub async fn open(ctx: &Context, v: &Validated, spec: &BackupSpec) -> Result<Backups, String> {
    let creds: Option<BTreeMap<String, Vec<u8>>> = match &spec.store.credentials_secret {
        None => None,
        Some(name) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &v.namespace);
            let s = secrets
                .get_opt(name)
                .await
                .map_err(|e| format!("reading Secret {name:?}: {e}"))?
                .ok_or_else(|| format!("backup credentials Secret {name:?} does not exist"))?;
            Some(
                s.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
            )
        }
    };
    Backups::open(&spec.store, creds.as_ref(), &v.namespace, &v.name).map_err(|e| e.to_string())
}

/// Take one backup (`kind`: scheduled, manual, safety) from the best member.
pub async fn take(
    api: &dyn MemberApi,
    v: &Validated,
    b: &Backups,
    spec: &BackupSpec,
    reports: &[MemberReport],
    now: DateTime<Utc>,
    kind: &str,
) -> Result<BackupRecord, String> {
    let started = std::time::Instant::now();
    let m = pick_member(reports).ok_or("no healthy member to take a snapshot from")?;
    let member = v.member(m.ordinal);
    let url = v.client_url(&member);
    let status = api
        .status(&url)
        .await
        .map_err(|e| format!("{member}: {e}"))?;
    let snap = api
        .snapshot(&url)
        .await
        .map_err(|e| format!("snapshot from {member}: {e}"))?;
    let name = backup_name(&v.name, now, kind);
    let src = Source {
        chunks: snap.chunks,
        cluster_id: format!("{:x}", status.cluster_id),
        member: member.clone(),
        revision: snap.revision,
        raft_index: status.raft_index,
        raft_term: status.raft_term,
        store_version: status.version,
    };
    let meta = upload(b, &name, spec.compression, src, now)
        .await
        .map_err(|e| e.to_string())?;
    Ok(BackupRecord {
        uri: b.uri(&meta.object),
        name: meta.name,
        time: meta.time,
        revision: meta.revision,
        size: meta.size,
        sha256: meta.sha256,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Apply retention, sparing `pinned`; the number of complete backups left.
async fn retain(
    b: &Backups,
    spec: &BackupSpec,
    pinned: &[String],
    now: DateTime<Utc>,
) -> Result<u32, String> {
    let prefix = object_store::path::Path::from(b.prefix.clone());
    let mut list = b.store.list(Some(&prefix));
    let mut found: BTreeMap<String, Stored> = BTreeMap::new();
    let mut files: BTreeMap<String, Vec<object_store::path::Path>> = BTreeMap::new();
    while let Some(o) = list.next().await {
        let o = o.map_err(|e| e.to_string())?;
        let Some(file) = o.location.filename() else {
            continue;
        };
        let Some(name) = b.name_of(file) else {
            continue;
        };
        let complete = file.ends_with(".json");
        let e = found.entry(name.clone()).or_insert(Stored {
            name: name.clone(),
            time: o.last_modified,
            complete,
        });
        e.complete |= complete;
        e.time = e.time.min(o.last_modified);
        files.entry(name).or_default().push(o.location.clone());
    }
    let stored: Vec<Stored> = found.into_values().collect();
    let max_age = spec.retention.max_age.as_deref().and_then(parse_age);
    let doomed = to_delete(&stored, spec.retention.keep_last, max_age, pinned, now);
    for name in &doomed {
        tracing::info!(backup = %name, prefix = %b.prefix, "retention deletes a backup");
        for path in files.get(name).into_iter().flatten() {
            b.store.delete(path).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(stored
        .iter()
        .filter(|s| s.complete && !doomed.contains(&s.name))
        .count() as u32)
}

/// Put `BackupReady` into `conditions` (replacing an older one, keeping its transition time
/// while its status holds).
pub fn set_ready(
    conditions: &mut Vec<Condition>,
    ready: &(bool, &'static str, String),
    generation: Option<i64>,
) {
    let status = if ready.0 { "True" } else { "False" };
    let since = conditions
        .iter()
        .find(|c| c.type_ == "BackupReady" && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| k8s_openapi::jiff::Timestamp::now().to_string());
    conditions.retain(|c| c.type_ != "BackupReady");
    conditions.push(Condition {
        type_: "BackupReady".into(),
        status: status.into(),
        reason: ready.1.into(),
        message: ready.2.clone(),
        last_transition_time: Some(since),
        observed_generation: generation,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ordinal: i32, leader: u64, index: u64) -> MemberReport {
        MemberReport {
            ordinal,
            id: 100 + ordinal as u64,
            cluster_id: 1,
            leader,
            raft_index: index,
            db_size: 0,
            version: "0.1.0".into(),
            learner: false,
        }
    }

    #[test]
    fn a_caught_up_follower_is_preferred_over_the_leader() {
        let r = vec![
            report(0, 100, 1000),
            report(1, 100, 400),
            report(2, 100, 990),
        ];
        assert_eq!(pick_member(&r).unwrap().ordinal, 2, "1 lags by 600");
        let r = vec![report(0, 100, 1000), report(1, 100, 400)];
        assert_eq!(
            pick_member(&r).unwrap().ordinal,
            0,
            "only the leader qualifies"
        );
        let r = vec![report(1, 0, 400)];
        assert!(pick_member(&r).is_none(), "no leader, no backup");
    }
}
