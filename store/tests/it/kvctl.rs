//! `kvctl` against real `kvstore` processes, its output compared with the real etcdctl's for
//! the same command on the same member wherever the output is deterministic (KV reads, txn,
//! member list, lease list, hashkv, error texts and exit codes), checked by content otherwise;
//! `snapshot save` then `snapshot restore` into a new 3-member cluster (every key, a new
//! cluster id), corrupted snapshots refused; watch and lease keep-alive (their own test);
//! unreachable endpoints failing within the timeouts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Cluster, Member, etcdctl, etcdctl_bin, free_port};

fn kvctl_cmd(endpoints: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvctl"));
    cmd.arg(format!("--endpoints={endpoints}"))
        .arg("--dial-timeout=3s")
        .arg("--command-timeout=10s")
        .args(args);
    cmd
}

/// Run kvctl with `args` against `endpoints`, feeding `stdin`.
fn kvctl(endpoints: &str, args: &[&str], stdin: Option<&str>) -> Output {
    crate::common::run_with_stdin(kvctl_cmd(endpoints, args), stdin)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Run kvctl, assert success, return stdout.
pub(crate) fn kvctl_ok(endpoints: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = kvctl(endpoints, args, stdin);
    assert!(
        out.status.success(),
        "kvctl {args:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Run kvctl expecting failure; returns stderr.
fn kvctl_err(endpoints: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = kvctl(endpoints, args, stdin);
    assert!(
        !out.status.success(),
        "kvctl {args:?} should have failed: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

fn kvctl_json(endpoints: &str, args: &[&str]) -> Value {
    let out = kvctl_ok(endpoints, args, None);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kvctl {args:?}: bad JSON ({e}): {out}"))
}

/// stderr without etcdctl's JSON log lines.
fn error_lines(stderr: &[u8]) -> Vec<String> {
    text(stderr)
        .lines()
        .filter(|l| !l.starts_with("{\"level\""))
        .map(str::to_string)
        .collect()
}

/// The same command through etcdctl and kvctl: both succeed with identical stdout.
fn same(ep: &str, args: &[&str], stdin: Option<&str>) -> String {
    let e = etcdctl(ep, args, stdin);
    let k = kvctl(ep, args, stdin);
    assert!(
        e.status.success(),
        "etcdctl {args:?} failed: {}",
        text(&e.stderr)
    );
    assert!(
        k.status.success(),
        "kvctl {args:?} failed: {}",
        text(&k.stderr)
    );
    assert_eq!(
        text(&k.stdout),
        text(&e.stdout),
        "kvctl {args:?} prints otherwise than etcdctl"
    );
    text(&k.stdout)
}

/// The same failing command through etcdctl and kvctl: same exit code, same error lines.
fn same_error(ep: &str, args: &[&str], stdin: Option<&str>) -> String {
    let e = etcdctl(ep, args, stdin);
    let k = kvctl(ep, args, stdin);
    assert!(
        !e.status.success() && !k.status.success(),
        "{args:?} should fail"
    );
    assert_eq!(
        k.status.code(),
        e.status.code(),
        "exit code of {args:?}: {}",
        text(&k.stderr)
    );
    assert_eq!(
        error_lines(&k.stderr),
        error_lines(&e.stderr),
        "errors of {args:?}"
    );
    text(&k.stderr)
}

/// A running command whose output is collected by threads.
struct Spawned {
    child: Child,
    out: mpsc::Receiver<String>,
    stdout: String,
    err: Option<std::thread::JoinHandle<String>>,
}

impl Spawned {
    fn start(mut cmd: Command) -> Spawned {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("failed to spawn");
        let (tx, out) = mpsc::channel();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            let mut line = String::new();
            while stdout.read_line(&mut line).unwrap_or(0) > 0 {
                if tx.send(std::mem::take(&mut line)).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Spawned {
            child,
            out,
            stdout: String::new(),
            err: Some(err),
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Wait until stdout contains `pat`; returns stdout so far.
    fn wait_for(&mut self, pat: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while !self.stdout.contains(pat) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(l) => self.stdout.push_str(&l),
                Err(_) => panic!("no {pat:?} in time; stdout so far:\n{}", self.stdout),
            }
        }
        self.stdout.clone()
    }

    /// Wait for the process to exit by itself within `timeout`; returns (exit code, stdout, stderr).
    fn exit(mut self, timeout: Duration) -> (Option<i32>, String, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "did not exit in time; stdout:\n{}",
                self.stdout
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let err = self.err.take().unwrap().join().unwrap();
        while let Ok(l) = self.out.recv_timeout(Duration::from_millis(200)) {
            self.stdout.push_str(&l);
        }
        (status.code(), self.stdout.clone(), err)
    }

    /// Kill the process; returns (stdout, stderr).
    fn stop(mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let err = self.err.take().unwrap().join().unwrap();
        while let Ok(l) = self.out.recv_timeout(Duration::from_millis(200)) {
            self.stdout.push_str(&l);
        }
        (self.stdout.clone(), err)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcdctl_cmd(endpoints: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(etcdctl_bin());
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args);
    cmd
}

/// The store revision, from a `get -w json` header.
fn revision(ep: &str) -> i64 {
    kvctl_json(ep, &["get", "x", "-w", "json"])["header"]["revision"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kvctl_kv_members_snapshot_restore() {
    let cluster = Cluster::start(3).await;
    let all = cluster.endpoints();
    let all = all.as_str();
    let one = cluster.members[0].endpoint();
    let ep = one.as_str();

    // Writes: kvctl's answers are etcdctl's.
    assert_eq!(kvctl_ok(all, &["put", "k1", "v1"], None), "OK\n");
    assert_eq!(kvctl_ok(all, &["put", "k2"], Some("from stdin")), "OK\n");
    assert_eq!(kvctl_ok(ep, &["put", "k3", "--", "-v3"], None), "OK\n");
    same(ep, &["put", "k1", "v1", "--prev-kv"], None);
    assert_eq!(
        kvctl_ok(ep, &["put", "k1", "v1", "--prev-kv"], None),
        "OK\nk1\nv1\n"
    );
    for i in 0..3 {
        kvctl_ok(ep, &["put", &format!("p/{i}"), &format!("<{i}&>")], None);
    }
    assert_eq!(kvctl_ok(ep, &["put", "gone", "x"], None), "OK\n");
    assert_eq!(
        kvctl_ok(ep, &["del", "gone", "--prev-kv"], None),
        "1\ngone\nx\n"
    );
    same(ep, &["del", "gone"], None);

    // Reads in every format, byte for byte as etcdctl prints them.
    assert_eq!(same(ep, &["get", "k1"], None), "k1\nv1\n");
    assert_eq!(
        same(ep, &["get", "k2", "--print-value-only"], None),
        "from stdin\n"
    );
    for f in ["simple", "json", "fields", "protobuf"] {
        same(ep, &["get", "k", "--prefix", "-w", f], None);
        same(ep, &["get", "p/", "--prefix", "--limit=2", "-w", f], None);
    }
    same(ep, &["get", "k", "--prefix", "--keys-only"], None);
    same(ep, &["get", "k1", "k3", "-w", "json"], None);
    same(ep, &["get", "k2", "--from-key", "--hex"], None);
    same(ep, &["get", "", "--from-key", "-w", "json"], None);
    same(
        ep,
        &[
            "get",
            "p/",
            "--prefix",
            "--sort-by=VALUE",
            "--order=DESCEND",
        ],
        None,
    );
    same(
        ep,
        &["get", "k1", "--rev=2", "-w", "json", "--consistency=s"],
        None,
    );
    assert_eq!(
        kvctl_ok(ep, &["get", "p/", "--prefix", "--count-only"], None),
        "3\n"
    );

    // Transactions, written as etcdctl reads them (writes compared in the simple format, whose
    // text does not depend on the revision; read-only ones in every format).
    let txn = "value(\"k1\") = \"v1\"\nmod(\"k1\") > \"0\"\n\nput t1 x\nget k --prefix\ndel nothing\n\nput t2 y\n\n";
    let out = same(ep, &["txn"], Some(txn));
    assert_eq!(
        out,
        "SUCCESS\n\nOK\n\nk1\nv1\nk2\nfrom stdin\nk3\n-v3\n\n0\n"
    );
    let read_only =
        "value(\"k1\") = \"nope\"\n\nput t1 no\n\nget k1\nget p/ --prefix --limit=1\n\n";
    for f in ["simple", "json", "fields"] {
        same(ep, &["txn", "-w", f], Some(read_only));
    }
    same(ep, &["txn", "-i"], Some(read_only));
    let j: Value = serde_json::from_str(&kvctl_ok(ep, &["txn", "-w", "json"], Some(txn))).unwrap();
    assert_eq!(j["succeeded"], true, "{j}");
    assert_eq!(
        j["responses"][1]["Response"]["ResponseRange"]["count"].as_i64(),
        Some(3),
        "{j}"
    );

    // Errors: etcd's text after `Error:`, etcdctl's exit codes.
    let e = same_error(ep, &["put", "", "v"], None);
    assert!(e.contains("Error: etcdserver: key is not provided"), "{e}");
    same_error(ep, &["lease", "revoke", "1234"], None);
    same_error(ep, &["lease", "timetolive", "zz"], None);
    same_error(ep, &["get", "k1", "-w", "table"], None);
    same_error(ep, &["txn"], Some("bogus(\"a\") = \"b\"\n\n\n\n"));
    same_error(ep, &["txn"], Some("\nfoo a\n\n\n"));

    // Members, leases, hashes, alarms.
    for f in ["simple", "json", "fields", "table"] {
        same(ep, &["member", "list", "-w", f], None);
    }
    for f in ["simple", "json", "fields"] {
        same(ep, &["alarm", "list", "-w", f], None);
    }
    same(ep, &["endpoint", "hashkv", "-w", "json"], None);
    same(ep, &["endpoint", "hashkv", "-w", "table"], None);
    let grant = kvctl_ok(ep, &["lease", "grant", "600"], None);
    let lease = grant.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(grant, format!("lease {lease} granted with TTL(600s)\n"));
    assert_eq!(lease.len(), 16, "{grant}");
    kvctl_ok(
        ep,
        &["put", "leased", "x", &format!("--lease={lease}")],
        None,
    );
    same(ep, &["lease", "list"], None);
    same(ep, &["lease", "list", "-w", "json"], None);
    let ttl = kvctl_ok(ep, &["lease", "timetolive", &lease, "--keys"], None);
    assert!(
        ttl.starts_with(&format!("lease {lease} granted with TTL(600s), remaining(")),
        "{ttl}"
    );
    assert!(ttl.ends_with("s), attached keys([leased])\n"), "{ttl}");
    assert_eq!(
        kvctl_ok(ep, &["lease", "revoke", &lease], None),
        format!("lease {lease} revoked\n")
    );
    assert_eq!(kvctl_ok(ep, &["get", "leased"], None), "");
    let ttl = kvctl_ok(ep, &["lease", "timetolive", &lease], None);
    assert_eq!(ttl, format!("lease {lease} already expired\n"));

    // Endpoint health and status, on every member.
    let h = kvctl(all, &["endpoint", "health"], None);
    assert!(h.status.success(), "{}", text(&h.stderr));
    assert_eq!(
        text(&h.stderr)
            .matches("is healthy: successfully committed proposal: took = ")
            .count(),
        3
    );
    let h = kvctl_json(ep, &["endpoint", "health", "--cluster", "-w", "json"]);
    assert_eq!(h.as_array().unwrap().len(), 3, "{h}");
    assert!(
        h.as_array().unwrap().iter().all(|e| e["health"] == true),
        "{h}"
    );
    let st = kvctl_ok(all, &["endpoint", "status", "-w", "table"], None);
    assert!(
        st.contains("|    ENDPOINT     |        ID        | VERSION | DB SIZE | IS LEADER |"),
        "{st}"
    );
    assert_eq!(st.matches("|      true |").count(), 1, "one leader:\n{st}");
    let st = kvctl_json(all, &["endpoint", "status", "-w", "json"]);
    assert_eq!(st.as_array().unwrap().len(), 3, "{st}");
    assert_eq!(st[0]["Endpoint"], cluster.members[0].endpoint(), "{st}");

    // A learner added, listed and removed.
    let peer = format!("http://127.0.0.1:{}", free_port());
    let add = kvctl_ok(
        ep,
        &[
            "member",
            "add",
            "learner1",
            &format!("--peer-urls={peer}"),
            "--learner",
        ],
        None,
    );
    assert!(
        add.contains("ETCD_NAME=\"learner1\"\nETCD_INITIAL_CLUSTER=\""),
        "{add}"
    );
    assert!(add.contains(&format!("learner1={peer}")), "{add}");
    assert!(
        add.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"),
        "{add}"
    );
    let list = kvctl_ok(ep, &["member", "list"], None);
    let row = list
        .lines()
        .find(|l| l.contains(&peer))
        .unwrap_or_else(|| panic!("{list}"))
        .to_string();
    assert!(
        row.ends_with(&format!(", unstarted, , {peer}, , true")),
        "{row}"
    );
    let id = row.split(", ").next().unwrap();
    let rm = kvctl_ok(ep, &["member", "remove", id], None);
    assert!(
        rm.starts_with(&format!("Member {id:>16} removed from cluster ")),
        "{rm}"
    );
    same_error(ep, &["member", "remove", "xyz"], None);

    // Compaction.
    let rev = revision(ep);
    assert_eq!(
        kvctl_ok(ep, &["compaction", &rev.to_string()], None),
        format!("compacted revision {rev}\n")
    );
    let e = kvctl_err(ep, &["get", "k1", "--rev=2"], None);
    assert!(e.contains("required revision has been compacted"), "{e}");

    // Snapshot save from exactly one endpoint.
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    let snap_s = snap.to_str().unwrap();
    same_error(
        all,
        &[
            "snapshot",
            "save",
            dir.path().join("x.db").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(
        kvctl_ok(ep, &["snapshot", "save", snap_s], None),
        format!("Snapshot saved at {snap_s}\n")
    );
    assert!(!Path::new(&format!("{snap_s}.part")).exists());
    let before = kvctl_json(ep, &["get", "", "--from-key", "-w", "json"]);
    let keys = before["kvs"].as_array().unwrap().len();
    let status = kvctl_json(ep, &["snapshot", "status", snap_s, "-w", "json"]);
    assert_eq!(status["revision"], before["header"]["revision"], "{status}");
    assert_eq!(status["totalKey"].as_u64(), Some(keys as u64), "{status}");
    let table = kvctl_ok(ep, &["snapshot", "status", snap_s, "-w", "table"], None);
    assert!(
        table.contains("|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |"),
        "{table}"
    );

    // Damaged snapshots are refused and leave no data directory behind.
    let bytes = std::fs::read(&snap).unwrap();
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x55;
    let altered = dir.path().join("altered.db");
    std::fs::write(&altered, &flipped).unwrap();
    for (bad, why) in [(&truncated, "truncated"), (&altered, "checksum mismatch")] {
        let target = dir.path().join("never");
        let e = kvctl_err(
            ep,
            &[
                "snapshot",
                "restore",
                bad.to_str().unwrap(),
                "--data-dir",
                target.to_str().unwrap(),
            ],
            None,
        );
        assert!(e.starts_with("Error: ") && e.contains(why), "{e}");
        assert!(
            !target.exists(),
            "restore of a bad snapshot left {target:?}"
        );
        assert!(kvctl_err(ep, &["snapshot", "status", bad.to_str().unwrap()], None).contains(why));
    }

    // Restore into three fresh data directories of a new cluster and start it.
    let tmp = tempfile::tempdir().unwrap();
    let token = format!("restored-{}", free_port());
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let initial: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("r{i}=http://127.0.0.1:{p}"))
        .collect();
    let initial = initial.join(",");
    let mut members = Vec::new();
    for (i, (c, p)) in ports.iter().enumerate() {
        let mdir = tmp.path().join(format!("r{i}"));
        let data = mdir.join("data");
        let out = kvctl_ok(
            ep,
            &[
                "snapshot",
                "restore",
                snap_s,
                "--data-dir",
                data.to_str().unwrap(),
                "--name",
                &format!("r{i}"),
                "--initial-cluster",
                &initial,
                "--initial-cluster-token",
                &token,
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{p}"),
            ],
            None,
        );
        assert!(
            out.starts_with(&format!("Restored snapshot {snap_s} (revision ")),
            "{out}"
        );
        let again = kvctl_err(
            ep,
            &[
                "snapshot",
                "restore",
                snap_s,
                "--data-dir",
                data.to_str().unwrap(),
                "--name",
                &format!("r{i}"),
                "--initial-cluster",
                &initial,
            ],
            None,
        );
        assert!(again.contains("not empty"), "{again}");
        members.push(Member {
            name: format!("r{i}"),
            client_port: *c,
            peer_port: *p,
            dir: mdir,
            child: None,
            extra: Vec::new(),
            initial_cluster: initial.clone(),
            state: "new",
            token: token.clone(),
        });
    }
    let mut restored = Cluster {
        members,
        token,
        tmp,
    };
    for m in &mut restored.members {
        m.start();
    }
    restored.wait_ready(Duration::from_secs(30)).await;
    let new_eps = restored.endpoints();
    let after = kvctl_json(
        &restored.members[1].endpoint(),
        &["get", "", "--from-key", "-w", "json"],
    );
    assert_eq!(
        after["kvs"], before["kvs"],
        "the restored cluster has other keys"
    );
    assert_ne!(
        after["header"]["cluster_id"], before["header"]["cluster_id"],
        "restored cluster kept the cluster id"
    );
    // Each restored member publishes its client URLs once started.
    let rows: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (c, p))| {
            format!(", started, r{i}, http://127.0.0.1:{p}, http://127.0.0.1:{c}, false")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    for m in &restored.members {
        loop {
            let list = kvctl_ok(&m.endpoint(), &["member", "list"], None);
            assert_eq!(list.lines().count(), 3, "{list}");
            if rows.iter().all(|r| list.contains(r)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member list of {} lacks some of {rows:?}:\n{list}",
                m.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(
        kvctl_ok(&new_eps, &["put", "after-restore", "1"], None),
        "OK\n"
    );
    assert_eq!(kvctl_ok(&new_eps, &["get", "k1"], None), "k1\nv1\n");
    for m in &mut restored.members {
        m.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kvctl_watch_and_lease_keep_alive() {
    let cluster = Cluster::start(1).await;
    let ep = cluster.members[0].endpoint();
    let ep = ep.as_str();

    // The same events from a known revision, printed by etcdctl and kvctl.
    let from = (revision(ep) + 1).to_string();
    for f in ["simple", "json"] {
        let args = [
            "watch",
            "w",
            "--prefix",
            "--prev-kv",
            "--rev",
            &from,
            "-w",
            f,
        ];
        let mut k = Spawned::start(kvctl_cmd(ep, &args));
        let mut e = Spawned::start(etcdctl_cmd(ep, &args));
        if f == "simple" {
            kvctl_ok(ep, &["put", "w1", "a"], None);
            kvctl_ok(ep, &["put", "w1", "b"], None);
            kvctl_ok(ep, &["del", "w1"], None);
        }
        let pat = if f == "simple" {
            "DELETE\nw1\nb\nw1\n\n"
        } else {
            "\"type\":1"
        };
        let kout = k.wait_for(pat, Duration::from_secs(10));
        e.wait_for(pat, Duration::from_secs(10));
        let (eout, _) = e.stop();
        let (kout2, _) = k.stop();
        assert_eq!(
            kout2, eout,
            "watch -w {f}: kvctl prints otherwise than etcdctl"
        );
        if f == "simple" {
            assert_eq!(kout, "PUT\nw1\na\nPUT\nw1\na\nw1\nb\nDELETE\nw1\nb\nw1\n\n");
        }
    }

    // Interactive: watch and progress lines from stdin.
    let now = revision(ep);
    let mut k = Spawned::start(kvctl_cmd(ep, &["watch", "-i"]));
    k.send(&format!("watch iw --rev {}\n", now + 1));
    k.send("bogus\n");
    k.send("progress\n");
    k.wait_for("progress notify: ", Duration::from_secs(10));
    kvctl_ok(ep, &["put", "iw", "x"], None);
    k.wait_for("PUT\niw\nx\n", Duration::from_secs(10));
    let (_, err) = k.stop();
    assert!(
        err.contains("Invalid command bogus (only support watch)"),
        "{err}"
    );

    // A command run per event.
    let now = revision(ep);
    let script = "echo \"$ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY=$ETCD_WATCH_VALUE\"";
    let mut k = Spawned::start(kvctl_cmd(
        ep,
        &[
            "watch",
            "ex",
            "--rev",
            &(now + 1).to_string(),
            "--",
            "sh",
            "-c",
            script,
        ],
    ));
    kvctl_ok(ep, &["put", "ex", "v1"], None);
    k.wait_for("\"PUT\" \"ex\"=\"v1\"\n", Duration::from_secs(10));
    drop(k);

    // A watch from a compacted revision is canceled as etcdctl reports it.
    kvctl_ok(ep, &["compaction", &revision(ep).to_string()], None);
    let (kcode, _, kerr) =
        Spawned::start(kvctl_cmd(ep, &["watch", "w1", "--rev", "1"])).exit(Duration::from_secs(15));
    let (ecode, _, eerr) = Spawned::start(etcdctl_cmd(ep, &["watch", "w1", "--rev", "1"]))
        .exit(Duration::from_secs(15));
    assert_eq!(kcode, Some(5), "{kerr}");
    assert_eq!(kcode, ecode);
    assert_eq!(error_lines(kerr.as_bytes()), error_lines(eerr.as_bytes()));

    // Keep-alive keeps a short lease (and its key) alive, then reports the revoked lease.
    let grant = kvctl_ok(ep, &["lease", "grant", "2"], None);
    let lease = grant.split_whitespace().nth(1).unwrap().to_string();
    kvctl_ok(ep, &["put", "ka", "v", &format!("--lease={lease}")], None);
    let mut k = Spawned::start(kvctl_cmd(ep, &["lease", "keep-alive", &lease]));
    let line = format!("lease {lease} keepalived with TTL(2)\n");
    k.wait_for(&line, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        kvctl_ok(ep, &["get", "ka"], None),
        "ka\nv\n",
        "the kept-alive lease expired"
    );
    assert_eq!(
        kvctl_ok(ep, &["lease", "keep-alive", "--once", &lease], None),
        line
    );
    kvctl_ok(ep, &["lease", "revoke", &lease], None);
    let (code, out, err) = k.exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.matches(&line).count() >= 3, "{out}");
    assert!(
        out.ends_with(&format!("lease {lease} expired or revoked.\n")),
        "{out}"
    );
    same_error(ep, &["lease", "keep-alive", "--once", &lease], None);
}

#[test]
fn kvctl_unreachable_and_bad_arguments() {
    // Nothing listens: the dial fails within --dial-timeout, naming the endpoint.
    let dead = format!("127.0.0.1:{}", free_port());
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kvctl"))
        .args([
            &format!("--endpoints={dead}"),
            "--dial-timeout=1s",
            "get",
            "foo",
        ])
        .output()
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t.elapsed()
    );
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.starts_with("Error: context deadline exceeded") && err.contains(&dead),
        "{err}"
    );

    // Accepts connections but never answers: every command ends within the timeouts.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_ep = hole.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("s.db");
    let cases: Vec<Vec<String>> = vec![
        vec!["get".into(), "foo".into()],
        vec!["endpoint".into(), "health".into()],
        vec!["watch".into(), "foo".into()],
        vec![
            "snapshot".into(),
            "save".into(),
            snap.to_str().unwrap().into(),
        ],
        vec!["lease".into(), "keep-alive".into(), "1".into()],
    ];
    for args in &cases {
        let t = Instant::now();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvctl"));
        cmd.args([
            &format!("--endpoints={hole_ep},{dead}"),
            "--dial-timeout=1s",
            "--command-timeout=1s",
        ])
        .args(args);
        let (code, _, err) = Spawned::start(cmd).exit(Duration::from_secs(10));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{args:?} took {:?}",
            t.elapsed()
        );
        assert!(code.is_some_and(|c| c != 0), "{args:?}: {err}");
        assert!(
            err.contains("context deadline exceeded") || err.contains("snapshot must be requested"),
            "{args:?}: {err}"
        );
    }
    assert!(!snap.exists() && !dir.path().join("s.db.part").exists());
    let (code, _, err) = Spawned::start({
        let mut c = Command::new(env!("CARGO_BIN_EXE_kvctl"));
        c.args([
            &format!("--endpoints={hole_ep}"),
            "--command-timeout=1s",
            "snapshot",
            "save",
            snap.to_str().unwrap(),
        ]);
        c
    })
    .exit(Duration::from_secs(10));
    assert_eq!(code, Some(5), "{err}");
    assert!(!snap.exists() && !dir.path().join("s.db.part").exists());

    // Arguments are checked as etcdctl checks them (before any request).
    for args in [
        &["get"][..],
        &["get", "a", "--prefix", "--from-key"],
        &["get", "a", "b", "--prefix"],
        &["get", "a", "--consistency=x"],
        &["get", "a", "--sort-by=up"],
        &["put"],
        &["put", "a", "b", "--lease=zz"],
        &["put", "a", "b", "--ignore-value"],
        &["del"],
        &["lease", "grant", "abc"],
        &["lease", "revoke", "zz"],
        &["lease", "keep-alive"],
        &["member", "remove", "xyz"],
        &["member", "add", "x"],
        &["member", "add", "x", "http://a:1"],
        &["compaction"],
        &["move-leader"],
        &["watch"],
        &["watch", "a", "b", "--prefix"],
        &["txn", "extra"],
        &["snapshot", "status"],
        &["get", "a", "-w", "bogus"],
    ] {
        same_error(&dead, args, None);
    }
    same_error(&dead, &["txn"], Some("c(\"a\") = \"x\"\n\n\n\n"));
    let e = kvctl_err(&dead, &["txn"], Some("value(\"a\") ~ \"b\"\n\n\n\n"));
    assert!(e.starts_with("Error: invalid txn compare request: "), "{e}");
    same_error(
        &format!("{dead},{hole_ep}"),
        &["snapshot", "save", snap.to_str().unwrap()],
        None,
    );
    drop(hole);
}

/// `kvctl snapshot restore` from object storage (a `file://` URI to a zstd object, as the
/// operator's backups are stored): a wrong checksum is refused (exit 7) before the data
/// directory is touched; `--only-for` and `--once` make it safe as an init container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kvctl_restores_from_object_storage_once() {
    use sha2::Digest;
    let mut cluster = Cluster::start(1).await;
    let ep = cluster.endpoints();
    for i in 0..20 {
        kvctl_ok(&ep, &["put", &format!("o{i}"), "v"], None);
    }
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("s.snap");
    kvctl_ok(&ep, &["snapshot", "save", snap.to_str().unwrap()], None);
    cluster.members[0].kill();
    let store = tmp.path().join("store/db/demo");
    std::fs::create_dir_all(&store).unwrap();
    let packed = zstd::encode_all(&std::fs::read(&snap).unwrap()[..], 3).unwrap();
    let object = store.join("b1.snap.zst");
    std::fs::write(&object, &packed).unwrap();
    let uri = format!("file://{}", object.display());
    let sha = hex::encode(sha2::Sha256::digest(&packed));

    let (c, p) = (free_port(), free_port());
    let mdir = tmp.path().join("r0");
    let data = mdir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("old"), b"old member data").unwrap();
    let initial = format!("r0=http://127.0.0.1:{p}");
    let restore = |sha: &str, only: &str| {
        kvctl(
            &ep,
            &[
                "snapshot",
                "restore",
                &uri,
                "--sha256",
                sha,
                "--data-dir",
                data.to_str().unwrap(),
                "--replace-data-dir",
                "--once",
                "req-1",
                "--only-for",
                only,
                "--name",
                "r0",
                "--initial-cluster",
                &initial,
                "--initial-cluster-token",
                "restored-1",
            ],
            None,
        )
    };
    let bad = restore(&"0".repeat(64), "r0");
    assert_eq!(bad.status.code(), Some(7), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("refusing to restore a damaged backup"));
    assert!(
        data.join("old").exists(),
        "a refused restore touched the data dir"
    );
    let other = restore(&sha, "r1");
    assert!(other.status.success());
    assert!(text(&other.stdout).contains("Nothing to restore for r0"));
    assert!(data.join("old").exists());
    let ok = restore(&sha, "r0");
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(!data.join("old").exists(), "the old data was replaced");
    let again = restore(&sha, "r0");
    assert!(text(&again.stdout).contains("already holds restore req-1"));

    let mut restored = Cluster {
        members: vec![Member {
            name: "r0".into(),
            client_port: c,
            peer_port: p,
            dir: mdir,
            child: None,
            extra: Vec::new(),
            initial_cluster: initial.clone(),
            state: "new",
            token: "restored-1".into(),
        }],
        token: "restored-1".into(),
        tmp,
    };
    restored.members[0].start();
    restored.wait_ready(Duration::from_secs(30)).await;
    let got = kvctl_ok(
        &restored.endpoints(),
        &["get", "o", "--prefix", "--count-only", "-w", "json"],
        None,
    );
    assert!(got.contains("\"count\":20"), "{got}");

    // A member added later gets the restored data (as a Raft snapshot: the restored member's
    // log does not hold it).
    let mut joiner = restored.new_joiner("r1");
    kvctl_ok(
        &restored.endpoints(),
        &["member", "add", "r1", "--peer-urls", &joiner.peer_url()],
        None,
    );
    joiner.start();
    restored.members.push(joiner);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = kvctl(
            &restored.members[1].endpoint(),
            &[
                "get",
                "o",
                "--prefix",
                "--count-only",
                "-w",
                "json",
                "--consistency",
                "s",
            ],
            None,
        );
        if text(&got.stdout).contains("\"count\":20") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the added member never got the restored data: {}{}",
            text(&got.stdout),
            text(&got.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
