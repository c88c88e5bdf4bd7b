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

fn backup_status(h: &Harness) -> kv_crds::v1alpha1::BackupStatus {
    h.kvc().status.unwrap().backup.expect("status.backup")
}

fn backup_ready(h: &Harness) -> kv_crds::v1alpha1::Condition {
    h.kvc()
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "BackupReady")
        .expect("a BackupReady condition")
}

#[tokio::test]
async fn a_trigger_takes_one_backup_from_a_follower_and_retention_keeps_n() {
    let h = Harness::new(3);
    h.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    h.edit(|k| {
        k["spec"]["backup"] = json!({
            "store": {"provider": "Filesystem", "path": path},
            "retention": {"keepLast": 2},
            "compression": "None",
            "trigger": "t1",
        })
    });
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    let st = backup_status(&h);
    let ok = st.last_successful.clone().expect("a backup");
    assert_eq!(st.last_trigger.as_deref(), Some("t1"));
    assert_eq!((ok.revision, st.kept), (77, 1));
    assert!(
        ok.uri.starts_with("file://") && ok.uri.ends_with(".snap"),
        "{}",
        ok.uri
    );
    assert_eq!(
        h.world.lock().unwrap().snapshots,
        [1],
        "from a follower, not the leader"
    );
    assert_eq!(backup_ready(&h).status, "True");
    // The stored object is what the member streamed, and its checksum is in the metadata.
    let file = dir.path().join(format!("db/demo/{}.snap", ok.name));
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"snapshot chunk 0"));
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), ok.sha256);
    // The same trigger again: nothing.
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    assert_eq!(h.world.lock().unwrap().snapshots.len(), 1);
    // Two more triggers: three backups taken, two kept.
    for t in ["t2", "t3"] {
        h.edit(|k| k["spec"]["backup"]["trigger"] = json!(t));
        reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    }
    assert_eq!(h.world.lock().unwrap().snapshots.len(), 3);
    assert_eq!(backup_status(&h).kept, 2);
    let snaps = std::fs::read_dir(dir.path().join("db/demo"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snap")
        })
        .count();
    assert_eq!(snaps, 2);
    assert!(
        h.world
            .lock()
            .unwrap()
            .events
            .iter()
            .any(|e| e == "BackupSucceeded")
    );
}

#[tokio::test]
async fn a_due_scheduled_backup_runs_once_and_failures_turn_backup_ready_false() {
    let h = Harness::new(3);
    h.settle().await;
    let dir = tempfile::tempdir().unwrap();
    // The store path is a file: every backup fails until it is fixed.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let two_min_ago = (chrono::Utc::now() - chrono::Duration::minutes(2)).to_rfc3339();
    h.edit(|k| {
        k["spec"]["backup"] = json!({
            "schedule": "* * * * *",
            "store": {"provider": "Filesystem", "path": blocker.display().to_string()},
        });
        k["status"]["backup"] = json!({"lastScheduleTime": two_min_ago});
    });
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    let st = backup_status(&h);
    let why = st.last_failure_reason.clone().expect("a failure");
    assert!(why.contains("backup.store.path"), "{why}");
    let c = backup_ready(&h);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "BackupFailed")
    );
    assert!(c.message.contains("backup.store.path"), "{}", c.message);
    assert!(st.next_schedule_time.is_some());
    // The cluster itself is untouched.
    assert_eq!(h.kvc().status.unwrap().phase.as_deref(), Some("Running"));
    assert!(h.world.lock().unwrap().snapshots.is_empty());
    // Fixed store, next occurrence due: the backup runs and BackupReady turns True.
    let good = dir.path().join("backups").display().to_string();
    h.edit(|k| {
        k["spec"]["backup"]["store"]["path"] = json!(good);
        k["status"]["backup"]["lastScheduleTime"] = json!(two_min_ago);
    });
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    assert!(backup_status(&h).last_successful.is_some());
    assert_eq!(backup_ready(&h).status, "True");
    // Not due again within the same minute.
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    assert_eq!(h.world.lock().unwrap().snapshots.len(), 1);
}

#[tokio::test]
async fn a_stale_cached_object_takes_no_second_backup() {
    // The controller's cache can hand out the object as it was before the last status write.
    let h = Harness::new(3);
    h.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    h.edit(|k| {
        k["spec"]["backup"] = json!({
            "store": {"provider": "Filesystem", "path": path},
            "retention": {"keepLast": 1},
            "trigger": "t1",
        })
    });
    let stale = Arc::new(h.kvc());
    reconcile(stale.clone(), h.ctx.clone()).await.unwrap();
    reconcile(stale, h.ctx.clone()).await.unwrap();
    assert_eq!(h.world.lock().unwrap().snapshots.len(), 1, "one trigger");
    let source = backup_status(&h).last_successful.unwrap().name;
    // A restore of that backup: one safety backup, and the source outlives keepLast 1.
    h.edit(|k| {
        k["spec"]["restore"] =
            json!({"requestId": "r1", "source": source, "acknowledgeDataLoss": true})
    });
    let stale = Arc::new(h.kvc());
    reconcile(stale.clone(), h.ctx.clone()).await.unwrap();
    reconcile(stale, h.ctx.clone()).await.unwrap();
    assert_eq!(
        h.world.lock().unwrap().snapshots.len(),
        2,
        "one safety backup"
    );
    assert!(restore_status(&h).safety_backup.is_some());
    let kept: Vec<String> = std::fs::read_dir(dir.path().join("db/demo"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(kept.len(), 2, "the source and the safety backup: {kept:?}");
    assert!(kept.contains(&format!("{source}.json")), "{kept:?}");
}

/// A backup in a Filesystem store, taken through a trigger.
async fn backed_up(h: &Harness, dir: &std::path::Path) {
    let path = dir.display().to_string();
    h.edit(|k| {
        k["spec"]["backup"] = json!({
            "store": {"provider": "Filesystem", "path": path},
            "trigger": "before-restore",
        })
    });
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    assert!(backup_status(h).last_successful.is_some());
}

fn restore_status(h: &Harness) -> kv_crds::v1alpha1::RestoreStatus {
    h.kvc().status.unwrap().restore.expect("status.restore")
}

#[tokio::test]
async fn a_restore_request_replaces_the_cluster_once_and_records_each_phase() {
    let h = Harness::new(3);
    h.settle().await;
    let dir = tempfile::tempdir().unwrap();
    backed_up(&h, dir.path()).await;
    h.calls();
    let old_cluster = h.kvc().status.unwrap().cluster_id.unwrap();
    h.edit(|k| {
        k["spec"]["restore"] =
            json!({"requestId": "r1", "source": "latest", "acknowledgeDataLoss": true})
    });
    let mut phases = Vec::new();
    let mut restore_args = Vec::new();
    for _ in 0..40 {
        reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
        let p = restore_status(&h).phase;
        if phases.last() != Some(&p) {
            phases.push(p.clone());
        }
        if p == "Starting" {
            let w = h.world.lock().unwrap();
            let init = &w.objects[&sts_path()]["spec"]["template"]["spec"]["initContainers"][0];
            restore_args.push(init["args"].to_string());
        }
        if p == "Complete" || p == "Failed" {
            break;
        }
    }
    let st = restore_status(&h);
    assert_eq!(st.phase, "Complete", "phases {phases:?}: {:?}", st.message);
    assert_eq!(st.restored_revision, Some(77));
    assert!(
        st.safety_backup
            .as_deref()
            .is_some_and(|u| u.contains("-safety"))
    );
    assert_eq!(
        st.previous_cluster_id.as_deref(),
        Some(old_cluster.as_str())
    );
    assert_ne!(
        st.cluster_id.as_deref(),
        Some(old_cluster.as_str()),
        "a new cluster id"
    );
    assert!(st.started_at.is_some() && st.finished_at.is_some());
    assert!(
        phases.contains(&"StoppingMembers".to_string()),
        "{phases:?}"
    );
    // Clients may hold revisions of the replaced history: the restored one starts above them.
    assert!(
        !restore_args.is_empty()
            && restore_args
                .iter()
                .all(|a| { a.contains("\"--bump-revision=1000000000\",\"--mark-compacted\"") }),
        "{restore_args:?}"
    );
    // The members came back one at a time into the new cluster; clients are let in again.
    assert_eq!(
        h.calls(),
        ["add_learner 1", "promote 1", "add_learner 2", "promote 2"]
    );
    {
        let w = h.world.lock().unwrap();
        let svc = &w.objects[&format!("/api/v1/namespaces/{}/services/demo", fake::NS)];
        assert!(
            svc["spec"]["selector"]
                .get(crate::controller::build::service::TRAFFIC_STOPPED)
                .is_none(),
            "client traffic resumed: {}",
            svc["spec"]["selector"]
        );
        let init = &w.objects[&sts_path()]["spec"]["template"]["spec"]["initContainers"];
        assert!(
            init.is_null(),
            "the restore step is gone from the template: {init}"
        );
    }
    h.settle().await;
    // The same request again does nothing.
    let snapshots = h.world.lock().unwrap().snapshots.len();
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    assert_eq!(restore_status(&h).finished_at, st.finished_at);
    assert_eq!(h.world.lock().unwrap().snapshots.len(), snapshots);
    assert!(h.calls().is_empty());
}

#[tokio::test]
async fn a_damaged_backup_is_refused_and_the_cluster_left_as_it_was() {
    let h = Harness::new(3);
    h.settle().await;
    let dir = tempfile::tempdir().unwrap();
    backed_up(&h, dir.path()).await;
    let name = backup_status(&h).last_successful.unwrap().name;
    let object = dir.path().join(format!("db/demo/{name}.snap.zst"));
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&object, bytes).unwrap();
    let before = h.world.lock().unwrap().requests.len();
    h.edit(|k| {
        k["spec"]["restore"] =
            json!({"requestId": "r2", "source": name, "acknowledgeDataLoss": true})
    });
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    let st = restore_status(&h);
    assert_eq!(st.phase, "Failed");
    let why = st.message.unwrap();
    assert!(
        why.contains("nothing was changed") && why.contains("damaged"),
        "{why}"
    );
    let w = h.world.lock().unwrap();
    assert!(
        !w.requests[before..]
            .iter()
            .any(|r| r.contains("/pods/") || r.contains("persistentvolumeclaims")),
        "{:?}",
        &w.requests[before..]
    );
    assert_eq!(w.objects[&sts_path()]["spec"]["replicas"], 3);
    assert!(w.events.iter().any(|e| e == "RestoreFailed"));
}

#[tokio::test]
async fn a_new_cluster_starts_from_a_backup_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let source = Harness::new(1);
    source.settle().await;
    backed_up(&source, dir.path()).await;
    let path = dir.path().display().to_string();

    // No backup under this prefix: refused, nothing starts.
    let empty = Harness::new(3);
    empty.edit(|k| {
        k["spec"]["backup"] =
            json!({"store": {"provider": "Filesystem", "path": path, "prefix": "nothing/here"}});
        k["spec"]["bootstrap"] = json!({"fromBackup": "latest"});
    });
    reconcile(Arc::new(empty.kvc()), empty.ctx.clone())
        .await
        .unwrap();
    let st = restore_status(&empty);
    assert_eq!(st.phase, "Failed");
    assert!(st.message.unwrap().contains("no complete backup"));
    assert!(
        !empty
            .world
            .lock()
            .unwrap()
            .objects
            .contains_key(&pod_path(0))
    );

    // The source cluster's backup: member 0 restores it, the others join.
    let h = Harness::new(3);
    h.edit(|k| {
        k["spec"]["backup"] = json!({"store": {"provider": "Filesystem", "path": path}});
        k["spec"]["bootstrap"] = json!({"fromBackup": "latest"});
    });
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    {
        let w = h.world.lock().unwrap();
        let init = &w.objects[&sts_path()]["spec"]["template"]["spec"]["initContainers"][0];
        assert_eq!(init["name"], "restore", "{init}");
        assert!(init["args"].to_string().contains("--only-for=demo-0"));
        assert!(
            init["args"]
                .to_string()
                .contains("\"--bump-revision=1000000000\",\"--mark-compacted\""),
            "{init}"
        );
    }
    h.settle().await;
    let st = restore_status(&h);
    assert_eq!(
        (st.request_id.as_str(), st.phase.as_str()),
        ("bootstrap", "Complete")
    );
    assert_eq!(st.restored_revision, Some(77));
    assert_eq!(h.kvc().status.unwrap().voters, 3);
    let w = h.world.lock().unwrap();
    assert!(w.objects[&sts_path()]["spec"]["template"]["spec"]["initContainers"].is_null());
}

#[tokio::test]
async fn a_restore_is_refused_while_membership_changes() {
    let h = Harness::new(3);
    h.settle().await;
    let dir = tempfile::tempdir().unwrap();
    backed_up(&h, dir.path()).await;
    h.edit(|k| k["spec"]["replicas"] = json!(5));
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    let op = h.kvc().status.unwrap().operation;
    assert!(op.is_some(), "scaling up is an operation in progress");
    h.edit(|k| {
        k["spec"]["restore"] =
            json!({"requestId": "r3", "source": "latest", "acknowledgeDataLoss": true})
    });
    reconcile(Arc::new(h.kvc()), h.ctx.clone()).await.unwrap();
    let st = restore_status(&h);
    assert_eq!(st.phase, "Failed");
    let why = st.message.unwrap();
    assert!(
        why.contains("refused") && why.contains("membership operation"),
        "{why}"
    );
    // The scale-up goes on; the refused request is not acted on again.
    h.settle().await;
    assert_eq!(h.kvc().status.unwrap().voters, 5);
    assert_eq!(restore_status(&h).phase, "Failed");
}
