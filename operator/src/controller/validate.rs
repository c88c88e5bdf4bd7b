//! Validate step (pure): a KVCluster's spec checked beyond what the schema can say, and the
//! names and settings every builder needs, computed once.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kv_crds::v1alpha1::{KVCluster, KVClusterSpec};

/// Why a KVCluster cannot be reconciled as written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    /// The object has no namespace.
    #[error("KVCluster {0} has no namespace")]
    NoNamespace(String),
    /// The object has no uid yet.
    #[error("KVCluster {0} has no uid")]
    NoUid(String),
    /// Replicas out of range.
    #[error("spec.replicas must be between 1 and 9, got {0}")]
    Replicas(i32),
    /// A name too long for the objects derived from it.
    #[error(
        "metadata.name {0:?} is too long: at most 40 characters (pod and Service names derive from it)"
    )]
    NameTooLong(String),
    /// Election timeout too short.
    #[error(
        "spec.raft.electionTimeoutMs ({election}) must be at least 5 times spec.raft.heartbeatIntervalMs ({heartbeat})"
    )]
    Timers {
        /// Election timeout.
        election: i32,
        /// Heartbeat.
        heartbeat: i32,
    },
}

/// Image repository used when `spec.image` is unset.
pub const DEFAULT_REPOSITORY: &str = "kvstore";
/// Client port.
pub const CLIENT_PORT: i32 = 2379;
/// Peer port.
pub const PEER_PORT: i32 = 2380;

/// A cluster ready to be built.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// Cluster name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Object uid (for owner references and the cluster token).
    pub uid: String,
    /// The spec, with defaults applied.
    pub spec: KVClusterSpec,
    /// Container image.
    pub image: String,
    /// Headless peer Service name.
    pub peer_service: String,
    /// Client Service name.
    pub client_service: String,
    /// `--initial-cluster-token`.
    pub token: String,
    /// Labels that select the member pods.
    pub selector: BTreeMap<String, String>,
}

impl Validated {
    /// Pod name of member `ordinal`.
    pub fn member(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    /// DNS name of member `ordinal` (stable: the StatefulSet's headless Service).
    pub fn member_host(&self, member: &str) -> String {
        format!(
            "{member}.{}.{}.svc.cluster.local",
            self.peer_service, self.namespace
        )
    }

    /// Peer URL of a member.
    pub fn peer_url(&self, member: &str) -> String {
        format!("http://{}:{PEER_PORT}", self.member_host(member))
    }

    /// Client URL of a member.
    pub fn client_url(&self, member: &str) -> String {
        format!("http://{}:{CLIENT_PORT}", self.member_host(member))
    }

    /// The label selector as a string (for `status.selector` and `/scale`).
    pub fn selector_string(&self) -> String {
        self.selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Check a KVCluster and derive what the builders need.
pub fn validate(kvc: &KVCluster) -> Result<Validated, ValidationError> {
    let name = kvc.name_any();
    let namespace = kvc
        .namespace()
        .ok_or_else(|| ValidationError::NoNamespace(name.clone()))?;
    let uid = kvc
        .uid()
        .ok_or_else(|| ValidationError::NoUid(name.clone()))?;
    let spec = kvc.spec.clone();
    if !(1..=9).contains(&spec.replicas) {
        return Err(ValidationError::Replicas(spec.replicas));
    }
    if name.len() > 40 {
        return Err(ValidationError::NameTooLong(name));
    }
    if spec.raft.election_timeout_ms < 5 * spec.raft.heartbeat_interval_ms {
        return Err(ValidationError::Timers {
            election: spec.raft.election_timeout_ms,
            heartbeat: spec.raft.heartbeat_interval_ms,
        });
    }
    let image = match &spec.image {
        Some(i) => format!(
            "{}:{}",
            i.repository,
            i.tag.clone().unwrap_or_else(|| spec.version.clone())
        ),
        None => format!("{DEFAULT_REPOSITORY}:{}", spec.version),
    };
    let selector = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "kvstore".to_string()),
        ("app.kubernetes.io/instance".to_string(), name.clone()),
        (
            "app.kubernetes.io/component".to_string(),
            "member".to_string(),
        ),
    ]);
    Ok(Validated {
        peer_service: format!("{name}-peer"),
        client_service: name.clone(),
        token: format!(
            "{namespace}-{name}-{}",
            uid.split('-').next().unwrap_or(&uid)
        ),
        name,
        namespace,
        uid,
        spec,
        image,
        selector,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::build::tests::fixture;

    #[test]
    fn derives_names_and_image() {
        let v = validate(&fixture("demo", 3)).unwrap();
        assert_eq!(v.image, "kvstore:0.1.0");
        assert_eq!(v.peer_service, "demo-peer");
        assert_eq!(
            v.peer_url("demo-1"),
            "http://demo-1.demo-peer.default.svc.cluster.local:2380"
        );
        assert_eq!(v.token, "default-demo-11111111");
        assert!(
            v.selector_string()
                .contains("app.kubernetes.io/instance=demo")
        );
    }

    #[test]
    fn refuses_what_the_schema_cannot_express() {
        let mut k = fixture("demo", 3);
        k.spec.replicas = 0;
        assert_eq!(validate(&k), Err(ValidationError::Replicas(0)));
        let mut k = fixture("demo", 3);
        k.spec.raft.election_timeout_ms = 200;
        assert!(matches!(validate(&k), Err(ValidationError::Timers { .. })));
        let k = fixture(&"x".repeat(41), 3);
        assert!(matches!(validate(&k), Err(ValidationError::NameTooLong(_))));
    }
}
