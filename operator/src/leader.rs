//! Leader election among operator replicas with a coordination.k8s.io Lease: one replica
//! reconciles, the others wait to take over when its lease lapses.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

/// Name of the Lease.
pub const LEASE_NAME: &str = "kv-operator-leader";
/// Seconds a lease lasts without renewal.
pub const LEASE_SECONDS: i32 = 15;

fn expired(l: &Lease, now: Timestamp) -> bool {
    let Some(spec) = &l.spec else { return true };
    let Some(renew) = &spec.renew_time else {
        return true;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    renew.0.as_second() + secs < now.as_second()
}

/// Try once to hold the lease; returns whether this replica is the leader now.
pub async fn try_acquire(api: &Api<Lease>, me: &str) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let spec = |acquire: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(LEASE_SECONDS),
        acquire_time: acquire.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        ..Default::default()
    };
    match api.get_opt(LEASE_NAME).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.into()),
                    ..Default::default()
                },
                spec: Some(spec(None)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(st)) if st.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
            let mine = holder.as_deref() == Some(me);
            if !mine && !expired(&lease, now) {
                return Ok(false);
            }
            let acquire = if mine {
                lease.spec.as_ref().and_then(|s| s.acquire_time.clone())
            } else {
                None
            };
            lease.spec = Some(spec(acquire));
            // A replace carries the resourceVersion: a concurrent winner makes this a 409.
            match api
                .replace(LEASE_NAME, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(st)) if st.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Block until this replica leads, then keep renewing in the background; the returned
/// receiver turns false if leadership is lost.
pub async fn lead(client: Client, namespace: &str, me: &str) -> tokio::sync::watch::Receiver<bool> {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    loop {
        match try_acquire(&api, me).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election failed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tracing::info!(holder = me, "became the leader");
    let (tx, rx) = tokio::sync::watch::channel(true);
    let me = me.to_string();
    tokio::spawn(async move {
        let mut failures = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            match try_acquire(&api, &me).await {
                Ok(true) => failures = 0,
                Ok(false) => {
                    let _ = tx.send(false);
                    return;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "lease renewal failed");
                    if failures * 5 >= LEASE_SECONDS {
                        let _ = tx.send(false);
                        return;
                    }
                }
            }
        }
    });
    rx
}
