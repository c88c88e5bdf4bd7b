//! A write sent to a follower is forwarded to the leader and applied once, whatever happens to
//! the leader meanwhile: a forwarded request that may have reached a leader that then stalled
//! is answered with an error, never sent to the next leader as well.
//!
//! Found by the robustness suite: a Put forwarded to a leader that was paused (SIGSTOP) came
//! back `Unavailable` when the peer connection's keep-alive timed out; the follower sent it to
//! the new leader, which also committed the paused leader's copy, so one Put made two
//! revisions.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::GetOptions;

use crate::common::{Cluster, client};

const WRITERS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_write_is_applied_once_when_the_leader_stalls() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let url = cluster.members[follower].client_url();

    // Writers through the follower, each key written once: a key at version 2 was applied
    // twice.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (url, stop) = (url.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = client(&url).await.unwrap();
            let (mut ok, mut failed) = (0u32, 0u32);
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let put = c.put(format!("once/{w:02}/{i:06}"), "v", None);
                match tokio::time::timeout(Duration::from_secs(15), put).await {
                    Ok(Ok(_)) => ok += 1,
                    _ => failed += 1,
                }
                i += 1;
            }
            (ok, failed)
        }));
    }

    // Stall the leader mid-traffic, longer than the peer keep-alive allows and than an
    // election takes, then let it come back.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let leader = cluster.leader().await;
        if leader == follower {
            break;
        }
        cluster.members[leader].pause();
        tokio::time::sleep(Duration::from_secs(5)).await;
        cluster.members[leader].resume();
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (o, f) = t.await.unwrap();
        ok += o;
        failed += f;
    }
    assert!(
        ok > 100,
        "too few writes got through: {ok} ok, {failed} failed"
    );

    cluster.wait_ready(Duration::from_secs(30)).await;
    let mut c = client(&url).await.unwrap();
    let all = c
        .get("once/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let twice: HashMap<String, i64> = all
        .kvs()
        .iter()
        .filter(|kv| kv.version() > 1)
        .map(|kv| (kv.key_str().unwrap().to_string(), kv.version()))
        .collect();
    assert!(
        twice.is_empty(),
        "{} of {} keys were applied more than once ({ok} writes answered, {failed} failed): \
         {twice:?}",
        twice.len(),
        all.kvs().len()
    );
}
