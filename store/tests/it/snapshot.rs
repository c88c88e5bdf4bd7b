//! Raft snapshots and log compaction: with `--snapshot-count` small, the leader snapshots and
//! purges its log, and a member that was down for more entries than that catches up by
//! receiving a snapshot, which leaves no file behind. Client snapshots restored with `--bump-revision --mark-compacted`:
//! watches and reads resuming from the old history are refused as compacted.

use std::path::Path;
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions, WatchOptions, WatchResponse, WatchStream};

use crate::common::{Cluster, Member, client, free_port};
use crate::kvctl::kvctl_ok;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_member_catches_up_via_snapshot() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-count", "100"]).await;
    let leader = cluster.leader().await;
    let down = (leader + 1) % 3;
    let live = (leader + 2) % 3;
    let live_id = member_id(&cluster.members[live].client_url()).await;
    let streams_to_live = |metrics: &str| {
        labeled(
            metrics,
            "kvstore_network_peer_append_streams_opened_total",
            &live_id,
        )
    };
    cluster.members[down].kill();
    let streams_before = streams_to_live(&curl_metrics(&cluster.members[leader].client_url()));
    let mut c = client(&cluster.members[leader].client_url()).await.unwrap();
    for i in 0..700 {
        c.put(format!("snap/{i:04}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
    // The leader has snapshotted and purged its log beyond what the stopped member has.
    let metrics = curl_metrics(&cluster.members[leader].client_url());
    // The 700 puts reached the live follower over the append stream already open (at most one
    // more, should openraft have restarted replication once).
    let streams = streams_to_live(&metrics);
    assert!(
        streams_before >= 1.0 && streams - streams_before <= 1.0,
        "append streams opened to the live follower: {streams_before} before the puts, \
         {streams} after"
    );
    let purged = metric(&metrics, "kvstore_raft_purged_index");
    let snap = metric(&metrics, "kvstore_raft_snapshot_index");
    assert!(
        snap >= 600.0,
        "no raft snapshot on the leader: snapshot index {snap}"
    );
    assert!(
        purged > 100.0,
        "leader log not purged: purged index {purged}"
    );

    cluster.members[down].start();
    let url = cluster.members[down].client_url();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut m) = client(&url).await
            && let Ok(r) = m
                .get(
                    "snap/",
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_count_only()
                            .with_serializable(),
                    ),
                )
                .await
            && r.count() == 700
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member did not catch up:\n{}",
            cluster.members[down].log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let m = curl_metrics(&url);
    assert!(
        metric(&m, "kvstore_raft_snapshot_index") > 0.0,
        "the lagging member caught up without installing a snapshot"
    );
    let mut m = client(&url).await.unwrap();
    let v = m
        .get("snap/0699", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(v.kvs()[0].value(), b"v699");
    // No snapshot file is kept: the leader's snapshot was written for the follower into a file
    // without a name, gone once sent.
    let kept: Vec<_> = std::fs::read_dir(cluster.members[leader].dir.join("data/member/snap"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(kept.is_empty(), "snapshot files kept: {kept:?}");
}

fn curl_metrics(url: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("{url}/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The value of `name{To="<to>"}`.
fn labeled(text: &str, name: &str, to: &str) -> f64 {
    let series = format!("{name}{{To=\"{to}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The member id (hex, as metric labels spell it) of the member at `url`.
async fn member_id(url: &str) -> String {
    let mut c = client(url).await.unwrap();
    let id = c.status().await.unwrap().header().unwrap().member_id();
    format!("{id:x}")
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

/// How far the restore raises the revision (etcd advises 1e9 for Kubernetes; any amount above
/// the revisions written since the backup does).
const BUMP: i64 = 1000;

/// (key, value, create revision, mod revision, version) of every key under `prefix`, and the
/// revision of the read.
async fn keys(c: &mut Client, prefix: &str) -> (Vec<(String, String, i64, i64, i64)>, i64) {
    let r = c
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let kvs = r
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
            )
        })
        .collect();
    (kvs, r.header().unwrap().revision())
}

/// Restore `snap` with `flags` into a new one-member cluster under `tmp` and start it; the
/// cluster and what kvctl printed.
async fn restore_one(snap: &Path, flags: &[&str]) -> (Cluster, String) {
    let tmp = tempfile::tempdir().unwrap();
    let (client_port, peer_port) = (free_port(), free_port());
    let initial = format!("r0=http://127.0.0.1:{peer_port}");
    let token = format!("restored-{}", free_port());
    let dir = tmp.path().join("r0");
    let data = dir.join("data");
    let mut args = vec![
        "snapshot",
        "restore",
        snap.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--name",
        "r0",
        "--initial-cluster",
        &initial,
        "--initial-cluster-token",
        &token,
    ];
    args.extend(flags);
    // (Offline: the endpoint is the member about to be made.)
    let out = kvctl_ok(&format!("127.0.0.1:{client_port}"), &args, None);
    let member = Member {
        name: "r0".into(),
        client_port,
        peer_port,
        dir,
        child: None,
        extra: Vec::new(),
        initial_cluster: initial.clone(),
        state: "new",
        token: token.clone(),
    };
    let mut restored = Cluster {
        members: vec![member],
        token,
        tmp,
    };
    restored.members[0].start();
    restored.wait_ready(Duration::from_secs(30)).await;
    (restored, out)
}

/// The next message of a watch stream, within `within`.
async fn next_message(s: &mut WatchStream, within: Duration) -> Option<WatchResponse> {
    tokio::time::timeout(within, s.message())
        .await
        .ok()
        .map(|m| m.unwrap().expect("the watch stream ended"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_with_a_revision_bump_cancels_watches_resuming_from_the_old_history() {
    let mut old = Cluster::start(1).await;
    let ep = old.members[0].endpoint();
    let mut c = client(&old.members[0].client_url()).await.unwrap();
    for i in 0..20 {
        c.put(format!("br/{i:02}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
    c.put("br/05", "v5-again", None).await.unwrap();
    c.delete("br/07", None).await.unwrap();
    let (backed_up, snap_rev) = keys(&mut c, "br/").await;
    let files = tempfile::tempdir().unwrap();
    let snap = files.path().join("backup.db");
    kvctl_ok(&ep, &["snapshot", "save", snap.to_str().unwrap()], None);
    // Writes after the backup: a watching client saw revisions up to `seen`.
    let mut seen = 0;
    for i in 0..10 {
        let r = c.put(format!("br/late{i}"), "x", None).await.unwrap();
        seen = r.header().unwrap().revision();
    }
    assert!(
        seen < snap_rev + BUMP,
        "the bump is too small for this test"
    );
    old.members[0].kill();

    let (restored, out) = restore_one(
        &snap,
        &["--bump-revision", &BUMP.to_string(), "--mark-compacted"],
    )
    .await;
    let mut c = client(&restored.members[0].client_url()).await.unwrap();
    let new_rev = snap_rev + BUMP;

    // (a) The client resumes its watch after the last revision it saw: canceled as compacted,
    // so it relists, instead of waiting for revisions of another history.
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(seen + 1);
    let mut w = c.watch("br/", Some(opts)).await.unwrap();
    let canceled = loop {
        let msg = next_message(&mut w, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("the watch resuming from {} was not canceled", seen + 1));
        assert!(
            msg.events().is_empty(),
            "events from the old history: {msg:?}"
        );
        if msg.canceled() {
            break msg;
        }
    };
    assert_eq!(canceled.compact_revision(), new_rev);
    assert_eq!(canceled.cancel_reason(), COMPACTED);
    assert!(
        out.contains(&format!(
            "(revision {snap_rev}, raised to {new_rev} and compacted there)"
        )),
        "{out}"
    );

    // (b) Reads at old revisions are refused the same way; HashKV at the new one works.
    for rev in [snap_rev, seen, new_rev - 1] {
        let e = c
            .get(
                "br/",
                Some(GetOptions::new().with_prefix().with_revision(rev)),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains(COMPACTED), "range at {rev}: {e}");
    }
    let h = c.hash_kv(0).await.unwrap();
    assert_eq!(
        (h.header().unwrap().revision(), h.compact_version()),
        (new_rev, new_rev)
    );

    // (c) The keys are the snapshot's, unchanged; the store stands at the raised revision.
    assert_eq!(keys(&mut c, "br/").await, (backed_up, new_rev));

    // (d) A new write gets the revision after the raised one, and a watch from the raised
    // revision sees exactly it (the skipped revisions hold no events).
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(new_rev);
    let mut w = c.watch("br/", Some(opts)).await.unwrap();
    let r = c.put("br/after", "y", None).await.unwrap();
    assert_eq!(r.header().unwrap().revision(), new_rev + 1);
    let mut got = Vec::new();
    while got.is_empty() {
        let msg = next_message(&mut w, Duration::from_secs(5))
            .await
            .expect("no event for the write after the restore");
        assert!(!msg.canceled(), "{msg:?}");
        got.extend(msg.events().iter().map(|e| {
            let kv = e.kv().unwrap();
            (kv.key_str().unwrap().to_string(), kv.mod_revision())
        }));
    }
    assert_eq!(got, [("br/after".to_string(), new_rev + 1)]);
}
