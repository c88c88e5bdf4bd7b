//! `KVCluster` v1alpha1: spec (what the user asks for) and status (what the operator saw).
//!
//! Validation lives in the schema (ranges, enums, patterns) and in CEL rules for what must not
//! change, so the API server refuses a bad manifest with a message a person understands.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, PodSecurityContext, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod backup;
pub use backup::*;

/// A replicated kvstore cluster.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "kvstore.io",
    version = "v1alpha1",
    kind = "KVCluster",
    plural = "kvclusters",
    shortname = "kvc",
    namespaced,
    status = "KVClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A Raft-replicated, etcd-compatible kvstore cluster",
    scale = r#"{"specReplicasPath":".spec.replicas","statusReplicasPath":".status.replicas","labelSelectorPath":".status.selector"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Leader","type":"string","jsonPath":".status.leader"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Learners","type":"integer","jsonPath":".status.learners","priority":1}"#,
    printcolumn = r#"{"name":"Tolerance","type":"integer","jsonPath":".status.failureTolerance","priority":1}"#,
    printcolumn = r#"{"name":"ClusterID","type":"string","jsonPath":".status.clusterId","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KVClusterSpec {
    /// Number of members (1 to 9; odd numbers tolerate the most failures per member).
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// kvstore version to run (selects the image tag unless `image` overrides it).
    #[schemars(regex(pattern = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,62}$"))]
    #[serde(default = "default_version")]
    pub version: String,
    /// Image override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSpec>,
    /// Data volumes.
    #[serde(default)]
    pub storage: StorageSpec,
    /// Compute resources of each member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Pod placement and metadata.
    #[serde(default)]
    pub pod: PodSpec,
    /// The client Service.
    #[serde(default)]
    pub service: ServiceSpec,
    /// The PodDisruptionBudget that keeps quorum.
    #[serde(default)]
    pub disruption_budget: DisruptionBudgetSpec,
    /// Raft tuning.
    #[serde(default)]
    pub raft: RaftSpec,
    /// Store settings.
    #[serde(default)]
    pub store: StoreSpec,
    /// Stop reconciling (the cluster keeps running as it is).
    #[serde(default)]
    pub paused: bool,
    /// Scheduled and on-demand snapshots to object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
    /// In-place restore of this cluster from a backup, once per `requestId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSpec>,
    /// How a new cluster starts: empty, or from a backup (create-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("bootstrap cannot change after the cluster is created"))]
    pub bootstrap: Option<BootstrapSpec>,
}

fn default_version() -> String {
    "0.1.0".into()
}

/// Image override.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Repository, e.g. `ghcr.io/example/kvstore`.
    pub repository: String,
    /// Tag; defaults to `spec.version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Pull secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<String>,
}

/// Image pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// Always pull.
    Always,
    /// Pull if absent.
    IfNotPresent,
    /// Never pull.
    Never,
}

/// Data volumes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("storage.storageClassName cannot be changed after creation"))]
pub struct StorageSpec {
    /// Volume size per member (grow only).
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
    #[serde(default = "default_size")]
    pub size: String,
    /// StorageClass (immutable); the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// What happens to data volumes.
    #[serde(default)]
    pub retention: VolumeRetention,
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec {
            size: default_size(),
            storage_class_name: None,
            retention: VolumeRetention::default(),
        }
    }
}

fn default_size() -> String {
    "1Gi".into()
}

/// What happens to a member's volume.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum VolumePolicy {
    /// Keep it (never reused blindly: a member with old data cannot rejoin).
    #[default]
    Retain,
    /// Delete it.
    Delete,
}

/// Volume policies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRetention {
    /// When the cluster scales down (default Retain).
    #[serde(default)]
    pub when_scaled_down: VolumePolicy,
    /// When the KVCluster is deleted (default Retain).
    #[serde(default)]
    pub when_deleted: VolumePolicy,
}

/// Anti-affinity preset.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum AntiAffinity {
    /// Prefer members on different nodes.
    #[default]
    Preferred,
    /// Require members on different nodes.
    Required,
    /// No preset.
    None,
}

/// Pod placement and metadata.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Extra pod labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Node selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity (replaces the anti-affinity preset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Topology spread constraints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// Priority class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Pod security context (defaults: non-root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// Anti-affinity preset used when `affinity` is unset.
    #[serde(default)]
    pub anti_affinity: AntiAffinity,
}

/// Client Service type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ServiceType {
    /// In-cluster only.
    #[default]
    ClusterIP,
    /// A port on every node.
    NodePort,
    /// An external load balancer.
    LoadBalancer,
}

/// The client Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The PodDisruptionBudget.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudgetSpec {
    /// Create it (minAvailable = a quorum of the members).
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for DisruptionBudgetSpec {
    fn default() -> Self {
        DisruptionBudgetSpec { enabled: true }
    }
}

fn yes() -> bool {
    true
}

/// Raft tuning (etcd's flags).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.electionTimeoutMs >= 5 * self.heartbeatIntervalMs").message("raft.electionTimeoutMs must be at least 5 times raft.heartbeatIntervalMs"))]
pub struct RaftSpec {
    /// `--heartbeat-interval`, milliseconds.
    #[schemars(range(min = 10, max = 10000))]
    #[serde(default = "default_heartbeat")]
    pub heartbeat_interval_ms: i32,
    /// `--election-timeout`, milliseconds.
    #[schemars(range(min = 50, max = 50000))]
    #[serde(default = "default_election")]
    pub election_timeout_ms: i32,
    /// `--snapshot-count`: committed entries between snapshots.
    #[schemars(range(min = 100))]
    #[serde(default = "default_snapshot_count")]
    pub snapshot_count: i64,
}

impl Default for RaftSpec {
    fn default() -> Self {
        RaftSpec {
            heartbeat_interval_ms: default_heartbeat(),
            election_timeout_ms: default_election(),
            snapshot_count: default_snapshot_count(),
        }
    }
}

fn default_heartbeat() -> i32 {
    100
}
fn default_election() -> i32 {
    1000
}
fn default_snapshot_count() -> i64 {
    100_000
}

/// Store settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreSpec {
    /// `--quota-backend-bytes` (0 = 2 GiB).
    #[schemars(range(min = 0))]
    #[serde(default)]
    pub quota_bytes: i64,
    /// History compaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_compaction: Option<AutoCompaction>,
}

/// Automatic history compaction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoCompaction {
    /// Periodic or Revision.
    pub mode: CompactionMode,
    /// Retention: a duration (`1h`) for Periodic, a revision count for Revision.
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)?$"))]
    pub retention: String,
}

/// Compaction mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CompactionMode {
    /// Keep a time window of history.
    Periodic,
    /// Keep a number of revisions.
    Revision,
}

/// What the operator saw.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KVClusterStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Creating, Running, Scaling, Upgrading, Degraded, Unavailable, Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Members (pods) wanted.
    #[serde(default)]
    pub replicas: i32,
    /// Members ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Raft voters.
    #[serde(default)]
    pub voters: i32,
    /// Raft learners.
    #[serde(default)]
    pub learners: i32,
    /// Label selector of the member pods (for `/scale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The cluster id (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The leader's member name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Members that can be lost now without losing quorum.
    #[serde(default)]
    pub failure_tolerance: i32,
    /// Every member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,
    /// The membership operation in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationStatus>,
    /// Standard conditions: Available, Progressing, Degraded, MembersReady, BackupReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Backups: schedule, last success, last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,
    /// The last restore requested through `spec.restore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStatus>,
}

/// One member as the store reports it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Pod and member name.
    pub name: String,
    /// Member id (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    /// Leader, Follower or Learner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Pod ready.
    #[serde(default)]
    pub ready: bool,
    /// Answers health checks.
    #[serde(default)]
    pub healthy: bool,
    /// Raft index.
    #[serde(default)]
    pub raft_index: u64,
    /// Entries behind the leader.
    #[serde(default)]
    pub lag: u64,
    /// Database size in bytes.
    #[serde(default)]
    pub db_size: i64,
    /// Store version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A membership operation, recorded so a restarted operator resumes it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// ScaleUp, ScaleDown, Replace, Roll.
    #[serde(rename = "type")]
    pub type_: String,
    /// The member concerned.
    pub member: String,
    /// The step reached.
    pub step: String,
    /// When it started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// What is happening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A standard condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// One-word reason.
    #[serde(default)]
    pub reason: String,
    /// Human message.
    #[serde(default)]
    pub message: String,
    /// Last transition (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Generation observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
