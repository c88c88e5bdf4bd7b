//! Label selectors as the controllers and DNS use them: `matchLabels` plus `matchExpressions`
//! (In, NotIn, Exists, DoesNotExist), and the plain maps of Service selectors.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `labels` satisfy a Service-style selector (every pair present). An empty selector
/// selects nothing, as for Services.
pub fn map_matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether `labels` satisfy a `LabelSelector` (an empty one selects everything).
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let plain = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    plain && exprs
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "kv")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
        };
        assert!(matches(&sel, &labels(&[("app", "kv"), ("tier", "b")])));
        assert!(!matches(&sel, &labels(&[("app", "kv"), ("tier", "c")])));
        assert!(!matches(&sel, &labels(&[("tier", "a")])));
        assert!(matches(&LabelSelector::default(), &labels(&[])));
    }

    #[test]
    fn service_selectors_need_every_pair() {
        let sel = labels(&[("app", "kv")]);
        assert!(map_matches(&sel, &labels(&[("app", "kv"), ("x", "y")])));
        assert!(!map_matches(&sel, &labels(&[("app", "other")])));
        assert!(!map_matches(&BTreeMap::new(), &labels(&[("app", "kv")])));
    }
}
