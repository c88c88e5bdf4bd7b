//! A real S3-compatible object store for the backup tests: `s3s-fs` (installed by
//! `scripts/s3-tools.sh`) serving a temporary directory, with signature checks, on the node's
//! bridge address, where pods (and the test) reach it. Stopped, by its PID, when dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running s3s-fs.
pub struct S3Server {
    child: Child,
    /// The directory it serves: `<root>/<bucket>/<key>` is an object's bytes.
    pub root: PathBuf,
    /// `http://<address>:<port>`.
    pub endpoint: String,
    /// Its access key.
    pub access_key: String,
    /// Its secret key.
    pub secret_key: String,
}

impl S3Server {
    /// Start on `host` (an ephemeral port), serving `root`, with buckets `buckets` made.
    pub fn start(host: Ipv4Addr, root: &Path, buckets: &[&str]) -> Result<S3Server> {
        let bin = s3s_fs()?;
        for b in buckets {
            std::fs::create_dir_all(root.join(b))?;
        }
        let port = TcpListener::bind((host, 0))?.local_addr()?.port();
        let (access_key, secret_key) = ("kvstore-e2e".to_string(), "e2e-secret-key".to_string());
        let log = std::fs::File::create(root.with_extension("log"))?;
        let child = Command::new(&bin)
            .args(["--host", &host.to_string(), "--port", &port.to_string()])
            .args(["--access-key", &access_key, "--secret-key", &secret_key])
            .arg(root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let server = S3Server {
            child,
            root: root.to_path_buf(),
            endpoint: format!("http://{host}:{port}"),
            access_key,
            secret_key,
        };
        let addr = SocketAddr::from((host, port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("s3s-fs did not listen on {addr} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// The object `key` of `bucket`, as stored.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// s3s-fs from `scripts/s3-tools.sh` (installed with cargo when missing).
fn s3s_fs() -> Result<PathBuf> {
    let mut p = crate::tool_paths("s3-tools.sh", &["S3S_FS"])?;
    Ok(p.pop().expect("one path"))
}
