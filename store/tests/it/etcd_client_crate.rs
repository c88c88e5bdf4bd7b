//! The third-party `etcd-client` crate against a 3-member cluster: KV, Txn, Cluster,
//! Maintenance.

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};

use crate::common::{Cluster, client_many};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_txn_cluster_maintenance() {
    let mut cluster = Cluster::start(3).await;
    let urls = cluster.live_urls();
    let mut c = client_many(&urls).await.unwrap();

    // KV
    let r = c.put("k1", "v1", None).await.unwrap();
    let rev1 = r.header().unwrap().revision();
    assert!(rev1 >= 2);
    let r = c
        .put("k1", "v2", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(r.prev_key().unwrap().value(), b"v1");
    assert_eq!(r.header().unwrap().revision(), rev1 + 1);
    let g = c.get("k1", None).await.unwrap();
    assert_eq!(g.kvs()[0].value(), b"v2");
    assert_eq!(g.kvs()[0].version(), 2);
    assert_eq!(g.kvs()[0].create_revision(), rev1);
    let old = c
        .get("k1", Some(GetOptions::new().with_revision(rev1)))
        .await
        .unwrap();
    assert_eq!(old.kvs()[0].value(), b"v1");
    for i in 0..5 {
        c.put(format!("p/{i}"), format!("{i}"), None).await.unwrap();
    }
    let g = c
        .get("p/", Some(GetOptions::new().with_prefix().with_limit(2)))
        .await
        .unwrap();
    assert_eq!(g.kvs().len(), 2);
    assert!(g.more());
    assert_eq!(g.count(), 5);
    let d = c
        .delete("p/", Some(etcd_client::DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(d.deleted(), 5);

    // Txn: compare-and-swap on mod revision
    let cur = c.get("k1", None).await.unwrap().kvs()[0].mod_revision();
    let t = Txn::new()
        .when([Compare::mod_revision("k1", CompareOp::Equal, cur)])
        .and_then([TxnOp::put("k1", "v3", None), TxnOp::get("k1", None)])
        .or_else([TxnOp::get("k1", None)]);
    let r = c.txn(t.clone()).await.unwrap();
    assert!(r.succeeded());
    let r = c.txn(t).await.unwrap();
    assert!(!r.succeeded(), "the second CAS must fail");

    // Cluster
    let ml = c.member_list().await.unwrap();
    assert_eq!(ml.members().len(), 3);
    let mut names: Vec<&str> = ml.members().iter().map(|m| m.name()).collect();
    names.sort();
    assert_eq!(names, ["m0", "m1", "m2"]);
    assert!(
        ml.members()
            .iter()
            .all(|m| !m.is_learner() && m.client_urls().len() == 1)
    );

    // Maintenance: status and hashes agree across members
    let rev = c
        .get("k1", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut hashes = Vec::new();
    for url in &urls {
        let mut one = crate::common::client(url).await.unwrap();
        // wait until this member applied `rev`
        for _ in 0..50 {
            let s = one.status().await.unwrap();
            if s.header().unwrap().revision() >= rev {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let s = one.status().await.unwrap();
        assert_ne!(s.leader(), 0);
        assert!(s.raft_index() > 0);
        let h = one.hash_kv(rev).await.unwrap();
        hashes.push(h.hash());
    }
    assert!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "hashkv differ: {hashes:?}"
    );
    // A snapshot stream's messages carry the header at the revision the snapshot holds (the
    // operator records it as the backup's revision).
    let mut one = crate::common::client(&urls[0]).await.unwrap();
    let mut stream = one.snapshot().await.unwrap();
    let first = stream.message().await.unwrap().expect("a first message");
    assert_eq!(first.header().map(|h| h.revision()), Some(rev));
    let leader = cluster.leader().await;
    assert!(leader < 3);
}

/// Read your writes on a follower, as etcd gives them: a write sent to a follower is answered
/// once that follower has applied it, so a serializable read or a watch there right after sees
/// it (a compaction included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_follower_is_seen_there_at_once() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let mut c = crate::common::client(&cluster.members[follower].client_url())
        .await
        .unwrap();
    let local = || Some(GetOptions::new().with_serializable());
    for i in 0..100 {
        let rev = c
            .put("ryw", i.to_string(), None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        let got = c.get("ryw", local()).await.unwrap();
        assert_eq!(
            got.kvs()[0].value_str().unwrap(),
            i.to_string(),
            "put {i} (revision {rev}) not seen by a serializable read on the same member"
        );
    }
    let compact_at = c
        .get("ryw", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    c.compact(compact_at, None).await.unwrap();
    let got = c.get("ryw", local().map(|o| o.with_revision(2))).await;
    assert!(
        got.is_err_and(|e| e.to_string().contains("compacted")),
        "a read below the compaction right after it, on the same member"
    );
}
