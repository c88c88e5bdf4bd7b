//! Maintenance behaviour: the NOSPACE alarm on quota (reads and deletes keep working, disarm
//! clears it), leader transfer with MoveLeader, and a data directory of another cluster being
//! refused at start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{AlarmAction, AlarmOptions, AlarmType};

use crate::common::{Cluster, client, client_many, etcdctl_ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_raises_nospace_and_reads_and_deletes_still_work() {
    let cluster = Cluster::start_with(3, &["--quota-backend-bytes", "1200000"]).await;
    let urls: Vec<String> = cluster.members.iter().map(|m| m.client_url()).collect();
    let mut c = client_many(&urls).await.unwrap();
    c.put("small", "v", None).await.unwrap();
    let big = vec![b'x'; 256 * 1024];
    let mut refused = None;
    for i in 0..40 {
        if let Err(e) = c.put(format!("big/{i}"), big.clone(), None).await {
            refused = Some(e.to_string());
            break;
        }
    }
    let refused = refused.expect("the quota was never enforced");
    assert!(
        refused.contains("etcdserver: mvcc: database space exceeded"),
        "{refused}"
    );
    // Reads and deletes still work; writes stay refused while the alarm is active.
    assert_eq!(c.get("small", None).await.unwrap().kvs()[0].value(), b"v");
    c.delete(
        "big/",
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await
    .unwrap();
    let alarms = etcdctl_ok(&cluster.endpoints(), &["alarm", "list"], None);
    assert!(alarms.contains("alarm:NOSPACE"), "{alarms}");
    let e = c.put("small2", "v", None).await.unwrap_err().to_string();
    assert!(e.contains("database space exceeded"), "{e}");
    let health = std::process::Command::new("curl")
        .args(["-s", &format!("{}/health", urls[0])])
        .output()
        .unwrap();
    let health = String::from_utf8_lossy(&health.stdout).to_string();
    assert!(
        health.contains("\"health\":\"false\"") && health.contains("NOSPACE"),
        "{health}"
    );
    // etcd's recovery: compact, defragment every member, disarm; then writes work again.
    let rev = c
        .get("small", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    c.compact(rev, None).await.unwrap();
    for url in &urls {
        client(url).await.unwrap().defragment().await.unwrap();
    }
    let mut opts = AlarmOptions::new();
    opts.with_member(0);
    c.alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(opts))
        .await
        .unwrap();
    assert_eq!(
        etcdctl_ok(&cluster.endpoints(), &["alarm", "list"], None),
        ""
    );
    c.put("small2", "v", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_leader_and_foreign_data_dir() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let target = (leader + 1) % 3;
    let mut t = client(&cluster.members[target].client_url()).await.unwrap();
    let target_id = t.status().await.unwrap().header().unwrap().member_id();
    // A writer runs through the handover, on every member's endpoint: leadership moves in
    // about a round trip (the old leader holds writes back until the target has its whole log,
    // then votes for it), far less than an election timeout.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let eps = cluster.endpoints();
        tokio::spawn(async move {
            let mut c = etcd_client::Client::connect(eps.split(',').collect::<Vec<_>>(), None)
                .await
                .unwrap();
            let (mut longest, mut last_ok, mut n) = (Duration::ZERO, Instant::now(), 0u32);
            while !stop.load(Ordering::Relaxed) {
                if c.put(format!("ml/{n}"), "v", None).await.is_ok() {
                    longest = longest.max(last_ok.elapsed());
                    last_ok = Instant::now();
                    n += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (longest, n)
        })
    };
    // Past the leader's own lease from its election (a leader elected under 2 s ago still
    // refuses to vote for another candidate).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut l = client(&cluster.members[leader].client_url()).await.unwrap();
    let asked = Instant::now();
    if let Err(e) = l.move_leader(target_id).await {
        for m in &cluster.members {
            eprintln!("---- {} ----\n{}", m.name, m.log());
        }
        panic!("move-leader failed: {e}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if cluster.leader().await == target {
            break;
        }
        assert!(Instant::now() < deadline, "leadership did not move");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = asked.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (gap, writes) = writer.await.unwrap();
    println!(
        "move-leader took {:.2} s; longest write gap {:.2} s over {writes} writes",
        took.as_secs_f64(),
        gap.as_secs_f64()
    );
    assert!(writes > 20, "the writer wrote only {writes} keys");
    assert!(
        gap < Duration::from_millis(1000),
        "writes stalled {gap:?} while leadership moved"
    );
    // Asking a follower to move leadership gets etcd's error.
    let mut f = client(&cluster.members[leader].client_url()).await.unwrap();
    let e = f.move_leader(target_id).await.unwrap_err().to_string();
    assert!(e.contains("etcdserver: not leader"), "{e}");

    // A member restarted with bootstrap flags of another cluster is refused, with the reason.
    let m = &mut cluster.members[2];
    m.stop();
    m.token = "another-cluster".into();
    let out = std::process::Command::new(crate::common::kvstore_bin())
        .args(m.args())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("belongs to cluster") && err.contains("refusing to start"),
        "{err}"
    );
}
