//! The kubelet: binds unscheduled pods to this node, runs one worker per pod ([`worker`]) that
//! sets up the network and volumes ([`volumes`], [`mounts`]), runs init containers then the
//! containers ([`container`]) as local processes ([`process`], [`images`], [`env`]) with probes
//! ([`probe`]), writes `pods/status` ([`status`]) and, on deletion, stops the processes within
//! the grace period and deletes the pod object.

pub mod container;
pub mod env;
pub mod images;
pub mod mounts;
pub mod probe;
pub mod process;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use rustix::process::Signal;
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::cache::{Informers, next_round};
use crate::net::{Network, lock};
use images::ImageMap;
use status::PodState;

/// How the kubelet runs things.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// Image → binary.
    pub images: ImageMap,
    /// First restart back-off (Kubernetes: 10 s), doubling.
    pub backoff_base: Duration,
    /// Back-off cap (Kubernetes: 5 min).
    pub backoff_max: Duration,
    /// The node name.
    pub node_name: String,
    /// Per-pod directories (`<pods_dir>/<uid>`).
    pub pods_dir: PathBuf,
    /// Claim directories.
    pub pv_root: PathBuf,
    /// Logs: `<log_dir>/<ns>/<pod>/<container>.log`.
    pub log_dir: PathBuf,
    /// The API server CA (for the service-account volume).
    pub ca_pem: PathBuf,
}

/// One pod worker as the kubelet tracks it.
#[derive(Debug)]
struct Handle {
    ctx: Arc<PodCtx>,
    update: watch::Sender<Arc<Pod>>,
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
}

/// What every worker shares.
pub struct Shared {
    /// API access.
    pub client: Client,
    /// Configuration.
    pub cfg: KubeletConfig,
    /// The pod network.
    pub net: Arc<Network>,
    /// Caches.
    pub informers: Arc<Informers>,
    handles: Mutex<HashMap<String, Handle>>,
    done: Mutex<HashSet<String>>,
    /// Every live container process (PID → pod uid), for emergency cleanup.
    pub pids: Mutex<HashMap<u32, String>>,
    /// Claim directories in use, with how many pods use them.
    pub claims_in_use: Mutex<HashMap<PathBuf, usize>>,
    /// Set at shutdown: no process starts any more.
    pub closed: AtomicBool,
    /// Set when the node shuts down: pods stop but their objects stay.
    pub draining: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// One pod, as its worker and containers see it.
#[derive(Debug)]
pub struct PodCtx {
    /// The kubelet.
    pub shared: Arc<Shared>,
    /// uid.
    pub uid: String,
    /// Namespace.
    pub ns: String,
    /// Name.
    pub name: String,
    /// The latest object.
    pub pod: watch::Receiver<Arc<Pod>>,
    /// Runtime state.
    pub state: Mutex<PodState>,
    /// Rung whenever the state changes (the status writer listens).
    pub changed: Notify,
}

impl PodCtx {
    /// Changes the state and schedules a status write.
    pub fn update<R>(&self, f: impl FnOnce(&mut PodState) -> R) -> R {
        let r = f(&mut lock(&self.state));
        self.changed.notify_one();
        r
    }

    /// The current object.
    pub fn object(&self) -> Arc<Pod> {
        self.pod.borrow().clone()
    }

    /// What environment expansion needs of the pod now (its IP, the node).
    pub fn runtime(&self) -> env::Runtime {
        let st = lock(&self.state);
        env::Runtime {
            pod_ip: st
                .net
                .as_ref()
                .map(|n| n.ip.to_string())
                .unwrap_or_default(),
            host_ip: st.host_ip.clone(),
            node_name: self.shared.cfg.node_name.clone(),
        }
    }
}

/// The running kubelet.
#[derive(Debug)]
pub struct Kubelet {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Kubelet {
    /// Starts the kubelet loop.
    pub fn start(
        client: Client,
        cfg: KubeletConfig,
        net: Arc<Network>,
        informers: Arc<Informers>,
    ) -> Self {
        let shared = Arc::new(Shared {
            client,
            cfg,
            net,
            informers,
            handles: Mutex::new(HashMap::new()),
            done: Mutex::new(HashSet::new()),
            pids: Mutex::new(HashMap::new()),
            claims_in_use: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        });
        let task = tokio::spawn(run(shared.clone()));
        Kubelet { shared, task }
    }

    /// The shared state (fault injection, lookups).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The live worker of a pod by namespace and name.
    pub fn pod(&self, ns: &str, name: &str) -> Option<Arc<PodCtx>> {
        lock(&self.shared.handles)
            .values()
            .filter(|h| h.ctx.ns == ns && h.ctx.name == name && !h.task.is_finished())
            .map(|h| h.ctx.clone())
            .last()
    }

    /// Sends `signal` to every container process of the pod; returns how many got it.
    pub fn signal_pod(&self, ns: &str, name: &str, signal: Signal) -> usize {
        let Some(ctx) = self.pod(ns, name) else {
            return 0;
        };
        let pids: Vec<u32> = lock(&ctx.state).pids.values().copied().collect();
        for pid in &pids {
            let Some(p) = i32::try_from(*pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            else {
                continue;
            };
            if let Err(e) = rustix::process::kill_process(p, signal) {
                tracing::debug!(pid, error = %e, "signal not delivered");
            }
        }
        pids.len()
    }

    /// Stops every pod (SIGTERM, `grace`, SIGKILL) and the loop.
    pub async fn shutdown(&self, grace: Duration) {
        self.shared.draining.store(true, Ordering::SeqCst);
        self.task.abort();
        let tasks: Vec<JoinHandle<()>> = {
            let mut handles = lock(&self.shared.handles);
            handles
                .drain()
                .map(|(_, h)| {
                    let _ = h.stop.send(Some(grace));
                    h.task
                })
                .collect()
        };
        for t in tasks {
            let _ = tokio::time::timeout(grace + Duration::from_secs(5), t).await;
        }
        self.kill_all();
    }

    /// SIGKILLs every container process still known (drop path).
    pub fn kill_all(&self) {
        self.task.abort();
        for h in lock(&self.shared.handles).values() {
            h.task.abort();
        }
        let pids = lock(&self.shared.pids);
        self.shared.closed.store(true, Ordering::SeqCst);
        for pid in pids.keys() {
            process::signal_group(*pid, Signal::KILL);
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn grace_of(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(secs.max(0)).unwrap_or(0))
}

/// Schedules the pod here with `pods/binding`, as the scheduler does (a patch of
/// `spec.nodeName` when the server lacks the subresource).
async fn bind(client: &Client, pod: &Pod, node: &str) {
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    let bound: Result<serde_json::Value, _> = api
        .create_subresource("binding", &name, &PostParams::default(), &binding)
        .await;
    let Err(e) = bound else { return };
    tracing::debug!(pod = %name, error = %e, "binding refused; patching spec.nodeName");
    let patch = json!({"spec": {"nodeName": node}});
    let patched = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    if let Err(e) = patched {
        tracing::warn!(pod = %name, error = %e, "failed to bind the pod");
    }
}

async fn force_delete(client: &Client, ns: &str, name: &str, uid: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dp = kube::api::DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(kube::api::Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..kube::api::DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => tracing::debug!(pod = name, ns, "pod object deleted"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(pod = name, ns, error = %e, "failed to delete the pod object"),
    }
}

async fn run(shared: Arc<Shared>) {
    let mut rx = shared.informers.subscribe();
    loop {
        reconcile(&shared).await;
        next_round(&mut rx, Duration::from_secs(1)).await;
    }
}

async fn reconcile(shared: &Arc<Shared>) {
    let node = shared.cfg.node_name.clone();
    let pods = shared.informers.pods.all();
    let mut seen = HashSet::new();
    for pod in pods {
        let uid = pod.uid().unwrap_or_default();
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        if bound.is_empty() {
            if pod.metadata.deletion_timestamp.is_none() {
                bind(&shared.client, &pod, &node).await;
            }
            continue;
        }
        if bound != node {
            continue;
        }
        seen.insert(uid.clone());
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        if !track(shared, &pod, &uid, &ns, &name) {
            force_delete(&shared.client, &ns, &name, &uid).await;
        }
    }
    stop_vanished(shared, &seen);
}

/// Updates or starts the worker of a bound pod; false when the pod is being deleted and has
/// no worker (it only needs deleting).
fn track(shared: &Arc<Shared>, pod: &Arc<Pod>, uid: &str, ns: &str, name: &str) -> bool {
    let mut handles = lock(&shared.handles);
    if let Some(h) = handles.get(uid) {
        if h.update.borrow().resource_version() != pod.resource_version() {
            let _ = h.update.send(pod.clone());
        }
        if pod.metadata.deletion_timestamp.is_some() && h.stop.borrow().is_none() {
            let _ = h.stop.send(Some(grace_of(pod)));
        }
        return true;
    }
    if lock(&shared.done).contains(uid) {
        return true;
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    {
        let (ns, name, uid) = (ns.to_string(), name.to_string(), uid.to_string());
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return true;
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let (update, pod_rx) = watch::channel(pod.clone());
        let (stop, stop_rx) = watch::channel(None);
        let ctx = Arc::new(PodCtx {
            shared: shared.clone(),
            uid: uid.clone(),
            ns,
            name,
            pod: pod_rx,
            state: Mutex::new(PodState::new(&spec, shared.net.gateway().to_string())),
            changed: Notify::new(),
        });
        tracing::info!(pod = %ctx.name, ns = %ctx.ns, uid = %uid, "starting pod");
        let task = tokio::spawn(worker::run(ctx.clone(), stop_rx));
        handles.insert(
            uid,
            Handle {
                ctx,
                update,
                stop,
                task,
            },
        );
    }
    true
}

/// Stops the workers of pods that vanished, forgets finished ones.
fn stop_vanished(shared: &Arc<Shared>, seen: &HashSet<String>) {
    let mut handles = lock(&shared.handles);
    for (uid, h) in handles.iter() {
        if !seen.contains(uid) && h.stop.borrow().is_none() {
            let grace = grace_of(&h.update.borrow());
            let _ = h.stop.send(Some(grace));
        }
    }
    let finished: Vec<String> = handles
        .iter()
        .filter(|(_, h)| h.task.is_finished())
        .map(|(u, _)| u.clone())
        .collect();
    for uid in finished {
        handles.remove(&uid);
        lock(&shared.done).insert(uid);
    }
}

impl Shared {
    /// Whether another worker of a pod with this namespace and name (a previous incarnation)
    /// is still running its processes.
    pub fn predecessor_running(&self, ns: &str, name: &str, uid: &str) -> bool {
        lock(&self.handles).values().any(|h| {
            h.ctx.ns == ns && h.ctx.name == name && h.ctx.uid != uid && !h.task.is_finished()
        })
    }

    /// Deletes the pod object now (after its processes stopped).
    pub async fn delete_pod(&self, ns: &str, name: &str, uid: &str) {
        force_delete(&self.client, ns, name, uid).await;
    }
}
