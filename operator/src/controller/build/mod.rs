//! Build step (pure): every Kubernetes object a KVCluster owns, from the validated spec and the
//! membership plan. No client, no I/O: golden-tested from fixtures.

pub mod join;
pub mod pdb;
pub mod restore;
pub mod service;
pub mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::validate::Validated;

/// How many member slots exist and how members find the cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberPlan {
    /// Pods the StatefulSet runs (ordinals `0..slots`).
    pub slots: i32,
    /// Whether the cluster has been bootstrapped (it has a cluster id). Before that, member 0
    /// alone bootstraps it and the others join; after, every new member joins.
    pub bootstrapped: bool,
    /// Members in the cluster now (pod names), the peers a joining member asks.
    pub members: Vec<String>,
    /// A restore in progress: the first member starts from this backup.
    pub restore: Option<restore::RestoreInit>,
    /// Client traffic is stopped (the client Service selects no pod).
    pub traffic_stopped: bool,
}

/// Every object of a cluster, built and ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// The headless Service giving members stable DNS names.
    pub peer_service: Service,
    /// The client Service.
    pub client_service: Service,
    /// The join ConfigMap members read their join flags from.
    pub join: ConfigMap,
    /// The StatefulSet of members.
    pub statefulset: StatefulSet,
    /// The PodDisruptionBudget, unless disabled.
    pub pdb: Option<PodDisruptionBudget>,
}

/// Build every object.
pub fn build(v: &Validated, plan: &MemberPlan) -> Built {
    Built {
        peer_service: service::peer(v),
        client_service: service::client(v, plan.traffic_stopped),
        join: join::config_map(v, plan),
        statefulset: statefulset::statefulset(v, plan),
        pdb: pdb::pdb(v, plan),
    }
}

/// Labels on every object of the cluster.
pub fn labels(v: &Validated) -> BTreeMap<String, String> {
    let mut l = v.selector.clone();
    l.insert("app.kubernetes.io/managed-by".into(), "kv-operator".into());
    l
}

/// The owner reference to the KVCluster (children are garbage-collected with it).
pub fn owner(v: &Validated) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/{}", kv_crds::GROUP, kv_crds::VERSION),
        kind: "KVCluster".into(),
        name: v.name.clone(),
        uid: v.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Metadata of a child object named `name`.
pub fn meta(v: &Validated, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(v.namespace.clone()),
        labels: Some(labels(v)),
        owner_references: Some(vec![owner(v)]),
        ..Default::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::controller::validate::validate;
    use kv_crds::v1alpha1::{KVCluster, KVClusterSpec};

    /// A KVCluster as the API server would hand it over.
    pub fn fixture(name: &str, replicas: i32) -> KVCluster {
        let spec = KVClusterSpec {
            replicas,
            version: "0.1.0".into(),
            ..Default::default()
        };
        let mut k = KVCluster::new(name, spec);
        k.metadata.namespace = Some("default".into());
        k.metadata.uid = Some("11111111-2222-3333-4444-555555555555".into());
        k
    }

    fn production() -> KVCluster {
        let yaml = include_str!("../../../golden/production.input.yaml");
        let mut k: KVCluster = serde_yaml::from_str(yaml).expect("fixture parses");
        k.metadata.uid = Some("11111111-2222-3333-4444-555555555555".into());
        k
    }

    /// Compare with `golden/<name>.yaml`; `UPDATE_GOLDEN=1` rewrites it.
    fn golden(name: &str, built: &Built) {
        let mut docs = vec![
            serde_yaml::to_string(&built.peer_service).unwrap(),
            serde_yaml::to_string(&built.client_service).unwrap(),
            serde_yaml::to_string(&built.join).unwrap(),
            serde_yaml::to_string(&built.statefulset).unwrap(),
        ];
        if let Some(p) = &built.pdb {
            docs.push(serde_yaml::to_string(p).unwrap());
        }
        let text = docs.join("---\n");
        let path = format!("{}/golden/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        if std::env::var("UPDATE_GOLDEN").is_ok() {
            std::fs::write(&path, &text).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            want == text,
            "{path} differs from the builders' output; rerun with UPDATE_GOLDEN=1 and review"
        );
    }

    #[test]
    fn golden_minimal_before_bootstrap() {
        let v = validate(&fixture("demo", 3)).unwrap();
        let plan = MemberPlan {
            slots: 1,
            bootstrapped: false,
            members: vec![],
            ..Default::default()
        };
        golden("minimal-bootstrap", &build(&v, &plan));
    }

    #[test]
    fn golden_minimal_running() {
        let v = validate(&fixture("demo", 3)).unwrap();
        let plan = MemberPlan {
            slots: 3,
            bootstrapped: true,
            members: vec!["demo-0".into(), "demo-1".into(), "demo-2".into()],
            ..Default::default()
        };
        golden("minimal-running", &build(&v, &plan));
    }

    #[test]
    fn golden_production() {
        let v = validate(&production()).unwrap();
        let members: Vec<String> = (0..5).map(|i| v.member(i)).collect();
        let plan = MemberPlan {
            slots: 5,
            bootstrapped: true,
            members,
            ..Default::default()
        };
        golden("production", &build(&v, &plan));
    }

    #[test]
    fn the_template_hash_follows_the_pod_spec_not_membership() {
        let annotation = |v: &Validated, plan: &MemberPlan| {
            build(v, plan)
                .statefulset
                .spec
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()[statefulset::TEMPLATE_HASH]
                .clone()
        };
        let v = validate(&fixture("demo", 3)).unwrap();
        let before = MemberPlan {
            slots: 1,
            bootstrapped: false,
            members: vec![],
            ..Default::default()
        };
        let after = MemberPlan {
            slots: 3,
            bootstrapped: true,
            members: vec!["demo-0".into(), "demo-1".into()],
            ..Default::default()
        };
        let h = annotation(&v, &before);
        assert_eq!(h, annotation(&v, &after), "scaling must not roll members");
        let mut kvc = fixture("demo", 3);
        kvc.spec.version = "0.2.0".into();
        let v2 = validate(&kvc).unwrap();
        assert_ne!(h, annotation(&v2, &after), "a new version rolls members");
    }
}
