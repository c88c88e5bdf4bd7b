//! The environment: [`Node::start`] brings up the pod network, the shared watches, the kubelet,
//! the cluster DNS updater and the controllers next to a running API server;
//! [`Node::shutdown`] (or drop, best effort) stops every process it started and removes every
//! namespace, link, route and file it made. Fault controls for tests live here too.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::cache::Informers;
use crate::controllers;
use crate::kubelet::images::ImageMap;
use crate::kubelet::{Kubelet, KubeletConfig, process, volumes};
use crate::net::{self, NetError, Network, lock};

/// Failures of the environment.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The network could not be made.
    #[error("failed to set up the pod network")]
    Net(#[from] NetError),
    /// Files could not be made.
    #[error("failed to prepare {0}")]
    Io(PathBuf, #[source] std::io::Error),
    /// A pod or claim is not known.
    #[error("{0} not found")]
    NotFound(String),
    /// A fault could not be injected.
    #[error("failed to inject a fault")]
    Fault(#[source] net::cmd::CmdError),
    /// The server address is not `https://host:port`.
    #[error("bad API server URL {0}")]
    Url(String),
}

/// How to start a node.
#[derive(Clone)]
pub struct NodeOptions {
    /// A client of the API server.
    pub client: Client,
    /// A directory the node owns (hosts file, pod and claim directories); removed at shutdown.
    pub dir: PathBuf,
    /// Where the API server listens (127.0.0.1:port).
    pub api_server_addr: SocketAddr,
    /// The API server's CA certificate (PEM).
    pub ca_pem_path: PathBuf,
    /// Where pod logs go (`<dir>/<ns>/<pod>/<container>.log`), the API server's log directory.
    pub pod_log_dir: PathBuf,
    /// Image → binary.
    pub binaries: ImageMap,
    /// First restart back-off (Kubernetes: 10 s).
    pub backoff_base: Duration,
    /// Back-off cap (Kubernetes: 5 min).
    pub backoff_max: Duration,
    /// The node's name.
    pub node_name: String,
    /// The bridge index `N` (10.213.N.0/24); `None` takes the first free one.
    pub bridge_index: Option<u8>,
    /// How long processes get between SIGTERM and SIGKILL at shutdown.
    pub shutdown_grace: Duration,
}

impl NodeOptions {
    /// Options for an API server at `url` (`https://127.0.0.1:<port>`) that keeps `ca.crt` and
    /// `logs/` in `server_dir` (kube-sim's layout), with Kubernetes' back-off.
    pub fn new(
        client: Client,
        dir: impl Into<PathBuf>,
        url: &str,
        server_dir: &Path,
        binaries: ImageMap,
    ) -> Result<Self, NodeError> {
        let addr = url
            .strip_prefix("https://")
            .and_then(|a| a.trim_end_matches('/').parse().ok())
            .ok_or_else(|| NodeError::Url(url.to_string()))?;
        Ok(NodeOptions {
            client,
            dir: dir.into(),
            api_server_addr: addr,
            ca_pem_path: server_dir.join("ca.crt"),
            pod_log_dir: server_dir.join("logs"),
            binaries,
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            node_name: "kube-node".into(),
            bridge_index: None,
            shutdown_grace: Duration::from_secs(5),
        })
    }
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("dir", &self.dir)
            .field("api_server_addr", &self.api_server_addr)
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

/// A running node.
pub struct Node {
    client: Client,
    net: Arc<Network>,
    informers: Arc<Informers>,
    kubelet: Kubelet,
    tasks: Vec<JoinHandle<()>>,
    dir: PathBuf,
    pv_root: PathBuf,
    shutdown_grace: Duration,
    done: bool,
}

impl Node {
    /// Starts everything.
    pub async fn start(opts: NodeOptions) -> Result<Self, NodeError> {
        // Both rustls providers are linked in this workspace: choose one (see kube-sim).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |e| NodeError::Io(p, e)
        };
        std::fs::create_dir_all(&opts.dir).map_err(io(&opts.dir))?;
        let pods_dir = opts.dir.join("pods");
        let pv_root = opts.dir.join("volumes");
        std::fs::create_dir_all(&pods_dir).map_err(io(&pods_dir))?;
        std::fs::create_dir_all(&pv_root).map_err(io(&pv_root))?;
        let net = Arc::new(
            Network::start(
                &opts.dir,
                opts.bridge_index,
                opts.api_server_addr,
                &opts.ca_pem_path,
            )
            .await?,
        );
        let informers = Informers::start(&opts.client).await;
        register_node(&opts.client, &opts.node_name, net.gateway()).await;
        let mut tasks = vec![tokio::spawn(net::dns::run(net.clone(), informers.clone()))];
        let kubelet = Kubelet::start(
            opts.client.clone(),
            KubeletConfig {
                images: opts.binaries.clone(),
                backoff_base: opts.backoff_base,
                backoff_max: opts.backoff_max,
                node_name: opts.node_name.clone(),
                pods_dir,
                pv_root: pv_root.clone(),
                log_dir: opts.pod_log_dir.clone(),
                ca_pem: opts.ca_pem_path.clone(),
            },
            net.clone(),
            informers.clone(),
        );
        tasks.extend(controllers::start(
            &opts.client,
            &informers,
            &pv_root,
            kubelet.shared().clone(),
        ));
        tracing::info!(node = %opts.node_name, gateway = %net.gateway(), "node started");
        Ok(Node {
            client: opts.client,
            net,
            informers,
            kubelet,
            tasks,
            dir: opts.dir,
            pv_root,
            shutdown_grace: opts.shutdown_grace,
            done: false,
        })
    }

    /// The bridge address (node IP, API server proxy).
    pub fn gateway(&self) -> Ipv4Addr {
        self.net.gateway()
    }

    /// The bridge index `N`.
    pub fn bridge_index(&self) -> u8 {
        self.net.index()
    }

    /// The cluster hosts file.
    pub fn hosts_path(&self) -> &Path {
        self.net.hosts().path()
    }

    /// The shared caches.
    pub fn informers(&self) -> &Arc<Informers> {
        &self.informers
    }

    /// The IP of a running pod.
    pub fn pod_ip(&self, ns: &str, pod: &str) -> Option<Ipv4Addr> {
        let ctx = self.kubelet.pod(ns, pod)?;
        lock(&ctx.state).net.as_ref().map(|n| n.ip)
    }

    /// The PIDs of a pod's running container processes, by container name.
    pub fn pids(&self, ns: &str, pod: &str) -> Vec<(String, u32)> {
        self.kubelet
            .pod(ns, pod)
            .map(|ctx| lock(&ctx.state).pids.clone().into_iter().collect())
            .unwrap_or_default()
    }

    /// Sends signal number `signal` to the pod's container processes (by their PIDs); returns
    /// how many processes got it.
    pub fn kill_container(&self, ns: &str, pod: &str, signal: i32) -> Result<usize, NodeError> {
        let sig = process::signal_from(signal)
            .ok_or_else(|| NodeError::NotFound(format!("signal {signal}")))?;
        match self.kubelet.signal_pod(ns, pod, sig) {
            0 => Err(NodeError::NotFound(format!("running pod {ns}/{pod}"))),
            n => Ok(n),
        }
    }

    /// Deletes everything in a claim's directory (data loss), whether or not a pod runs on it.
    pub fn wipe_volume(&self, ns: &str, pvc: &str) -> Result<(), NodeError> {
        let claim = self
            .informers
            .pvcs
            .get(ns, pvc)
            .ok_or_else(|| NodeError::NotFound(format!("claim {ns}/{pvc}")))?;
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        let dir = volumes::claim_dir(&self.pv_root, ns, pvc, &uid);
        let entries = std::fs::read_dir(&dir).map_err(|e| NodeError::Io(dir.clone(), e))?;
        for e in entries.flatten() {
            let p = e.path();
            let r = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|e| NodeError::Io(p.clone(), e))?;
        }
        tracing::info!(ns, pvc, "volume wiped");
        Ok(())
    }

    /// Cuts a pod off the network (iptables DROP on its `eth0`), or heals it.
    pub fn partition(&self, ns: &str, pod: &str, on: bool) -> Result<(), NodeError> {
        ensure_iptables()?;
        let ctx = self
            .kubelet
            .pod(ns, pod)
            .ok_or_else(|| NodeError::NotFound(format!("running pod {ns}/{pod}")))?;
        let pod_net = lock(&ctx.state)
            .net
            .clone()
            .ok_or_else(|| NodeError::NotFound(format!("network of {ns}/{pod}")))?;
        net::pod::partition(&pod_net, on).map_err(NodeError::Fault)
    }

    /// Runs `argv` inside a running pod's first container (its network, mount and UTS
    /// namespaces) and returns the output.
    pub async fn exec(&self, ns: &str, pod: &str, argv: &[&str]) -> Result<Output, NodeError> {
        let (_, pid) = self
            .pids(ns, pod)
            .into_iter()
            .next()
            .ok_or_else(|| NodeError::NotFound(format!("running pod {ns}/{pod}")))?;
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let mut cmd = process::exec_in(pid, &argv, &[]);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.output()
            .await
            .map_err(|e| NodeError::Io(PathBuf::from("nsenter"), e))
    }

    /// Stops every process (SIGTERM, grace, SIGKILL), every loop, and removes the network and
    /// the node's directory.
    pub async fn shutdown(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.kubelet.shutdown(self.shutdown_grace).await;
        let nodes: Api<NodeObject> = Api::all(self.client.clone());
        let _ = nodes
            .delete(&self.node_name(), &kube::api::DeleteParams::default())
            .await;
        self.teardown();
    }

    fn node_name(&self) -> String {
        self.kubelet.shared().cfg.node_name.clone()
    }

    fn teardown(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        for t in &self.tasks {
            t.abort();
        }
        self.kubelet.kill_all();
        self.net.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
        tracing::info!("node stopped");
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("dir", &self.dir)
            .field("gateway", &self.net.gateway())
            .finish_non_exhaustive()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn ensure_iptables() -> Result<(), NodeError> {
    if net::cmd::run("iptables", &["--version"]).is_ok() {
        return Ok(());
    }
    net::cmd::run("apt-get", &["install", "-y", "-q", "iptables"]).map_err(NodeError::Fault)?;
    Ok(())
}

async fn register_node(client: &Client, name: &str, ip: Ipv4Addr) {
    let api: Api<NodeObject> = Api::all(client.clone());
    let node: NodeObject = match serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": ""}},
        "spec": {}
    })) {
        Ok(n) => n,
        Err(_) => return,
    };
    if let Err(e) = api.create(&PostParams::default(), &node).await {
        tracing::debug!(error = %e, "node object not created");
    }
    let status = json!({"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status"}],
        "addresses": [{"type": "InternalIP", "address": ip.to_string()},
            {"type": "Hostname", "address": name}],
        "capacity": {"cpu": "2", "memory": "8Gi", "pods": "250"},
        "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "250"},
        "nodeInfo": {"kubeletVersion": "v1.33.0-kube-node", "operatingSystem": "linux",
            "architecture": "amd64", "containerRuntimeVersion": "kube-node://0.1.0",
            "kernelVersion": "", "osImage": "kube-node", "kubeProxyVersion": "",
            "machineID": "", "systemUUID": "", "bootID": ""}
    }});
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
    {
        tracing::debug!(error = %e, "node status not written");
    }
}
