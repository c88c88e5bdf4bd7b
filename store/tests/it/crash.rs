//! Crash safety: `kill -9` of the leader, then of every member, while 64 writers run. After the
//! restart every acknowledged write is present, the revision never went backwards, and Hash /
//! HashKV agree across members. A leader restarted at once gives way to an election; a member
//! whose Raft core stops exits rather than lingering.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;

use crate::common::{Cluster, client, client_many};

/// Concurrent writers: enough that the log writer always has a batch of many entries (and
/// several appends) on its way to disk when a member is killed.
const WRITERS: usize = 64;

#[derive(Debug, Clone)]
struct Acked {
    key: String,
    value: String,
    revision: i64,
}

async fn writer(
    urls: Vec<String>,
    id: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
) -> usize {
    let mut errors = 0;
    let mut n = 0u64;
    let mut last_rev = 0;
    let mut c = None;
    while !stop.load(Ordering::Relaxed) {
        if c.is_none() {
            c = client_many(&urls).await.ok();
            if c.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
        let key = format!("w{id}/{n:06}");
        let value = format!("v{id}-{n}");
        n += 1;
        match c
            .as_mut()
            .unwrap()
            .put(key.clone(), value.clone(), None)
            .await
        {
            Ok(r) => {
                let revision = r.header().unwrap().revision();
                assert!(
                    revision > last_rev,
                    "revision went backwards for one writer: {last_rev} -> {revision}"
                );
                last_rev = revision;
                acked.lock().await.push(Acked {
                    key,
                    value,
                    revision,
                });
            }
            Err(_) => {
                errors += 1;
                c = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let mut cluster = Cluster::start(3).await;
    let urls = cluster.live_urls();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| tokio::spawn(writer(urls.clone(), i, stop.clone(), acked.clone())))
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let leader = cluster.leader().await;
    cluster.members[leader].kill();
    let before_failover = acked.lock().await.len();
    // Writes resume once a new leader is elected: the followers' timers fire one to two
    // election timeouts (1 s here) after the leader was last heard, and the first pre-vote
    // wins. Measured 1.2-2.2 s; a member locked out of its own pre-vote took 15 s and more.
    let killed = std::time::Instant::now();
    let deadline = killed + Duration::from_secs(6);
    while acked.lock().await.len() < before_failover + 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "writes did not resume after the leader was killed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "writes resumed {:.2} s after the leader was killed",
        killed.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Now every member at once, writers still running.
    for m in &mut cluster.members {
        m.kill();
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().await.clone();
    let max_rev = acked.iter().map(|a| a.revision).max().unwrap();
    println!(
        "{} writes acknowledged before every member was killed",
        acked.len()
    );
    assert!(
        acked.len() > 50,
        "too few writes acknowledged: {}",
        acked.len()
    );

    for m in &mut cluster.members {
        m.start();
    }
    cluster.wait_ready(Duration::from_secs(30)).await;
    let urls = cluster.live_urls();
    let mut c = client_many(&urls).await.unwrap();
    let current = c
        .get("health", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    assert!(
        current >= max_rev,
        "revision went backwards across the crash: {max_rev} -> {current}"
    );
    let all = c
        .get("w", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let stored: std::collections::HashMap<String, String> = all
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
            )
        })
        .collect();
    for a in &acked {
        assert_eq!(
            stored.get(&a.key),
            Some(&a.value),
            "acknowledged write {a:?} lost"
        );
    }

    // Every member converges on the same revision, Hash and HashKV.
    let mut seen = Vec::new();
    for url in &urls {
        let mut one = client(url).await.unwrap();
        let mut h = None;
        for _ in 0..100 {
            let s = one.status().await.unwrap();
            if s.header().unwrap().revision() >= current {
                h = Some((
                    one.hash_kv(current).await.unwrap().hash(),
                    one.hash().await.unwrap().hash(),
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen.push(h.expect("member did not catch up"));
    }
    assert!(
        seen.windows(2).all(|w| w[0].0 == w[1].0),
        "HashKV differs: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0].1 == w[1].1),
        "Hash differs: {seen:?}"
    );
}

/// Three members with keys `k0`..`k19` written through the leader: the cluster, the leader's
/// index and a client of it.
async fn three_with_20_keys() -> (Cluster, usize, etcd_client::Client) {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let mut c = client(&cluster.members[leader].client_url()).await.unwrap();
    for i in 0..20 {
        c.put(format!("k{i}"), "v", None).await.unwrap();
    }
    (cluster, leader, c)
}

/// A leader killed and restarted at once does not carry on its old term (openraft would resume
/// it as leader): the cluster elects a leader in a newer term, as etcd does, and every write
/// acknowledged before the kill is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_leaves_the_choice_to_an_election() {
    let (mut cluster, leader, mut c) = three_with_20_keys().await;
    let term_before = c.status().await.unwrap().raft_term();
    cluster.members[leader].kill();
    cluster.members[leader].start();
    let restarted = cluster.members[leader].client_url();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let term_after = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no leader in a newer term after the leader's restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(mut one) = client(&restarted).await else {
            continue;
        };
        match one.status().await {
            Ok(s) if s.leader() != 0 && s.raft_term() > term_before => break s.raft_term(),
            _ => {}
        }
    };
    println!("term {term_before} -> {term_after} after the leader's restart");
    cluster.wait_ready(Duration::from_secs(20)).await;
    let mut c = client_many(&cluster.live_urls()).await.unwrap();
    let got = c
        .get("k", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(got.kvs().len(), 20, "writes acknowledged before the kill");
}

/// A member whose Raft core fails does not linger: a follower wiped and started again with its
/// bootstrap flags (a fresh log under its old id, below what it had acknowledged) makes
/// openraft's leader core panic on "follower log reversion"; the leader's process then exits
/// with an error instead of answering health checks while it takes part in nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_raft_core_stops_exits() {
    let (mut cluster, mut leader, mut c) = three_with_20_keys().await;
    // A wiped member bootstraps again and, as openraft's initialize does, campaigns at once in
    // term 1. A leader still in term 1 can take that vote for a newer one and step down; the
    // next leader never matched the follower's old log, so it sends the data again and sees
    // no reversion (one run in many, on a loaded machine). So leave term 1 first.
    if c.status().await.unwrap().raft_term() == 1 {
        let target = (leader + 2) % 3;
        let mut t = client(&cluster.members[target].client_url()).await.unwrap();
        let target_id = t.status().await.unwrap().header().unwrap().member_id();
        // Past the leader's own lease from its election, within which it refuses to vote.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        c.move_leader(target_id).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while cluster.leader().await != target {
            assert!(
                std::time::Instant::now() < deadline,
                "leadership did not move"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        leader = target;
    }
    let follower = (leader + 1) % 3;
    let f = &mut cluster.members[follower];
    f.kill();
    std::fs::remove_dir_all(f.dir.join("data")).unwrap();
    f.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while cluster.members[leader].running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the leader's process still runs 20 s after its follower came back with a reverted log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = cluster.members[leader]
        .child
        .as_mut()
        .and_then(|c| c.try_wait().ok().flatten())
        .expect("an exit status");
    assert!(!status.success(), "exited with {status}");
    let log = cluster.members[leader].log();
    assert!(log.contains("the Raft core stopped"), "{log}");
    println!(
        "{}",
        log.lines()
            .find(|l| l.contains("the Raft core stopped"))
            .unwrap_or_default()
    );
}
