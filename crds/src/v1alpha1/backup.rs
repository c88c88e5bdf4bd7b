//! The backup and restore parts of `KVCluster`: where snapshots go (`spec.backup.store`), when
//! (`schedule`, `timeZone`, `trigger`), how many are kept (`retention`), how a restore is asked
//! for (`spec.restore`, `spec.bootstrap.fromBackup`), and what the operator reports about them.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Scheduled and on-demand backups.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Cron schedule, five fields (`minute hour day-of-month month day-of-week`) or a macro
    /// (`@hourly`, `@daily`, `@weekly`, `@monthly`). No schedule: on-demand backups only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA time zone of the schedule (e.g. `Europe/Paris`); default UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Suspend scheduled backups (on-demand `trigger`s still run).
    #[serde(default)]
    pub suspend: bool,
    /// Where backups are written.
    pub store: BackupStore,
    /// How many backups are kept.
    #[serde(default)]
    pub retention: BackupRetention,
    /// Compression of the snapshot object.
    #[serde(default)]
    pub compression: Compression,
    /// A request token: setting or changing it takes one backup now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
}

/// An object store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.provider == 'Filesystem' ? has(self.path) : has(self.bucket)").message("backup.store needs bucket (S3, GCS, Azure) or path (Filesystem)"))]
pub struct BackupStore {
    /// S3 (or any S3-compatible store), GCS, Azure, or Filesystem (a path the operator can
    /// write, e.g. a volume mounted into it).
    pub provider: StoreProvider,
    /// Bucket (S3, GCS) or container (Azure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Directory (Filesystem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Key prefix; default `<namespace>/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Endpoint URL of an S3-compatible store (MinIO, Ceph, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region (S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Path-style S3 requests (`endpoint/bucket/key`), needed by most S3-compatible stores.
    #[serde(default)]
    pub path_style: bool,
    /// A Secret in the KVCluster's namespace with the credentials: S3 `accessKeyId`,
    /// `secretAccessKey` (and `sessionToken`); GCS `serviceAccountKey` (JSON); Azure
    /// `accountName`, `accountKey`. Without it, the operator's workload identity is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// Object store provider.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum StoreProvider {
    /// Amazon S3 or an S3-compatible store.
    #[default]
    S3,
    /// Google Cloud Storage.
    GCS,
    /// Azure Blob Storage.
    Azure,
    /// A local directory.
    Filesystem,
}

/// Which backups are kept. The newest successful backup is never deleted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRetention {
    /// Keep at most this many backups (the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub keep_last: Option<u32>,
    /// Delete backups older than this (`36h`, `7d`, `90m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(m|h|d)$"))]
    pub max_age: Option<String>,
}

impl Default for BackupRetention {
    fn default() -> Self {
        BackupRetention {
            keep_last: Some(7),
            max_age: None,
        }
    }
}

/// Snapshot compression.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Compression {
    /// zstd.
    #[default]
    Zstd,
    /// Stored as taken.
    None,
}

/// In-place restore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.requestId) || self.acknowledgeDataLoss").message("restore.acknowledgeDataLoss must be true to restore"))]
pub struct RestoreSpec {
    /// Request token: each new value is acted on once; re-applying the same value does nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// A backup name (as in `status.backup.lastSuccessful.name`), `latest`, or a URI in the
    /// backup store (`s3://bucket/key`, `gs://...`, `az://...`, `file:///...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Acknowledge that the current data is replaced by the backup's.
    #[serde(default)]
    pub acknowledge_data_loss: bool,
    /// Take a backup of the current data first (default true).
    #[serde(default = "yes")]
    pub safety_backup: bool,
}

fn yes() -> bool {
    true
}

/// How a new cluster starts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapSpec {
    /// Start from this backup (a name, `latest`, or a URI) in `spec.backup.store`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_backup: Option<String>,
}

/// One backup as recorded in status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    /// Name (the object's key without prefix and suffix).
    pub name: String,
    /// URI of the snapshot object.
    pub uri: String,
    /// When it was taken (RFC 3339).
    pub time: String,
    /// The store revision it contains.
    pub revision: i64,
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 of the stored object (hex).
    pub sha256: String,
    /// Seconds it took.
    pub duration_seconds: f64,
}

/// Backups as the operator saw them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// When the last scheduled backup was due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// When the next scheduled backup is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<String>,
    /// The last successful backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful: Option<BackupRecord>,
    /// When the last failure happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<String>,
    /// Why it failed, in words a person can act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_reason: Option<String>,
    /// The last `spec.backup.trigger` acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trigger: Option<String>,
    /// Backups in the store now.
    #[serde(default)]
    pub kept: u32,
}

/// The last restore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// The `spec.restore.requestId` (or `bootstrap`) this describes.
    pub request_id: String,
    /// The step reached: SafetyBackup, StoppingTraffic, StoppingMembers, Restoring, Starting,
    /// AddingMembers, ResumingTraffic, Complete, or Failed.
    pub phase: String,
    /// What was restored (URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// SHA-256 of the restored object, as verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The cluster id before the restore (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_cluster_id: Option<String>,
    /// The safety backup taken first (URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_backup: Option<String>,
    /// The revision of the restored data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_revision: Option<i64>,
    /// The new cluster id (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// What happened, or why it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
