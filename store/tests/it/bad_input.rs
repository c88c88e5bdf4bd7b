//! Bad input against a 3-member cluster of real `kvstore` processes: every refused request
//! gets etcd's gRPC status code and exact message (through the `etcd-client` crate, via the
//! leader and via a follower) and etcd's error line from the real `etcdctl`; after each one
//! the server still serves a normal put and get.
//!
//! Covered: oversize requests, empty keys, too many txn ops, duplicate keys in a txn,
//! compacted and future revisions (get and compact), unknown lease, unknown member, and
//! promoting a voter; and, last, that a value just below the request limit is accepted.

use std::fmt::Debug;

use etcd_client::{Client, DeleteOptions, Error, GetOptions, PutOptions, Txn, TxnOp};
use tonic::Code;

use crate::common::{Cluster, client, etcdctl, etcdctl_ok};

/// 1.5 MiB, etcd's default `--max-request-bytes`.
const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024 / 2;

const TOO_LARGE: &str = "etcdserver: request is too large";
const NO_KEY: &str = "etcdserver: key is not provided";
const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
const MEMBER_NOT_FOUND: &str = "etcdserver: member not found";
const PROMOTE_VOTER: &str = "etcdserver: can only promote a learner member";

/// Collects mismatching error answers, so that one run reports all of them.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    /// `r` must be a gRPC status with exactly this code and message.
    fn status<T: Debug>(&mut self, what: &str, r: Result<T, Error>, code: Code, msg: &str) {
        match r {
            Err(Error::GRpcStatus(s)) if s.code() == code && s.message() == msg => {}
            Err(Error::GRpcStatus(s)) => self.failures.push(format!(
                "{what}: expected {code:?} {msg:?}, got {:?} {:?}",
                s.code(),
                s.message()
            )),
            other => self
                .failures
                .push(format!("{what}: expected {code:?} {msg:?}, got {other:?}")),
        }
    }

    /// `r` must be a gRPC status with this code (any message).
    fn code<T: Debug>(&mut self, what: &str, r: Result<T, Error>, code: Code) {
        match r {
            Err(Error::GRpcStatus(s)) if s.code() == code => {}
            other => self
                .failures
                .push(format!("{what}: expected {code:?}, got {other:?}")),
        }
    }

    /// etcdctl must fail and print exactly `Error: <msg>` on a line of its stderr.
    fn etcdctl(&mut self, endpoints: &str, args: &[&str], stdin: Option<&str>, msg: &str) {
        let out = etcdctl(endpoints, args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = format!("Error: {msg}");
        if out.status.success() || !stderr.lines().any(|l| l == want) {
            let err_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("Error:")).collect();
            self.failures.push(format!(
                "etcdctl {:?}: expected failure with {want:?}, got {} with {err_lines:?}",
                args.iter()
                    .map(|a| if a.len() > 64 { "<long>" } else { a })
                    .collect::<Vec<_>>(),
                out.status
            ));
        }
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} mismatch(es):\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

/// A normal put and linearizable get still work.
async fn still_serves(c: &mut Client, after: &str) {
    let key = format!("ok/{after}");
    c.put(key.as_str(), "fine", None)
        .await
        .unwrap_or_else(|e| panic!("put after {after} failed: {e}"));
    let g = c
        .get(key.as_str(), None)
        .await
        .unwrap_or_else(|e| panic!("get after {after} failed: {e}"));
    assert_eq!(g.kvs().len(), 1, "get after {after}");
    assert_eq!(g.kvs()[0].value(), b"fine", "get after {after}");
}

/// The same, through etcdctl.
fn etcdctl_still_serves(endpoints: &str, after: &str) {
    let key = format!("ok/ctl/{after}");
    assert_eq!(
        etcdctl_ok(endpoints, &["put", &key, "fine"], None),
        "OK\n",
        "after {after}"
    );
    assert_eq!(
        etcdctl_ok(endpoints, &["get", &key], None),
        format!("{key}\nfine\n"),
        "after {after}"
    );
}

async fn revision(c: &mut Client) -> i64 {
    c.get("any", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_etcd_errors() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let mut checks = Checks::default();

    let mut voter_id = 0;
    for (label, idx) in [("leader", leader), ("follower", follower)] {
        let mut c = client(&cluster.members[idx].client_url()).await.unwrap();
        let w = |s: &str| format!("{s} via {label}");
        still_serves(&mut c, &w("connect")).await;

        // Oversize: above --max-request-bytes is etcd's own refusal; above 2 MiB (the limit
        // plus gRPC overhead) the gRPC layer refuses the message itself.
        let big = vec![b'a'; MAX_REQUEST_BYTES + 100 * 1024];
        checks.status(
            &w("put 1.6 MiB"),
            c.put("big", big, None).await,
            Code::InvalidArgument,
            TOO_LARGE,
        );
        still_serves(&mut c, &w("put 1.6 MiB")).await;
        let huge = vec![b'a'; 5 * 1024 * 1024 / 2];
        checks.code(
            &w("put 2.5 MiB"),
            c.put("big", huge, None).await,
            Code::ResourceExhausted,
        );
        still_serves(&mut c, &w("put 2.5 MiB")).await;
        let g = c.get("big", None).await.unwrap();
        assert!(g.kvs().is_empty(), "an oversize put was stored");

        // Empty key.
        checks.status(
            &w("put empty key"),
            c.put("", "v", None).await,
            Code::InvalidArgument,
            NO_KEY,
        );
        still_serves(&mut c, &w("put empty key")).await;
        checks.status(
            &w("get empty key"),
            c.get("", None).await,
            Code::InvalidArgument,
            NO_KEY,
        );
        still_serves(&mut c, &w("get empty key")).await;
        checks.status(
            &w("delete empty key"),
            c.delete("", None).await,
            Code::InvalidArgument,
            NO_KEY,
        );
        still_serves(&mut c, &w("delete empty key")).await;
        let t = Txn::new().and_then([TxnOp::put("", "v", None)]);
        checks.status(
            &w("txn put empty key"),
            c.txn(t).await,
            Code::InvalidArgument,
            NO_KEY,
        );
        still_serves(&mut c, &w("txn put empty key")).await;

        // Too many operations: 128 is the default limit.
        let ops = |n: usize| {
            (0..n)
                .map(|i| TxnOp::put(format!("many/{label}/{i}"), "v", None))
                .collect::<Vec<_>>()
        };
        let t = Txn::new().and_then(ops(129));
        checks.status(
            &w("txn 129 ops"),
            c.txn(t).await,
            Code::InvalidArgument,
            TOO_MANY_OPS,
        );
        still_serves(&mut c, &w("txn 129 ops")).await;
        let prefix = format!("many/{label}/");
        let n = c
            .get(
                prefix.as_str(),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .unwrap()
            .count();
        assert_eq!(n, 0, "the refused txn wrote keys");
        let t = Txn::new().or_else(ops(129));
        checks.status(
            &w("txn 129 failure ops"),
            c.txn(t).await,
            Code::InvalidArgument,
            TOO_MANY_OPS,
        );
        still_serves(&mut c, &w("txn 129 failure ops")).await;
        let r = c.txn(Txn::new().and_then(ops(128))).await.unwrap();
        assert!(r.succeeded());
        let n = c
            .get(
                prefix.as_str(),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .unwrap()
            .count();
        assert_eq!(n, 128);

        // Duplicate keys within one branch.
        let dup = format!("dup/{label}");
        let dup_a = format!("{dup}/a");
        let dup_prefix = format!("{dup}/");
        let t = Txn::new().and_then([
            TxnOp::put(dup.as_str(), "1", None),
            TxnOp::put(dup.as_str(), "2", None),
        ]);
        checks.status(
            &w("txn same key twice"),
            c.txn(t).await,
            Code::InvalidArgument,
            DUPLICATE_KEY,
        );
        still_serves(&mut c, &w("txn same key twice")).await;
        let t = Txn::new().and_then([
            TxnOp::put(dup_a.as_str(), "1", None),
            TxnOp::delete(
                dup_prefix.as_str(),
                Some(DeleteOptions::new().with_prefix()),
            ),
        ]);
        checks.status(
            &w("txn put inside deleted range"),
            c.txn(t).await,
            Code::InvalidArgument,
            DUPLICATE_KEY,
        );
        still_serves(&mut c, &w("txn put inside deleted range")).await;
        let g = c
            .get(dup.as_str(), Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert!(g.kvs().is_empty(), "a refused txn wrote: {:?}", g.kvs());
        // The same key in both branches is fine.
        let t = Txn::new()
            .and_then([TxnOp::put(dup.as_str(), "s", None)])
            .or_else([TxnOp::put(dup.as_str(), "f", None)]);
        assert!(c.txn(t).await.unwrap().succeeded());
        assert_eq!(
            c.get(dup.as_str(), None).await.unwrap().kvs()[0].value(),
            b"s"
        );

        // Compacted and future revisions.
        let key = format!("rev/{label}");
        let old = c
            .put(key.as_str(), "old", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        let newer = c
            .put(key.as_str(), "new", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        c.compact(newer, None).await.unwrap();
        let at = |r: i64| Some(GetOptions::new().with_revision(r));
        checks.status(
            &w("get compacted rev"),
            c.get(key.as_str(), at(old)).await,
            Code::OutOfRange,
            COMPACTED,
        );
        still_serves(&mut c, &w("get compacted rev")).await;
        assert_eq!(
            c.get(key.as_str(), at(newer)).await.unwrap().kvs()[0].value(),
            b"new"
        );
        checks.status(
            &w("compact again"),
            c.compact(newer, None).await,
            Code::OutOfRange,
            COMPACTED,
        );
        still_serves(&mut c, &w("compact again")).await;
        checks.status(
            &w("compact older"),
            c.compact(old, None).await,
            Code::OutOfRange,
            COMPACTED,
        );
        still_serves(&mut c, &w("compact older")).await;
        let future = revision(&mut c).await + 1000;
        checks.status(
            &w("get future rev"),
            c.get(key.as_str(), at(future)).await,
            Code::OutOfRange,
            FUTURE_REV,
        );
        still_serves(&mut c, &w("get future rev")).await;
        checks.status(
            &w("compact future rev"),
            c.compact(future, None).await,
            Code::OutOfRange,
            FUTURE_REV,
        );
        still_serves(&mut c, &w("compact future rev")).await;

        // Unknown lease.
        let r = c
            .put(
                "leased",
                "v",
                Some(PutOptions::new().with_lease(0x7777_1234)),
            )
            .await;
        checks.status(
            &w("put with unknown lease"),
            r,
            Code::NotFound,
            LEASE_NOT_FOUND,
        );
        still_serves(&mut c, &w("put with unknown lease")).await;
        assert!(c.get("leased", None).await.unwrap().kvs().is_empty());

        // Membership.
        let members = c.member_list().await.unwrap();
        assert_eq!(members.members().len(), 3);
        let ids: Vec<u64> = members.members().iter().map(|m| m.id()).collect();
        let unknown = (1..).find(|i| !ids.contains(i)).unwrap();
        checks.status(
            &w("member remove unknown"),
            c.member_remove(unknown).await,
            Code::NotFound,
            MEMBER_NOT_FOUND,
        );
        still_serves(&mut c, &w("member remove unknown")).await;
        voter_id = ids[0];
        checks.status(
            &w("member promote voter"),
            c.member_promote(voter_id).await,
            Code::FailedPrecondition,
            PROMOTE_VOTER,
        );
        still_serves(&mut c, &w("member promote voter")).await;
        assert_eq!(c.member_list().await.unwrap().members().len(), 3);
    }

    // The same through the real etcdctl: its error line is etcd's message.
    let ep = cluster.endpoints();
    let ep = ep.as_str();
    etcdctl_still_serves(ep, "start");
    let big = "a".repeat(MAX_REQUEST_BYTES + 100 * 1024);
    checks.etcdctl(ep, &["put", "bigk"], Some(&big), TOO_LARGE);
    etcdctl_still_serves(ep, "too large");
    checks.etcdctl(ep, &["put", "", "v"], None, NO_KEY);
    etcdctl_still_serves(ep, "put empty");
    checks.etcdctl(ep, &["get", ""], None, NO_KEY);
    etcdctl_still_serves(ep, "get empty");
    checks.etcdctl(ep, &["del", ""], None, NO_KEY);
    etcdctl_still_serves(ep, "del empty");
    let mut many = String::from("\n");
    for i in 0..129 {
        many.push_str(&format!("put ctl/many/{i} v\n"));
    }
    many.push_str("\n\n");
    checks.etcdctl(ep, &["txn"], Some(&many), TOO_MANY_OPS);
    etcdctl_still_serves(ep, "txn 129");
    checks.etcdctl(
        ep,
        &["txn"],
        Some("\nput ctl/dup 1\nput ctl/dup 2\n\n\n"),
        DUPLICATE_KEY,
    );
    etcdctl_still_serves(ep, "txn dup");
    etcdctl_ok(ep, &["put", "ctl/rev", "1"], None);
    let mut c = client(&cluster.members[leader].client_url()).await.unwrap();
    let old = revision(&mut c).await;
    etcdctl_ok(ep, &["put", "ctl/rev", "2"], None);
    let newer = revision(&mut c).await;
    assert_eq!(
        etcdctl_ok(ep, &["compaction", &newer.to_string()], None),
        format!("compacted revision {newer}\n")
    );
    checks.etcdctl(
        ep,
        &["get", "ctl/rev", &format!("--rev={old}")],
        None,
        COMPACTED,
    );
    etcdctl_still_serves(ep, "get compacted");
    checks.etcdctl(ep, &["compaction", &newer.to_string()], None, COMPACTED);
    etcdctl_still_serves(ep, "compact again");
    checks.etcdctl(
        ep,
        &["get", "ctl/rev", &format!("--rev={}", newer + 1000)],
        None,
        FUTURE_REV,
    );
    etcdctl_still_serves(ep, "get future");
    checks.etcdctl(
        ep,
        &["put", "ctl/leased", "v", "--lease=77771234"],
        None,
        LEASE_NOT_FOUND,
    );
    etcdctl_still_serves(ep, "unknown lease");
    checks.etcdctl(ep, &["member", "remove", "1234"], None, MEMBER_NOT_FOUND);
    etcdctl_still_serves(ep, "member remove");
    checks.etcdctl(
        ep,
        &["member", "promote", &format!("{voter_id:x}")],
        None,
        PROMOTE_VOTER,
    );
    etcdctl_still_serves(ep, "member promote");

    // Every member is still up.
    for m in &mut cluster.members {
        assert!(m.running(), "{} exited:\n{}", m.name, m.log());
    }

    // Last, as it is not bad input: a value just below --max-request-bytes is accepted,
    // stored whole, and the cluster keeps serving.
    let fits = vec![b'b'; MAX_REQUEST_BYTES - 1024];
    match c.put("fits", fits.clone(), None).await {
        Ok(_) => {
            let g = c.get("fits", None).await.unwrap();
            assert_eq!(
                g.kvs()[0].value(),
                fits.as_slice(),
                "near-limit value read back wrong"
            );
            still_serves(&mut c, "near-limit put").await;
        }
        Err(e) => {
            checks.failures.push(format!(
                "put of {} bytes (below the limit) failed: {e}",
                fits.len()
            ));
            let after = c.put("after-fits", "v", None).await;
            checks
                .failures
                .push(format!("a small put after it: {after:?}"));
        }
    }
    checks.finish();
}
