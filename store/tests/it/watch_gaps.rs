//! A watch stream never jumps: every path by which a member's state moves without the stream
//! seeing each batch (a Raft snapshot installed on a live member or right after a restart, a
//! stream that lagged, a leader change during a catch-up, a defragmentation) still delivers
//! every revision in order, once; and a progress notification never precedes an event at or
//! below its revision.
//!
//! Each test compares the stream with the writes' own acknowledged revisions, so a skipped,
//! repeated or reordered event fails it.

use std::time::{Duration, Instant};

use etcd_client::{Client, WatchOptions, WatchStream};

use crate::common::{Cluster, client, client_many};

/// Put `n` keys `<prefix><i>` one after the other; the (key, revision) of each.
async fn put_keys(c: &mut Client, prefix: &str, n: usize) -> Vec<(String, i64)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("{prefix}{i:04}");
        let r = c.put(key.clone(), format!("v{i}"), None).await.unwrap();
        out.push((key, r.header().unwrap().revision()));
    }
    out
}

/// Open a prefix watch from `start` (0: now) and read its created response.
async fn watch_from(c: &mut Client, prefix: &str, start: i64) -> WatchStream {
    let mut opts = WatchOptions::new().with_prefix();
    if start > 0 {
        opts = opts.with_start_revision(start);
    }
    let mut s = c.watch(prefix, Some(opts)).await.unwrap();
    let created = s.message().await.unwrap().unwrap();
    assert!(created.created(), "no created response: {created:?}");
    s
}

/// Read events until one at revision `last` or later arrives; (key, revision) of each.
async fn events_until(s: &mut WatchStream, last: i64, within: Duration) -> Vec<(String, i64)> {
    let deadline = Instant::now() + within;
    let mut got: Vec<(String, i64)> = Vec::new();
    while got.last().is_none_or(|(_, r)| *r < last) {
        let msg = tokio::time::timeout_at(deadline.into(), s.message())
            .await
            .unwrap_or_else(|_| panic!("no event at revision {last} in time; got {got:?}"))
            .unwrap()
            .expect("the watch stream ended");
        assert!(
            !msg.canceled(),
            "watch canceled: {} (compact revision {})",
            msg.cancel_reason(),
            msg.compact_revision()
        );
        for e in msg.events() {
            let kv = e.kv().unwrap();
            got.push((kv.key_str().unwrap().to_string(), kv.mod_revision()));
        }
    }
    got
}

/// The first difference between what was written and what the stream delivered.
fn assert_same_events(got: &[(String, i64)], written: &[(String, i64)]) {
    if let Some(i) = (0..got.len().max(written.len())).find(|i| got.get(*i) != written.get(*i)) {
        panic!(
            "the watch stream differs from the writes at event {i}: got {:?}, written {:?} \
             ({} events got, {} written)",
            got.get(i),
            written.get(i),
            got.len(),
            written.len()
        );
    }
}

fn installed_snapshot(log: &str) -> bool {
    log.contains("installed a Raft snapshot")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_a_member_that_installs_a_snapshot_skips_nothing() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-count", "20"]).await;
    let leader = cluster.leader().await;
    let f = (leader + 1) % 3;
    let mut wc = client(&cluster.members[f].client_url()).await.unwrap();
    let mut stream = watch_from(&mut wc, "gap/", 0).await;
    let mut c = client(&cluster.members[leader].client_url()).await.unwrap();
    let mut written = put_keys(&mut c, "gap/a", 10).await;
    // Paused, the member keeps its client connections (and the watch) but falls behind the
    // leader's purged log: it catches up by installing a snapshot.
    cluster.members[f].pause();
    written.extend(put_keys(&mut c, "gap/b", 600).await);
    cluster.members[f].resume();
    written.extend(put_keys(&mut c, "gap/c", 10).await);
    let last = written.last().unwrap().1;
    let got = events_until(&mut stream, last, Duration::from_secs(30)).await;
    assert_same_events(&got, &written);
    assert!(
        installed_snapshot(&cluster.members[f].log()),
        "the paused member caught up without a snapshot: the test proves nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumed_on_a_member_restarted_onto_a_snapshot_skips_nothing() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-count", "20"]).await;
    let leader = cluster.leader().await;
    let f = (leader + 1) % 3;
    let mut c = client(&cluster.members[leader].client_url()).await.unwrap();
    let seen = put_keys(&mut c, "rs/a", 10).await;
    cluster.members[f].kill();
    let mut missed = put_keys(&mut c, "rs/b", 600).await;
    cluster.members[f].start();
    // As an informer would: resume from the last revision seen, on the restarted member,
    // before it has caught up (it installs a snapshot that covers the revisions asked for).
    let from = seen.last().unwrap().1 + 1;
    let deadline = Instant::now() + Duration::from_secs(20);
    let opts = WatchOptions::new().with_prefix().with_start_revision(from);
    let mut stream = loop {
        if let Ok(mut wc) = client(&cluster.members[f].client_url()).await
            && let Ok(mut s) = wc.watch("rs/", Some(opts.clone())).await
            && let Ok(Some(created)) = s.message().await
        {
            assert!(created.created(), "no created response: {created:?}");
            break s;
        }
        assert!(Instant::now() < deadline, "the member did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    missed.extend(put_keys(&mut c, "rs/c", 10).await);
    let last = missed.last().unwrap().1;
    let got = events_until(&mut stream, last, Duration::from_secs(30)).await;
    assert_same_events(&got, &missed);
    assert!(
        installed_snapshot(&cluster.members[f].log()),
        "the restarted member caught up without a snapshot: the test proves nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_from_storage_goes_on_in_order_across_a_leader_change() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let f = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let mut c = client_many(&[
        cluster.members[f].client_url(),
        cluster.members[other].client_url(),
    ])
    .await
    .unwrap();
    // History to replay: 1.5 MiB, more than one catch-up round reads.
    let big = "x".repeat(4096);
    let mut written = Vec::new();
    for i in 0..400 {
        let key = format!("lag/a{i:04}");
        let r = c.put(key.clone(), big.clone(), None).await.unwrap();
        written.push((key, r.header().unwrap().revision()));
    }
    // A watch from the start replays it from storage while the leader dies and writes go on
    // (the replay itself lags the live batches: it must neither repeat nor skip them).
    let mut wc = client(&cluster.members[f].client_url()).await.unwrap();
    let mut stream = watch_from(&mut wc, "lag/", written[0].1).await;
    cluster.members[leader].kill();
    for i in 0..200 {
        let key = format!("lag/b{i:04}");
        loop {
            match c.put(key.clone(), "y", None).await {
                Ok(r) => {
                    written.push((key, r.header().unwrap().revision()));
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    let last = written.last().unwrap().1;
    let got = events_until(&mut stream, last, Duration::from_secs(30)).await;
    assert_same_events(&got, &written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_lagged_behind_the_live_batches_catches_up_in_order() {
    let cluster = Cluster::start(3).await;
    let url = cluster.members[1].client_url();
    let mut wc = client(&url).await.unwrap();
    let mut stream = watch_from(&mut wc, "st/", 0).await;
    // The stream is not read while 8 writers put 800 keys of 8 KiB: its responses fill the
    // transport and its buffer, the session stops taking live batches, and the broadcast drops
    // them for it (it lags): it must read what it missed from storage, in order, once.
    let value = "z".repeat(8192);
    let mut writers = Vec::new();
    for w in 0..8 {
        let (url, value) = (url.clone(), value.clone());
        writers.push(tokio::spawn(async move {
            let mut c = client(&url).await.unwrap();
            let mut out = Vec::new();
            for i in 0..100 {
                let key = format!("st/{w}/{i:03}");
                let r = c.put(key.clone(), value.clone(), None).await.unwrap();
                out.push((key, r.header().unwrap().revision()));
            }
            out
        }));
    }
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    written.sort_by_key(|(_, rev)| *rev);
    let last = written.last().unwrap().1;
    let got = events_until(&mut stream, last, Duration::from_secs(30)).await;
    assert_same_events(&got, &written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_goes_on_unbroken_through_a_defragmentation() {
    let cluster = Cluster::start(3).await;
    let url = cluster.members[0].client_url();
    let mut wc = client(&url).await.unwrap();
    let mut stream = watch_from(&mut wc, "df/", 0).await;
    let mut c = client(&url).await.unwrap();
    let mut written = put_keys(&mut c, "df/a", 200).await;
    let mut m = client(&url).await.unwrap();
    let defrag = tokio::spawn(async move {
        for _ in 0..3 {
            m.defragment().await.unwrap();
        }
    });
    written.extend(put_keys(&mut c, "df/b", 200).await);
    defrag.await.unwrap();
    written.extend(put_keys(&mut c, "df/c", 10).await);
    let last = written.last().unwrap().1;
    let got = events_until(&mut stream, last, Duration::from_secs(30)).await;
    assert_same_events(&got, &written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_follows_a_requested_progress_notification_at_or_below_its_revision() {
    let cluster = Cluster::start(3).await;
    progress_keeps_its_place(&cluster, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_follows_a_periodic_progress_notification_at_or_below_its_revision() {
    let cluster =
        Cluster::start_with(3, &["--experimental-watch-progress-notify-interval", "2ms"]).await;
    progress_keeps_its_place(&cluster, false).await;
}

/// Writers through every member keep batches flowing while a watch on member 1 gets progress
/// notifications (asked for over and over when `request`, else periodic): each must come
/// after every event at or below its revision, and never below the last event's.
async fn progress_keeps_its_place(cluster: &Cluster, request: bool) {
    let url = cluster.members[1].client_url();
    let mut wc = client(&url).await.unwrap();
    let opts = WatchOptions::new().with_prefix().with_progress_notify();
    let mut s = wc.watch("pn/", Some(opts)).await.unwrap();
    assert!(s.message().await.unwrap().unwrap().created());
    let (mut tx, mut rx) = s.split();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..6 {
        let url = cluster.members[w % 3].client_url();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut c = client(&url).await.unwrap();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.put(format!("pn/{w}/{i}"), "v", None).await.unwrap();
                i += 1;
            }
        }));
    }
    let asker = tokio::spawn(async move {
        for _ in 0..2000 {
            if request {
                tx.request_progress().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tx
    });
    let deadline = Instant::now() + Duration::from_secs(6);
    let (mut progress, mut last_event, mut notifications) = (0i64, 0i64, 0);
    while Instant::now() < deadline {
        let Ok(msg) = tokio::time::timeout(Duration::from_secs(2), rx.message()).await else {
            break;
        };
        let msg = msg.unwrap().unwrap();
        let rev = msg.header().unwrap().revision();
        if msg.events().is_empty() && !msg.created() && !msg.canceled() {
            assert!(
                rev >= last_event,
                "progress notification at {rev} after an event at {last_event}"
            );
            progress = progress.max(rev);
            notifications += 1;
        }
        for e in msg.events() {
            let r = e.kv().unwrap().mod_revision();
            assert!(
                r > progress,
                "event at revision {r} after a progress notification at {progress}"
            );
            last_event = r;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    drop(asker.await.unwrap());
    assert!(
        notifications > 100 && last_event > 100,
        "too little traffic to prove anything: {notifications} notifications, last event at \
         {last_event}"
    );
}
