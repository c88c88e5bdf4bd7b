//! How a starting member finds its cluster: the join ConfigMap `<name>-join`, read into the
//! member's `--initial-cluster` and `--initial-cluster-state` flags through environment
//! variables each time its container starts.
//!
//! A pod's own spec never changes, but the cluster does: member 0 is created before there is a
//! cluster and bootstraps it. Were its flags in the pod spec, a restart of member 0 with a wiped
//! volume would bootstrap a second cluster under the same ids. Read from this ConfigMap, which
//! says `existing` and lists the members as soon as the cluster exists, every restart asks the
//! running members who it is, and a member whose data is lost is refused and replaced.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapKeySelector, EnvVar, EnvVarSource};

use super::{MemberPlan, meta};
use crate::controller::validate::Validated;

/// The variable holding `--initial-cluster`.
pub const INITIAL_CLUSTER_ENV: &str = "KV_INITIAL_CLUSTER";
/// The variable holding `--initial-cluster-state`.
pub const INITIAL_CLUSTER_STATE_ENV: &str = "KV_INITIAL_CLUSTER_STATE";
const INITIAL_CLUSTER_KEY: &str = "initial-cluster";
const INITIAL_CLUSTER_STATE_KEY: &str = "initial-cluster-state";

/// The ConfigMap's name.
pub fn name(v: &Validated) -> String {
    format!("{}-join", v.name)
}

/// The join flags: before the cluster exists only member 0 bootstraps it; afterwards every
/// member joins through the members there are.
pub fn flags(v: &Validated, plan: &MemberPlan) -> (String, &'static str) {
    if plan.bootstrapped && !plan.members.is_empty() {
        let peers: Vec<String> = plan
            .members
            .iter()
            .map(|m| format!("{m}={}", v.peer_url(m)))
            .collect();
        (peers.join(","), "existing")
    } else {
        let seed = v.member(0);
        (format!("{seed}={}", v.peer_url(&seed)), "auto")
    }
}

/// The ConfigMap.
pub fn config_map(v: &Validated, plan: &MemberPlan) -> ConfigMap {
    let (initial, state) = flags(v, plan);
    ConfigMap {
        metadata: meta(v, &name(v)),
        data: Some(BTreeMap::from([
            (INITIAL_CLUSTER_KEY.to_string(), initial),
            (INITIAL_CLUSTER_STATE_KEY.to_string(), state.to_string()),
        ])),
        ..Default::default()
    }
}

/// The member container's variables read from the ConfigMap.
pub fn env(v: &Validated) -> Vec<EnvVar> {
    let from = |var: &str, key: &str| EnvVar {
        name: var.into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: name(v),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    vec![
        from(INITIAL_CLUSTER_ENV, INITIAL_CLUSTER_KEY),
        from(INITIAL_CLUSTER_STATE_ENV, INITIAL_CLUSTER_STATE_KEY),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::build::tests::fixture;
    use crate::controller::validate::validate;

    #[test]
    fn member_zero_bootstraps_only_before_the_cluster_exists() {
        let v = validate(&fixture("demo", 3)).unwrap();
        let before = MemberPlan {
            slots: 1,
            ..Default::default()
        };
        let (initial, state) = flags(&v, &before);
        assert_eq!(state, "auto");
        assert_eq!(initial, format!("demo-0={}", v.peer_url("demo-0")));
        let after = MemberPlan {
            slots: 3,
            bootstrapped: true,
            members: vec!["demo-0".into(), "demo-1".into()],
            ..Default::default()
        };
        let cm = config_map(&v, &after);
        let data = cm.data.unwrap();
        assert_eq!(data[INITIAL_CLUSTER_STATE_KEY], "existing");
        assert_eq!(
            data[INITIAL_CLUSTER_KEY],
            format!(
                "demo-0={},demo-1={}",
                v.peer_url("demo-0"),
                v.peer_url("demo-1")
            )
        );
        assert_eq!(cm.metadata.name.as_deref(), Some("demo-join"));
        assert_eq!(cm.metadata.owner_references.unwrap()[0].kind, "KVCluster");
    }
}
