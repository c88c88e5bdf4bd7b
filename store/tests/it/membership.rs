//! Membership changes through the etcd Cluster API: adding a member that has not started does
//! not block, a started member catches up as a learner and is promoted by itself, and removing
//! the leader works (the removed member stops).

use std::time::{Duration, Instant};

use etcd_client::GetOptions;

use crate::common::{Cluster, client, client_many};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_voter_catch_up_and_remove_leader() {
    let mut cluster = Cluster::start(3).await;
    let urls = cluster.live_urls();
    let mut c = client_many(&urls).await.unwrap();
    for i in 0..20 {
        c.put(format!("pre/{i}"), "x", None).await.unwrap();
    }

    // Adding a voter that has not started answers at once and costs no availability.
    let mut joiner = cluster.new_joiner("m3");
    let t = Instant::now();
    let added = c.member_add([joiner.peer_url()], None).await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "member add blocked for {:?}",
        t.elapsed()
    );
    let new_id = added.member().unwrap().id();
    let listed = c.member_list().await.unwrap();
    let m = listed
        .members()
        .iter()
        .find(|m| m.id() == new_id)
        .expect("new member listed");
    assert_eq!(m.name(), "", "an unstarted member has no name");
    assert!(
        !m.is_learner(),
        "a member added as voter is listed as voter"
    );
    c.put("during-add", "ok", None).await.unwrap();

    // Start it: it joins, catches up, publishes its name and becomes a Raft voter.
    joiner.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut j) = client(&joiner.client_url()).await
            && let Ok(s) = j.status().await
            && !s.is_learner()
            && s.leader() != 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "joiner never became a voter:\n{}",
            joiner.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut j = client(&joiner.client_url()).await.unwrap();
    let got = j
        .get(
            "pre/",
            Some(GetOptions::new().with_prefix().with_serializable()),
        )
        .await
        .unwrap();
    assert_eq!(got.count(), 20, "joiner has the data");
    // Once started, the member publishes its name (through Raft, shortly after joining).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = c.member_list().await.unwrap();
        assert_eq!(listed.members().len(), 4);
        let m = listed.members().iter().find(|m| m.id() == new_id).unwrap();
        if m.name() == "m3" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new member never published its name"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.members.push(joiner);

    // Remove the leader through another member.
    let leader = cluster.leader().await;
    let leader_id = {
        let mut lc = client(&cluster.members[leader].client_url()).await.unwrap();
        lc.status().await.unwrap().header().unwrap().member_id()
    };
    let other = (leader + 1) % cluster.members.len();
    let mut oc = client(&cluster.members[other].client_url()).await.unwrap();
    oc.member_remove(leader_id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while cluster.members[leader].running() {
        assert!(Instant::now() < deadline, "removed leader kept running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = oc.member_list().await.unwrap();
    assert_eq!(listed.members().len(), 3);
    assert!(listed.members().iter().all(|m| m.id() != leader_id));
    cluster.wait_ready(Duration::from_secs(15)).await;
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    let urls = cluster.live_urls();
    let mut c = client_many(&urls).await.unwrap();
    c.put("after-remove", "ok", None).await.unwrap();
    assert_eq!(
        c.get("after-remove", None).await.unwrap().kvs()[0].value(),
        b"ok"
    );
}

/// A member that ran before and comes back with an empty data dir refuses to rejoin under its
/// old id (exit status 3, a message naming the fix); once removed and added again it joins as
/// a new member and gets the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_with_lost_data_is_refused_then_replaced() {
    let mut cluster = Cluster::start(3).await;
    let urls = cluster.live_urls();
    let mut c = client_many(&urls).await.unwrap();
    for i in 0..10 {
        c.put(format!("k{i}"), "v", None).await.unwrap();
    }
    // Lose member 2's data: kill it, wipe its data dir, start it as a member of an existing
    // cluster again (what a pod with a fresh volume does).
    let victim = 2;
    let old_id = {
        let mut vc = client(&cluster.members[victim].client_url()).await.unwrap();
        vc.status().await.unwrap().header().unwrap().member_id()
    };
    // It has run once the cluster knows its client URLs (published as it started); a member
    // that never got that far is one that was added but not started yet, and may start empty.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = c.member_list().await.unwrap();
        if list
            .members()
            .iter()
            .any(|m| m.id() == old_id && !m.client_urls().is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the member never published its URLs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.members[victim].kill();
    std::fs::remove_dir_all(cluster.members[victim].dir.join("data")).unwrap();
    cluster.members[victim].state = "existing";
    cluster.members[victim].start();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = cluster.members[victim]
            .child
            .as_mut()
            .and_then(|ch| ch.try_wait().unwrap())
        {
            break s;
        }
        assert!(Instant::now() < deadline, "a member with lost data started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    cluster.members[victim].child = None;
    assert_eq!(status.code(), Some(3), "{}", cluster.members[victim].log());
    // Talk to the members that run (a client balancing over the dead one fails at random).
    let mut c = client_many(&cluster.live_urls()).await.unwrap();
    let log = cluster.members[victim].log();
    assert!(
        log.contains("its data is lost") && log.contains(&format!("member remove {old_id:x}")),
        "{log}"
    );
    c.put("still-writable", "yes", None).await.unwrap();

    // Replace it: remove, add again with the same peer URL, start with the empty dir.
    c.member_remove(old_id).await.unwrap();
    let added = c
        .member_add([cluster.members[victim].peer_url()], None)
        .await
        .unwrap();
    let new_id = added.member().unwrap().id();
    assert_ne!(new_id, old_id);
    std::fs::remove_dir_all(cluster.members[victim].dir.join("data")).ok();
    cluster.members[victim].start();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut vc) = client(&cluster.members[victim].client_url()).await
            && let Ok(s) = vc.status().await
            && s.header().unwrap().member_id() == new_id
            && !s.is_learner()
            && let Ok(got) = vc
                .get(
                    "still-writable",
                    Some(GetOptions::new().with_serializable()),
                )
                .await
            && got.count() == 1
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replaced member never caught up:\n{}",
            cluster.members[victim].log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
