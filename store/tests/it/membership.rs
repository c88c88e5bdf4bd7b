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
