//! The real `etcdctl` (3.4) against a 3-member cluster of real `kvstore` processes, with
//! its printed output checked: KV commands and their flags (`--prefix`, `--rev`, `--limit`,
//! `--keys-only`, `--sort-by`/`--order`, `--from-key`, `-w json`), `del`, interactive
//! `txn` on stdin, `compaction`, `alarm list`, `snapshot save`; `member list` in every
//! output format, `endpoint health`/`status` (with and without `--cluster`); adding a
//! learner, starting it, promoting and removing it; and a killed member seen unhealthy
//! while the rest keep serving writes.

use std::collections::BTreeSet;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{Cluster, etcdctl, etcdctl_ok};

/// Standard base64 (with padding), as etcdctl's JSON printer encodes bytes.
fn b64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Run etcdctl, asserting success, and parse its stdout as JSON.
fn etcdctl_json(endpoints: &str, args: &[&str]) -> Value {
    let out = etcdctl_ok(endpoints, args, None);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("etcdctl {args:?}: bad JSON ({e}): {out}"))
}

/// Run etcdctl expecting failure; returns stderr.
fn etcdctl_err(endpoints: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = etcdctl(endpoints, args, stdin);
    assert!(
        !out.status.success(),
        "etcdctl {args:?} should have failed\nstdout: {}\nstderr: {}",
        stdout_of(&out),
        stderr_of(&out)
    );
    stderr_of(&out)
}

/// `kvs[].key` of a `get -w json` answer, as printed (base64; compare with `b64`).
fn json_keys(v: &Value) -> Vec<String> {
    v["kvs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|kv| kv["key"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// One row of plain `member list` output.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MemberRow {
    id: String,
    status: String,
    name: String,
    peer_urls: String,
    client_urls: String,
    learner: String,
}

fn parse_member_list(out: &str) -> Vec<MemberRow> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            assert_eq!(f.len(), 6, "unexpected member list line: {l:?}");
            MemberRow {
                id: f[0].to_string(),
                status: f[1].to_string(),
                name: f[2].to_string(),
                peer_urls: f[3].to_string(),
                client_urls: f[4].to_string(),
                learner: f[5].to_string(),
            }
        })
        .collect()
}

/// Rows of an etcdctl `-w table` output (cells trimmed), header row included first.
fn parse_table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_txn_compaction_snapshot() {
    let cluster = Cluster::start(3).await;
    let ep = cluster.endpoints();
    let ep = ep.as_str();

    // put / get: plain output is the key line then the value line.
    assert_eq!(etcdctl_ok(ep, &["put", "foo", "bar"], None), "OK\n");
    assert_eq!(etcdctl_ok(ep, &["get", "foo"], None), "foo\nbar\n");
    let j = etcdctl_json(ep, &["get", "foo", "-w", "json"]);
    let rev_bar = j["header"]["revision"].as_i64().unwrap();
    assert!(rev_bar >= 2, "{j}");
    assert_eq!(j["kvs"][0]["mod_revision"].as_i64(), Some(rev_bar), "{j}");
    assert_eq!(
        j["kvs"][0]["create_revision"].as_i64(),
        Some(rev_bar),
        "{j}"
    );
    assert_eq!(j["kvs"][0]["version"].as_i64(), Some(1), "{j}");
    assert_eq!(j["kvs"][0]["key"], b64(b"foo"), "{j}");
    assert_eq!(j["kvs"][0]["value"], b64(b"bar"), "{j}");
    assert_eq!(j["count"].as_i64(), Some(1), "{j}");
    assert!(j["header"]["cluster_id"].as_u64().unwrap() != 0, "{j}");
    assert!(j["header"]["member_id"].as_u64().unwrap() != 0, "{j}");
    assert!(j["header"]["raft_term"].as_u64().unwrap() >= 1, "{j}");

    // A value read from stdin, then the historical one by --rev.
    assert_eq!(etcdctl_ok(ep, &["put", "foo"], Some("baz")), "OK\n");
    assert_eq!(etcdctl_ok(ep, &["get", "foo"], None), "foo\nbaz\n");
    let rev_baz = rev_bar + 1;
    assert_eq!(
        etcdctl_ok(ep, &["get", "foo", &format!("--rev={rev_bar}")], None),
        "foo\nbar\n"
    );
    assert_eq!(
        etcdctl_ok(ep, &["get", "foo", &format!("--rev={rev_baz}")], None),
        "foo\nbaz\n"
    );
    let j = etcdctl_json(ep, &["get", "foo", "-w", "json"]);
    assert_eq!(j["kvs"][0]["version"].as_i64(), Some(2), "{j}");
    assert_eq!(j["kvs"][0]["mod_revision"].as_i64(), Some(rev_baz), "{j}");
    assert_eq!(
        j["kvs"][0]["create_revision"].as_i64(),
        Some(rev_bar),
        "{j}"
    );
    // A missing key prints nothing; in JSON it has neither kvs nor count.
    assert_eq!(etcdctl_ok(ep, &["get", "nothing"], None), "");
    let j = etcdctl_json(ep, &["get", "nothing", "-w", "json"]);
    assert!(j.get("kvs").is_none() && j.get("count").is_none(), "{j}");
    assert_eq!(j["header"]["revision"].as_i64(), Some(rev_baz), "{j}");

    // --prefix, --limit, --keys-only.
    for i in 1..=3 {
        assert_eq!(
            etcdctl_ok(ep, &["put", &format!("p/{i}"), &format!("v{i}")], None),
            "OK\n"
        );
    }
    assert_eq!(
        etcdctl_ok(ep, &["get", "p/", "--prefix"], None),
        "p/1\nv1\np/2\nv2\np/3\nv3\n"
    );
    assert_eq!(
        etcdctl_ok(ep, &["get", "p/", "--prefix", "--limit=2"], None),
        "p/1\nv1\np/2\nv2\n"
    );
    let j = etcdctl_json(ep, &["get", "p/", "--prefix", "--limit=2", "-w", "json"]);
    assert_eq!(json_keys(&j), [b64(b"p/1"), b64(b"p/2")], "{j}");
    assert_eq!(j["count"].as_i64(), Some(3), "{j}");
    assert_eq!(j["more"].as_bool(), Some(true), "{j}");
    assert_eq!(j["header"]["revision"].as_i64(), Some(rev_baz + 3), "{j}");
    let j = etcdctl_json(ep, &["get", "p/", "--prefix", "-w", "json"]);
    assert_eq!(
        json_keys(&j),
        [b64(b"p/1"), b64(b"p/2"), b64(b"p/3")],
        "{j}"
    );
    assert_eq!(j["count"].as_i64(), Some(3), "{j}");
    assert!(j.get("more").is_none() || j["more"] == false, "{j}");
    // --keys-only prints each key followed by an empty value line.
    assert_eq!(
        etcdctl_ok(ep, &["get", "p/", "--prefix", "--keys-only"], None),
        "p/1\n\np/2\n\np/3\n\n"
    );

    // Sorting: s/a is modified last so it is the newest by MODIFY.
    for k in ["s/a", "s/b", "s/c"] {
        etcdctl_ok(ep, &["put", k, "1"], None);
    }
    etcdctl_ok(ep, &["put", "s/a", "2"], None);
    assert_eq!(
        etcdctl_ok(
            ep,
            &[
                "get",
                "s/",
                "--prefix",
                "--sort-by=MODIFY",
                "--order=DESCEND"
            ],
            None
        ),
        "s/a\n2\ns/c\n1\ns/b\n1\n"
    );
    assert_eq!(
        etcdctl_ok(
            ep,
            &[
                "get",
                "s/",
                "--prefix",
                "--sort-by=MODIFY",
                "--order=ASCEND"
            ],
            None
        ),
        "s/b\n1\ns/c\n1\ns/a\n2\n"
    );
    assert_eq!(
        etcdctl_ok(
            ep,
            &["get", "s/", "--prefix", "--sort-by=KEY", "--order=DESCEND"],
            None
        ),
        "s/c\n1\ns/b\n1\ns/a\n2\n"
    );
    assert_eq!(
        etcdctl_ok(
            ep,
            &[
                "get",
                "s/",
                "--prefix",
                "--sort-by=VERSION",
                "--order=DESCEND",
                "--limit=1"
            ],
            None
        ),
        "s/a\n2\n"
    );

    // --from-key: every key >= the given one, in key order.
    assert_eq!(
        etcdctl_ok(ep, &["get", "--from-key", "p/3", "--keys-only"], None),
        "p/3\n\ns/a\n\ns/b\n\ns/c\n\n"
    );
    assert_eq!(
        etcdctl_ok(ep, &["get", "--from-key", "", "--keys-only"], None),
        "foo\n\np/1\n\np/2\n\np/3\n\ns/a\n\ns/b\n\ns/c\n\n"
    );
    let j = etcdctl_json(ep, &["get", "--from-key", "s/b", "-w", "json"]);
    assert_eq!(json_keys(&j), [b64(b"s/b"), b64(b"s/c")], "{j}");
    assert_eq!(j["count"].as_i64(), Some(2), "{j}");

    // del prints the number of deleted keys.
    assert_eq!(etcdctl_ok(ep, &["del", "p/1"], None), "1\n");
    assert_eq!(etcdctl_ok(ep, &["del", "p/1"], None), "0\n");
    assert_eq!(etcdctl_ok(ep, &["del", "p/", "--prefix"], None), "2\n");
    assert_eq!(etcdctl_ok(ep, &["get", "p/", "--prefix"], None), "");
    assert_eq!(etcdctl_ok(ep, &["put", "x", "xv"], None), "OK\n");
    assert_eq!(
        etcdctl_ok(ep, &["del", "x", "--prev-kv"], None),
        "1\nx\nxv\n"
    );
    assert_eq!(etcdctl_ok(ep, &["get", "x"], None), "");
    assert_eq!(
        etcdctl_ok(ep, &["del", "s/", "--prefix", "--prev-kv"], None),
        "3\ns/a\n2\ns/b\n1\ns/c\n1\n"
    );

    // txn from stdin: compares, blank line, success ops, blank line, failure ops, blank line.
    etcdctl_ok(ep, &["put", "t1", "a"], None);
    let out = etcdctl_ok(
        ep,
        &["txn"],
        Some("value(\"t1\") = \"a\"\n\nput t2 ok\nget t1\n\nput t3 fail\n\n"),
    );
    assert_eq!(out, "SUCCESS\n\nOK\n\nt1\na\n");
    let out = etcdctl_ok(
        ep,
        &["txn"],
        Some("value(\"t1\") = \"zzz\"\n\nput t2 ok2\n\nput t3 fail\nget t1\n\n"),
    );
    assert_eq!(out, "FAILURE\n\nOK\n\nt1\na\n");
    assert_eq!(
        etcdctl_ok(ep, &["get", "t", "--prefix"], None),
        "t1\na\nt2\nok\nt3\nfail\n"
    );
    // Several compares (all must hold), a delete, and the JSON form.
    let t1 = etcdctl_json(ep, &["get", "t1", "-w", "json"]);
    let t1_mod = t1["kvs"][0]["mod_revision"].as_i64().unwrap();
    let input = format!(
        "mod(\"t1\") = \"{t1_mod}\"\ncreate(\"t1\") > \"0\"\nversion(\"t1\") = \"1\"\nvalue(\"t2\") != \"x\"\n\ndel t2\n\nput t9 never\n\n"
    );
    let j: Value =
        serde_json::from_str(&etcdctl_ok(ep, &["txn", "-w", "json"], Some(&input))).unwrap();
    assert_eq!(j["succeeded"].as_bool(), Some(true), "{j}");
    assert_eq!(
        j["responses"][0]["Response"]["ResponseDeleteRange"]["deleted"].as_i64(),
        Some(1),
        "{j}"
    );
    let txn_rev = j["header"]["revision"].as_i64().unwrap();
    // The failure branch never ran, and a failed compare on a missing key takes it.
    assert_eq!(etcdctl_ok(ep, &["get", "t2"], None), "");
    assert_eq!(etcdctl_ok(ep, &["get", "t9"], None), "");
    let out = etcdctl_ok(
        ep,
        &["txn"],
        Some("version(\"t2\") > \"0\"\n\nput t9 never\n\ndel t1\n\n"),
    );
    assert_eq!(out, "FAILURE\n\n1\n");
    assert_eq!(
        etcdctl_ok(ep, &["get", "t", "--prefix", "--keys-only"], None),
        "t3\n\n"
    );

    // compaction: older revisions are gone, the compacted one and newer remain.
    assert_eq!(
        etcdctl_ok(ep, &["compaction", &txn_rev.to_string()], None),
        format!("compacted revision {txn_rev}\n")
    );
    let err = etcdctl_err(ep, &["get", "foo", &format!("--rev={rev_bar}")], None);
    // (The exact gRPC status text is checked in `bad_input`.)
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );
    let err = etcdctl_err(ep, &["get", "foo", &format!("--rev={}", txn_rev - 1)], None);
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );
    assert_eq!(
        etcdctl_ok(ep, &["get", "foo", &format!("--rev={txn_rev}")], None),
        "foo\nbaz\n"
    );
    assert_eq!(etcdctl_ok(ep, &["get", "foo"], None), "foo\nbaz\n");

    // alarm list: no alarms, no output.
    assert_eq!(etcdctl_ok(ep, &["alarm", "list"], None), "");

    // snapshot save needs exactly one endpoint; the file is a bbolt-sized image (size % 512
    // == 32) followed by the SHA-256 of everything before it.
    let path = cluster.tmp.path().join("snap.db");
    let path_s = path.display().to_string();
    let one = cluster.members[0].endpoint();
    let out = etcdctl_ok(&one, &["snapshot", "save", &path_s], None);
    assert_eq!(out, format!("Snapshot saved at {path_s}\n"));
    let data = std::fs::read(&path).unwrap();
    assert!(data.len() > 32, "snapshot too small: {} bytes", data.len());
    assert_eq!(
        data.len() % 512,
        32,
        "snapshot size {} is not 512*k + 32",
        data.len()
    );
    let (body, sum) = data.split_at(data.len() - 32);
    assert_eq!(
        Sha256::digest(body).as_slice(),
        sum,
        "snapshot trailer is not the SHA-256 of the body"
    );

    // Still serving after all that.
    assert_eq!(etcdctl_ok(ep, &["put", "end", "ok"], None), "OK\n");
    assert_eq!(etcdctl_ok(ep, &["get", "end"], None), "end\nok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_endpoints_and_learner() {
    let cluster = Cluster::start(3).await;
    let ep = cluster.endpoints();
    let ep = ep.as_str();

    // member list, plain. Each member publishes its client URLs once it is up (as in etcd,
    // a bootstrap member may briefly have its name but no client URL yet): wait for that.
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = parse_member_list(&etcdctl_ok(ep, &["member", "list"], None));
        if rows.iter().all(|r| !r.client_urls.is_empty()) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "members never published client URLs: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rows.len(), 3, "{rows:?}");
    for m in &cluster.members {
        let r = rows
            .iter()
            .find(|r| r.name == m.name)
            .unwrap_or_else(|| panic!("{} missing: {rows:?}", m.name));
        assert_eq!(r.status, "started", "{r:?}");
        assert_eq!(r.peer_urls, m.peer_url(), "{r:?}");
        assert_eq!(r.client_urls, m.client_url(), "{r:?}");
        assert_eq!(r.learner, "false", "{r:?}");
        assert!(u64::from_str_radix(&r.id, 16).unwrap() != 0, "{r:?}");
    }
    let ids: BTreeSet<String> = rows.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 3);

    // member list, table.
    let t = parse_table(&etcdctl_ok(ep, &["member", "list", "-w", "table"], None));
    assert_eq!(
        t[0],
        [
            "ID",
            "STATUS",
            "NAME",
            "PEER ADDRS",
            "CLIENT ADDRS",
            "IS LEARNER"
        ],
        "{t:?}"
    );
    assert_eq!(t.len(), 4, "{t:?}");
    for row in &t[1..] {
        let r = rows
            .iter()
            .find(|r| r.id == row[0])
            .unwrap_or_else(|| panic!("{row:?} not in {rows:?}"));
        assert_eq!(
            row[1..],
            [
                r.status.clone(),
                r.name.clone(),
                r.peer_urls.clone(),
                r.client_urls.clone(),
                r.learner.clone()
            ]
        );
    }

    // member list, JSON: decimal ids, same as the hex ones.
    let j = etcdctl_json(ep, &["member", "list", "-w", "json"]);
    let cluster_id = j["header"]["cluster_id"].as_u64().unwrap();
    assert_ne!(cluster_id, 0);
    let members = j["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{j}");
    let mut names = BTreeSet::new();
    for m in members {
        let id = format!("{:x}", m["ID"].as_u64().unwrap());
        assert!(ids.contains(&id), "{id} not in {ids:?}");
        let r = rows.iter().find(|r| r.id == id).unwrap();
        assert_eq!(m["name"], r.name.as_str(), "{m}");
        assert_eq!(m["peerURLs"], serde_json::json!([r.peer_urls]), "{m}");
        assert_eq!(m["clientURLs"], serde_json::json!([r.client_urls]), "{m}");
        assert!(
            m.get("isLearner").is_none() || m["isLearner"] == false,
            "{m}"
        );
        names.insert(m["name"].as_str().unwrap().to_string());
    }
    assert_eq!(
        names,
        BTreeSet::from(["m0".to_string(), "m1".to_string(), "m2".to_string()])
    );

    // endpoint health: each endpoint healthy (etcdctl 3.4 prints these on stderr).
    let out = etcdctl(ep, &["endpoint", "health"], None);
    let text = format!("{}{}", stdout_of(&out), stderr_of(&out));
    assert!(out.status.success(), "{text}");
    for m in &cluster.members {
        assert!(
            text.contains(&format!(
                "{} is healthy: successfully committed proposal",
                m.endpoint()
            )),
            "{} not healthy:\n{text}",
            m.endpoint()
        );
    }
    assert!(!text.contains("unhealthy"), "{text}");
    // --cluster: the endpoints come from member list, as client URLs.
    let out = etcdctl(
        &cluster.members[1].endpoint(),
        &["endpoint", "health", "--cluster"],
        None,
    );
    let text = format!("{}{}", stdout_of(&out), stderr_of(&out));
    assert!(out.status.success(), "{text}");
    for m in &cluster.members {
        assert!(
            text.contains(&format!(
                "{} is healthy: successfully committed proposal",
                m.client_url()
            )),
            "{} not healthy:\n{text}",
            m.client_url()
        );
    }

    // endpoint status -w json: one leader, all agree on it, member ids match member list.
    let j = etcdctl_json(ep, &["endpoint", "status", "-w", "json"]);
    let st = j.as_array().unwrap();
    assert_eq!(st.len(), 3, "{j}");
    let mut leaders = BTreeSet::new();
    let mut status_ids = BTreeSet::new();
    let mut n_self_leader = 0;
    for s in st {
        let ep_name = s["Endpoint"].as_str().unwrap();
        assert!(
            cluster.members.iter().any(|m| m.endpoint() == ep_name),
            "{s}"
        );
        let me = s["Status"]["header"]["member_id"].as_u64().unwrap();
        let leader = s["Status"]["leader"].as_u64().unwrap();
        assert_eq!(
            s["Status"]["header"]["cluster_id"].as_u64(),
            Some(cluster_id),
            "{s}"
        );
        assert!(s["Status"]["raftIndex"].as_u64().unwrap() > 0, "{s}");
        assert!(s["Status"]["raftTerm"].as_u64().unwrap() > 0, "{s}");
        assert!(s["Status"]["dbSize"].as_i64().unwrap() > 0, "{s}");
        assert!(!s["Status"]["version"].as_str().unwrap().is_empty(), "{s}");
        assert!(
            s["Status"].get("isLearner").is_none() || s["Status"]["isLearner"] == false,
            "{s}"
        );
        // This endpoint reports the id of the member it is.
        let mine = rows
            .iter()
            .find(|r| r.client_urls == format!("http://{ep_name}"))
            .unwrap();
        assert_eq!(format!("{me:x}"), mine.id, "{s}");
        status_ids.insert(format!("{me:x}"));
        leaders.insert(leader);
        if leader == me {
            n_self_leader += 1;
        }
    }
    assert_eq!(status_ids, ids);
    assert_eq!(leaders.len(), 1, "members disagree on the leader: {j}");
    assert_eq!(n_self_leader, 1, "exactly one member must be leader: {j}");
    assert!(ids.contains(&format!("{:x}", leaders.first().unwrap())));

    // endpoint status -w table over the given endpoints.
    let t = parse_table(&etcdctl_ok(
        ep,
        &["endpoint", "status", "-w", "table"],
        None,
    ));
    assert_eq!(
        t[0][..5],
        ["ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER"],
        "{t:?}"
    );
    assert_eq!(t.len(), 4, "{t:?}");
    assert_eq!(t[1..].iter().filter(|r| r[4] == "true").count(), 1, "{t:?}");
    assert_eq!(
        t[1..].iter().map(|r| r[1].clone()).collect::<BTreeSet<_>>(),
        ids,
        "{t:?}"
    );

    // alarm list: nothing.
    assert_eq!(etcdctl_ok(ep, &["alarm", "list"], None), "");

    // Add a learner, start it, promote it, remove it.
    etcdctl_ok(ep, &["put", "before-join", "v"], None);
    let mut joiner = cluster.new_joiner("m3");
    let peer = joiner.peer_url();
    let out = etcdctl_ok(
        ep,
        &[
            "member",
            "add",
            "m3",
            "--learner",
            &format!("--peer-urls={peer}"),
        ],
        None,
    );
    let lines: Vec<&str> = out.lines().collect();
    let first = lines[0];
    let new_id = first
        .strip_prefix("Member ")
        .and_then(|s| s.split(" added to cluster ").next())
        .unwrap_or_else(|| panic!("unexpected member add output: {out}"))
        .trim()
        .to_string();
    let new_id_num = u64::from_str_radix(&new_id, 16).unwrap();
    assert_eq!(
        first,
        format!("Member {new_id_num:16x} added to cluster {cluster_id:16x}"),
        "{out}"
    );
    assert!(!ids.contains(&new_id));
    assert!(lines.contains(&"ETCD_NAME=\"m3\""), "{out}");
    assert!(
        lines.contains(&format!("ETCD_INITIAL_ADVERTISE_PEER_URLS=\"{peer}\"").as_str()),
        "{out}"
    );
    assert!(
        lines.contains(&"ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{out}"
    );
    let ic = lines
        .iter()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER="))
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER: {out}"));
    let ic: BTreeSet<&str> = ic.trim_matches('"').split(',').collect();
    let mut expect: BTreeSet<String> = cluster
        .members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url()))
        .collect();
    expect.insert(format!("m3={peer}"));
    assert_eq!(
        ic,
        expect.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "{out}"
    );

    // Not started yet: no name, no client URL, a learner.
    let rows4 = parse_member_list(&etcdctl_ok(ep, &["member", "list"], None));
    assert_eq!(rows4.len(), 4, "{rows4:?}");
    let r = rows4.iter().find(|r| r.id == new_id).unwrap();
    assert_eq!(
        *r,
        MemberRow {
            id: new_id.clone(),
            status: "unstarted".into(),
            name: String::new(),
            peer_urls: peer.clone(),
            client_urls: String::new(),
            learner: "true".into(),
        }
    );
    let j = etcdctl_json(ep, &["member", "list", "-w", "json"]);
    let m = j["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["ID"].as_u64() == Some(new_id_num))
        .unwrap()
        .clone();
    assert_eq!(m["isLearner"].as_bool(), Some(true), "{m}");

    // Start it and wait until it has published its name and client URL.
    joiner.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows4 = parse_member_list(&etcdctl_ok(ep, &["member", "list"], None));
        let r = rows4.iter().find(|r| r.id == new_id).unwrap().clone();
        if r.status == "started" && r.name == "m3" {
            assert_eq!(r.client_urls, joiner.client_url(), "{r:?}");
            assert_eq!(r.learner, "true", "{r:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "learner never started: {r:?}\nlog:\n{}",
            joiner.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Promote, retrying while the learner is still catching up.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = etcdctl(ep, &["member", "promote", &new_id], None);
        if out.status.success() {
            assert_eq!(
                stdout_of(&out),
                format!("Member {new_id_num:16x} promoted in cluster {cluster_id:16x}\n")
            );
            break;
        }
        let err = stderr_of(&out);
        assert!(
            err.contains("can only promote a learner member which is in sync with leader"),
            "promote failed: {err}"
        );
        assert!(
            Instant::now() < deadline,
            "learner never got in sync: {err}\nlog:\n{}",
            joiner.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let j = etcdctl_json(ep, &["member", "list", "-w", "json"]);
    let members = j["members"].as_array().unwrap();
    assert_eq!(members.len(), 4, "{j}");
    let m = members
        .iter()
        .find(|m| m["ID"].as_u64() == Some(new_id_num))
        .unwrap();
    assert!(
        m.get("isLearner").is_none() || m["isLearner"] == false,
        "still a learner: {m}"
    );
    assert_eq!(m["name"], "m3", "{m}");
    let rows4 = parse_member_list(&etcdctl_ok(ep, &["member", "list"], None));
    assert!(
        rows4
            .iter()
            .all(|r| r.learner == "false" && r.status == "started"),
        "{rows4:?}"
    );

    // The new voter serves linearizable reads of data written before it joined.
    assert_eq!(
        etcdctl_ok(&joiner.endpoint(), &["get", "before-join"], None),
        "before-join\nv\n"
    );
    // ...and writes through it are seen elsewhere.
    assert_eq!(
        etcdctl_ok(&joiner.endpoint(), &["put", "via-m3", "w"], None),
        "OK\n"
    );
    assert_eq!(
        etcdctl_ok(&cluster.members[0].endpoint(), &["get", "via-m3"], None),
        "via-m3\nw\n"
    );

    // Remove it again.
    let out = etcdctl_ok(ep, &["member", "remove", &new_id], None);
    assert_eq!(
        out,
        format!("Member {new_id_num:16x} removed from cluster {cluster_id:16x}\n")
    );
    let mut rows3 = parse_member_list(&etcdctl_ok(ep, &["member", "list"], None));
    let mut rows_sorted = rows.clone();
    rows3.sort_by(|a, b| a.id.cmp(&b.id));
    rows_sorted.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(rows3, rows_sorted, "member list not back to the original 3");
    assert_eq!(etcdctl_ok(ep, &["put", "after-remove", "ok"], None), "OK\n");
    assert_eq!(
        etcdctl_ok(ep, &["get", "after-remove"], None),
        "after-remove\nok\n"
    );
    drop(joiner);

    // endpoint status --cluster -w table: endpoints from member list (client URLs).
    let out = etcdctl(
        &cluster.members[0].endpoint(),
        &["endpoint", "status", "--cluster", "-w", "table"],
        None,
    );
    assert!(
        out.status.success(),
        "endpoint status --cluster failed:\nstdout: {}\nstderr: {}",
        stdout_of(&out),
        stderr_of(&out)
    );
    let t = parse_table(&stdout_of(&out));
    assert_eq!(t.len(), 4, "{t:?}\nstderr: {}", stderr_of(&out));
    let urls: BTreeSet<String> = cluster.members.iter().map(|m| m.client_url()).collect();
    assert_eq!(
        t[1..].iter().map(|r| r[0].clone()).collect::<BTreeSet<_>>(),
        urls,
        "{t:?}"
    );
    assert_eq!(t[1..].iter().filter(|r| r[4] == "true").count(), 1, "{t:?}");
    assert_eq!(
        t[1..].iter().map(|r| r[1].clone()).collect::<BTreeSet<_>>(),
        ids,
        "{t:?}"
    );
    assert!(
        t[1..].iter().all(|r| r[5] == "false" && r[9].is_empty()),
        "{t:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_member_is_unhealthy_and_rest_serve() {
    let mut cluster = Cluster::start(3).await;
    let ep = cluster.endpoints();
    let ep = ep.as_str();
    assert_eq!(etcdctl_ok(ep, &["put", "k", "before"], None), "OK\n");

    // Kill a follower.
    let leader = cluster.leader().await;
    let dead = (leader + 1) % 3;
    cluster.members[dead].kill();
    let live: Vec<usize> = (0..3).filter(|&i| i != dead).collect();

    let out = etcdctl(ep, &["endpoint", "health"], None);
    let text = format!("{}{}", stdout_of(&out), stderr_of(&out));
    assert!(
        !out.status.success(),
        "endpoint health must fail with a dead member:\n{text}"
    );
    assert!(
        text.contains(&format!(
            "{} is unhealthy",
            cluster.members[dead].endpoint()
        )),
        "{text}"
    );
    assert!(
        !text.contains(&format!("{} is healthy", cluster.members[dead].endpoint())),
        "{text}"
    );
    assert!(text.contains("Error: unhealthy cluster"), "{text}");
    for &i in &live {
        assert!(
            text.contains(&format!(
                "{} is healthy: successfully committed proposal",
                cluster.members[i].endpoint()
            )),
            "{text}"
        );
    }

    // Writes through each remaining endpoint succeed and are read through the other.
    for (n, &i) in live.iter().enumerate() {
        let other = live[1 - n];
        let key = format!("after-{i}");
        assert_eq!(
            etcdctl_ok(&cluster.members[i].endpoint(), &["put", &key, "ok"], None),
            "OK\n"
        );
        assert_eq!(
            etcdctl_ok(&cluster.members[other].endpoint(), &["get", &key], None),
            format!("{key}\nok\n")
        );
    }
    let live_eps = live
        .iter()
        .map(|&i| cluster.members[i].endpoint())
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(etcdctl_ok(&live_eps, &["put", "k", "after"], None), "OK\n");
    assert_eq!(etcdctl_ok(&live_eps, &["get", "k"], None), "k\nafter\n");
    let out = etcdctl_ok(
        &live_eps,
        &["get", "after-", "--prefix", "--keys-only"],
        None,
    );
    assert_eq!(out.lines().filter(|l| !l.is_empty()).count(), 2, "{out}");

    // The dead member is still a member.
    let rows = parse_member_list(&etcdctl_ok(&live_eps, &["member", "list"], None));
    assert_eq!(rows.len(), 3, "{rows:?}");
}
