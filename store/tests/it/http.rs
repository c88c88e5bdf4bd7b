//! HTTP on the client port, driven by a plain HTTP client (`curl`) against 3-member clusters of
//! real `kvstore` processes: etcd's JSON gateway (every `/v3/...` path, checked in
//! grpc-gateway's encoding: original proto field names, base64 bytes, 64-bit integers as
//! strings, zero values omitted, streams as `{"result": ...}` lines, errors as
//! `{"error","code","message"}` with the HTTP status of the code), the plain-text
//! `GET /v3/kv/range?key=...` form, malformed request bodies, `/health`, `/livez`, `/readyz`
//! and `/version` (also after losing quorum), and `/metrics` parsed by `prometheus-parse`
//! against etcd's metric names and types.
//!
//! Mismatches are collected (`Checks`) so one run reports all of them; values later steps
//! depend on are asserted at once.

use std::collections::HashMap;
use std::fmt::Debug;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use prometheus_parse::{Sample, Scrape, Value as PromValue};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{Cluster, client, free_port};

const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const PROMOTE_VOTER: &str = "etcdserver: can only promote a learner member";

// ---------------------------------------------------------------------------------------------
// Helpers: checks, curl, base64, gateway JSON.

/// Collects mismatches, so that one run reports all of them.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(what());
        }
    }

    fn eq<T: PartialEq + Debug>(&mut self, what: &str, actual: T, expected: T) {
        if actual != expected {
            self.failures
                .push(format!("{what}: expected {expected:?}, got {actual:?}"));
        }
    }

    fn done(self) {
        assert!(
            self.failures.is_empty(),
            "{} check(s) failed:\n  - {}",
            self.failures.len(),
            self.failures.join("\n  - ")
        );
    }
}

/// One HTTP answer.
#[derive(Debug)]
struct Resp {
    status: u16,
    content_type: String,
    body: String,
}

impl Resp {
    /// The body as one JSON value.
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// The body as newline-separated JSON values (a streamed answer).
    fn json_lines(&self) -> Vec<Value> {
        self.body
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("line is not JSON ({e}): {l:?}"))
            })
            .collect()
    }
}

/// Run curl with `args`; the status and content type come from `--write-out`.
fn curl(args: &[&str]) -> Resp {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-w",
            "\n%{http_code} %{content_type}",
        ])
        .args(args)
        .output()
        .expect("failed to run curl");
    let text = String::from_utf8(out.stdout).expect("curl output is UTF-8");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}\nstdout: {text}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, tail) = text.rsplit_once('\n').expect("curl wrote the status line");
    let (code, content_type) = tail.split_once(' ').unwrap_or((tail, ""));
    Resp {
        status: code.parse().expect("numeric HTTP status"),
        content_type: content_type.to_string(),
        body: body.to_string(),
    }
}

fn get(base: &str, path: &str) -> Resp {
    curl(&[&format!("{base}{path}")])
}

fn post(base: &str, path: &str, body: &str) -> Resp {
    curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        body,
        &format!("{base}{path}"),
    ])
}

/// POST `body` (a JSON value) and assert 200 with a JSON object.
fn post_ok(base: &str, path: &str, body: Value) -> Value {
    let r = post(base, path, &body.to_string());
    assert_eq!(r.status, 200, "POST {path} {body}: {r:?}");
    assert!(
        r.content_type.starts_with("application/json"),
        "POST {path}: content type {:?}",
        r.content_type
    );
    let v = r.json();
    assert!(v.is_object(), "POST {path}: not an object: {v}");
    v
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (what grpc-gateway writes for `bytes`).
fn b64(data: impl AsRef<[u8]>) -> String {
    let data = data.as_ref();
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= n {
                out.push(B64[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decode standard base64 (padding required, as grpc-gateway writes it).
fn unb64(s: &str) -> Vec<u8> {
    assert!(
        s.len().is_multiple_of(4),
        "base64 length not a multiple of 4: {s:?}"
    );
    let mut out = Vec::new();
    for quad in s.as_bytes().chunks(4) {
        let mut v = 0u32;
        let mut pad = 0;
        for &c in quad {
            let d = if c == b'=' {
                pad += 1;
                0
            } else {
                assert_eq!(pad, 0, "base64 data after padding: {s:?}");
                B64.iter()
                    .position(|&x| x == c)
                    .unwrap_or_else(|| panic!("not base64: {s:?}")) as u32
            };
            v = (v << 6) | d;
        }
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

/// A `bytes` field: a base64 JSON string, decoded to text.
fn text(v: &Value) -> String {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("bytes field is not a base64 string: {v}"));
    String::from_utf8(unb64(s)).expect("UTF-8 value")
}

/// A 64-bit integer field: grpc-gateway writes it as a JSON string.
fn int(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("64-bit integer is not a JSON string: {v}"));
    s.parse()
        .unwrap_or_else(|e| panic!("64-bit integer string {s:?}: {e}"))
}

/// Same, unsigned (member and lease IDs, cluster ID).
fn uint(v: &Value) -> u64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("64-bit integer is not a JSON string: {v}"));
    s.parse()
        .unwrap_or_else(|e| panic!("64-bit integer string {s:?}: {e}"))
}

/// `header.revision` of a response.
fn rev(v: &Value) -> i64 {
    int(&v["header"]["revision"])
}

/// Check a response header: all four fields, as strings, non-zero.
fn check_header(c: &mut Checks, what: &str, v: &Value) {
    let h = &v["header"];
    for f in ["cluster_id", "member_id", "revision", "raft_term"] {
        c.check(
            h[f].as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|n| n > 0),
            || format!("{what}: header.{f} should be a non-zero integer string, header is {h}"),
        );
    }
}

/// Check a gateway error answer: HTTP status, `code`, and `error` = `message` = `msg`.
fn check_error(c: &mut Checks, what: &str, r: &Resp, http: u16, code: i64, msg: &str) {
    c.eq(&format!("{what}: HTTP status"), r.status, http);
    let Ok(v) = serde_json::from_str::<Value>(&r.body) else {
        c.failures
            .push(format!("{what}: error body is not JSON: {:?}", r.body));
        return;
    };
    c.eq(
        &format!("{what}: error body"),
        v,
        json!({"error": msg, "code": code, "message": msg}),
    );
}

// ---------------------------------------------------------------------------------------------
// The JSON gateway, the GET range form and malformed bodies.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_gateway_paths() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    // Requests go to a follower (writes are forwarded) unless a step says otherwise.
    let u = cluster.members[follower].client_url();
    let lu = cluster.members[leader].client_url();
    let mut c = Checks::default();
    let (rev1, compact_rev) = kv_txn_compaction(&mut c, &u, &lu);
    leases(&mut c, &u);
    let ids = members(&mut c, &cluster, &u, &lu);
    maintenance(&mut c, &u, &lu, ids[&format!("m{leader}")], compact_rev);
    watch(&mut c, &u, &lu);
    v3beta(&mut c, &u);
    get_range(&mut c, &u, rev1);
    malformed(&mut c, &u, &lu);
    c.done();
}

/// KV: put (prev_kv), range (count, more, limit, keys_only, count_only, revision),
/// deleterange, txn, and compaction with a read below it. Returns the first put's revision
/// and the compaction revision.
fn kv_txn_compaction(c: &mut Checks, u: &str, lu: &str) -> (i64, i64) {
    let p1 = post_ok(
        u,
        "/v3/kv/put",
        json!({"key": b64("foo"), "value": b64("bar")}),
    );
    check_header(c, "put", &p1);
    let rev1 = rev(&p1);
    c.check(p1.get("prev_kv").is_none(), || {
        format!("put without prev_kv: no prev_kv expected: {p1}")
    });
    let p2 = post_ok(
        u,
        "/v3/kv/put",
        json!({"key": b64("foo"), "value": b64("baz"), "prev_kv": true}),
    );
    c.eq("second put revision", rev(&p2), rev1 + 1);
    c.eq("prev_kv.value", text(&p2["prev_kv"]["value"]), "bar".into());
    c.eq("prev_kv.key", text(&p2["prev_kv"]["key"]), "foo".into());
    c.eq(
        "prev_kv.mod_revision",
        int(&p2["prev_kv"]["mod_revision"]),
        rev1,
    );
    c.eq("prev_kv.version", int(&p2["prev_kv"]["version"]), 1);
    for k in ["r/a", "r/b", "r/c"] {
        post_ok(
            u,
            "/v3/kv/put",
            json!({"key": b64(k), "value": b64(format!("v-{k}"))}),
        );
    }

    let r = post_ok(lu, "/v3/kv/range", json!({"key": b64("foo")}));
    check_header(c, "range", &r);
    c.eq("range count", int(&r["count"]), 1);
    c.check(r.get("more").is_none(), || {
        format!("range: more=false must be omitted: {r}")
    });
    let kv = &r["kvs"][0];
    c.eq("range key", text(&kv["key"]), "foo".into());
    c.eq("range value", text(&kv["value"]), "baz".into());
    c.eq("range create_revision", int(&kv["create_revision"]), rev1);
    c.eq("range mod_revision", int(&kv["mod_revision"]), rev1 + 1);
    c.eq("range version", int(&kv["version"]), 2);
    c.check(kv.get("lease").is_none(), || {
        format!("range: lease 0 must be omitted: {kv}")
    });

    let r = post_ok(
        u,
        "/v3/kv/range",
        json!({"key": b64("r/"), "range_end": b64("r0"), "limit": "2"}),
    );
    c.eq("limited range count", int(&r["count"]), 3);
    c.eq("limited range more", r["more"].clone(), json!(true));
    let keys: Vec<String> = r["kvs"]
        .as_array()
        .expect("kvs")
        .iter()
        .map(|kv| text(&kv["key"]))
        .collect();
    c.eq(
        "limited range keys",
        keys,
        vec!["r/a".to_string(), "r/b".into()],
    );

    let r = post_ok(
        u,
        "/v3/kv/range",
        json!({"key": b64("r/"), "range_end": b64("r0"), "keys_only": true}),
    );
    c.eq("keys_only kvs", r["kvs"].as_array().map(Vec::len), Some(3));
    c.check(
        r["kvs"]
            .as_array()
            .is_some_and(|a| a.iter().all(|kv| kv.get("value").is_none())),
        || format!("keys_only: values must be absent: {r}"),
    );
    let r = post_ok(
        u,
        "/v3/kv/range",
        json!({"key": b64("r/"), "range_end": b64("r0"), "count_only": true}),
    );
    c.eq("count_only count", int(&r["count"]), 3);
    c.check(r.get("kvs").is_none(), || {
        format!("count_only: kvs must be absent: {r}")
    });
    let r = post_ok(
        u,
        "/v3/kv/range",
        json!({"key": b64("foo"), "revision": rev1.to_string()}),
    );
    c.eq("range at rev1", text(&r["kvs"][0]["value"]), "bar".into());
    let r = post_ok(u, "/v3/kv/range", json!({"key": b64("nothing-here")}));
    c.check(r.get("kvs").is_none() && r.get("count").is_none(), || {
        format!("range of a missing key: kvs and count must be omitted: {r}")
    });

    // --- deleterange with prev_kv.
    let d = post_ok(
        u,
        "/v3/kv/deleterange",
        json!({"key": b64("r/c"), "prev_kv": true}),
    );
    check_header(c, "deleterange", &d);
    c.eq("deleted", int(&d["deleted"]), 1);
    c.eq(
        "deleted prev_kvs key",
        text(&d["prev_kvs"][0]["key"]),
        "r/c".into(),
    );
    c.eq(
        "deleted prev_kvs value",
        text(&d["prev_kvs"][0]["value"]),
        "v-r/c".into(),
    );

    // --- txn: a succeeding compare (range + put), then a failing one (delete).
    let t = post_ok(
        u,
        "/v3/kv/txn",
        json!({
            "compare": [{"key": b64("foo"), "target": "VALUE", "result": "EQUAL", "value": b64("baz")}],
            "success": [
                {"request_range": {"key": b64("foo")}},
                {"request_put": {"key": b64("foo"), "value": b64("qux"), "prev_kv": true}}
            ],
            "failure": [{"request_put": {"key": b64("foo"), "value": b64("wrong")}}]
        }),
    );
    check_header(c, "txn", &t);
    c.eq("txn succeeded", t["succeeded"].clone(), json!(true));
    c.eq(
        "txn responses",
        t["responses"].as_array().map(Vec::len),
        Some(2),
    );
    c.eq(
        "txn range value",
        text(&t["responses"][0]["response_range"]["kvs"][0]["value"]),
        "baz".into(),
    );
    c.eq(
        "txn put prev_kv value",
        text(&t["responses"][1]["response_put"]["prev_kv"]["value"]),
        "baz".into(),
    );
    let t = post_ok(
        u,
        "/v3/kv/txn",
        json!({
            "compare": [{"key": b64("foo"), "target": "VERSION", "result": "GREATER", "version": "100"}],
            "success": [{"request_put": {"key": b64("foo"), "value": b64("wrong")}}],
            "failure": [{"request_delete_range": {"key": b64("r/b")}}]
        }),
    );
    c.check(t.get("succeeded").is_none(), || {
        format!("failed txn: succeeded=false must be omitted: {t}")
    });
    c.eq(
        "failed txn delete",
        int(&t["responses"][0]["response_delete_range"]["deleted"]),
        1,
    );
    let r = post_ok(u, "/v3/kv/range", json!({"key": b64("foo")}));
    c.eq(
        "value after txns",
        text(&r["kvs"][0]["value"]),
        "qux".into(),
    );

    // --- compaction, then a read below it.
    let compact_rev = rev(&r);
    let cr = post_ok(
        u,
        "/v3/kv/compaction",
        json!({"revision": compact_rev.to_string(), "physical": true}),
    );
    check_header(c, "compaction", &cr);
    for (who, url) in [("follower", u), ("leader", lu)] {
        let r = post(
            url,
            "/v3/kv/range",
            &json!({"key": b64("foo"), "revision": rev1.to_string()}).to_string(),
        );
        check_error(
            c,
            &format!("range at compacted rev ({who})"),
            &r,
            400,
            11,
            COMPACTED,
        );
        c.check(r.content_type.starts_with("application/json"), || {
            format!("compacted error content type: {:?}", r.content_type)
        });
    }
    (rev1, compact_rev)
}

/// Leases: grant, put with lease, timetolive with keys, leases, keepalive, revoke.
fn leases(c: &mut Checks, u: &str) {
    let g = post_ok(u, "/v3/lease/grant", json!({"TTL": "60"}));
    check_header(c, "lease grant", &g);
    let lease = uint(&g["ID"]);
    assert!(lease != 0, "lease grant: no ID: {g}");
    c.eq("granted TTL", int(&g["TTL"]), 60);
    post_ok(
        u,
        "/v3/kv/put",
        json!({"key": b64("leased"), "value": b64("x"), "lease": lease.to_string()}),
    );
    let r = post_ok(u, "/v3/kv/range", json!({"key": b64("leased")}));
    c.eq("kv lease", uint(&r["kvs"][0]["lease"]), lease);
    let ttl = post_ok(
        u,
        "/v3/lease/timetolive",
        json!({"ID": lease.to_string(), "keys": true}),
    );
    check_header(c, "timetolive", &ttl);
    c.eq("timetolive ID", uint(&ttl["ID"]), lease);
    c.eq("timetolive grantedTTL", int(&ttl["grantedTTL"]), 60);
    let left = int(&ttl["TTL"]);
    c.check((1..=60).contains(&left), || {
        format!("timetolive TTL {left} not in 1..=60")
    });
    let keys: Vec<String> = ttl["keys"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    c.eq("timetolive keys", keys, vec!["leased".to_string()]);
    let ls = post_ok(u, "/v3/lease/leases", json!({}));
    check_header(c, "leases", &ls);
    c.check(
        ls["leases"]
            .as_array()
            .is_some_and(|a| a.iter().any(|l| l["ID"] == json!(lease.to_string()))),
        || format!("leases: {lease} not listed: {ls}"),
    );
    let ka = post(
        u,
        "/v3/lease/keepalive",
        &json!({"ID": lease.to_string()}).to_string(),
    );
    c.eq("keepalive HTTP status", ka.status, 200);
    let lines = ka.json_lines();
    c.eq("keepalive lines", lines.len(), 1);
    if let Some(l) = lines.first() {
        let res = &l["result"];
        c.eq("keepalive ID", uint(&res["ID"]), lease);
        c.eq("keepalive TTL", int(&res["TTL"]), 60);
        check_header(c, "keepalive", res);
    }
    let rv = post_ok(u, "/v3/lease/revoke", json!({"ID": lease.to_string()}));
    check_header(c, "revoke", &rv);
    let r = post_ok(u, "/v3/kv/range", json!({"key": b64("leased")}));
    c.check(r.get("kvs").is_none(), || {
        format!("key of a revoked lease still there: {r}")
    });
    let ttl = post_ok(u, "/v3/lease/timetolive", json!({"ID": lease.to_string()}));
    c.eq("timetolive after revoke", int(&ttl["TTL"]), -1);
}

/// Cluster membership: list, add a learner, update it, promote a voter (error), remove.
fn members(c: &mut Checks, cluster: &Cluster, u: &str, lu: &str) -> HashMap<String, u64> {
    let ml = post_ok(u, "/v3/cluster/member/list", json!({}));
    check_header(c, "member list", &ml);
    let members = ml["members"].as_array().expect("members").clone();
    c.eq("member count", members.len(), 3);
    let mut ids: HashMap<String, u64> = HashMap::new();
    for m in &members {
        let name = m["name"].as_str().unwrap_or_default().to_string();
        let idx: usize = name
            .strip_prefix('m')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("member name {name:?}: {m}"));
        c.eq(
            &format!("{name} peerURLs"),
            m["peerURLs"].clone(),
            json!([cluster.members[idx].peer_url()]),
        );
        c.eq(
            &format!("{name} clientURLs"),
            m["clientURLs"].clone(),
            json!([cluster.members[idx].client_url()]),
        );
        c.check(m.get("isLearner").is_none(), || {
            format!("{name}: isLearner=false must be omitted: {m}")
        });
        ids.insert(name, uint(&m["ID"]));
    }
    let learner_url = format!("http://127.0.0.1:{}", free_port());
    let add = post_ok(
        u,
        "/v3/cluster/member/add",
        json!({"peerURLs": [learner_url], "isLearner": true}),
    );
    check_header(c, "member add", &add);
    let learner = uint(&add["member"]["ID"]);
    assert!(learner != 0, "member add: no ID: {add}");
    c.eq(
        "added isLearner",
        add["member"]["isLearner"].clone(),
        json!(true),
    );
    c.eq(
        "added peerURLs",
        add["member"]["peerURLs"].clone(),
        json!([learner_url]),
    );
    c.eq(
        "members after add",
        add["members"].as_array().map(Vec::len),
        Some(4),
    );
    let ml = post_ok(lu, "/v3/cluster/member/list", json!({}));
    c.check(
        ml["members"].as_array().is_some_and(|a| {
            a.iter()
                .any(|m| m["ID"] == json!(learner.to_string()) && m["isLearner"] == json!(true))
        }),
        || format!("member list: learner {learner} not listed as a learner: {ml}"),
    );
    let new_url = format!("http://127.0.0.1:{}", free_port());
    let upd = post_ok(
        u,
        "/v3/cluster/member/update",
        json!({"ID": learner.to_string(), "peerURLs": [new_url]}),
    );
    check_header(c, "member update", &upd);
    c.check(
        upd["members"].as_array().is_some_and(|a| {
            a.iter()
                .any(|m| m["ID"] == json!(learner.to_string()) && m["peerURLs"] == json!([new_url]))
        }),
        || format!("member update: new peer URL not in members: {upd}"),
    );
    let voter = ids["m0"];
    let pr = post(
        u,
        "/v3/cluster/member/promote",
        &json!({"ID": voter.to_string()}).to_string(),
    );
    check_error(c, "promote a voter", &pr, 400, 9, PROMOTE_VOTER);
    let rm = post_ok(
        u,
        "/v3/cluster/member/remove",
        json!({"ID": learner.to_string()}),
    );
    check_header(c, "member remove", &rm);
    c.eq(
        "members after remove",
        rm["members"].as_array().map(Vec::len),
        Some(3),
    );
    let ml = post_ok(u, "/v3/cluster/member/list", json!({}));
    c.eq(
        "member list after remove",
        ml["members"].as_array().map(Vec::len),
        Some(3),
    );
    ids
}

/// Maintenance: status, alarm, defragment, hash, hashkv, snapshot.
fn maintenance(c: &mut Checks, u: &str, lu: &str, listed_leader: u64, compact_rev: i64) {
    let st = post_ok(lu, "/v3/maintenance/status", json!({}));
    check_header(c, "status", &st);
    let leader_id = uint(&st["header"]["member_id"]);
    c.eq(
        "status leader (asked of the leader)",
        uint(&st["leader"]),
        leader_id,
    );
    c.eq("leader's id in member list", listed_leader, leader_id);
    c.check(int(&st["raftIndex"]) > 0, || {
        format!("status raftIndex: {st}")
    });
    c.check(int(&st["raftTerm"]) > 0, || {
        format!("status raftTerm: {st}")
    });
    c.check(int(&st["dbSize"]) > 0, || format!("status dbSize: {st}"));
    c.check(
        st["version"].as_str().is_some_and(|v| v.starts_with("3.")),
        || format!("status version: {st}"),
    );
    let st = post_ok(u, "/v3/maintenance/status", json!({}));
    c.eq(
        "status leader (asked of a follower)",
        uint(&st["leader"]),
        leader_id,
    );
    let al = post_ok(u, "/v3/maintenance/alarm", json!({"action": "GET"}));
    check_header(c, "alarm", &al);
    c.check(al.get("alarms").is_none(), || {
        format!("alarm GET: no alarms expected: {al}")
    });
    let df = post_ok(u, "/v3/maintenance/defragment", json!({}));
    check_header(c, "defragment", &df);
    let h = post_ok(u, "/v3/maintenance/hash", json!({}));
    check_header(c, "hash", &h);
    c.check(h["hash"].as_u64().is_some_and(|x| x > 0), || {
        format!("hash: a uint32 JSON number expected: {h}")
    });
    let hk = post(u, "/v3/maintenance/hashkv", "{}");
    c.eq("hashkv HTTP status", hk.status, 200);
    if hk.status == 200 {
        let hk = hk.json();
        check_header(c, "hashkv", &hk);
        c.check(hk["hash"].as_u64().is_some_and(|x| x > 0), || {
            format!("hashkv: a uint32 JSON number expected: {hk}")
        });
        c.eq(
            "hashkv compact_revision",
            int(&hk["compact_revision"]),
            compact_rev,
        );
    } else {
        c.failures
            .push(format!("POST /v3/maintenance/hashkv {{}}: {}", hk.body));
    }
    let sn = post(u, "/v3/maintenance/snapshot", "{}");
    c.eq("snapshot HTTP status", sn.status, 200);
    let lines = sn.json_lines();
    c.check(!lines.is_empty(), || "snapshot: no lines".into());
    let mut blob = Vec::new();
    let mut remaining = Vec::new();
    for l in &lines {
        let res = l
            .get("result")
            .unwrap_or_else(|| panic!("snapshot line without result: {l}"));
        blob.extend(unb64(res["blob"].as_str().unwrap_or("")));
        remaining.push(res.get("remaining_bytes").map_or(0, int));
    }
    c.check(blob.len() > 32, || {
        format!("snapshot: only {} bytes", blob.len())
    });
    if blob.len() > 32 {
        let (data, sum) = blob.split_at(blob.len() - 32);
        c.eq(
            "snapshot trailing SHA-256",
            sum.to_vec(),
            Sha256::digest(data).to_vec(),
        );
    }
    c.eq(
        "snapshot last remaining_bytes",
        remaining.last().copied(),
        Some(0),
    );
    c.check(remaining.windows(2).all(|w| w[0] >= w[1]), || {
        format!("snapshot remaining_bytes not decreasing: {remaining:?}")
    });
}

/// Watch: a streamed `curl -N`, created first, then the events of puts and a delete.
fn watch(c: &mut Checks, u: &str, lu: &str) {
    let mut child = Command::new("curl")
        .args([
            "-sS",
            "-N",
            "--max-time",
            "60",
            "-X",
            "POST",
            "--data-binary",
        ])
        .arg(json!({"create_request": {"key": b64("w/"), "range_end": b64("w0")}}).to_string())
        .arg(format!("{u}/v3/watch"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("failed to start curl");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !line.trim().is_empty() && tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("watch: no first line in 10 s");
    let first: Value = serde_json::from_str(&first).expect("watch line is JSON");
    c.eq(
        "watch created",
        first["result"]["created"].clone(),
        json!(true),
    );
    check_header(c, "watch created", &first["result"]);
    let w1 = post_ok(
        lu,
        "/v3/kv/put",
        json!({"key": b64("w/1"), "value": b64("one")}),
    );
    post_ok(
        u,
        "/v3/kv/put",
        json!({"key": b64("w/2"), "value": b64("two")}),
    );
    post_ok(
        u,
        "/v3/kv/put",
        json!({"key": b64("elsewhere"), "value": b64("no")}),
    );
    post_ok(u, "/v3/kv/deleterange", json!({"key": b64("w/1")}));
    let mut events: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while events.len() < 3 && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let v: Value = serde_json::from_str(&line).expect("watch line is JSON");
        let res = v
            .get("result")
            .unwrap_or_else(|| panic!("watch line without result: {v}"));
        events.extend(res["events"].as_array().cloned().unwrap_or_default());
    }
    child.kill().expect("kill the watching curl");
    let _ = child.wait();
    let _ = reader.join();
    let seen: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("PUT").to_string(),
                text(&e["kv"]["key"]),
                e["kv"].get("value").map(text).unwrap_or_default(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("PUT", "w/1", "one"),
        ("PUT", "w/2", "two"),
        ("DELETE", "w/1", ""),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    c.eq("watch events (type, key, value)", seen, expected);
    if let Some(e) = events.first() {
        c.eq(
            "watch event mod_revision",
            int(&e["kv"]["mod_revision"]),
            rev(&w1),
        );
        c.check(e.get("type").is_none(), || {
            format!("watch: PUT (enum 0) must be omitted: {e}")
        });
    }
}

/// `/v3beta`: etcd 3.4's alias (dropped in 3.5); checked only if served.
fn v3beta(c: &mut Checks, u: &str) {
    let beta = post(
        u,
        "/v3beta/kv/range",
        &json!({"key": b64("foo")}).to_string(),
    );
    if beta.status == 404 {
        eprintln!("/v3beta/kv/range: 404, the /v3beta alias is not served; skipped");
    } else {
        c.eq("/v3beta range status", beta.status, 200);
        c.eq(
            "/v3beta range value",
            text(&beta.json()["kvs"][0]["value"]),
            "qux".into(),
        );
    }
}

/// `GET /v3/kv/range?key=...`: plain-text keys, `prefix`, `range_end`, `limit`, `revision`,
/// `keys_only`, `count_only`, `serializable`.
fn get_range(c: &mut Checks, u: &str, rev1: i64) {
    let mut g_rev = 0;
    for (k, v) in [("g/a", "1"), ("g/b", "2"), ("g/c", "3"), ("h", "4")] {
        g_rev = rev(&post_ok(
            u,
            "/v3/kv/put",
            json!({"key": b64(k), "value": b64(v)}),
        ));
    }
    post_ok(
        u,
        "/v3/kv/put",
        json!({"key": b64("g/a"), "value": b64("1b")}),
    );
    // The response and its keys (decoded, as a JSON array).
    let get_keys = |c: &mut Checks, what: &str, path: &str| -> (Value, Value) {
        let r = get(u, path);
        c.eq(&format!("{what}: HTTP status"), r.status, 200);
        let v = r.json();
        let keys: Vec<String> = v["kvs"]
            .as_array()
            .map(|a| a.iter().map(|kv| text(&kv["key"])).collect())
            .unwrap_or_default();
        (v, json!(keys))
    };
    let (r, keys) = get_keys(c, "GET key", "/v3/kv/range?key=g/a");
    c.eq("GET key keys", keys, json!(["g/a"]));
    c.eq("GET key value", text(&r["kvs"][0]["value"]), "1b".into());
    c.eq("GET key count", int(&r["count"]), 1);
    check_header(c, "GET range", &r);
    let (r, keys) = get_keys(c, "GET prefix", "/v3/kv/range?key=g/&prefix=true");
    c.eq("GET prefix keys", keys, json!(["g/a", "g/b", "g/c"]));
    c.eq("GET prefix count", int(&r["count"]), 3);
    let (r, keys) = get_keys(c, "GET range_end", "/v3/kv/range?key=g/a&range_end=g/c");
    c.eq("GET range_end keys", keys, json!(["g/a", "g/b"]));
    c.eq("GET range_end count", int(&r["count"]), 2);
    let (r, keys) = get_keys(c, "GET limit", "/v3/kv/range?key=g/&prefix=true&limit=1");
    c.eq("GET limit keys", keys, json!(["g/a"]));
    c.eq("GET limit more", r["more"].clone(), json!(true));
    c.eq("GET limit count", int(&r["count"]), 3);
    let (r, keys) = get_keys(
        c,
        "GET revision",
        &format!("/v3/kv/range?key=g/a&revision={g_rev}"),
    );
    c.eq("GET revision keys", keys, json!(["g/a"]));
    c.eq(
        "GET revision value",
        text(&r["kvs"][0]["value"]),
        "1".into(),
    );
    let (r, keys) = get_keys(
        c,
        "GET keys_only",
        "/v3/kv/range?key=g/&prefix=true&keys_only=true",
    );
    c.check(
        r["kvs"]
            .as_array()
            .is_some_and(|a| a.len() == 3 && a.iter().all(|kv| kv.get("value").is_none())),
        || format!("GET keys_only: 3 kvs without values expected: {r}"),
    );
    c.eq("GET keys_only keys", keys, json!(["g/a", "g/b", "g/c"]));
    let (r, keys) = get_keys(
        c,
        "GET count_only",
        "/v3/kv/range?key=g/&prefix=true&count_only=true",
    );
    c.check(r.get("kvs").is_none(), || {
        format!("GET count_only: kvs must be absent: {r}")
    });
    c.eq("GET count_only count", int(&r["count"]), 3);
    c.eq("GET count_only keys", keys, json!([]));
    let (r, keys) = get_keys(
        c,
        "GET serializable",
        "/v3/kv/range?key=h&serializable=true",
    );
    c.eq("GET serializable keys", keys, json!(["h"]));
    c.eq(
        "GET serializable value",
        text(&r["kvs"][0]["value"]),
        "4".into(),
    );
    let r = get(u, &format!("/v3/kv/range?key=foo&revision={rev1}"));
    check_error(c, "GET at a compacted revision", &r, 400, 11, COMPACTED);
}

/// Malformed bodies: 400 with a JSON error carrying a message; still serving after.
fn malformed(c: &mut Checks, u: &str, lu: &str) {
    let bad: &[(&str, &str)] = &[
        ("/v3/kv/range", r#"{"key": 5"#),
        ("/v3/kv/range", "[1,2]"),
        ("/v3/kv/range", r#"{"key": 5}"#),
        ("/v3/kv/range", r#"{"key": "Zm9v", "limit": "many"}"#),
        ("/v3/kv/range", r#"{"key": "Zm9v", "keys_only": "yes"}"#),
        ("/v3/kv/range", "not json at all"),
        ("/v3/kv/put", r#"{"key": "Zm9v", "value": "#),
        ("/v3/kv/put", r#"{"key": "Zm9v", "value": ["x"]}"#),
        ("/v3/kv/txn", r#"{"compare": {"key": "Zm9v"}}"#),
        ("/v3/lease/grant", r#"{"TTL": "sixty"}"#),
        ("/v3/watch", r#"{"create_request": "#),
        ("/v3/lease/keepalive", r#"{"ID": true}"#),
    ];
    for (path, body) in bad {
        let r = post(u, path, body);
        let what = format!("POST {path} {body:?}");
        c.eq(&format!("{what}: HTTP status"), r.status, 400);
        match serde_json::from_str::<Value>(&r.body) {
            Ok(v) => {
                c.check(
                    v["message"].as_str().is_some_and(|m| !m.is_empty())
                        && v["error"].as_str().is_some_and(|m| !m.is_empty()),
                    || format!("{what}: error and message expected: {v}"),
                );
                c.eq(&format!("{what}: code"), v["code"].clone(), json!(3));
            }
            Err(_) => c
                .failures
                .push(format!("{what}: error body is not JSON: {:?}", r.body)),
        }
    }
    let r = post_ok(u, "/v3/kv/range", json!({"key": b64("foo")}));
    c.eq(
        "foo after malformed puts",
        text(&r["kvs"][0]["value"]),
        "qux".into(),
    );
    let p = post_ok(
        u,
        "/v3/kv/put",
        json!({"key": b64("after"), "value": b64("ok")}),
    );
    let r = post_ok(lu, "/v3/kv/range", json!({"key": b64("after")}));
    c.eq(
        "put after malformed bodies",
        text(&r["kvs"][0]["value"]),
        "ok".into(),
    );
    c.eq("revision after malformed bodies", rev(&r), rev(&p));
}

// ---------------------------------------------------------------------------------------------
// /health, /livez, /readyz, /version; then quorum loss.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readyz_livez_version() {
    let mut cluster = Cluster::start(3).await;
    let u = cluster.members[0].client_url();
    let mut c = Checks::default();

    let h = get(&u, "/health");
    c.eq("/health status", h.status, 200);
    c.eq(
        "/health body",
        h.body.trim_end(),
        r#"{"health":"true","reason":""}"#,
    );
    c.check(h.content_type.starts_with("application/json"), || {
        format!("/health content type {:?}", h.content_type)
    });
    let h = get(&u, "/health?exclude=NOSPACE");
    c.eq("/health?exclude=NOSPACE status", h.status, 200);
    let h = get(&u, "/health?serializable=true");
    c.eq("/health?serializable=true status", h.status, 200);
    for method in ["POST", "PUT", "DELETE"] {
        let h = curl(&["-X", method, &format!("{u}/health")]);
        c.eq(&format!("{method} /health status"), h.status, 405);
    }

    let v = get(&u, "/version");
    c.eq("/version status", v.status, 200);
    let vj = v.json();
    c.check(
        vj["etcdserver"]
            .as_str()
            .is_some_and(|s| s.starts_with("3.")),
        || format!("/version etcdserver: {vj}"),
    );
    c.check(
        vj["etcdcluster"]
            .as_str()
            .is_some_and(|s| s.starts_with("3.")),
        || format!("/version etcdcluster: {vj}"),
    );

    let l = get(&u, "/livez");
    c.eq("/livez", (l.status, l.body.as_str()), (200, "ok\n"));
    let r = get(&u, "/readyz");
    c.eq("/readyz", (r.status, r.body.as_str()), (200, "ok\n"));
    let r = get(&u, "/readyz?verbose");
    c.eq("/readyz?verbose status", r.status, 200);
    for check in [
        "data_corruption",
        "serializable_read",
        "linearizable_read",
        "non_learner",
    ] {
        c.check(r.body.contains(&format!("[+]{check} ok\n")), || {
            format!("/readyz?verbose does not list [+]{check} ok: {:?}", r.body)
        });
    }
    c.check(r.body.ends_with("ok\n"), || {
        format!("/readyz?verbose: {:?}", r.body)
    });
    let l = get(&u, "/livez?verbose");
    c.check(
        l.status == 200 && l.body.contains("[+]serializable_read ok\n"),
        || format!("/livez?verbose: {l:?}"),
    );

    // Quorum loss: kill two members; the survivor notices it has no leader.
    cluster.members[1].kill();
    cluster.members[2].kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        let h = get(&u, "/health");
        if h.status != 200 || Instant::now() > deadline {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    c.eq("/health without quorum: status", health.status, 503);
    match serde_json::from_str::<Value>(&health.body) {
        Ok(v) => {
            c.eq(
                "/health without quorum: health",
                v["health"].clone(),
                json!("false"),
            );
            c.check(v["reason"].as_str().is_some_and(|r| !r.is_empty()), || {
                format!("/health without quorum: a reason expected: {v}")
            });
        }
        Err(_) => c.failures.push(format!(
            "/health without quorum: not JSON: {:?}",
            health.body
        )),
    }
    let r = get(&u, "/readyz");
    c.eq("/readyz without quorum: status", r.status, 503);
    c.check(r.body.contains("[-]linearizable_read failed"), || {
        format!(
            "/readyz without quorum must name linearizable_read: {:?}",
            r.body
        )
    });
    let r = get(&u, "/readyz?verbose");
    c.check(
        r.status == 503
            && r.body.contains("[-]linearizable_read failed")
            && r.body.contains("[+]serializable_read ok"),
        || format!("/readyz?verbose without quorum: {r:?}"),
    );
    let h = get(&u, "/health?serializable=true");
    c.eq(
        "/health?serializable=true without quorum: status",
        h.status,
        200,
    );
    c.eq(
        "/health?serializable=true without quorum: body",
        h.body.trim_end(),
        r#"{"health":"true","reason":""}"#,
    );
    let l = get(&u, "/livez");
    c.eq(
        "/livez without quorum",
        (l.status, l.body.as_str()),
        (200, "ok\n"),
    );

    c.done();
}

// ---------------------------------------------------------------------------------------------
// /metrics.

/// Parse a scrape with prometheus-parse.
///
/// The server writes OpenMetrics (prometheus-client): a counter's `# TYPE` line names the
/// family without `_total` (`# TYPE grpc_server_handled counter`) while its samples carry it
/// (`grpc_server_handled_total{...} 3`). prometheus-parse 0.2 looks a sample's type up by the
/// sample's exact name, so without help every counter sample comes out `Value::Untyped`. We
/// rename such `# TYPE` lines to the sample name, as the Prometheus 0.0.4 text format writes
/// them; nothing else is changed (`# EOF` and `# UNIT` lines are ignored by the parser as
/// comments; histogram `_sum`/`_count` samples are untyped in both formats).
fn parse_metrics(body: &str) -> Scrape {
    let counters: Vec<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .map(str::to_string)
        .collect();
    let fixed: Vec<String> = body
        .lines()
        .map(|l| {
            if let Some(name) = l
                .strip_prefix("# TYPE ")
                .and_then(|r| r.strip_suffix(" counter"))
                && !name.ends_with("_total")
                && counters.contains(&name.to_string())
            {
                format!("# TYPE {name}_total counter")
            } else {
                l.to_string()
            }
        })
        .collect();
    Scrape::parse(fixed.into_iter().map(Ok)).expect("prometheus-parse reads the scrape")
}

fn scrape(url: &str) -> Scrape {
    let r = get(url, "/metrics");
    assert_eq!(r.status, 200, "/metrics: {r:?}");
    parse_metrics(&r.body)
}

fn has_labels(s: &Sample, labels: &[(&str, &str)]) -> bool {
    labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
}

fn find<'a>(s: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    s.samples
        .iter()
        .filter(|x| x.metric == name && has_labels(x, labels))
        .collect()
}

/// The value of a gauge sample (None if absent or not typed as a gauge).
fn gauge(c: &mut Checks, s: &Scrape, name: &str) -> Option<f64> {
    match find(s, name, &[]).first().map(|x| &x.value) {
        Some(PromValue::Gauge(v)) => Some(*v),
        other => {
            c.failures
                .push(format!("{name}: a gauge sample expected, got {other:?}"));
            None
        }
    }
}

/// The sum of the counter samples of `name` with these labels (0 if none); checks the type.
fn counter_sum(c: &mut Checks, s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for x in find(s, name, labels) {
        match x.value {
            PromValue::Counter(v) => sum += v,
            ref other => c.failures.push(format!(
                "{name}{{{}}}: a counter expected, got {other:?}",
                x.labels
            )),
        }
    }
    sum
}

/// Check the histogram samples of `name` with these labels (buckets cumulative, `+Inf` equal
/// to `_count`) and return the sum of their counts; `None` if there is none.
fn histogram(c: &mut Checks, s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let hs = find(s, name, labels);
    if hs.is_empty() {
        c.failures
            .push(format!("{name}{labels:?}: no histogram samples"));
        return None;
    }
    let mut total = 0.0;
    for h in hs {
        let PromValue::Histogram(buckets) = &h.value else {
            c.failures.push(format!(
                "{name}{{{}}}: a histogram expected, got {:?}",
                h.labels, h.value
            ));
            continue;
        };
        let count = s
            .samples
            .iter()
            .find(|x| x.metric == format!("{name}_count") && x.labels == h.labels)
            .map(|x| match x.value {
                PromValue::Untyped(v) | PromValue::Counter(v) | PromValue::Gauge(v) => v,
                _ => f64::NAN,
            });
        let Some(count) = count else {
            c.failures
                .push(format!("{name}{{{}}}: no _count sample", h.labels));
            continue;
        };
        c.check(
            buckets
                .windows(2)
                .all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count),
            || {
                format!(
                    "{name}{{{}}}: buckets not cumulative: {buckets:?}",
                    h.labels
                )
            },
        );
        let inf = buckets
            .iter()
            .find(|b| b.less_than.is_infinite())
            .map(|b| b.count);
        c.eq(
            &format!("{name}{{{}}} +Inf bucket = _count", h.labels),
            inf,
            Some(count),
        );
        c.check(
            s.samples
                .iter()
                .any(|x| x.metric == format!("{name}_sum") && x.labels == h.labels),
            || format!("{name}{{{}}}: no _sum sample", h.labels),
        );
        total += count;
    }
    Some(total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_with_etcd_names() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let lu = cluster.members[leader].client_url();
    let mut c = Checks::default();
    let mut kv = client(&lu).await.expect("connect to the leader");
    kv.put("m/seed", "x", None).await.expect("seed put");
    kv.get("m/seed", None).await.expect("seed get");
    // Let the peers exchange a few heartbeats (the leader measures round trips to them).
    tokio::time::sleep(Duration::from_secs(2)).await;

    let r = get(&lu, "/metrics");
    c.eq("/metrics status", r.status, 200);
    c.check(
        r.content_type.starts_with("application/openmetrics-text")
            || r.content_type.starts_with("text/plain"),
        || format!("/metrics content type {:?}", r.content_type),
    );
    let before = scrape(&lu);

    let has_leader = gauge(&mut c, &before, "etcd_server_has_leader");
    c.eq("etcd_server_has_leader", has_leader, Some(1.0));
    let is_leader = gauge(&mut c, &before, "etcd_server_is_leader");
    c.eq("etcd_server_is_leader (leader)", is_leader, Some(1.0));
    let changes = counter_sum(
        &mut c,
        &before,
        "etcd_server_leader_changes_seen_total",
        &[],
    );
    c.check(
        !find(&before, "etcd_server_leader_changes_seen_total", &[]).is_empty() && changes >= 1.0,
        || format!("etcd_server_leader_changes_seen_total should count the first election (>= 1), got {changes}"),
    );
    let committed0 = gauge(&mut c, &before, "etcd_server_proposals_committed_total").unwrap_or(0.0);
    let applied0 = gauge(&mut c, &before, "etcd_server_proposals_applied_total").unwrap_or(0.0);
    c.check(
        committed0 > 0.0 && applied0 > 0.0 && applied0 <= committed0,
        || format!("proposals committed {committed0}, applied {applied0}"),
    );
    let pending = gauge(&mut c, &before, "etcd_server_proposals_pending");
    c.check(pending.is_some_and(|p| p >= 0.0), || {
        format!("proposals_pending {pending:?}")
    });
    c.check(
        !find(&before, "etcd_server_proposals_failed_total", &[]).is_empty(),
        || "etcd_server_proposals_failed_total: no sample".into(),
    );
    counter_sum(&mut c, &before, "etcd_server_proposals_failed_total", &[]);
    let quota = gauge(&mut c, &before, "etcd_server_quota_backend_bytes");
    c.check(quota.is_some_and(|q| q > 0.0), || {
        format!("etcd_server_quota_backend_bytes should be the backend quota (status dbSizeQuota), got {quota:?}")
    });
    let fsync0 =
        histogram(&mut c, &before, "etcd_disk_wal_fsync_duration_seconds", &[]).unwrap_or(0.0);
    c.check(fsync0 > 0.0, || {
        format!("etcd_disk_wal_fsync_duration_seconds_count is {fsync0} after writes")
    });
    let commit0 = histogram(
        &mut c,
        &before,
        "etcd_disk_backend_commit_duration_seconds",
        &[],
    )
    .unwrap_or(0.0);
    c.check(commit0 > 0.0, || {
        format!("etcd_disk_backend_commit_duration_seconds_count is {commit0} after writes")
    });
    let db = gauge(&mut c, &before, "etcd_mvcc_db_total_size_in_bytes").unwrap_or(0.0);
    let in_use = gauge(&mut c, &before, "etcd_mvcc_db_total_size_in_use_in_bytes").unwrap_or(0.0);
    c.check(db > 0.0 && in_use > 0.0 && in_use <= db, || {
        format!("db size {db}, in use {in_use}")
    });
    let keys0 = gauge(&mut c, &before, "etcd_debugging_mvcc_keys_total").unwrap_or(-1.0);
    c.check(keys0 >= 1.0, || {
        format!("etcd_debugging_mvcc_keys_total {keys0} with m/seed stored")
    });
    let rtt = find(&before, "etcd_network_peer_round_trip_time_seconds", &[]);
    c.check(
        rtt.len() == 2 && rtt.iter().all(|s| s.labels.get("To").is_some()),
        || {
            format!(
                "etcd_network_peer_round_trip_time_seconds on the leader: one histogram per peer \
             labelled To expected, got {rtt:?}"
            )
        },
    );
    if !rtt.is_empty() {
        let n = histogram(
            &mut c,
            &before,
            "etcd_network_peer_round_trip_time_seconds",
            &[],
        );
        c.check(n.is_some_and(|n| n > 0.0), || {
            format!("peer round trips observed: {n:?}")
        });
    }
    let range_labels = [
        ("grpc_type", "unary"),
        ("grpc_service", "etcdserverpb.KV"),
        ("grpc_method", "Range"),
    ];
    let started = counter_sum(&mut c, &before, "grpc_server_started_total", &range_labels);
    c.check(started >= 1.0, || {
        format!("grpc_server_started_total Range {started}")
    });
    let handled_ok = [
        ("grpc_type", "unary"),
        ("grpc_service", "etcdserverpb.KV"),
        ("grpc_method", "Range"),
        ("grpc_code", "OK"),
    ];
    let handled = counter_sum(&mut c, &before, "grpc_server_handled_total", &handled_ok);
    c.check(handled >= 1.0, || {
        format!("grpc_server_handled_total Range OK {handled}")
    });
    let handled_all = find(&before, "grpc_server_handled_total", &[]);
    c.check(
        !handled_all.is_empty()
            && handled_all.iter().all(|s| {
                ["grpc_type", "grpc_service", "grpc_method", "grpc_code"]
                    .iter()
                    .all(|l| s.labels.get(l).is_some())
            }),
        || format!("grpc_server_handled_total labels: {handled_all:?}"),
    );
    let secs = histogram(
        &mut c,
        &before,
        "grpc_server_handling_seconds",
        &range_labels,
    );
    c.check(secs.is_some_and(|n| n >= 1.0), || {
        format!("grpc_server_handling_seconds Range {secs:?}")
    });
    let rss = gauge(&mut c, &before, "process_resident_memory_bytes");
    c.check(rss.is_some_and(|r| r > 1e6), || {
        format!("process_resident_memory_bytes {rss:?}")
    });

    // A follower: a leader, but not the leader.
    let fol = scrape(&cluster.members[follower].client_url());
    let has_leader = gauge(&mut c, &fol, "etcd_server_has_leader");
    c.eq("etcd_server_has_leader (follower)", has_leader, Some(1.0));
    let is_leader = gauge(&mut c, &fol, "etcd_server_is_leader");
    c.eq("etcd_server_is_leader (follower)", is_leader, Some(0.0));

    // 50 puts over gRPC, then scrape again.
    let put_ok = [
        ("grpc_type", "unary"),
        ("grpc_service", "etcdserverpb.KV"),
        ("grpc_method", "Put"),
        ("grpc_code", "OK"),
    ];
    let puts0 = counter_sum(&mut c, &before, "grpc_server_handled_total", &put_ok);
    for i in 0..50 {
        kv.put(format!("m/k{i:02}"), "v", None).await.expect("put");
    }
    let after = scrape(&lu);
    let committed1 = gauge(&mut c, &after, "etcd_server_proposals_committed_total").unwrap_or(0.0);
    let applied1 = gauge(&mut c, &after, "etcd_server_proposals_applied_total").unwrap_or(0.0);
    c.check(committed1 - committed0 >= 50.0, || {
        format!("proposals_committed_total grew from {committed0} to {committed1} over 50 puts")
    });
    c.check(applied1 - applied0 >= 50.0, || {
        format!("proposals_applied_total grew from {applied0} to {applied1} over 50 puts")
    });
    let keys1 = gauge(&mut c, &after, "etcd_debugging_mvcc_keys_total").unwrap_or(-1.0);
    c.check(keys1 - keys0 >= 50.0, || {
        format!("etcd_debugging_mvcc_keys_total grew from {keys0} to {keys1} over 50 new keys")
    });
    let puts1 = counter_sum(&mut c, &after, "grpc_server_handled_total", &put_ok);
    c.check(puts1 - puts0 >= 50.0, || {
        format!("grpc_server_handled_total Put OK grew from {puts0} to {puts1} over 50 puts")
    });
    let fsync1 =
        histogram(&mut c, &after, "etcd_disk_wal_fsync_duration_seconds", &[]).unwrap_or(0.0);
    c.check(fsync1 > fsync0, || {
        format!(
            "etcd_disk_wal_fsync_duration_seconds_count grew from {fsync0} to {fsync1} over 50 puts"
        )
    });

    c.done();
}
