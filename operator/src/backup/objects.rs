//! The backup store: an `object_store` client built from `spec.backup.store` and its Secret,
//! and how backups are named and laid out in it.
//!
//! Layout under the prefix (default `<namespace>/<name>`): `<backup>.snap` or
//! `<backup>.snap.zst` (the snapshot as `etcdctl snapshot save` writes it, maybe compressed)
//! and `<backup>.json` (its [`Metadata`]), written last: a backup without metadata never
//! completed.

use std::collections::BTreeMap;
use std::sync::Arc;

use kv_crds::v1alpha1::{BackupStore, StoreProvider};
use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The spec or the Secret lacks something.
    #[error("{0}")]
    Config(String),
    /// The client could not be built.
    #[error("backup store: {0}")]
    Client(#[from] object_store::Error),
}

/// What is written beside each snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Backup name.
    pub name: String,
    /// Cluster id (hex) of the cluster it was taken from.
    pub cluster_id: String,
    /// Member it was taken from.
    pub member: String,
    /// Store revision.
    pub revision: i64,
    /// Raft index and term of the member at the time.
    pub raft_index: u64,
    /// Raft term.
    pub raft_term: u64,
    /// When (RFC 3339).
    pub time: String,
    /// Bytes of the stored object.
    pub size: u64,
    /// SHA-256 (hex) of the stored object.
    pub sha256: String,
    /// Bytes of the snapshot before compression.
    pub snapshot_size: u64,
    /// `zstd` or `none`.
    pub compression: String,
    /// Version of the store that took it.
    pub store_version: String,
    /// The snapshot object's key under the prefix.
    pub object: String,
}

/// An open backup store with its prefix.
#[derive(Clone, Debug)]
pub struct Backups {
    /// The client.
    pub store: Arc<dyn ObjectStore>,
    /// Key prefix (no leading or trailing slash).
    pub prefix: String,
    /// URI of the prefix, for status (`s3://bucket/prefix`).
    pub base_uri: String,
}

fn secret<'a>(
    data: &'a BTreeMap<String, Vec<u8>>,
    key: &str,
    name: &str,
) -> Result<&'a str, StoreError> {
    let v = data.get(key).ok_or_else(|| {
        StoreError::Config(format!(
            "backup credentials Secret {name:?} has no key {key:?}"
        ))
    })?;
    std::str::from_utf8(v)
        .map(str::trim)
        .map_err(|_| StoreError::Config(format!("key {key:?} of Secret {name:?} is not text")))
}

impl Backups {
    /// Open the store of `spec`, with the Secret's data when one is named, for cluster
    /// `namespace/name`.
    pub fn open(
        spec: &BackupStore,
        creds: Option<&BTreeMap<String, Vec<u8>>>,
        namespace: &str,
        name: &str,
    ) -> Result<Backups, StoreError> {
        let prefix = spec
            .prefix
            .clone()
            .unwrap_or_else(|| format!("{namespace}/{name}"))
            .trim_matches('/')
            .to_string();
        let secret_name = spec.credentials_secret.as_deref().unwrap_or_default();
        let bucket = || {
            spec.bucket
                .clone()
                .ok_or_else(|| StoreError::Config("backup.store.bucket is required".into()))
        };
        let (store, scheme, root): (Arc<dyn ObjectStore>, &str, String) = match spec.provider {
            StoreProvider::S3 => {
                let bucket = bucket()?;
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&bucket)
                    .with_region(spec.region.clone().unwrap_or_else(|| "us-east-1".into()))
                    .with_virtual_hosted_style_request(!spec.path_style);
                if let Some(e) = &spec.endpoint {
                    b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
                }
                if let Some(d) = creds {
                    b = b
                        .with_access_key_id(secret(d, "accessKeyId", secret_name)?)
                        .with_secret_access_key(secret(d, "secretAccessKey", secret_name)?);
                    if let Ok(t) = secret(d, "sessionToken", secret_name) {
                        b = b.with_token(t);
                    }
                }
                (Arc::new(b.build()?), "s3", bucket)
            }
            StoreProvider::GCS => {
                let bucket = bucket()?;
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&bucket);
                if let Some(d) = creds {
                    b = b.with_service_account_key(secret(d, "serviceAccountKey", secret_name)?);
                }
                (Arc::new(b.build()?), "gs", bucket)
            }
            StoreProvider::Azure => {
                let bucket = bucket()?;
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(&bucket);
                if let Some(e) = &spec.endpoint {
                    b = b
                        .with_endpoint(e.clone())
                        .with_allow_http(e.starts_with("http://"));
                }
                if let Some(d) = creds {
                    b = b
                        .with_account(secret(d, "accountName", secret_name)?)
                        .with_access_key(secret(d, "accountKey", secret_name)?);
                }
                (Arc::new(b.build()?), "az", bucket)
            }
            StoreProvider::Filesystem => {
                let path = spec.path.clone().ok_or_else(|| {
                    StoreError::Config("backup.store.path is required for Filesystem".into())
                })?;
                std::fs::create_dir_all(&path)
                    .map_err(|e| StoreError::Config(format!("backup.store.path {path:?}: {e}")))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&path)?;
                (Arc::new(fs), "file", path.trim_end_matches('/').to_string())
            }
        };
        let base_uri = match spec.provider {
            StoreProvider::Filesystem => format!("file://{root}/{prefix}"),
            _ => format!("{scheme}://{root}/{prefix}"),
        };
        Ok(Backups {
            store,
            prefix,
            base_uri,
        })
    }

    /// The key of `file` under the prefix.
    pub fn key(&self, file: &str) -> Path {
        Path::from(format!("{}/{file}", self.prefix))
    }

    /// The URI of `file`.
    pub fn uri(&self, file: &str) -> String {
        format!("{}/{file}", self.base_uri)
    }

    /// The backup name a source names: a bare name, or a URI under this store's prefix.
    pub fn name_of(&self, source: &str) -> Option<String> {
        let file = match source.strip_prefix(&format!("{}/", self.base_uri)) {
            Some(f) => f,
            None if source.contains("://") => return None,
            None => source,
        };
        let name = file
            .strip_suffix(".snap.zst")
            .or_else(|| file.strip_suffix(".snap"))
            .or_else(|| file.strip_suffix(".json"))
            .unwrap_or(file);
        (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
    }
}

/// The name of a backup of cluster `cluster` taken at `time`: sorts by time.
/// `kind` is `scheduled`, `manual` or `safety`.
pub fn backup_name(cluster: &str, time: chrono::DateTime<chrono::Utc>, kind: &str) -> String {
    format!("{cluster}-{}-{kind}", time.format("%Y%m%dT%H%M%S%.3fZ"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(prefix: Option<&str>) -> BackupStore {
        BackupStore {
            provider: StoreProvider::S3,
            bucket: Some("bk".into()),
            prefix: prefix.map(Into::into),
            endpoint: Some("http://127.0.0.1:9".into()),
            path_style: true,
            ..Default::default()
        }
    }

    #[test]
    fn names_uris_and_sources() {
        let b = Backups::open(&s3(None), None, "db", "demo").unwrap();
        assert_eq!(b.prefix, "db/demo");
        assert_eq!(b.uri("x.snap"), "s3://bk/db/demo/x.snap");
        assert_eq!(b.name_of("x"), Some("x".into()));
        assert_eq!(b.name_of("s3://bk/db/demo/x.snap.zst"), Some("x".into()));
        assert_eq!(b.name_of("s3://other/db/demo/x.snap"), None);
        let t = "2026-03-01T10:20:30Z".parse().unwrap();
        assert_eq!(
            backup_name("demo", t, "scheduled"),
            "demo-20260301T102030.000Z-scheduled"
        );
    }

    #[test]
    fn missing_credentials_are_named() {
        let mut spec = s3(Some("/p/"));
        spec.credentials_secret = Some("s3-creds".into());
        let data = BTreeMap::from([("accessKeyId".to_string(), b"AK".to_vec())]);
        let e = Backups::open(&spec, Some(&data), "db", "demo").unwrap_err();
        assert_eq!(
            e.to_string(),
            "backup credentials Secret \"s3-creds\" has no key \"secretAccessKey\""
        );
        let mut fs = BackupStore {
            provider: StoreProvider::Filesystem,
            ..Default::default()
        };
        let e = Backups::open(&fs, None, "db", "demo").unwrap_err();
        assert!(e.to_string().contains("path is required"));
        let dir = tempfile::tempdir().unwrap();
        fs.path = Some(dir.path().display().to_string());
        let b = Backups::open(&fs, None, "db", "demo").unwrap();
        assert!(b.uri("a.json").starts_with("file:///"));
    }
}
