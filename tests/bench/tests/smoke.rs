//! Smoke test of the load generator: starts a single-member kvstore on ephemeral loopback ports
//! in a temporary directory, runs `kv-bench --smoke --json` for each workload against it and
//! checks the JSON (operations done, no errors or timeouts, ordered percentiles).
//!
//! The kvstore binary is `$KVSTORE_BIN` if set, else the `kvstore` next to this crate's
//! `kv-bench` binary (same target dir and profile: `cargo nextest run --workspace` builds both),
//! else `target/debug/kvstore` under the workspace root.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A kvstore process and its data dir; killed (by PID) and removed on drop.
struct Server {
    child: Child,
    dir: PathBuf,
    endpoint: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn kvstore_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KVSTORE_BIN") {
        return PathBuf::from(p);
    }
    let sibling = PathBuf::from(env!("CARGO_BIN_EXE_kv-bench")).with_file_name("kvstore");
    if sibling.exists() {
        return sibling;
    }
    let fallback = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/kvstore");
    assert!(
        fallback.exists(),
        "kvstore binary not found (tried {} and {}): build it with `cargo build -p kvstore` \
         or set KVSTORE_BIN",
        sibling.display(),
        fallback.display()
    );
    fallback
}

/// A free port on 127.0.0.1 that nothing else takes before the member binds it: drawn below
/// the kernel's ephemeral range and reserved (for this process's life) by a lock on a file
/// shared with the store's tests.
fn free_port() -> u16 {
    use rand::Rng;
    static HELD: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("kvstore-it-ports");
    std::fs::create_dir_all(&dir).expect("create the port reservation dir");
    for _ in 0..1000 {
        let port: u16 = rand::rng().random_range(20_000..32_000);
        let Ok(lock) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(port.to_string()))
        else {
            continue;
        };
        if lock.try_lock().is_ok() && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            HELD.lock().unwrap().push(lock);
            return port;
        }
    }
    panic!("no free port found in 127.0.0.1:20000-32000");
}

/// GET /health over plain HTTP/1.1; true once the member reports a leader.
fn healthy(endpoint: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(endpoint) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /health HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.replace(' ', "").contains("\"health\":\"true\"")
}

fn start_server() -> Server {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("kv-bench-smoke-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let (client, peer) = (free_port(), free_port());
    let (curl, purl) = (
        format!("http://127.0.0.1:{client}"),
        format!("http://127.0.0.1:{peer}"),
    );
    let log = std::fs::File::create(dir.join("kvstore.log")).expect("log file");
    let child = Command::new(kvstore_bin())
        .args(["--name", "smoke", "--data-dir"])
        .arg(dir.join("data"))
        .args([
            "--listen-client-urls",
            &curl,
            "--advertise-client-urls",
            &curl,
        ])
        .args([
            "--listen-peer-urls",
            &purl,
            "--initial-advertise-peer-urls",
            &purl,
        ])
        .args(["--initial-cluster", &format!("smoke={purl}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start kvstore");
    let mut server = Server {
        child,
        dir,
        endpoint: format!("127.0.0.1:{client}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !healthy(&server.endpoint) {
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = std::fs::read_to_string(server.dir.join("kvstore.log")).unwrap_or_default();
            panic!("kvstore exited ({status}) before becoming healthy:\n{log}");
        }
        assert!(Instant::now() < deadline, "kvstore not healthy after 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// Runs `kv-bench WORKLOAD --smoke --json ARGS...` and returns its JSON.
fn bench(server: &Server, workload: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_kv-bench"))
        .args([
            workload,
            "--smoke",
            "--json",
            "--endpoints",
            &server.endpoint,
        ])
        .args(args)
        .output()
        .expect("run kv-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kv-bench {workload} failed: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("kv-bench {workload}: bad JSON ({e}): {stderr}"))
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

/// The checks every workload's result must pass.
fn check(name: &str, v: &Value) {
    assert!(f(v, &["ops"]) > 0.0, "{name}: no operations: {v}");
    assert!(f(v, &["ops_per_sec"]) > 0.0, "{name}: zero throughput: {v}");
    assert_eq!(
        f(v, &["errors"]),
        0.0,
        "{name}: errors: {}",
        v["error_messages"]
    );
    assert_eq!(f(v, &["timeouts"]), 0.0, "{name}: timeouts: {v}");
    let lat: Vec<f64> = ["min", "p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|p| f(v, &["latency_ms", p]))
        .collect();
    assert!(lat[0] > 0.0, "{name}: zero minimum latency: {lat:?}");
    assert!(
        lat.windows(2).all(|w| w[0] <= w[1]),
        "{name}: percentiles out of order: {lat:?}"
    );
}

#[test]
fn kv_bench_smoke_against_single_member_kvstore() {
    let server = start_server();

    let put = bench(&server, "put", &[]);
    check("put", &put);

    let range = bench(&server, "range-linearizable", &[]);
    check("range-linearizable", &range);

    let ser = bench(&server, "range-serializable", &["--skip-preload"]);
    check("range-serializable", &ser);

    let cas = bench(&server, "txn-cas", &[]);
    check("txn-cas", &cas);
    assert_eq!(
        f(&cas, &["cas_failures"]),
        0.0,
        "uncontended CAS failed: {cas}"
    );
    let contended = bench(&server, "txn-cas", &["--contended"]);
    check("txn-cas --contended", &contended);
    assert!(
        f(&contended, &["extra", "cas_succeeded"]) > 0.0,
        "no CAS succeeded: {contended}"
    );

    let watch = bench(&server, "watch-latency", &["--watchers", "4"]);
    check("watch-latency", &watch);
    assert_eq!(
        f(&watch, &["extra", "missing_events"]),
        0.0,
        "events missing: {watch}"
    );
    assert_eq!(
        f(&watch, &["ops"]),
        4.0 * f(&watch, &["extra", "puts_acked"]),
        "{watch}"
    );

    let mixed = bench(&server, "mixed", &["--skip-preload"]);
    check("mixed", &mixed);
    assert!(
        f(&mixed, &["by_kind", "read", "count"]) > 0.0,
        "no reads: {mixed}"
    );
    assert!(
        f(&mixed, &["by_kind", "write", "count"]) > 0.0,
        "no writes: {mixed}"
    );

    drop(server);
}
