//! A cluster of real `kvstore` processes on ephemeral loopback ports, in a temporary
//! directory, killed when dropped; plus helpers to find and run the real `etcdctl`.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `kvstore` binary under test (`$KVSTORE_BIN` overrides, e.g. a release build).
pub fn kvstore_bin() -> PathBuf {
    match std::env::var("KVSTORE_BIN") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(env!("CARGO_BIN_EXE_kvstore")),
    }
}

/// A free TCP port on 127.0.0.1, reserved for this test process until it exits.
///
/// A member's ports must be known before it starts (the other members' configuration names
/// them), so the port cannot be bound by the member itself. It is drawn at random from below
/// the kernel's ephemeral range (which `bind(0)` and outgoing connections use, so nothing else
/// takes it in the meantime), and reserved against the other test processes by a lock on a
/// file named after it, held until this process exits.
pub fn free_port() -> u16 {
    use rand::Rng;
    use std::sync::Mutex;
    static HELD: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("kvstore-it-ports");
    std::fs::create_dir_all(&dir).expect("create the port reservation dir");
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
        HELD.lock().unwrap().push(lock);
        return port;
    }
    panic!("no free port found in 127.0.0.1:20000-32000");
}

/// One member process.
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub dir: PathBuf,
    pub child: Option<Child>,
    pub extra: Vec<String>,
    pub initial_cluster: String,
    pub state: &'static str,
    pub token: String,
}

impl Member {
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// The command line of this member.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--name".into(),
            self.name.clone(),
            "--data-dir".into(),
            self.dir.join("data").display().to_string(),
            "--listen-client-urls".into(),
            self.client_url(),
            "--advertise-client-urls".into(),
            self.client_url(),
            "--listen-peer-urls".into(),
            self.peer_url(),
            "--initial-advertise-peer-urls".into(),
            self.peer_url(),
            "--initial-cluster".into(),
            self.initial_cluster.clone(),
            "--initial-cluster-state".into(),
            self.state.into(),
            "--initial-cluster-token".into(),
            self.token.clone(),
            "--heartbeat-interval".into(),
            "100".into(),
            "--election-timeout".into(),
            "1000".into(),
            // Small WAL segments: dozens of members start in a run, and each writes a segment
            // and a spare of zeroes; 64 MiB each made a start's fsyncs (votes) wait seconds
            // behind them when tests ran side by side, and elections repeat.
            "--experimental-wal-segment-size".into(),
            "4194304".into(),
        ];
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Start the process (its output goes to `<dir>/log`).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "member {} already running", self.name);
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        let child = Command::new(kvstore_bin())
            .args(self.args())
            .env(
                "RUST_LOG",
                std::env::var("IT_RUST_LOG").unwrap_or("info,openraft=warn".into()),
            )
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("failed to start kvstore");
        self.child = Some(child);
    }

    /// SIGKILL the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP the process: it keeps its connections but does nothing until [`Self::resume`].
    pub fn pause(&mut self) {
        self.signal("-STOP");
    }

    /// SIGCONT a paused process.
    pub fn resume(&mut self) {
        self.signal("-CONT");
    }

    fn signal(&mut self, sig: &str) {
        let c = self.child.as_ref().expect("member not running");
        let ok = Command::new("kill")
            .arg(sig)
            .arg(c.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} of member {} failed", self.name);
    }

    /// SIGTERM the process and wait (SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The member's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
        // A failed test shows what each member logged (the temporary dir goes away).
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(400)..];
            eprintln!(
                "--- member {} log (last {} lines) ---",
                self.name,
                tail.len()
            );
            for l in tail {
                eprintln!("{l}");
            }
        }
    }
}

/// A cluster of member processes.
pub struct Cluster {
    pub members: Vec<Member>,
    pub token: String,
    pub tmp: tempfile::TempDir,
}

impl Cluster {
    /// Bootstrap `n` members and wait until they serve.
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, &[]).await
    }

    /// Bootstrap `n` members with extra flags and wait until they serve.
    pub async fn start_with(n: usize, extra: &[&str]) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let token = format!("it-{}", free_port());
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, (c, p))| Member {
                name: format!("m{i}"),
                client_port: *c,
                peer_port: *p,
                dir: tmp.path().join(format!("m{i}")),
                child: None,
                extra: extra.iter().map(|s| s.to_string()).collect(),
                initial_cluster: initial.clone(),
                state: "new",
                token: token.clone(),
            })
            .collect();
        let mut c = Cluster {
            members,
            token,
            tmp,
        };
        for m in &mut c.members {
            m.start();
        }
        c.wait_ready(Duration::from_secs(30)).await;
        c.wait_published(Duration::from_secs(30)).await;
        c
    }

    /// Wait until every running member lists every member with its client URLs: each member
    /// publishes them through Raft shortly after it starts (etcd serves clients only once it
    /// has), so until then a member list may show a member without them.
    pub async fn wait_published(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let n = self.members.len();
        for url in self.live_urls() {
            loop {
                if let Ok(mut c) = client(&url).await
                    && let Ok(ml) = c.member_list().await
                    && ml.members().len() == n
                    && ml.members().iter().all(|m| !m.client_urls().is_empty())
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{url} does not list every member with client URLs"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// A new member (not started) that will join this cluster.
    pub fn new_joiner(&self, name: &str) -> Member {
        let (c, p) = (free_port(), free_port());
        let mut initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        initial.push(format!("{name}=http://127.0.0.1:{p}"));
        Member {
            name: name.into(),
            client_port: c,
            peer_port: p,
            dir: self.tmp.path().join(name),
            child: None,
            extra: Vec::new(),
            initial_cluster: initial.join(","),
            state: "existing",
            token: self.token.clone(),
        }
    }

    /// All client endpoints, comma-separated, for etcdctl.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| m.endpoint())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Client URLs of the members that are running.
    pub fn live_urls(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for m in &mut self.members {
            if m.running() {
                out.push(m.client_url());
            }
        }
        out
    }

    /// Wait until every running member reports a leader and serves a linearizable read.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let urls = self.live_urls();
        for url in urls {
            loop {
                if ready(&url).await {
                    break;
                }
                if Instant::now() > deadline {
                    for m in &self.members {
                        eprintln!("---- log of {} ----\n{}", m.name, m.log());
                    }
                    panic!("member at {url} not ready in time");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Index of the member that is leader now (asked of the running members).
    pub async fn leader(&mut self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for i in 0..self.members.len() {
                if !self.members[i].running() {
                    continue;
                }
                if let Ok(mut c) = client(&self.members[i].client_url()).await
                    && let Ok(s) = c.status().await
                {
                    let leader = s.leader();
                    let me = s.header().map(|h| h.member_id()).unwrap_or(0);
                    if leader != 0 && leader == me {
                        return i;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader found");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Connect an etcd-client to some URLs.
pub async fn client_many(urls: &[String]) -> Result<etcd_client::Client, etcd_client::Error> {
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(10));
    etcd_client::Client::connect(urls, Some(opts)).await
}

/// Connect an etcd-client to one URL.
pub async fn client(url: &str) -> Result<etcd_client::Client, etcd_client::Error> {
    client_many(&[url.to_string()]).await
}

async fn ready(url: &str) -> bool {
    let Ok(mut c) = client(url).await else {
        return false;
    };
    match c.status().await {
        Ok(s) if s.leader() != 0 => {}
        _ => return false,
    }
    c.get("health", None).await.is_ok()
}

/// The real etcdctl (Debian's `etcd-client`, 3.4), or `$ETCDCTL`.
pub fn etcdctl_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ETCDCTL") {
        return PathBuf::from(p);
    }
    for p in ["/usr/bin/etcdctl", "/usr/local/bin/etcdctl"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("etcdctl not found: install Debian's etcd-client (the README's test command does)");
}

/// Run etcdctl with `args` against `endpoints`, feeding `stdin`.
pub fn etcdctl(endpoints: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(etcdctl_bin());
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--dial-timeout=3s")
        .arg("--command-timeout=10s")
        .args(args);
    run_with_stdin(cmd, stdin)
}

/// Run `cmd` (its stdio piped), feeding `stdin`, and wait for its output.
pub fn run_with_stdin(mut cmd: Command, stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to start the command");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// Run etcdctl and return stdout, asserting success.
pub fn etcdctl_ok(endpoints: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = etcdctl(endpoints, args, stdin);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
