//! The reconcile loop: fetch → validate → plan one membership step → build → apply → status.
//! Errors are retried with back-off; a KVCluster that cannot be reconciled as written gets an
//! Event and a status saying why, never a crash.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use kv_crds::v1alpha1::{KVCluster, KVClusterStatus};

use super::build::statefulset::template_hash;
use super::build::{MemberPlan, build};
use super::members::{Step, next_step};
use super::observe::{observe, pod_facts};
use super::validate::validate;
use super::{Error, apply, status};
use crate::context::Context;

async fn event(ctx: &Context, kvc: &KVCluster, warning: bool, reason: &str, note: String) {
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &kvc.object_ref(&())).await {
        tracing::warn!(error = %e, "failed to publish an event");
    }
}

async fn patch_status(
    ctx: &Context,
    kvc: &KVCluster,
    status: KVClusterStatus,
) -> Result<(), Error> {
    let api: Api<KVCluster> =
        Api::namespaced(ctx.client.clone(), &kvc.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": format!("{}/{}", kv_crds::GROUP, kv_crds::VERSION),
        "kind": "KVCluster",
        "status": status,
    });
    let pp = PatchParams::apply(&format!("{}/status", crate::FIELD_MANAGER)).force();
    api.patch_status(&kvc.name_any(), &pp, &Patch::Apply(&body))
        .await?;
    Ok(())
}

/// Reconcile one KVCluster.
#[tracing::instrument(skip(kvc, ctx), fields(kvc = %kvc.name_any(), ns = ?kvc.namespace()))]
pub async fn reconcile(kvc: Arc<KVCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let res = reconcile_inner(&kvc, &ctx).await;
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    res
}

async fn reconcile_inner(cached: &KVCluster, ctx: &Context) -> Result<Action, Error> {
    // The cache can lag behind this operator's own last status write; what must happen once
    // (a trigger's backup, a restore's safety backup, a restore request) is decided on the API
    // server's copy.
    let api: Api<KVCluster> =
        Api::namespaced(ctx.client.clone(), &cached.namespace().unwrap_or_default());
    let Some(kvc) = api.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let kvc = &kvc;
    let v = match validate(kvc) {
        Ok(v) => v,
        Err(e) => {
            event(ctx, kvc, true, "InvalidSpec", e.to_string()).await;
            return Ok(Action::await_change());
        }
    };
    if kvc.metadata.deletion_timestamp.is_some() {
        // Being deleted: the garbage collector removes the children (owner references);
        // applying them now would only recreate what it deletes.
        return Ok(Action::await_change());
    }
    if kvc.spec.paused {
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &v.namespace);
    let slots = sets
        .get_opt(&v.name)
        .await?
        .and_then(|s| s.spec)
        .and_then(|s| s.replicas)
        .unwrap_or(0);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &v.namespace);
    let lp = ListParams::default().labels(&v.selector_string());
    let pods = pods.list(&lp).await?.items;
    let facts = pod_facts(&v, &pods, &template_hash(&v));
    let ready: Vec<String> = facts
        .iter()
        .filter(|p| p.ready)
        .map(|p| v.member(p.ordinal))
        .collect();
    let api = &*ctx.members;
    let (observed, reports) = observe(api, &v, slots, facts).await;
    let now = chrono::Utc::now();
    let restore = super::restore::run(
        ctx,
        kvc,
        &v,
        kvc.spec.backup.as_ref(),
        &observed,
        &reports,
        &pods,
        now,
    )
    .await;
    if let Some(r) = &restore {
        for (warning, reason, note) in &r.events {
            event(ctx, kvc, *warning, reason, note.clone()).await;
        }
    }
    // A new cluster that starts from a backup: its first member restores it.
    let mut boot_status = None;
    let mut boot_init = None;
    if !observed.bootstrapped
        && let Some(b) = super::restore::bootstrap(ctx, kvc, &v, now).await
    {
        match b {
            Ok((init, st)) => {
                boot_init = Some(init);
                boot_status = Some(st);
            }
            Err(st) => {
                let why = st.message.clone().unwrap_or_default();
                if kvc.status.as_ref().and_then(|s| s.restore.as_ref()) != Some(&st) {
                    event(ctx, kvc, true, "RestoreFailed", why).await;
                }
                boot_status = Some(st);
            }
        }
    } else if observed.bootstrapped
        && let Some(mut st) = kvc
            .status
            .as_ref()
            .and_then(|s| s.restore.clone())
            .filter(|r| r.request_id == super::restore::BOOTSTRAP && r.phase == "Starting")
    {
        st.phase = "Complete".into();
        st.finished_at = Some(crate::backup::timestamp(now));
        st.cluster_id = reports
            .iter()
            .map(|r| r.cluster_id)
            .find(|c| *c != 0)
            .map(|c| format!("{c:x}"));
        st.message = Some(format!(
            "started from {}",
            st.source.clone().unwrap_or_default()
        ));
        event(
            ctx,
            kvc,
            false,
            "RestoreComplete",
            st.message.clone().unwrap_or_default(),
        )
        .await;
        boot_status = Some(st);
    }
    let boot_refused = boot_status.as_ref().is_some_and(|s| s.phase == "Failed");
    // While a restore stops and restarts the members, membership changes wait for it.
    let restore_drives = restore.as_ref().is_some_and(|r| r.slots.is_some());
    let step = if restore_drives {
        Step::Wait("a restore is in progress")
    } else if boot_refused {
        Step::Wait("the backup to start from was refused")
    } else {
        next_step(&observed)
    };
    let mut plan = MemberPlan {
        slots,
        bootstrapped: observed.bootstrapped,
        members: observed
            .members
            .iter()
            .map(|m| v.member(m.ordinal))
            .collect(),
        traffic_stopped: restore.as_ref().is_some_and(|r| r.traffic_stopped),
        ..Default::default()
    };
    if !observed.bootstrapped {
        plan.restore = boot_init.clone();
    }
    if let Some(r) = &restore
        && let Some(n) = r.slots
    {
        plan.slots = n;
        plan.bootstrapped = true;
        plan.members = Vec::new();
        plan.restore = r.init.clone();
    }
    match &step {
        Step::Bootstrap => {
            plan = MemberPlan {
                slots: 1,
                restore: boot_init.clone(),
                ..Default::default()
            };
            event(
                ctx,
                kvc,
                false,
                "Bootstrapping",
                format!("starting {} to bootstrap the cluster", v.member(0)),
            )
            .await;
        }
        Step::SetSlots(n) => plan.slots = *n,
        Step::AddLearner { ordinal } => {
            let id = apply::add_learner(api, &v, &reports, *ordinal).await?;
            event(
                ctx,
                kvc,
                false,
                "MemberAdded",
                format!("added {} as learner {id:x}", v.member(*ordinal)),
            )
            .await;
        }
        Step::Promote { id } => {
            if apply::promote(api, &v, &reports, *id).await? {
                event(
                    ctx,
                    kvc,
                    false,
                    "MemberPromoted",
                    format!("member {id:x} is a voter"),
                )
                .await;
            }
        }
        Step::MoveLeader { from, to } => {
            apply::move_leader(api, &v, &reports, *to).await?;
            event(
                ctx,
                kvc,
                false,
                "LeaderMoved",
                format!("leadership moved from {from:x} to {to:x}"),
            )
            .await;
        }
        Step::Remove { id } => {
            apply::remove(api, &v, &reports, *id).await?;
            event(
                ctx,
                kvc,
                false,
                "MemberRemoved",
                format!("member {id:x} removed"),
            )
            .await;
        }
        Step::Replace { id } => {
            apply::remove(api, &v, &reports, *id).await?;
            event(
                ctx,
                kvc,
                true,
                "MemberReplaced",
                format!("member {id:x} lost its data: removed; it joins again as a new member"),
            )
            .await;
        }
        // After the StatefulSet has the new template (below), or the pod comes back old.
        Step::Restart { .. } => {}
        Step::Wait(why) => tracing::info!(reason = why, "waiting"),
        Step::Done => {}
    }
    if !matches!(step, Step::Wait(_) | Step::Done) {
        tracing::info!(?step, "membership step");
    }
    apply::apply(&ctx.client, &v, build(&v, &plan)).await?;
    if let Step::Restart { ordinal } = &step {
        apply::restart_pod(&ctx.client, &v, *ordinal).await?;
        let note = format!(
            "restarting {} with the new pod template",
            v.member(*ordinal)
        );
        event(ctx, kvc, false, "MemberRestarted", note).await;
    }
    let mut observed = observed;
    observed.slots = plan.slots;
    let st = status::compute(
        &v,
        kvc.metadata.generation,
        kvc.status.as_ref(),
        &observed,
        &reports,
        &ready,
        &step,
    );
    let mut st = st;
    if let Some(b) = boot_status {
        st.restore = Some(b);
    }
    if let Some(r) = restore {
        let running = !matches!(r.status.phase.as_str(), "Complete" | "Failed");
        if running {
            st.phase = Some("Restoring".into());
        }
        st.restore = Some(r.status);
    }
    let mut requeue = match step {
        Step::Done => Duration::from_secs(30),
        _ => Duration::from_secs(2),
    };
    match &kvc.spec.backup {
        Some(spec) if observed.leader.is_some() => {
            let now = chrono::Utc::now();
            // What a restore reads or a bootstrap names is kept whatever the retention.
            let sources: Vec<String> = [
                kvc.spec.restore.as_ref().and_then(|r| r.source.clone()),
                st.restore.as_ref().and_then(|r| r.source.clone()),
                kvc.spec
                    .bootstrap
                    .as_ref()
                    .and_then(|b| b.from_backup.clone()),
            ]
            .into_iter()
            .flatten()
            .collect();
            let out = super::backup::run(ctx, kvc, &v, spec, &reports, &sources, now).await;
            for (warning, reason, note) in out.events {
                event(ctx, kvc, warning, reason, note).await;
            }
            if let Some(next) = out
                .status
                .next_schedule_time
                .as_deref()
                .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
            {
                let wait = (next - now).to_std().unwrap_or_default() + Duration::from_secs(1);
                requeue = requeue.min(wait);
            }
            st.backup = Some(out.status);
            super::backup::set_ready(&mut st.conditions, &out.ready, kvc.metadata.generation);
        }
        Some(_) => {}
        None => st.conditions.retain(|c| c.type_ != "BackupReady"),
    }
    if kvc.status.as_ref() != Some(&st) {
        patch_status(ctx, kvc, st).await?;
    }
    Ok(Action::requeue(requeue))
}

/// Retry failed reconciles with a pause, counting the error.
pub fn error_policy(kvc: Arc<KVCluster>, e: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(kvc = %kvc.name_any(), error = %e, "reconcile failed");
    ctx.metrics
        .errors
        .get_or_create(&crate::metrics::ErrorLabels {
            error: e.metric_label(),
        })
        .inc();
    Action::requeue(Duration::from_secs(5))
}

/// Run the controller until the stream ends.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let kvcs: Api<KVCluster> = Api::all(client.clone());
    Controller::new(kvcs, watcher::Config::default())
        .owns(
            Api::<StatefulSet>::all(client.clone()),
            watcher::Config::default(),
        )
        .owns(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        )
        .owns(
            Api::<PodDisruptionBudget>::all(client.clone()),
            watcher::Config::default(),
        )
        // Member pods (owned by the StatefulSet, not by us): a pod that dies or turns ready
        // shows in the status at once.
        .watches(
            Api::<Pod>::all(client),
            watcher::Config::default().labels("app.kubernetes.io/managed-by=kv-operator"),
            |pod| {
                let ns = pod.metadata.namespace.clone();
                pod.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("app.kubernetes.io/instance").cloned())
                    .map(|name| {
                        let r = kube::runtime::reflector::ObjectRef::<KVCluster>::new(&name);
                        match ns {
                            Some(ns) => r.within(&ns),
                            None => r,
                        }
                    })
            },
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile stream error");
            }
        })
        .await;
}
