//! Raft snapshots and log compaction: with `--snapshot-count` small, the leader snapshots and
//! purges its log, and a member that was down for more entries than that catches up by
//! receiving a snapshot.

use std::time::{Duration, Instant};

use etcd_client::GetOptions;

use crate::common::{Cluster, client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_member_catches_up_via_snapshot() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-count", "100"]).await;
    let leader = cluster.leader().await;
    let down = (leader + 1) % 3;
    cluster.members[down].kill();
    let mut c = client(&cluster.members[leader].client_url()).await.unwrap();
    for i in 0..700 {
        c.put(format!("snap/{i:04}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
    // The leader has snapshotted and purged its log beyond what the stopped member has.
    let metrics = curl_metrics(&cluster.members[leader].client_url());
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
    // Local snapshot files are kept within --max-snapshots (default 1: each holds the keyspace).
    let snaps = std::fs::read_dir(cluster.members[leader].dir.join("data/member/snap"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "snap")
        })
        .count();
    assert_eq!(snaps, 1, "{snaps} snapshot files kept");
}

fn curl_metrics(url: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("{url}/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
