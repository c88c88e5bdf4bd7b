//! The cluster under test: member processes of kvstore or of real etcd on loopback ports, in a
//! temporary directory, each run under a uid of its own when we are root (so that a partition
//! can tell the connections a member opens from the others'), killed when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Which store the members run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Target {
    /// kvstore, this project's store.
    Kvstore,
    /// etcd (3.4.23 from Debian), for calibration.
    Etcd,
}

impl Target {
    /// A line a member logs each time it installs a Raft snapshot sent by the leader.
    pub fn snapshot_install_marker(self) -> &'static str {
        match self {
            Target::Kvstore => "installed a Raft snapshot",
            Target::Etcd => "applied snapshot",
        }
    }
}

/// The first uid members run under (one more per member).
const FIRST_UID: u32 = 47_100;

/// One member process.
pub struct Member {
    /// Member name (`m0`, `m1`, ...).
    pub name: String,
    client_port: u16,
    peer_port: u16,
    uid: Option<u32>,
    dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Member {
    /// The client URL.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The peer port.
    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    /// The uid the process runs under, when it has one of its own.
    pub fn uid(&self) -> Option<u32> {
        self.uid
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process runs (paused or not).
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// What the member logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

/// Several members forming one cluster.
pub struct Cluster {
    target: Target,
    bin: PathBuf,
    members: Vec<Member>,
    args: Vec<String>,
    initial_cluster: String,
    token: String,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Lay out `n` members (not started) running `bin`, with `extra` flags for each.
    pub fn new(target: Target, bin: &Path, n: usize, extra: &[String]) -> Result<Cluster> {
        let tmp = tempfile::Builder::new()
            .prefix("kv-robustness-")
            .tempdir()
            .context("create the cluster's temporary dir")?;
        let own_uids = rustix::process::geteuid().is_root();
        if own_uids {
            // Members under other uids must reach their own dirs below it.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
        }
        let mut members = Vec::new();
        for i in 0..n {
            let dir = tmp.path().join(format!("m{i}"));
            std::fs::create_dir_all(&dir)?;
            let uid = own_uids.then_some(FIRST_UID + i as u32);
            if let Some(uid) = uid {
                std::os::unix::fs::chown(&dir, Some(uid), Some(uid))?;
            }
            members.push(Member {
                name: format!("m{i}"),
                client_port: free_port()?,
                peer_port: free_port()?,
                uid,
                dir,
                child: None,
                paused: false,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Cluster {
            target,
            bin: bin.to_path_buf(),
            members,
            args: extra.to_vec(),
            initial_cluster,
            token: format!("robustness-{}", std::process::id()),
            _tmp: tmp,
        })
    }

    /// The members.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// What the store is.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Client URLs of every member, by index.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// Start member `i` (its output appended to `<dir>/log`).
    pub fn start(&mut self, i: usize) -> Result<()> {
        use std::os::unix::process::CommandExt;
        let (initial, token, target) = (
            self.initial_cluster.clone(),
            self.token.clone(),
            self.target,
        );
        let m = &mut self.members[i];
        if m.running() {
            bail!("member {} already runs", m.name);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.dir.join("log"))?;
        let data = m.dir.join("data");
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &m.client_url()])
            .args(["--advertise-client-urls", &m.client_url()])
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer_port),
            ])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer_port),
            ])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &token])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        if target == Target::Kvstore {
            cmd.env("RUST_LOG", "info,openraft=warn");
        }
        if let Some(uid) = m.uid {
            cmd.uid(uid).gid(uid);
        }
        m.child = Some(
            cmd.spawn()
                .with_context(|| format!("start {}", self.bin.display()))?,
        );
        m.paused = false;
        Ok(())
    }

    /// Start every member that does not run, and wake every paused one.
    pub fn start_all(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.resume(i)?;
            }
            if !self.members[i].running() {
                self.start(i)?;
            }
        }
        Ok(())
    }

    /// SIGKILL member `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut c) = m.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        m.paused = false;
    }

    /// SIGSTOP member `i`.
    pub fn pause(&mut self, i: usize) -> Result<()> {
        self.signal(i, rustix::process::Signal::STOP)?;
        self.members[i].paused = true;
        Ok(())
    }

    /// SIGCONT member `i`.
    pub fn resume(&mut self, i: usize) -> Result<()> {
        self.signal(i, rustix::process::Signal::CONT)?;
        self.members[i].paused = false;
        Ok(())
    }

    fn signal(&mut self, i: usize, sig: rustix::process::Signal) -> Result<()> {
        let Some(pid) = self.members[i].pid() else {
            bail!("member {i} does not run");
        };
        let pid = rustix::process::Pid::from_raw(pid as i32).context("bad pid")?;
        rustix::process::kill_process(pid, sig).context("signal a member")?;
        Ok(())
    }

    /// Whether member `i` runs and is not paused.
    pub fn serving(&mut self, i: usize) -> bool {
        !self.members[i].paused && self.members[i].running()
    }

    /// Member logs, each with its name, the last `lines` lines of each.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for m in &self.members {
            let log = m.log();
            let all: Vec<&str> = log.lines().collect();
            out.push_str(&format!(
                "--- {} (last {} lines) ---\n",
                m.name,
                lines.min(all.len())
            ));
            for l in &all[all.len().saturating_sub(lines)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// How many snapshots each member installed, counted from its log.
    pub fn snapshots_installed(&self) -> Vec<usize> {
        let marker = self.target.snapshot_install_marker();
        self.members
            .iter()
            .map(|m| m.log().matches(marker).count())
            .collect()
    }

    /// Wait until every member serves a linearizable read.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for url in self.client_urls() {
            loop {
                if linearizable_read(&url).await.is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("member at {url} not healthy within {timeout:?}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The index of the member that leads now, if one is found among the serving members.
    pub async fn leader(&mut self) -> Option<usize> {
        for i in 0..self.members.len() {
            if !self.serving(i) {
                continue;
            }
            let Ok(mut c) = connect(&self.members[i].client_url()).await else {
                continue;
            };
            let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(1), c.status()).await else {
                continue;
            };
            let me = s.header().map_or(0, |h| h.member_id());
            if s.leader() != 0 && s.leader() == me {
                return Some(i);
            }
        }
        None
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A client of one member, with short timeouts (a dead member must fail fast).
pub async fn connect(url: &str) -> Result<etcd_client::Client, etcd_client::Error> {
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(3))
        .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2));
    etcd_client::Client::connect([url], Some(opts)).await
}

/// A linearizable read through `url`; the revision it saw.
pub async fn linearizable_read(url: &str) -> Result<i64> {
    let mut c = connect(url).await?;
    let r = tokio::time::timeout(Duration::from_secs(2), c.get("health", None)).await??;
    Ok(r.header().map_or(0, |h| h.revision()))
}

/// A free loopback port, drawn below the ephemeral range (which outgoing connections use) and
/// reserved against other test processes by a lock on a file named after it.
fn free_port() -> Result<u16> {
    use rand::Rng;
    use std::sync::Mutex;
    static HELD: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("kvstore-it-ports");
    std::fs::create_dir_all(&dir)?;
    let mut rng = rand::rng();
    for _ in 0..1000 {
        let port: u16 = rng.random_range(20_000..32_000);
        let Ok(lock) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(port.to_string()))
        else {
            continue;
        };
        if lock.try_lock().is_err() || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        HELD.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
        return Ok(port);
    }
    bail!("no free port in 127.0.0.1:20000-32000")
}
