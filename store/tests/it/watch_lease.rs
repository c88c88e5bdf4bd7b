//! Watch and lease semantics against 3-member clusters: real etcdctl watch and lease commands,
//! the etcd-client crate across a leader kill (no lost or repeated event), history replay,
//! compaction cancel, lease expiry, and a stalled watcher that must not cost memory or writers.

use std::time::{Duration, Instant};

use etcd_client::{EventType, WatchOptions};

use crate::common::{Cluster, client, client_many, etcdctl, etcdctl_ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_watch_and_leases() {
    let cluster = Cluster::start(3).await;
    let ep = cluster.endpoints();
    let one = cluster.members[0].endpoint();
    etcdctl_ok(&ep, &["put", "w/a", "1"], None);
    etcdctl_ok(&ep, &["put", "w/a", "2"], None);
    let rev1 = {
        let out = etcdctl_ok(&ep, &["get", "w/a", "-w", "json"], None);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["kvs"][0]["mod_revision"].as_i64().unwrap() - 1
    };
    etcdctl_ok(&ep, &["del", "w/a"], None);

    // History replay with prev-kv through `watch --rev`, in a child that we stop after a while.
    let ep2 = one.clone();
    let hist = std::thread::spawn(move || {
        let mut child = std::process::Command::new(crate::common::etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .args([
                format!("--endpoints={ep2}"),
                "watch".into(),
                "--prefix".into(),
                "w/".into(),
                format!("--rev={rev1}"),
                "--prev-kv".into(),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(3));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    });
    std::thread::sleep(Duration::from_millis(1500));
    etcdctl_ok(&ep, &["put", "w/b", "3"], None);
    let out = hist.join().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "PUT", "w/a", "1", "PUT", "w/a", "1", "w/a", "2", "DELETE", "w/a", "2", "w/a", "",
            "PUT", "w/b", "3"
        ],
        "watch output: {out}"
    );

    // Leases: grant, put --lease, keep-alive, timetolive --keys, revoke.
    let out = etcdctl_ok(&ep, &["lease", "grant", "30"], None);
    assert!(
        out.starts_with("lease ") && out.contains("granted with TTL(30s)"),
        "{out}"
    );
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    etcdctl_ok(&ep, &["put", "--lease", &id, "l/k1", "v"], None);
    etcdctl_ok(&ep, &["put", "--lease", &id, "l/k2", "v"], None);
    let out = etcdctl_ok(&ep, &["lease", "keep-alive", "--once", &id], None);
    assert_eq!(out.trim(), format!("lease {id} keepalived with TTL(30)"));
    let out = etcdctl_ok(&ep, &["lease", "timetolive", "--keys", &id], None);
    assert!(
        out.contains(&format!("lease {id} granted with TTL(30s), remaining(")),
        "{out}"
    );
    assert!(out.contains("attached keys([l/k1 l/k2])"), "{out}");
    let out = etcdctl_ok(&ep, &["lease", "list"], None);
    assert!(out.contains("found 1 leases") && out.contains(&id), "{out}");
    let out = etcdctl_ok(&ep, &["lease", "revoke", &id], None);
    assert_eq!(out.trim(), format!("lease {id} revoked"));
    assert_eq!(etcdctl_ok(&ep, &["get", "--prefix", "l/"], None), "");
    let out = etcdctl_ok(&ep, &["lease", "timetolive", &id], None);
    assert_eq!(out.trim(), format!("lease {id} already expired"));

    // Expiry: a short lease deletes its key by itself.
    let out = etcdctl_ok(&ep, &["lease", "grant", "2"], None);
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    etcdctl_ok(&ep, &["put", "--lease", &id, "l/short", "v"], None);
    assert!(etcdctl_ok(&ep, &["get", "l/short"], None).contains("l/short"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !etcdctl_ok(&ep, &["get", "l/short"], None).is_empty() {
        assert!(
            Instant::now() < deadline,
            "expired lease did not delete its key"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_health_with_a_member_down() {
    let mut cluster = Cluster::start(3).await;
    cluster.members[2].kill();
    let ep = cluster.endpoints();
    let out = etcdctl(&ep, &["endpoint", "health"], None);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(
        text.contains(&format!("{} is healthy", cluster.members[0].endpoint())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} is healthy", cluster.members[1].endpoint())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} is unhealthy", cluster.members[2].endpoint())),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_leader_kill_replays_and_cancels_on_compaction() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let watched = (leader + 1) % 3;
    let writer_member = (leader + 2) % 3;
    let mut wc = client(&cluster.members[watched].client_url())
        .await
        .unwrap();
    let mut stream = wc
        .watch("ev/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    let first = stream.message().await.unwrap().unwrap();
    assert!(first.created());

    let urls = vec![
        cluster.members[writer_member].client_url(),
        cluster.members[leader].client_url(),
    ];
    let mut c = client_many(&urls).await.unwrap();
    let total = 60;
    let mut written = Vec::new();
    for i in 0..total {
        if i == 20 {
            cluster.members[leader].kill();
        }
        let key = format!("ev/{i:03}");
        loop {
            match c.put(key.clone(), "x", None).await {
                Ok(r) => {
                    written.push((key.clone(), r.header().unwrap().revision()));
                    break;
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    c = client(&cluster.members[writer_member].client_url())
                        .await
                        .unwrap();
                }
            }
        }
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < total {
        let msg = tokio::time::timeout_at(deadline.into(), stream.message())
            .await
            .expect("events in time");
        let msg = msg.unwrap().unwrap();
        for e in msg.events() {
            assert_eq!(e.event_type(), EventType::Put);
            let kv = e.kv().unwrap();
            got.push((kv.key_str().unwrap().to_string(), kv.mod_revision()));
        }
    }
    assert_eq!(
        got, written,
        "watch lost, repeated or reordered events across the leader kill"
    );

    // Replay of all of history from revision 1.
    let mut c = client(&cluster.members[watched].client_url())
        .await
        .unwrap();
    let mut replay = c
        .watch(
            "ev/",
            Some(WatchOptions::new().with_prefix().with_start_revision(1)),
        )
        .await
        .unwrap();
    assert!(replay.message().await.unwrap().unwrap().created());
    let mut n = 0;
    while n < total {
        let m = replay.message().await.unwrap().unwrap();
        n += m.events().len();
    }
    assert_eq!(n, total);

    // A watch that starts below the compaction point is canceled with compact_revision.
    let compact_at = written[30].1;
    c.compact(compact_at, None).await.unwrap();
    let mut old = c
        .watch(
            "ev/",
            Some(WatchOptions::new().with_prefix().with_start_revision(2)),
        )
        .await
        .unwrap();
    let created = old.message().await.unwrap().unwrap();
    assert!(created.created());
    let canceled = old.message().await.unwrap().unwrap();
    assert!(canceled.canceled());
    assert_eq!(canceled.compact_revision(), compact_at);
}

fn rss_of(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// Put `per_writer` 16 KiB values from each of 8 writers through `url`; returns puts per second.
async fn write_load(url: &str, prefix: &str, per_writer: usize) -> f64 {
    let value = "v".repeat(16 * 1024);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let url = url.to_string();
        let value = value.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = client(&url).await.unwrap();
            for i in 0..per_writer {
                c.put(format!("{prefix}/{t}/{i}"), value.clone(), None)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (8 * per_writer) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_watcher_costs_neither_memory_nor_writers() {
    use kvstore::pb::watch_client::WatchClient;
    use kvstore::pb::{WatchCreateRequest, WatchRequest, watch_request};

    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let stalled = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let url = cluster.members[leader].client_url();
    // Baseline write rate, with no watcher.
    let baseline = write_load(&url, "base", 40).await;

    // A watcher on every key, with prev_kv, that never reads its stream.
    let mut wc = WatchClient::connect(cluster.members[stalled].client_url())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let create = WatchCreateRequest {
        key: vec![0],
        range_end: vec![0],
        prev_kv: true,
        ..Default::default()
    };
    let req = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
    };
    tx.send(req).await.unwrap();
    let _unread = wc
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap();

    // ~19 MiB of values: an unbounded watcher would hold about twice that (prev_kv).
    let with_watcher = write_load(&url, "big", 150).await;
    eprintln!("puts/s without watcher {baseline:.0}, with a stalled watcher {with_watcher:.0}");
    assert!(
        with_watcher > baseline / 2.0,
        "a stalled watcher slowed writers: {baseline:.0} -> {with_watcher:.0} puts/s"
    );
    // Let both followers apply everything, then compare their memory: same data, same caches,
    // one of them holds the stalled watcher.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_stalled = rss_of(cluster.members[stalled].child.as_ref().unwrap().id());
    let rss_other = rss_of(cluster.members[other].child.as_ref().unwrap().id());
    eprintln!("rss with stalled watcher {rss_stalled}, without {rss_other}");
    assert!(
        rss_stalled < rss_other + 16 * 1024 * 1024,
        "stalled watcher grew memory: {rss_stalled} vs {rss_other}"
    );
    assert!(cluster.members[stalled].running());
}
