//! The test environment: an in-process kube-sim API server and a kube-node next to it, in a
//! temporary directory, torn down even when a test fails (drop guards).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, Client};
use kube_node::{ImageBinary, ImageMap, Node, NodeOptions};
use kube_sim::{ApiServer, ServerOptions};
use serde::de::DeserializeOwned;

/// A running environment.
pub struct Env {
    pub client: Client,
    pub node: Option<Node>,
    pub server: Option<ApiServer>,
    pub dir: tempfile::TempDir,
}

/// Whether this machine can run the tests (root, iproute2).
pub fn can_run() -> bool {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        eprintln!("skipped: needs root for network namespaces");
    }
    root
}

fn workspace_target() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug")
}

/// The kvstore binary (`KVSTORE_BIN`, else the workspace's debug build).
pub fn kvstore_bin() -> PathBuf {
    std::env::var_os("KVSTORE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_target().join("kvstore"))
}

/// `sh:*` runs /bin/sh; `kvstore:*` the kvstore binary.
pub fn images() -> ImageMap {
    ImageMap::new()
        .with("sh", ImageBinary::new("/bin/sh"))
        .with("kvstore", ImageBinary::new(kvstore_bin()))
}

impl Env {
    pub async fn start() -> Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Starts with extra images.
    pub async fn start_with(images_fn: impl FnOnce(&mut ImageMap)) -> Result<Self> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn,kube_node=info".into()),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir()?;
        let server = ApiServer::start(ServerOptions::new(dir.path().join("api"))).await?;
        let client = server.client().await?;
        let mut images = images();
        images_fn(&mut images);
        let mut opts = NodeOptions::new(
            client.clone(),
            dir.path().join("node"),
            server.url(),
            &dir.path().join("api"),
            images,
        )?;
        opts.backoff_base = Duration::from_millis(500);
        opts.backoff_max = Duration::from_secs(4);
        opts.shutdown_grace = Duration::from_secs(2);
        let node = Node::start(opts).await?;
        Ok(Env {
            client,
            node: Some(node),
            server: Some(server),
            dir,
        })
    }

    /// Prints every pod's status and log tail (for failures).
    pub async fn dump(&self, namespaces: &[&str]) {
        for ns in namespaces {
            let Ok(list) = self.pods(ns).list(&Default::default()).await else {
                continue;
            };
            for p in list.items {
                let name = kube::ResourceExt::name_any(&p);
                eprintln!(
                    "=== pod {ns}/{name}: {:?}",
                    p.status.map(|s| (s.phase, s.container_statuses))
                );
                let logs = self
                    .pods(ns)
                    .logs(&name, &Default::default())
                    .await
                    .unwrap_or_default();
                let tail: Vec<&str> = logs.lines().rev().take(20).collect();
                eprintln!("--- log tail (newest first):\n{}", tail.join("\n"));
            }
        }
    }

    pub fn node(&self) -> &Node {
        self.node.as_ref().expect("node running")
    }

    pub async fn stop(mut self) {
        if let Some(n) = self.node.take() {
            n.shutdown().await;
        }
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Creates an object from YAML in namespace `ns`.
    pub async fn create<K>(&self, ns: &str, yaml: &str) -> Result<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let obj: K = serde_yaml::from_str(yaml).context("parse yaml")?;
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        Ok(api.create(&PostParams::default(), &obj).await?)
    }

    pub fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Waits until `f` on the pod returns true.
    pub async fn wait_pod(
        &self,
        ns: &str,
        name: &str,
        within: Duration,
        f: impl Fn(&Pod) -> bool,
    ) -> Result<Pod> {
        let api = self.pods(ns);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let p = api.get_opt(name).await?;
            if let Some(p) = &p
                && f(p)
            {
                return Ok(p.clone());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "pod {ns}/{name} did not get there: {:#?}",
                    p.map(|p| p.status)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `f` returns Some.
    pub async fn until<T, F, Fut>(&self, what: &str, within: Duration, f: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(v) = f().await? {
                return Ok(v);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}
