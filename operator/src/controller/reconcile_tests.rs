//! Reconcile against a mocked API server and a fake store cluster (see `fake.rs`): create,
//! scale up, scale down, member replacement, rolling update and deletion, each driven round
//! by round as the controller would, checking the objects, the membership calls and the
//! status.

use std::sync::{Arc, Mutex};

use kv_crds::v1alpha1::{KVCluster, KVClusterSpec};
use serde_json::json;

use super::fake::{self, FakeMembers, World, kvc_path, pod_path, sts_path};
use super::reconcile::reconcile;
use crate::context::Context;

struct Harness {
    world: Arc<Mutex<World>>,
    ctx: Arc<Context>,
}

impl Harness {
    fn new(replicas: i32) -> Harness {
        let world = Arc::new(Mutex::new(World::default()));
        let mut kvc = KVCluster::new(
            fake::NAME,
            KVClusterSpec {
                replicas,
                version: "0.1.0".into(),
                ..Default::default()
            },
        );
        kvc.metadata.namespace = Some(fake::NS.into());
        kvc.metadata.uid = Some("uid-1".into());
        kvc.metadata.generation = Some(1);
        world
            .lock()
            .unwrap()
            .objects
            .insert(kvc_path(), serde_json::to_value(&kvc).unwrap());
        let client = fake::client(world.clone());
        let members = Arc::new(FakeMembers(world.clone()));
        let ctx = Arc::new(Context::with_members(client, None, members));
        Harness { world, ctx }
    }

    fn kvc(&self) -> KVCluster {
        let w = self.world.lock().unwrap();
        serde_json::from_value(w.objects[&kvc_path()].clone()).unwrap()
    }

    fn edit(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let mut w = self.world.lock().unwrap();
        f(w.objects.get_mut(&kvc_path()).unwrap());
    }

    /// Reconcile until the cluster is Running with nothing in flight; the rounds it took.
    async fn settle(&self) -> usize {
        for round in 1..=40 {
            reconcile(Arc::new(self.kvc()), self.ctx.clone())
                .await
                .expect("reconcile");
            let st = self.kvc().status.unwrap_or_default();
            if st.phase.as_deref() == Some("Running") && st.operation.is_none() {
                return round;
            }
        }
        let w = self.world.lock().unwrap();
        panic!(
            "never settled: status {:?}, calls {:?}",
            w.objects[&kvc_path()]["status"],
            w.calls
        );
    }

    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut self.world.lock().unwrap().calls)
    }

    fn sts_replicas(&self) -> i64 {
        self.world.lock().unwrap().objects[&sts_path()]["spec"]["replicas"]
            .as_i64()
            .unwrap()
    }
}

#[tokio::test]
async fn create_bootstraps_member_zero_then_adds_learners_and_promotes() {
    let h = Harness::new(3);
    h.settle().await;
    assert_eq!(
        h.calls(),
        ["add_learner 1", "promote 1", "add_learner 2", "promote 2"]
    );
    assert_eq!(h.sts_replicas(), 3);
    let st = h.kvc().status.unwrap();
    assert_eq!((st.voters, st.learners, st.ready_replicas), (3, 0, 3));
    assert_eq!(st.leader.as_deref(), Some("demo-0"));
    assert_eq!(st.failure_tolerance, 1);
    let w = h.world.lock().unwrap();
    for path in [
        sts_path(),
        format!("/api/v1/namespaces/{}/services/demo-peer", fake::NS),
        format!("/api/v1/namespaces/{}/services/demo", fake::NS),
        format!(
            "/apis/policy/v1/namespaces/{}/poddisruptionbudgets/demo",
            fake::NS
        ),
    ] {
        let o = w
            .objects
            .get(&path)
            .unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!(
            o["metadata"]["ownerReferences"][0]["uid"], "uid-1",
            "{path} is owned by the KVCluster"
        );
    }
    assert!(w.events.iter().any(|e| e == "Bootstrapping"));
    for reason in ["MemberAdded", "MemberPromoted"] {
        assert!(w.events.iter().any(|e| e == reason), "{:?}", w.events);
    }
}

#[tokio::test]
async fn scale_up_then_down_one_member_at_a_time_leader_last() {
    let h = Harness::new(3);
    h.settle().await;
    h.calls();
    h.edit(|k| k["spec"]["replicas"] = json!(5));
    h.settle().await;
    assert_eq!(
        h.calls(),
        ["add_learner 3", "promote 3", "add_learner 4", "promote 4"]
    );
    assert_eq!(h.sts_replicas(), 5);
    // Make the highest member the leader, then scale down: it hands over first.
    {
        let mut w = h.world.lock().unwrap();
        w.leader = w.members.iter().find(|m| m.ordinal == 4).unwrap().id;
    }
    h.edit(|k| k["spec"]["replicas"] = json!(3));
    h.settle().await;
    assert_eq!(h.calls(), ["move_leader 0", "remove 4", "remove 3"]);
    assert_eq!(h.sts_replicas(), 3);
    let w = h.world.lock().unwrap();
    assert!(!w.objects.contains_key(&pod_path(3)));
    assert_eq!(w.members.len(), 3);
}

#[tokio::test]
async fn a_missing_pod_is_not_a_scale_down() {
    let h = Harness::new(3);
    h.settle().await;
    h.calls();
    // Pod 2 vanishes (and the fake StatefulSet controller has not recreated it yet).
    h.world.lock().unwrap().objects.remove(&pod_path(2));
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    assert!(
        h.calls().is_empty(),
        "no membership change for a missing pod"
    );
    assert_eq!(h.sts_replicas(), 3);
    let st = h.kvc().status.unwrap();
    assert_eq!(st.voters, 3, "the member stays");
    assert_eq!(st.phase.as_deref(), Some("Degraded"));
}

#[tokio::test]
async fn a_member_that_lost_its_data_is_replaced() {
    let h = Harness::new(3);
    h.settle().await;
    h.calls();
    let old = {
        let mut w = h.world.lock().unwrap();
        w.lost.insert(1);
        w.settle();
        w.members.iter().find(|m| m.ordinal == 1).unwrap().id
    };
    // The next round sees pod 1 crash with the data-lost status.
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    let st = h.kvc().status.unwrap();
    let op = st.operation.expect("an operation in flight");
    assert_eq!(
        (op.type_.as_str(), op.step.as_str()),
        ("Replace", "RemoveMember")
    );
    assert!(op.started_at.is_some());
    assert_eq!(st.phase.as_deref(), Some("Repairing"));
    h.settle().await;
    assert_eq!(h.calls(), ["remove 1", "add_learner 1", "promote 1"]);
    let w = h.world.lock().unwrap();
    let new = w.members.iter().find(|m| m.ordinal == 1).unwrap();
    assert_ne!(new.id, old, "it came back as a new member");
    assert!(!new.learner);
    assert!(w.events.iter().any(|e| e == "MemberReplaced"));
}

#[tokio::test]
async fn a_new_version_rolls_followers_first_and_the_leader_last() {
    let h = Harness::new(3);
    h.settle().await;
    h.calls();
    {
        let mut w = h.world.lock().unwrap();
        w.leader = w.members.iter().find(|m| m.ordinal == 1).unwrap().id;
    }
    h.edit(|k| k["spec"]["version"] = json!("0.2.0"));
    h.settle().await;
    assert_eq!(
        h.calls(),
        ["move_leader 0"],
        "the leader hands over before its pod goes"
    );
    let w = h.world.lock().unwrap();
    let deletes: Vec<&String> = w
        .requests
        .iter()
        .filter(|r| r.starts_with("DELETE") && r.contains("/pods/"))
        .collect();
    assert_eq!(
        deletes,
        [
            &format!("DELETE {}", pod_path(2)),
            &format!("DELETE {}", pod_path(0)),
            &format!("DELETE {}", pod_path(1)),
        ]
    );
    // Every pod now runs the new template.
    let hash = &w.objects[&sts_path()]["spec"]["template"]["metadata"]["annotations"]
        [crate::controller::build::statefulset::TEMPLATE_HASH];
    for k in 0..3 {
        assert_eq!(
            &w.objects[&pod_path(k)]["metadata"]["annotations"]
                [crate::controller::build::statefulset::TEMPLATE_HASH],
            hash
        );
    }
}

#[tokio::test]
async fn a_cluster_being_deleted_is_left_to_the_garbage_collector() {
    let h = Harness::new(3);
    h.settle().await;
    let before = h.world.lock().unwrap().requests.len();
    h.edit(|k| k["metadata"]["deletionTimestamp"] = json!("2026-11-24T00:00:00Z"));
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    let w = h.world.lock().unwrap();
    assert_eq!(
        w.requests.len(),
        before,
        "no object is applied for a cluster being deleted: {:?}",
        &w.requests[before..]
    );
    // The StatefulSet keeps or deletes volumes as the spec says (default: keep).
    let policy = &w.objects[&sts_path()]["spec"]["persistentVolumeClaimRetentionPolicy"];
    assert_eq!(policy["whenDeleted"], "Retain");
    assert_eq!(policy["whenScaled"], "Retain");
}
