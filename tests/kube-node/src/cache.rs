//! Shared informers: one reflector per kind the node reads (pods, services, claims, workloads),
//! all bumping one change counter, so every loop (DNS, kubelet, controllers) wakes on any
//! change and reads current state from memory instead of listing.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One kind, cached.
pub struct Cache<K: Resource + 'static>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    store: Store<K>,
    task: JoinHandle<()>,
}

impl<K: Resource + 'static> Debug for Cache<K>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}

impl<K> Cache<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Default,
{
    fn start(api: Api<K>, changes: watch::Sender<u64>) -> Self {
        let (store, writer) = reflector::store();
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer);
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                if let Err(e) = ev {
                    tracing::debug!(error = %e, kind = %K::kind(&Default::default()), "watch error");
                }
                changes.send_modify(|n| *n += 1);
            }
        });
        Cache { store, task }
    }

    /// Every cached object.
    pub fn all(&self) -> Vec<Arc<K>> {
        self.store.state()
    }

    /// Cached objects of one namespace.
    pub fn in_ns(&self, ns: &str) -> Vec<Arc<K>> {
        self.store
            .state_filter(|o| o.meta().namespace.as_deref() == Some(ns))
    }

    /// One object by namespace and name.
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<K>> {
        self.store.find(|o| {
            o.meta().namespace.as_deref() == Some(ns) && o.meta().name.as_deref() == Some(name)
        })
    }

    async fn ready(&self) {
        let _ = self.store.wait_until_ready().await;
    }
}

impl<K: Resource + 'static> Drop for Cache<K>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The informers of one node.
#[derive(Debug)]
pub struct Informers {
    /// Pods.
    pub pods: Cache<Pod>,
    /// Services.
    pub services: Cache<Service>,
    /// PersistentVolumeClaims.
    pub pvcs: Cache<PersistentVolumeClaim>,
    /// StatefulSets.
    pub statefulsets: Cache<StatefulSet>,
    /// Deployments.
    pub deployments: Cache<Deployment>,
    /// ReplicaSets.
    pub replicasets: Cache<ReplicaSet>,
    /// ControllerRevisions.
    pub revisions: Cache<ControllerRevision>,
    changes: watch::Sender<u64>,
}

impl Informers {
    /// Starts every watch and waits for the first lists.
    pub async fn start(client: &Client) -> Arc<Self> {
        let (changes, _) = watch::channel(0);
        let i = Informers {
            pods: Cache::start(Api::all(client.clone()), changes.clone()),
            services: Cache::start(Api::all(client.clone()), changes.clone()),
            pvcs: Cache::start(Api::all(client.clone()), changes.clone()),
            statefulsets: Cache::start(Api::all(client.clone()), changes.clone()),
            deployments: Cache::start(Api::all(client.clone()), changes.clone()),
            replicasets: Cache::start(Api::all(client.clone()), changes.clone()),
            revisions: Cache::start(Api::all(client.clone()), changes.clone()),
            changes,
        };
        i.pods.ready().await;
        i.services.ready().await;
        i.pvcs.ready().await;
        i.statefulsets.ready().await;
        i.deployments.ready().await;
        i.replicasets.ready().await;
        i.revisions.ready().await;
        Arc::new(i)
    }

    /// A receiver that sees every change of any cached kind.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Wakes every subscriber (after a write whose echo should not be waited for).
    pub fn poke(&self) {
        self.changes.send_modify(|n| *n += 1);
    }
}

/// Waits for the next change or `tick`, whichever first, then lets a burst settle.
pub async fn next_round(rx: &mut watch::Receiver<u64>, tick: std::time::Duration) {
    tokio::select! {
        _ = rx.changed() => {}
        _ = tokio::time::sleep(tick) => {}
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    rx.borrow_and_update();
}
