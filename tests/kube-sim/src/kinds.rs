//! Behaviour of particular kinds that a real API server builds in: defaults on create
//! (Namespace phase, Pod phase, Service cluster IP, workload defaults), CustomResourceDefinition
//! status and the resources a CRD starts serving, and metadata.name rules.

use serde_json::{Value, json};

use crate::error::Cause;
use crate::http::now;
use crate::resources::{ResourceDef, defs_from_crd};
use crate::store::State;

/// Whether the resource is a CustomResourceDefinition.
pub fn is_crd(def: &ResourceDef) -> bool {
    def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions"
}

/// Whether the resource is a Namespace.
pub fn is_namespace(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.plural == "namespaces"
}

fn set_default(obj: &mut Value, path: &[&str], v: Value) {
    let mut cur = obj;
    for (i, p) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let m = cur.as_object_mut().expect("made an object above");
        if i + 1 == path.len() {
            m.entry(p.to_string()).or_insert(v);
            return;
        }
        cur = m.entry(p.to_string()).or_insert_with(|| json!({}));
    }
}

/// Defaults a real API server sets when an object is created.
pub fn on_create(def: &ResourceDef, obj: &mut Value) {
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "namespaces") => {
            obj["status"] = json!({"phase": "Active"});
            let name = obj["metadata"]["name"].clone();
            set_default(
                obj,
                &["metadata", "labels", "kubernetes.io/metadata.name"],
                name,
            );
            set_default(obj, &["spec", "finalizers"], json!(["kubernetes"]));
        }
        ("", "pods") => {
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            set_default(obj, &["spec", "restartPolicy"], json!("Always"));
            set_default(obj, &["spec", "terminationGracePeriodSeconds"], json!(30));
            set_default(obj, &["spec", "serviceAccountName"], json!("default"));
            set_default(obj, &["spec", "schedulerName"], json!("default-scheduler"));
        }
        ("", "services") => {
            set_default(obj, &["spec", "type"], json!("ClusterIP"));
            if obj["spec"]["type"] != "ExternalName" && obj["spec"].get("clusterIP").is_none() {
                let ip = format!(
                    "10.96.{}.{}",
                    rand::random_range(0..255u8),
                    rand::random_range(1..255u8)
                );
                obj["spec"]["clusterIP"] = json!(ip);
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
            set_default(obj, &["spec", "sessionAffinity"], json!("None"));
            for p in obj["spec"]["ports"].as_array_mut().into_iter().flatten() {
                set_default(p, &["protocol"], json!("TCP"));
                if p.get("targetPort").is_none() {
                    p["targetPort"] = p["port"].clone();
                }
            }
            obj["status"] = json!({"loadBalancer": {}});
        }
        ("", "persistentvolumeclaims") => {
            obj["status"] = json!({"phase": "Pending"});
        }
        ("apps", "statefulsets") => {
            set_default(obj, &["spec", "replicas"], json!(1));
            set_default(obj, &["spec", "podManagementPolicy"], json!("OrderedReady"));
            set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            set_default(
                obj,
                &["spec", "updateStrategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            set_default(
                obj,
                &["spec", "persistentVolumeClaimRetentionPolicy"],
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            obj["status"] = json!({"replicas": 0, "availableReplicas": 0});
        }
        ("apps", "deployments") => {
            set_default(obj, &["spec", "replicas"], json!(1));
            set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            set_default(obj, &["spec", "progressDeadlineSeconds"], json!(600));
            set_default(
                obj,
                &["spec", "strategy"],
                json!({"type": "RollingUpdate",
                       "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
        }
        ("apps", "replicasets") => {
            set_default(obj, &["spec", "replicas"], json!(1));
            obj["status"] = json!({"replicas": 0});
        }
        _ => {}
    }
}

/// The status a CRD gets once its names are accepted and it is served.
pub fn crd_status(crd: &Value) -> Value {
    let mut names = crd["spec"]["names"].clone();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    set_default(&mut names, &["singular"], json!(kind.to_lowercase()));
    set_default(&mut names, &["listKind"], json!(format!("{kind}List")));
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    let t = now();
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": t},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": t},
        ],
        "acceptedNames": names,
        "storedVersions": stored,
    })
}

/// Checks of a CRD object that a real server makes (the few that matter here).
pub fn validate_crd(crd: &Value) -> Vec<Cause> {
    let mut errs = Vec::new();
    let spec = &crd["spec"];
    let want = format!(
        "{}.{}",
        spec["names"]["plural"].as_str().unwrap_or_default(),
        spec["group"].as_str().unwrap_or_default()
    );
    if crd["metadata"]["name"].as_str() != Some(want.as_str()) {
        errs.push(Cause::invalid(
            "metadata.name",
            &crd["metadata"]["name"],
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let versions = spec["versions"].as_array().map(Vec::len).unwrap_or(0);
    if versions == 0 {
        errs.push(Cause::required("spec.versions"));
    }
    let storage = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .count();
    if versions > 0 && storage != 1 {
        errs.push(Cause::invalid(
            "spec.versions",
            &spec["versions"],
            "must have exactly one version marked as storage version",
        ));
    }
    errs
}

/// Makes the registry serve what the CRD defines.
pub fn register_crd(state: &mut State, crd: &Value) {
    let group = crd["spec"]["group"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let plural = crd["spec"]["names"]["plural"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    state
        .registry
        .set_custom(&group, &plural, defs_from_crd(crd));
}

/// `metadata.name` rules: DNS-1123 subdomain, or a path segment for RBAC kinds.
pub fn validate_name(def: &ResourceDef, name: &str) -> Option<Cause> {
    let value = Value::String(name.to_string());
    if def.group == "rbac.authorization.k8s.io" {
        return (name.contains('/') || name.contains('%') || name == "." || name == "..")
            .then(|| Cause::invalid("metadata.name", &value, "may not contain '/' or '%'"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let ok = name.len() <= 253 && name.split('.').all(label_ok);
    (!ok).then(|| {
        Cause::invalid(
            "metadata.name",
            &value,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    #[test]
    fn names_are_checked() {
        let reg = Registry::builtin();
        let cm = reg.get("", "v1", "configmaps").unwrap();
        assert!(validate_name(cm, "ok-name.x").is_none());
        assert!(validate_name(cm, "Bad").is_some());
        let cr = reg
            .get("rbac.authorization.k8s.io", "v1", "clusterroles")
            .unwrap();
        assert!(validate_name(cr, "system:controller").is_none());
    }

    #[test]
    fn crd_status_is_established() {
        let crd = json!({"spec": {"names": {"kind": "Foo", "plural": "foos"},
            "versions": [{"name": "v1", "storage": true}]}});
        let s = crd_status(&crd);
        assert_eq!(s["conditions"][1]["type"], "Established");
        assert_eq!(s["acceptedNames"]["listKind"], "FooList");
        assert_eq!(s["storedVersions"], json!(["v1"]));
    }
}
