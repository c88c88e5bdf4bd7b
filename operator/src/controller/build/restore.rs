//! The restore step of the member pods: an init container that, in the first member's pod
//! only and once per restore, downloads a backup from the store, checks its SHA-256 and
//! restores it into the member's volume under a new cluster id (`kvctl snapshot restore`).
//! The other pods run it too and do nothing (`--only-for`); a pod restarted later does nothing
//! either (`--once`). Store credentials reach only this container, from the Secret, as the
//! environment variables the store clients read. The restored revision is raised and marked
//! compacted (`--bump-revision --mark-compacted`, as etcd advises for Kubernetes), so that a
//! client resuming a watch from a revision of the old history is canceled and relists.

use k8s_openapi::api::core::v1::{Container, EnvVar, EnvVarSource, SecretKeySelector, VolumeMount};
use kv_crds::v1alpha1::{BackupStore, StoreProvider};

use super::statefulset::DATA_DIR;
use crate::controller::validate::Validated;

/// How far a restore raises the snapshot's revision: etcd's advice for Kubernetes
/// (`etcdutl snapshot restore --bump-revision 1000000000 --mark-compacted`), far more than the
/// writes a cluster takes between a backup and its restore, so every new revision is above any
/// a client of the old history saw.
pub const REVISION_BUMP: u64 = 1_000_000_000;

/// What the first member restores.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreInit {
    /// URI of the snapshot object.
    pub uri: String,
    /// Its SHA-256 (hex), from its metadata, checked before the volume is touched.
    pub sha256: String,
    /// Marks the restore in the volume so that it happens once (the request id).
    pub marker: String,
    /// Token of the new cluster (its cluster id derives from it).
    pub token: String,
    /// The store, for endpoint and credentials.
    pub store: BackupStore,
    /// Raise the restored revision by this much and mark it compacted (0: keep the snapshot's
    /// revision and history).
    pub bump_revision: u64,
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(key == "sessionToken"),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The environment the store client reads for `store`.
fn store_env(store: &BackupStore) -> Vec<EnvVar> {
    let mut e = Vec::new();
    let secret = store.credentials_secret.as_deref();
    match store.provider {
        StoreProvider::S3 => {
            if let Some(ep) = &store.endpoint {
                e.push(env("AWS_ENDPOINT", ep));
                if ep.starts_with("http://") {
                    e.push(env("AWS_ALLOW_HTTP", "true"));
                }
            }
            e.push(env(
                "AWS_REGION",
                store.region.as_deref().unwrap_or("us-east-1"),
            ));
            if store.path_style {
                e.push(env("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"));
            }
            if let Some(s) = secret {
                e.push(from_secret("AWS_ACCESS_KEY_ID", s, "accessKeyId"));
                e.push(from_secret("AWS_SECRET_ACCESS_KEY", s, "secretAccessKey"));
                e.push(from_secret("AWS_SESSION_TOKEN", s, "sessionToken"));
            }
        }
        StoreProvider::GCS => {
            if let Some(s) = secret {
                e.push(from_secret(
                    "GOOGLE_SERVICE_ACCOUNT_KEY",
                    s,
                    "serviceAccountKey",
                ));
            }
        }
        StoreProvider::Azure => {
            if let Some(ep) = &store.endpoint {
                e.push(env("AZURE_STORAGE_ENDPOINT", ep));
                if ep.starts_with("http://") {
                    e.push(env("AZURE_ALLOW_HTTP", "true"));
                }
            }
            if let Some(s) = secret {
                e.push(from_secret("AZURE_STORAGE_ACCOUNT_NAME", s, "accountName"));
                e.push(from_secret("AZURE_STORAGE_ACCOUNT_KEY", s, "accountKey"));
            }
        }
        StoreProvider::Filesystem => {}
    }
    e
}

/// The init container.
pub fn init_container(v: &Validated, r: &RestoreInit) -> Container {
    let first = v.member(0);
    let mut env_vars = vec![super::statefulset::pod_name_env()];
    env_vars.extend(store_env(&r.store));
    let mut mounts = vec![VolumeMount {
        name: "data".into(),
        mount_path: DATA_DIR.into(),
        ..Default::default()
    }];
    if r.store.provider == StoreProvider::Filesystem
        && let Some(path) = &r.store.path
    {
        mounts.push(VolumeMount {
            name: "backup-store".into(),
            mount_path: path.clone(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    let mut args = vec![
        "snapshot".into(),
        "restore".into(),
        r.uri.clone(),
        format!("--sha256={}", r.sha256),
        format!("--data-dir={DATA_DIR}/data"),
        "--replace-data-dir".into(),
        format!("--once={}", r.marker),
        format!("--only-for={first}"),
        "--name=$(POD_NAME)".into(),
        format!("--initial-cluster={first}={}", v.peer_url(&first)),
        format!("--initial-cluster-token={}", r.token),
    ];
    if r.bump_revision > 0 {
        args.push(format!("--bump-revision={}", r.bump_revision));
        args.push("--mark-compacted".into());
    }
    Container {
        name: "restore".into(),
        image: Some(v.image.clone()),
        command: Some(vec!["kvctl".into()]),
        args: Some(args),
        env: Some(env_vars),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::build::tests::fixture;
    use crate::controller::validate::validate;

    #[test]
    fn only_the_first_member_restores_once_with_credentials_from_the_secret() {
        let v = validate(&fixture("demo", 3)).unwrap();
        let r = RestoreInit {
            uri: "s3://bk/db/demo/b1.snap.zst".into(),
            sha256: "ab".repeat(32),
            marker: "req-7".into(),
            token: "tok-req-7".into(),
            store: BackupStore {
                provider: StoreProvider::S3,
                bucket: Some("bk".into()),
                endpoint: Some("http://s3.local:9000".into()),
                path_style: true,
                credentials_secret: Some("s3-creds".into()),
                ..Default::default()
            },
            bump_revision: REVISION_BUMP,
        };
        let c = init_container(&v, &r);
        let args = c.args.unwrap();
        assert!(args.contains(&"--only-for=demo-0".to_string()));
        assert!(args.contains(&"--once=req-7".to_string()));
        assert!(args.contains(&format!("--sha256={}", "ab".repeat(32))));
        assert!(
            args.ends_with(&[
                "--bump-revision=1000000000".into(),
                "--mark-compacted".into()
            ]),
            "{args:?}"
        );
        let plain = init_container(
            &v,
            &RestoreInit {
                bump_revision: 0,
                ..r.clone()
            },
        );
        let plain = plain.args.unwrap();
        assert!(
            !plain
                .iter()
                .any(|a| a.contains("revision") || a.contains("compacted")),
            "{plain:?}"
        );
        let env = c.env.unwrap();
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        for n in [
            "AWS_ENDPOINT",
            "AWS_ALLOW_HTTP",
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(names.contains(&n), "{n} missing: {names:?}");
        }
        let key = env
            .iter()
            .find(|e| e.name == "AWS_SECRET_ACCESS_KEY")
            .unwrap();
        let sel = key
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (sel.name.as_str(), sel.key.as_str()),
            ("s3-creds", "secretAccessKey")
        );
        assert!(key.value.is_none(), "credentials never inline");
    }
}
