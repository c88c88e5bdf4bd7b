//! The resource registry: which resources are served (built-in kinds and the ones CRDs add),
//! with the facts discovery, routing, storage and validation need about each.

use std::collections::BTreeMap;

use serde_json::Value;

/// Where the scale subresource reads and writes replicas (JSON paths like `.spec.replicas`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    /// Path of the desired replicas.
    pub spec_replicas: String,
    /// Path of the observed replicas.
    pub status_replicas: String,
    /// Path of the label selector (a string for CRDs; built-ins derive it from spec.selector).
    pub label_selector: Option<String>,
}

/// One additional printer column of a CRD version.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// `integer`, `string`, `date`, ...
    pub type_: String,
    /// JSONPath (subset) into the object.
    pub json_path: String,
    /// 0 for the default view, more for `-o wide`.
    pub priority: i64,
    /// Column description.
    pub description: String,
}

/// Everything the server knows about one served resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDef {
    /// API group, "" for core.
    pub group: String,
    /// Served version.
    pub version: String,
    /// Plural name (the URL segment).
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (`sts`, `kvc`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Has a `/status` subresource.
    pub status: bool,
    /// Has a `/scale` subresource.
    pub scale: Option<ScalePaths>,
    /// Extra subresources with their own verbs (`pods/log`).
    pub extra_subresources: Vec<(&'static str, &'static str, &'static [&'static str])>,
    /// Verbs of the main resource.
    pub verbs: Vec<&'static str>,
    /// The structural schema of a custom resource version.
    pub schema: Option<Value>,
    /// Printer columns of a custom resource version.
    pub printer_columns: Vec<PrinterColumn>,
    /// Defined by a CustomResourceDefinition.
    pub custom: bool,
    /// Whether objects get `metadata.generation`.
    pub has_generation: bool,
}

impl ResourceDef {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage identity (version independent): group and plural.
    pub fn gr(&self) -> (String, String) {
        (self.group.clone(), self.plural.clone())
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    scale: bool,
    all: bool,
}

const fn b(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        plural,
        kind,
        namespaced,
        short,
        status: false,
        scale: false,
        all: false,
    }
}

const fn with_status(mut x: Builtin) -> Builtin {
    x.status = true;
    x
}

const fn with_scale(mut x: Builtin) -> Builtin {
    x.status = true;
    x.scale = true;
    x.all = true;
    x
}

const fn in_all(mut x: Builtin) -> Builtin {
    x.all = true;
    x
}

const BUILTINS: &[Builtin] = &[
    with_status(b("", "v1", "namespaces", "Namespace", false, &["ns"])),
    b("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
    b("", "v1", "secrets", "Secret", true, &[]),
    b("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
    in_all(with_status(b(
        "",
        "v1",
        "services",
        "Service",
        true,
        &["svc"],
    ))),
    b("", "v1", "endpoints", "Endpoints", true, &["ep"]),
    in_all(with_status(b("", "v1", "pods", "Pod", true, &["po"]))),
    with_status(b(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
    )),
    with_status(b(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        false,
        &["pv"],
    )),
    with_status(b("", "v1", "nodes", "Node", false, &["no"])),
    b("", "v1", "events", "Event", true, &["ev"]),
    with_status(b(
        "",
        "v1",
        "resourcequotas",
        "ResourceQuota",
        true,
        &["quota"],
    )),
    b("", "v1", "limitranges", "LimitRange", true, &["limits"]),
    with_scale(b(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        true,
        &["sts"],
    )),
    with_scale(b(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
    )),
    with_scale(b("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"])),
    in_all(with_status(b(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        true,
        &["ds"],
    ))),
    b(
        "apps",
        "v1",
        "controllerrevisions",
        "ControllerRevision",
        true,
        &[],
    ),
    in_all(with_status(b("batch", "v1", "jobs", "Job", true, &[]))),
    in_all(with_status(b(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        true,
        &["cj"],
    ))),
    with_status(b(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
    )),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
    ),
    b("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
    b("events.k8s.io", "v1", "events", "Event", true, &["ev"]),
    b(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        &[],
    ),
    b(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
    ),
    with_status(b(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
    )),
    b(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        false,
        &["sc"],
    ),
    b(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "PriorityClass",
        false,
        &["pc"],
    ),
    b(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
        &[],
    ),
    with_status(b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
    )),
];

fn builtin_def(x: &Builtin) -> ResourceDef {
    let scale = x.scale.then(|| ScalePaths {
        spec_replicas: ".spec.replicas".into(),
        status_replicas: ".status.replicas".into(),
        label_selector: None,
    });
    let mut extra: Vec<(&'static str, &'static str, &'static [&'static str])> = Vec::new();
    if x.plural == "pods" {
        extra.push(("log", "Pod", &["get"]));
        extra.push(("eviction", "Eviction", &["create"]));
        extra.push(("binding", "Binding", &["create"]));
    }
    if x.plural == "namespaces" {
        extra.push(("finalize", "Namespace", &["update"]));
    }
    let verbs = if x.plural == "selfsubjectaccessreviews" {
        vec!["create"]
    } else {
        ALL_VERBS.to_vec()
    };
    ResourceDef {
        group: x.group.into(),
        version: x.version.into(),
        plural: x.plural.into(),
        singular: x.kind.to_lowercase(),
        kind: x.kind.into(),
        namespaced: x.namespaced,
        short_names: x.short.iter().map(|s| s.to_string()).collect(),
        categories: if x.all { vec!["all".into()] } else { vec![] },
        status: x.status,
        scale,
        extra_subresources: extra,
        verbs,
        schema: None,
        printer_columns: vec![],
        custom: false,
        has_generation: x.status && !matches!(x.plural, "namespaces" | "nodes" | "services"),
    }
}

/// The served resources, keyed by (group, version, plural).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    defs: BTreeMap<(String, String, String), ResourceDef>,
}

impl Registry {
    /// The built-in resources.
    pub fn builtin() -> Self {
        let mut r = Registry::default();
        for x in BUILTINS {
            r.insert(builtin_def(x));
        }
        r
    }

    fn insert(&mut self, d: ResourceDef) {
        self.defs
            .insert((d.group.clone(), d.version.clone(), d.plural.clone()), d);
    }

    /// The resource served at `group/version/plural`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        self.defs
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// Any served version of `group/plural` (for storage-level work like garbage collection).
    pub fn any_version(&self, group: &str, plural: &str) -> Option<&ResourceDef> {
        self.defs
            .values()
            .find(|d| d.group == group && d.plural == plural)
    }

    /// Every served resource.
    pub fn all(&self) -> impl Iterator<Item = &ResourceDef> {
        self.defs.values()
    }

    /// The groups and their versions, core ("") first, in a stable order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for d in self.defs.values() {
            match out.iter_mut().find(|(g, _)| *g == d.group) {
                Some((_, vs)) => {
                    if !vs.contains(&d.version) {
                        vs.push(d.version.clone());
                    }
                }
                None => out.push((d.group.clone(), vec![d.version.clone()])),
            }
        }
        for (_, vs) in &mut out {
            vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    /// Replaces the resources defined by the CRD named `crd_name` with `defs`.
    pub fn set_custom(&mut self, crd_group: &str, crd_plural: &str, defs: Vec<ResourceDef>) {
        self.remove_custom(crd_group, crd_plural);
        for d in defs {
            self.insert(d);
        }
    }

    /// Stops serving a custom resource.
    pub fn remove_custom(&mut self, group: &str, plural: &str) {
        self.defs
            .retain(|_, d| !(d.custom && d.group == group && d.plural == plural));
    }
}

/// Kubernetes version ordering: GA > beta > alpha, then by number.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let digits = |s: &str| s.parse::<u32>().unwrap_or(0);
    let rest = v.strip_prefix('v').unwrap_or(v);
    if let Some((major, minor)) = rest.split_once("beta") {
        (1, digits(major), digits(minor))
    } else if let Some((major, minor)) = rest.split_once("alpha") {
        (0, digits(major), digits(minor))
    } else {
        (2, digits(rest), 0)
    }
}

/// The resources a CustomResourceDefinition object defines, one per served version.
pub fn defs_from_crd(crd: &Value) -> Vec<ResourceDef> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for ver in spec["versions"].as_array().into_iter().flatten() {
        if ver["served"] != Value::Bool(true) {
            continue;
        }
        let subs = &ver["subresources"];
        let scale = subs.get("scale").map(|s| ScalePaths {
            spec_replicas: s["specReplicasPath"]
                .as_str()
                .unwrap_or(".spec.replicas")
                .into(),
            status_replicas: s["statusReplicasPath"]
                .as_str()
                .unwrap_or(".status.replicas")
                .into(),
            label_selector: s["labelSelectorPath"].as_str().map(String::from),
        });
        let printer_columns = ver["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| PrinterColumn {
                name: c["name"].as_str().unwrap_or_default().into(),
                type_: c["type"].as_str().unwrap_or("string").into(),
                json_path: c["jsonPath"].as_str().unwrap_or_default().into(),
                priority: c["priority"].as_i64().unwrap_or(0),
                description: c["description"].as_str().unwrap_or_default().into(),
            })
            .collect();
        out.push(ResourceDef {
            group: group.into(),
            version: ver["name"].as_str().unwrap_or_default().into(),
            plural: plural.into(),
            singular: names["singular"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| kind.to_lowercase()),
            kind: kind.into(),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            short_names: strs(&names["shortNames"]),
            categories: strs(&names["categories"]),
            status: subs.get("status").is_some(),
            scale,
            extra_subresources: vec![],
            verbs: ALL_VERBS.to_vec(),
            schema: ver["schema"].get("openAPIV3Schema").cloned(),
            printer_columns,
            custom: true,
            has_generation: true,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtins_are_served() {
        let r = Registry::builtin();
        let sts = r.get("apps", "v1", "statefulsets").unwrap();
        assert!(sts.namespaced && sts.status && sts.scale.is_some());
        assert_eq!(r.groups()[0].0, "");
    }

    #[test]
    fn crd_defines_served_versions() {
        let crd = json!({"spec": {"group": "x.io", "scope": "Namespaced",
            "names": {"plural": "foos", "kind": "Foo", "shortNames": ["f"]},
            "versions": [
                {"name": "v1", "served": true, "storage": true,
                 "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.n",
                   "statusReplicasPath": ".status.n"}}},
                {"name": "v0", "served": false, "storage": false}]}});
        let defs = defs_from_crd(&crd);
        assert_eq!(defs.len(), 1);
        assert_eq!(defs[0].singular, "foo");
        assert_eq!(defs[0].scale.as_ref().unwrap().spec_replicas, ".spec.n");
    }

    #[test]
    fn versions_sort_like_kubernetes() {
        assert!(version_priority("v1") > version_priority("v1beta1"));
        assert!(version_priority("v1beta1") > version_priority("v1alpha1"));
    }
}
