//! The StatefulSet of members: stable names and one data volume per member, readiness on
//! `/readyz` and liveness on `/livez`, non-root with a read-only root filesystem, and time for a
//! leader to step down on termination. Pods are created in parallel and only replaced when the
//! operator deletes them (`OnDelete`): the operator, not the StatefulSet, drives membership.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    HostPathVolumeSource, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecurityContext, Volume, VolumeMount, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kv_crds::v1alpha1::{AntiAffinity, PullPolicy, VolumePolicy};

use super::{MemberPlan, join, labels, meta};
use crate::controller::validate::{CLIENT_PORT, PEER_PORT, Validated};

/// Where the data volume is mounted.
pub const DATA_DIR: &str = "/var/lib/kvstore";
/// Seconds a member gets to stop (a leader hands over before it exits).
pub const GRACE_SECONDS: i64 = 30;
/// The non-root user of the kvstore image.
pub const USER_ID: i64 = 65532;

/// The member command line. `$(...)` variables are expanded by the kubelet; the join flags
/// come from the join ConfigMap (see [`super::join`]) each time the container starts.
pub fn args(v: &Validated) -> Vec<String> {
    let me = "$(POD_NAME)";
    let r = &v.spec.raft;
    let mut a = vec![
        format!("--name={me}"),
        format!("--data-dir={DATA_DIR}/data"),
        format!("--listen-client-urls=http://0.0.0.0:{CLIENT_PORT}"),
        format!("--advertise-client-urls={}", v.client_url(me)),
        format!("--listen-peer-urls=http://0.0.0.0:{PEER_PORT}"),
        format!("--initial-advertise-peer-urls={}", v.peer_url(me)),
        format!("--initial-cluster=$({})", join::INITIAL_CLUSTER_ENV),
        format!(
            "--initial-cluster-state=$({})",
            join::INITIAL_CLUSTER_STATE_ENV
        ),
        format!("--initial-cluster-token={}", v.token),
        format!("--heartbeat-interval={}", r.heartbeat_interval_ms),
        format!("--election-timeout={}", r.election_timeout_ms),
        format!("--snapshot-count={}", r.snapshot_count),
    ];
    if v.spec.store.quota_bytes > 0 {
        a.push(format!(
            "--quota-backend-bytes={}",
            v.spec.store.quota_bytes
        ));
    }
    a
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(CLIENT_PORT),
            scheme: Some("HTTP".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(5),
        ..Default::default()
    }
}

fn affinity(v: &Validated) -> Option<Affinity> {
    if let Some(a) = &v.spec.pod.affinity {
        return Some(a.clone());
    }
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(v.selector.clone()),
            ..Default::default()
        }),
        topology_key: "kubernetes.io/hostname".into(),
        ..Default::default()
    };
    let anti = match v.spec.pod.anti_affinity {
        AntiAffinity::None => return None,
        AntiAffinity::Required => PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![term]),
            ..Default::default()
        },
        AntiAffinity::Preferred => PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: term,
                },
            ]),
            ..Default::default()
        },
    };
    Some(Affinity {
        pod_anti_affinity: Some(anti),
        ..Default::default()
    })
}

fn pod_security(v: &Validated) -> PodSecurityContext {
    v.spec
        .pod
        .security_context
        .clone()
        .unwrap_or(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(USER_ID),
            run_as_group: Some(USER_ID),
            fs_group: Some(USER_ID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
}

/// `POD_NAME` from the pod's name (the member's name in its flags).
pub fn pod_name_env() -> EnvVar {
    EnvVar {
        name: "POD_NAME".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container(v: &Validated) -> Container {
    Container {
        name: "kvstore".into(),
        image: Some(v.image.clone()),
        image_pull_policy: v.spec.image.as_ref().and_then(|i| i.pull_policy).map(|p| {
            match p {
                PullPolicy::Always => "Always",
                PullPolicy::IfNotPresent => "IfNotPresent",
                PullPolicy::Never => "Never",
            }
            .to_string()
        }),
        args: Some(args(v)),
        env: Some([vec![pod_name_env()], join::env(v)].concat()),
        ports: Some(vec![
            ContainerPort {
                name: Some("client".into()),
                container_port: CLIENT_PORT,
                ..Default::default()
            },
            ContainerPort {
                name: Some("peer".into()),
                container_port: PEER_PORT,
                ..Default::default()
            },
        ]),
        readiness_probe: Some(probe("/readyz", 5, 3)),
        liveness_probe: Some(probe("/livez", 10, 6)),
        startup_probe: Some(probe("/livez", 2, 60)),
        resources: v.spec.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        // A member that refuses to start says why in its last log lines.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: DATA_DIR.into(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn policy(p: VolumePolicy) -> String {
    match p {
        VolumePolicy::Retain => "Retain".into(),
        VolumePolicy::Delete => "Delete".into(),
    }
}

/// The annotation on member pods naming the version of their template: a pod whose value
/// differs from the StatefulSet's is restarted by the rolling update.
pub const TEMPLATE_HASH: &str = "kvstore.io/template-hash";

/// A digest of everything in the pod template that a user controls (the join flags live in the
/// join ConfigMap, so scaling never changes it; a restore step in progress is left out).
pub fn template_hash(v: &Validated) -> String {
    use sha2::Digest;
    let t = pod_template(v, &MemberPlan::default());
    let bytes = serde_json::to_vec(&t).expect("a pod template serializes");
    hex::encode(&sha2::Sha256::digest(&bytes)[..8])
}

fn pod_template(v: &Validated, plan: &MemberPlan) -> PodTemplateSpec {
    let mut pod_labels: BTreeMap<String, String> = v.spec.pod.labels.clone();
    pod_labels.extend(labels(v));
    let init: Vec<Container> = plan
        .restore
        .iter()
        .map(|r| super::restore::init_container(v, r))
        .collect();
    let store_volume = plan.restore.as_ref().and_then(|r| {
        let path = r.store.path.as_ref()?;
        (r.store.provider == kv_crds::v1alpha1::StoreProvider::Filesystem).then(|| Volume {
            name: "backup-store".into(),
            host_path: Some(HostPathVolumeSource {
                path: path.clone(),
                type_: Some("Directory".into()),
            }),
            ..Default::default()
        })
    });
    let pod = PodSpec {
        init_containers: (!init.is_empty()).then_some(init),
        volumes: store_volume.map(|v| vec![v]),
        containers: vec![container(v)],
        affinity: affinity(v),
        node_selector: (!v.spec.pod.node_selector.is_empty())
            .then(|| v.spec.pod.node_selector.clone()),
        tolerations: (!v.spec.pod.tolerations.is_empty()).then(|| v.spec.pod.tolerations.clone()),
        topology_spread_constraints: (!v.spec.pod.topology_spread_constraints.is_empty())
            .then(|| v.spec.pod.topology_spread_constraints.clone()),
        priority_class_name: v.spec.pod.priority_class_name.clone(),
        security_context: Some(pod_security(v)),
        termination_grace_period_seconds: Some(GRACE_SECONDS),
        enable_service_links: Some(false),
        image_pull_secrets: v
            .spec
            .image
            .as_ref()
            .filter(|i| !i.pull_secrets.is_empty())
            .map(|i| {
                i.pull_secrets
                    .iter()
                    .map(|s| k8s_openapi::api::core::v1::LocalObjectReference { name: s.clone() })
                    .collect()
            }),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: (!v.spec.pod.annotations.is_empty())
                .then(|| v.spec.pod.annotations.clone()),
            ..Default::default()
        }),
        spec: Some(pod),
    }
}

/// The StatefulSet.
pub fn statefulset(v: &Validated, plan: &MemberPlan) -> StatefulSet {
    let mut template = pod_template(v, plan);
    template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(Default::default)
        .insert(TEMPLATE_HASH.into(), template_hash(v));
    let storage = &v.spec.storage;
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(labels(v)),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(storage.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    StatefulSet {
        metadata: meta(v, &v.name),
        spec: Some(StatefulSetSpec {
            replicas: Some(plan.slots),
            service_name: Some(v.peer_service.clone()),
            selector: LabelSelector {
                match_labels: Some(v.selector.clone()),
                ..Default::default()
            },
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..Default::default()
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(policy(storage.retention.when_deleted)),
                    when_scaled: Some(policy(storage.retention.when_scaled_down)),
                },
            ),
            template,
            volume_claim_templates: Some(vec![claim]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
