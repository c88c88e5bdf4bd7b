//! Test doubles for reconcile tests: a mocked Kubernetes API server (tower-test) that keeps
//! objects in memory and plays the StatefulSet controller and the kubelet just enough, and a
//! fake store cluster behind [`MemberApi`]. Both share one [`World`], so a test sees every
//! object and every membership call a reconcile made.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

use super::member_api::{CallError, ListedMember, MemberApi, Snapshot, StatusReport};
use crate::controller::build::statefulset::TEMPLATE_HASH;

/// A member of the fake store cluster.
#[derive(Debug, Clone)]
pub struct FakeMember {
    pub id: u64,
    pub ordinal: i32,
    pub learner: bool,
    pub name: String,
}

/// Everything the fakes know.
#[derive(Debug, Default)]
pub struct World {
    /// Objects by API path (no query).
    pub objects: BTreeMap<String, Value>,
    /// Every mutating API request: "PATCH <path>", "DELETE <path>", "POST <path>".
    pub requests: Vec<String>,
    /// Every membership call that changed something, e.g. "add_learner 3".
    pub calls: Vec<String>,
    /// Reasons of the Events published.
    pub events: Vec<String>,
    /// The Raft membership.
    pub members: Vec<FakeMember>,
    /// The leader's id (0: none).
    pub leader: u64,
    /// Ordinals whose volume was wiped: their store exits with the data-lost status.
    pub lost: BTreeSet<i32>,
    /// Ordinals snapshots were taken from.
    pub snapshots: Vec<i32>,
    /// The cluster id the members report.
    pub cluster_id: u64,
    next_id: u64,
    rv: u64,
}

/// The namespace and name used by the tests.
pub const NS: &str = "db";
pub const NAME: &str = "demo";

pub fn kvc_path() -> String {
    format!("/apis/kvstore.io/v1alpha1/namespaces/{NS}/kvclusters/{NAME}")
}
pub fn sts_path() -> String {
    format!("/apis/apps/v1/namespaces/{NS}/statefulsets/{NAME}")
}
pub fn pod_path(ordinal: i32) -> String {
    format!("/api/v1/namespaces/{NS}/pods/{NAME}-{ordinal}")
}

fn ordinal_of_url(url: &str) -> Option<i32> {
    let host = url.split("://").nth(1)?.split(['.', ':']).next()?;
    host.strip_prefix(&format!("{NAME}-"))?.parse().ok()
}

/// JSON merge patch (RFC 7386); server-side apply is treated the same way here.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

impl World {
    fn pod_running(&self, ordinal: i32) -> bool {
        self.objects.contains_key(&pod_path(ordinal)) && !self.lost.contains(&ordinal)
    }

    /// What the StatefulSet controller and the kubelet would do after a change: pods for
    /// ordinals below `replicas`, from the current template; pods of lost volumes crash with
    /// the data-lost status until their member is added again; the others are ready.
    pub fn settle(&mut self) {
        let Some(sts) = self.objects.get(&sts_path()).cloned() else {
            return;
        };
        let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(0) as i32;
        let hash = sts["spec"]["template"]["metadata"]["annotations"][TEMPLATE_HASH].clone();
        let labels = sts["spec"]["template"]["metadata"]["labels"].clone();
        // A wiped member that was added again (not started yet) joins as the new member.
        let rejoined: Vec<i32> = self
            .lost
            .iter()
            .copied()
            .filter(|o| {
                self.members
                    .iter()
                    .any(|m| m.ordinal == *o && m.name.is_empty())
            })
            .collect();
        for o in rejoined {
            self.lost.remove(&o);
        }
        for k in 0..replicas.max(10) {
            let path = pod_path(k);
            if k >= replicas {
                self.objects.remove(&path);
                continue;
            }
            if !self.objects.contains_key(&path) {
                let restores = sts["spec"]["template"]["spec"]["initContainers"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["name"] == "restore"));
                if k == 0 && restores {
                    // The first member starts from the backup: a new cluster of one.
                    self.cluster_id += 1;
                    self.next_id += 0x100;
                    self.members = vec![FakeMember {
                        id: self.next_id,
                        ordinal: 0,
                        learner: false,
                        name: format!("{NAME}-0"),
                    }];
                    self.leader = self.next_id;
                }
                let claim =
                    format!("/api/v1/namespaces/{NS}/persistentvolumeclaims/data-{NAME}-{k}");
                self.objects.entry(claim).or_insert_with(|| {
                    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                           "metadata": {"name": format!("data-{NAME}-{k}"), "namespace": NS}})
                });
                self.objects.insert(
                    path.clone(),
                    json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": format!("{NAME}-{k}"), "namespace": NS,
                            "labels": labels, "annotations": {TEMPLATE_HASH: hash}},
                    }),
                );
            }
            let lost = self.lost.contains(&k);
            let member_runs = !lost && (self.members.iter().any(|m| m.ordinal == k) || k == 0);
            let container = if lost {
                json!({"name": "kvstore", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                       "lastState": {"terminated": {"exitCode": kvstore::server::EXIT_DATA_LOST}}})
            } else {
                json!({"name": "kvstore", "state": {"running": {}}})
            };
            let ready = if member_runs { "True" } else { "False" };
            let pod = self.objects.get_mut(&path).expect("just inserted");
            pod["status"] = json!({
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": ready}],
                "containerStatuses": [container],
            });
        }
        // Members whose pod runs have started: they publish their names.
        for i in 0..self.members.len() {
            let o = self.members[i].ordinal;
            if self.pod_running(o) {
                self.members[i].name = format!("{NAME}-{o}");
            }
        }
    }

    fn answer(
        &mut self,
        method: &Method,
        path: &str,
        apply: bool,
        body: &[u8],
    ) -> (StatusCode, Value) {
        self.rv += 1;
        let not_found = || {
            (
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "reason": "NotFound", "code": 404, "message": format!("{path} not found")}),
            )
        };
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if *method == Method::GET {
            if let Some(o) = self.objects.get(path) {
                return (StatusCode::OK, o.clone());
            }
            if path.ends_with("/pods") || path.ends_with("/persistentvolumeclaims") {
                let prefix = format!("{path}/");
                let items: Vec<Value> = self
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, v)| v.clone())
                    .collect();
                return (
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "PodList",
                           "metadata": {"resourceVersion": self.rv.to_string()}, "items": items}),
                );
            }
            return not_found();
        }
        self.requests.push(format!("{method} {path}"));
        if *method == Method::POST {
            if let Some(r) = body["reason"].as_str() {
                self.events.push(r.to_string());
            }
            return (StatusCode::CREATED, body);
        }
        if *method == Method::DELETE {
            let gone = self.objects.remove(path);
            self.settle();
            return match gone {
                Some(o) => (StatusCode::OK, o),
                None => not_found(),
            };
        }
        if *method == Method::PATCH {
            let (target, status_only) = match path.strip_suffix("/status") {
                Some(base) => (base.to_string(), true),
                None => (path.to_string(), false),
            };
            let mut patch = body;
            if status_only {
                patch = json!({"status": patch["status"]});
            }
            let obj = self.objects.entry(target).or_insert_with(|| json!({}));
            if apply {
                // One field manager per object here: what it no longer applies goes, as with
                // server-side apply; metadata is merged (others own parts of it).
                let mut patch = patch;
                if let Some(meta) = patch.as_object_mut().and_then(|p| p.remove("metadata")) {
                    merge(&mut obj["metadata"], &meta);
                }
                for (k, v) in patch.as_object().into_iter().flatten() {
                    obj[k] = v.clone();
                }
            } else {
                merge(obj, &patch);
            }
            obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            let out = obj.clone();
            self.settle();
            return (StatusCode::OK, out);
        }
        (StatusCode::METHOD_NOT_ALLOWED, json!({}))
    }
}

/// A kube client whose API server is the fake, and the world behind it.
pub fn client(world: Arc<Mutex<World>>) -> kube::Client {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let apply = req
                .headers()
                .get("content-type")
                .is_some_and(|c| c.as_bytes().starts_with(b"application/apply-patch"));
            let body = req.into_body().collect_bytes().await.unwrap_or_default();
            let (code, value) = world.lock().unwrap().answer(&method, &path, apply, &body);
            let resp = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&value).unwrap()))
                .unwrap();
            send.send_response(resp);
        }
    });
    kube::Client::new(svc, NS)
}

/// The fake store cluster.
pub struct FakeMembers(pub Arc<Mutex<World>>);

impl FakeMembers {
    fn reach(&self, url: &str) -> Result<std::sync::MutexGuard<'_, World>, CallError> {
        let w = self.0.lock().unwrap();
        match ordinal_of_url(url) {
            Some(o) if w.pod_running(o) => Ok(w),
            _ => Err(CallError::Unreachable(format!("{url}: connection refused"))),
        }
    }
}

#[async_trait::async_trait]
impl MemberApi for FakeMembers {
    async fn status(&self, url: &str) -> Result<StatusReport, CallError> {
        let mut w = self.reach(url)?;
        let o = ordinal_of_url(url).expect("reachable");
        if w.members.is_empty() && o == 0 {
            // Member 0 bootstraps the cluster.
            w.next_id = 0x100;
            w.cluster_id = 0xc1;
            w.members.push(FakeMember {
                id: 0x100,
                ordinal: 0,
                learner: false,
                name: format!("{NAME}-0"),
            });
            w.leader = 0x100;
        }
        let m = w
            .members
            .iter()
            .find(|m| m.ordinal == o)
            .cloned()
            .ok_or_else(|| CallError::Unreachable("not a member yet".into()))?;
        Ok(StatusReport {
            id: m.id,
            cluster_id: w.cluster_id,
            leader: w.leader,
            raft_index: 10,
            raft_term: 2,
            db_size: 4096,
            version: "0.1.0".into(),
            learner: m.learner,
        })
    }

    async fn member_list(&self, url: &str) -> Result<Vec<ListedMember>, CallError> {
        let w = self.reach(url)?;
        Ok(w.members
            .iter()
            .map(|m| ListedMember {
                id: m.id,
                name: m.name.clone(),
                peer_urls: vec![format!(
                    "http://{NAME}-{}.{NAME}-peer.{NS}.svc:2380",
                    m.ordinal
                )],
                learner: m.learner,
            })
            .collect())
    }

    async fn add_learner(&self, url: &str, peer_url: &str) -> Result<u64, CallError> {
        let mut w = self.reach(url)?;
        let ordinal = ordinal_of_url(peer_url).expect("a member peer URL");
        w.next_id += 1;
        let id = w.next_id;
        w.members.push(FakeMember {
            id,
            ordinal,
            learner: true,
            name: String::new(),
        });
        w.calls.push(format!("add_learner {ordinal}"));
        w.settle();
        Ok(id)
    }

    async fn promote(&self, url: &str, id: u64) -> Result<(), CallError> {
        let mut w = self.reach(url)?;
        let o = w.members.iter().find(|m| m.id == id).map(|m| m.ordinal);
        match o {
            Some(o) if w.pod_running(o) => {
                w.members
                    .iter_mut()
                    .filter(|m| m.id == id)
                    .for_each(|m| m.learner = false);
                w.calls.push(format!("promote {o}"));
                Ok(())
            }
            Some(_) => Err(CallError::Refused(
                "etcdserver: can only promote a learner member which is in sync with leader".into(),
            )),
            None => Err(CallError::Refused("etcdserver: member not found".into())),
        }
    }

    async fn remove(&self, url: &str, id: u64) -> Result<(), CallError> {
        let mut w = self.reach(url)?;
        let o = w.members.iter().find(|m| m.id == id).map(|m| m.ordinal);
        w.members.retain(|m| m.id != id);
        w.calls.push(format!("remove {}", o.unwrap_or(-1)));
        w.settle();
        Ok(())
    }

    async fn move_leader(&self, url: &str, to: u64) -> Result<(), CallError> {
        let mut w = self.reach(url)?;
        let o = w.members.iter().find(|m| m.id == to).map(|m| m.ordinal);
        w.leader = to;
        w.calls.push(format!("move_leader {}", o.unwrap_or(-1)));
        Ok(())
    }

    async fn snapshot(&self, url: &str) -> Result<Snapshot, CallError> {
        let mut w = self.reach(url)?;
        let o = ordinal_of_url(url).expect("reachable");
        w.snapshots.push(o);
        let data: Vec<Result<bytes::Bytes, String>> = (0..4)
            .map(|i| {
                Ok(bytes::Bytes::from(format!(
                    "snapshot chunk {i} of the fake store\n"
                )))
            })
            .collect();
        Ok(Snapshot {
            revision: 77,
            chunks: futures::StreamExt::boxed(futures::stream::iter(data)),
        })
    }
}
