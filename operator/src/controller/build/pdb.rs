//! The PodDisruptionBudget: voluntary evictions may never take the cluster below quorum.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{MemberPlan, meta};
use crate::controller::validate::Validated;

/// The quorum of `n` voters.
pub fn quorum(n: i32) -> i32 {
    n / 2 + 1
}

/// The budget (`minAvailable` = a quorum of the larger of the wanted and the running size).
pub fn pdb(v: &Validated, plan: &MemberPlan) -> Option<PodDisruptionBudget> {
    if !v.spec.disruption_budget.enabled {
        return None;
    }
    let n = v.spec.replicas.max(plan.slots);
    Some(PodDisruptionBudget {
        metadata: meta(v, &v.name),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(quorum(n))),
            selector: Some(LabelSelector {
                match_labels: Some(v.selector.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::quorum;

    #[test]
    fn quorums() {
        assert_eq!(
            (1..=9).map(quorum).collect::<Vec<_>>(),
            vec![1, 2, 2, 3, 3, 4, 4, 5, 5]
        );
    }
}
