//! Test harness: a server in a temp dir, a kube-rs client, and kubectl/helm runs (found via
//! `KUBECTL`/`HELM`, the tools cache, or `scripts/kube-tools.sh`) that are killed on drop.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use kube_sim::{ApiServer, ServerOptions};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running server and what clients need.
pub struct Env {
    pub server: ApiServer,
    pub client: kube::Client,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut ServerOptions)) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut opts = ServerOptions::new(dir.path().join("server"));
        tune(&mut opts);
        let server = ApiServer::start(opts).await.expect("server starts");
        let client = server.client().await.expect("kube client");
        Env {
            server,
            client,
            dir,
        }
    }

    /// Runs kubectl with this server's kubeconfig.
    pub async fn kubectl(&self, args: &[&str]) -> Run {
        run(&tools().kubectl, args, self).await
    }

    /// Runs helm with this server's kubeconfig.
    pub async fn helm(&self, args: &[&str]) -> Run {
        run(&tools().helm, args, self).await
    }
}

pub struct Tools {
    pub kubectl: PathBuf,
    pub helm: PathBuf,
}

/// kubectl and helm: from `KUBECTL`/`HELM`, the tools cache, or installed by
/// `scripts/kube-tools.sh`.
pub fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .unwrap_or_default()
            .join("kvstore-tools/kubectl-layer-v35-2.2.2");
        let from_env = |var: &str, cached: PathBuf| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .or_else(|| cached.exists().then_some(cached))
        };
        let kubectl = from_env("KUBECTL", cache.join("kubectl/kubectl"));
        let helm = from_env("HELM", cache.join("helm/helm"));
        if let (Some(kubectl), Some(helm)) = (kubectl, helm) {
            return Tools { kubectl, helm };
        }
        let out = std::process::Command::new(repo().join("scripts/kube-tools.sh"))
            .output()
            .expect("scripts/kube-tools.sh runs");
        assert!(
            out.status.success(),
            "kube-tools.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(PathBuf::from)
                .expect("kube-tools.sh prints the path")
        };
        Tools {
            kubectl: get("KUBECTL"),
            helm: get("HELM"),
        }
    })
}

/// The outcome of a tool run.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the output unless the run succeeded; returns stdout.
    pub fn expect_ok(&self, what: &str) -> &str {
        assert!(
            self.ok,
            "{what} failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Panics unless the run failed; returns stderr.
    pub fn expect_err(&self, what: &str) -> &str {
        assert!(!self.ok, "{what} succeeded unexpectedly:\n{}", self.stdout);
        &self.stderr
    }
}

/// Runs `bin args` against the env's server, isolated (HOME, XDG dirs, kube cache in the temp
/// dir), in the repository root; the process is killed (by PID) if the run is dropped or
/// times out.
async fn run(bin: &Path, args: &[&str], env: &Env) -> Run {
    let home = env.dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home dir");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args)
        .current_dir(repo())
        .env("KUBECONFIG", env.server.kubeconfig_path())
        .env("HOME", &home)
        .env("KUBECACHEDIR", home.join("kube-cache"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{} {args:?} timed out (killed)", bin.display()))
        .expect("tool runs");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls `f` until it returns Some, for up to 10 s.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
