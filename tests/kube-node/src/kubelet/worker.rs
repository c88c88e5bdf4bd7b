//! One pod's life on the node: wait for a previous pod of the same name to be gone, attach the
//! network, write the first status (so the pod IP is known before anything starts), prepare
//! volumes, run init containers in order, run the containers, and on stop terminate them within
//! the grace period, release everything and delete the pod object.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;

use super::PodCtx;
use super::container::{self, Outcome, Slot};
use super::status::{Phase, now};
use super::volumes::{self, Prepared, VolumeCtx};
use crate::net::lock;

const RETRY: Duration = Duration::from_secs(1);

/// Waits up to `d`; true when a stop was requested meanwhile.
pub async fn stopped_within(stop: &mut watch::Receiver<Option<Duration>>, d: Duration) -> bool {
    if stop.borrow().is_some() {
        return true;
    }
    tokio::select! {
        _ = stop.changed() => true,
        () = tokio::time::sleep(d) => stop.borrow().is_some(),
    }
}

/// Writes the status once, now.
pub async fn write_status(ctx: &PodCtx) -> Result<(), kube::Error> {
    let status = lock(&ctx.state).status();
    let api: Api<Pod> = Api::namespaced(ctx.shared.client.clone(), &ctx.ns);
    api.patch_status(
        &ctx.name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .map(|_| ())
}

/// Writes the status whenever the state changes, until the pod is gone.
async fn status_writer(ctx: Arc<PodCtx>) {
    let mut last = None;
    loop {
        ctx.changed.notified().await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        let status = lock(&ctx.state).status();
        let body = serde_json::to_value(&status).unwrap_or_default();
        if last.as_ref() == Some(&body) {
            continue;
        }
        match write_status(&ctx).await {
            Ok(()) => last = Some(body),
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(e) => {
                tracing::debug!(pod = %ctx.name, error = %e, "status write failed; retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
                ctx.changed.notify_one();
            }
        }
    }
}

/// Runs the pod until `stop` carries a grace period and everything is cleaned up.
pub async fn run(ctx: Arc<PodCtx>, mut stop: watch::Receiver<Option<Duration>>) {
    let writer = tokio::spawn(status_writer(ctx.clone()));
    let mut prepared = None;
    life(&ctx, &mut stop, &mut prepared).await;
    let deleting = ctx.object().metadata.deletion_timestamp.is_some();
    ctx.shared.net.detach(&ctx.uid);
    if let Some(p) = prepared {
        let mut used = lock(&ctx.shared.claims_in_use);
        for c in p.claims {
            if let Some(n) = used.get_mut(&c) {
                *n -= 1;
                if *n == 0 {
                    used.remove(&c);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(ctx.shared.cfg.pods_dir.join(&ctx.uid));
    writer.abort();
    // Deleted pods go now; vanished ones are gone already; at node shutdown they stay.
    if deleting
        && !ctx
            .shared
            .draining
            .load(std::sync::atomic::Ordering::SeqCst)
    {
        let _ = write_status(&ctx).await;
        ctx.shared.delete_pod(&ctx.ns, &ctx.name, &ctx.uid).await;
    }
    tracing::info!(pod = %ctx.name, ns = %ctx.ns, "pod stopped");
}

/// Everything until stop; returns whether the containers ran to completion first.
async fn life(
    ctx: &Arc<PodCtx>,
    stop: &mut watch::Receiver<Option<Duration>>,
    prepared_out: &mut Option<Prepared>,
) -> bool {
    while ctx.shared.predecessor_running(&ctx.ns, &ctx.name, &ctx.uid) {
        if stopped_within(stop, Duration::from_millis(100)).await {
            return false;
        }
    }
    let net = loop {
        match ctx.shared.net.attach(&ctx.uid) {
            Ok(n) => break n,
            Err(e) => {
                tracing::warn!(pod = %ctx.name, error = %e, "failed to attach the pod network");
                if stopped_within(stop, RETRY).await {
                    return false;
                }
            }
        }
    };
    ctx.update(|s| {
        s.net = Some(net);
        s.start_time = Some(now());
    });
    let _ = write_status(ctx).await;

    let pod_dir = ctx.shared.cfg.pods_dir.join(&ctx.uid);
    let prepared = loop {
        let pod = ctx.object();
        let claims = ctx.shared.informers.pvcs.all();
        let rt = ctx.runtime();
        let vctx = VolumeCtx {
            client: &ctx.shared.client,
            pod: &pod,
            pod_dir: &pod_dir,
            pv_root: &ctx.shared.cfg.pv_root,
            ca_pem: &ctx.shared.cfg.ca_pem,
            rt: &rt,
            claims: &claims,
        };
        match volumes::prepare(&vctx).await {
            Ok(p) => break p,
            Err(e) => {
                let msg = e.to_string();
                tracing::debug!(pod = %ctx.name, error = %msg, "volumes not ready");
                ctx.update(|s| {
                    for c in &mut s.main {
                        c.state = Some(super::status::waiting(
                            "ContainerCreating",
                            Some(msg.clone()),
                        ));
                    }
                });
                if stopped_within(stop, RETRY).await {
                    return false;
                }
            }
        }
    };
    {
        let mut used = lock(&ctx.shared.claims_in_use);
        for c in &prepared.claims {
            *used.entry(c.clone()).or_default() += 1;
        }
    }
    *prepared_out = Some(prepared.clone());
    let prepared = Arc::new(prepared);
    let spec = ctx.object().spec.clone().unwrap_or_default();

    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let slot = Slot {
            init: true,
            index: i,
        };
        match container::run(ctx.clone(), slot, c.clone(), prepared.clone(), stop.clone()).await {
            Outcome::Exited(0) => {}
            Outcome::Exited(_) => {
                ctx.update(|s| s.phase = Phase::Failed);
                let _ = stop.wait_for(Option::is_some).await;
                return true;
            }
            Outcome::Stopped => return false,
        }
    }
    ctx.update(|s| {
        s.initialized = true;
        s.phase = Phase::Running;
    });

    let runners: Vec<_> = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let slot = Slot {
                init: false,
                index: i,
            };
            tokio::spawn(container::run(
                ctx.clone(),
                slot,
                c.clone(),
                prepared.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut codes = Vec::new();
    for r in runners {
        codes.push(r.await.unwrap_or(Outcome::Stopped));
    }
    if codes.contains(&Outcome::Stopped) {
        return false;
    }
    let ok = codes.iter().all(|o| *o == Outcome::Exited(0));
    ctx.update(|s| s.phase = if ok { Phase::Succeeded } else { Phase::Failed });
    let _ = stop.wait_for(Option::is_some).await;
    true
}
