//! A container's environment as Kubernetes builds it: `envFrom` first, then `env` in order, with
//! `$(VAR)` expansion against what is defined so far (`$$` escapes), values from the downward
//! API (`fieldRef`, `resourceFieldRef`), Secrets and ConfigMaps, plus the service variables.
//! Pure: the Secrets and ConfigMaps it needs are fetched first ([`referenced`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Container, Pod};

/// A value the environment needs but cannot get.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    /// A referenced Secret or ConfigMap (or its key) is missing and not optional.
    #[error("{kind} \"{name}\" not found")]
    Missing {
        /// `secret` or `configmap` (`key` in the message when the object exists).
        kind: &'static str,
        /// Name (or `name/key`).
        name: String,
    },
    /// A `fieldRef` path that is not supported.
    #[error("unsupported fieldRef {0}")]
    Field(String),
}

/// The data of the Secrets and ConfigMaps of the pod's namespace that were found.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// Secret name → decoded data.
    pub secrets: HashMap<String, BTreeMap<String, String>>,
    /// ConfigMap name → data.
    pub configmaps: HashMap<String, BTreeMap<String, String>>,
}

/// What the pod's runtime knows besides the object.
#[derive(Debug, Clone, Default)]
pub struct Runtime {
    /// The pod IP.
    pub pod_ip: String,
    /// The node IP.
    pub host_ip: String,
    /// The node name.
    pub node_name: String,
}

/// Expands `$(NAME)` references with `lookup`, as Kubernetes does: unknown names stay as
/// written, `$$` becomes `$`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The Secrets and ConfigMaps the containers' environments refer to.
pub fn referenced(containers: &[&Container]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut secrets, mut cms) = (BTreeSet::new(), BTreeSet::new());
    for c in containers {
        for from in c.env_from.iter().flatten() {
            if let Some(s) = &from.secret_ref {
                secrets.insert(s.name.clone());
            }
            if let Some(m) = &from.config_map_ref {
                cms.insert(m.name.clone());
            }
        }
        for e in c.env.iter().flatten() {
            let Some(vf) = &e.value_from else { continue };
            if let Some(s) = &vf.secret_key_ref {
                secrets.insert(s.name.clone());
            }
            if let Some(m) = &vf.config_map_key_ref {
                cms.insert(m.name.clone());
            }
        }
    }
    (secrets, cms)
}

/// The value of a downward-API field path.
pub fn field(pod: &Pod, rt: &Runtime, path: &str) -> Result<String, EnvError> {
    let md = &pod.metadata;
    let spec = pod.spec.as_ref();
    let quoted = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    if let Some(v) = quoted("metadata.labels['", md.labels.as_ref()) {
        return Ok(v);
    }
    if let Some(v) = quoted("metadata.annotations['", md.annotations.as_ref()) {
        return Ok(v);
    }
    let v = match path {
        "metadata.name" => md.name.clone().unwrap_or_default(),
        "metadata.namespace" => md.namespace.clone().unwrap_or_default(),
        "metadata.uid" => md.uid.clone().unwrap_or_default(),
        "spec.nodeName" => rt.node_name.clone(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.podIP" | "status.podIPs" => rt.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => rt.host_ip.clone(),
        "metadata.labels" => kv_lines(md.labels.as_ref()),
        "metadata.annotations" => kv_lines(md.annotations.as_ref()),
        other => return Err(EnvError::Field(other.to_string())),
    };
    Ok(v)
}

/// `key="value"` lines, as the downward API volume writes maps.
pub fn kv_lines(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}\n"))
        .collect()
}

fn lookup<'a>(
    sources: &'a HashMap<String, BTreeMap<String, String>>,
    kind: &'static str,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<&'a String>, EnvError> {
    match sources.get(name).and_then(|d| d.get(key)) {
        Some(v) => Ok(Some(v)),
        None if optional == Some(true) => Ok(None),
        None => Err(EnvError::Missing {
            kind,
            name: format!("{name}/{key}"),
        }),
    }
}

/// The environment of `container`, in order, after `base` (the service variables).
pub fn resolve(
    pod: &Pod,
    container: &Container,
    rt: &Runtime,
    sources: &Sources,
    base: &[(String, String)],
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env: Vec<(String, String)> = base.to_vec();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(n, _)| *n != k);
        env.push((k, v));
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(s) = &from.secret_ref {
            match sources.secrets.get(&s.name) {
                Some(d) => Some(d),
                None if s.optional == Some(true) => None,
                None => {
                    return Err(EnvError::Missing {
                        kind: "secret",
                        name: s.name.clone(),
                    });
                }
            }
        } else if let Some(m) = &from.config_map_ref {
            match sources.configmaps.get(&m.name) {
                Some(d) => Some(d),
                None if m.optional == Some(true) => None,
                None => {
                    return Err(EnvError::Missing {
                        kind: "configmap",
                        name: m.name.clone(),
                    });
                }
            }
        } else {
            None
        };
        for (k, v) in data.into_iter().flatten() {
            set(&mut env, format!("{prefix}{k}"), v.clone());
        }
    }
    for e in container.env.iter().flatten() {
        let value = if let Some(vf) = &e.value_from {
            if let Some(f) = &vf.field_ref {
                Some(field(pod, rt, &f.field_path)?)
            } else if let Some(s) = &vf.secret_key_ref {
                lookup(&sources.secrets, "secret", &s.name, &s.key, s.optional)?.cloned()
            } else if let Some(m) = &vf.config_map_key_ref {
                lookup(
                    &sources.configmaps,
                    "configmap",
                    &m.name,
                    &m.key,
                    m.optional,
                )?
                .cloned()
            } else {
                vf.resource_field_ref
                    .as_ref()
                    .map(|r| resource_value(container, &r.resource))
            }
        } else {
            let raw = e.value.clone().unwrap_or_default();
            let known: HashMap<&str, &str> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Some(expand(&raw, |n| known.get(n).map(|v| v.to_string())))
        };
        if let Some(v) = value {
            set(&mut env, e.name.clone(), v);
        }
    }
    Ok(env)
}

/// A `resourceFieldRef` value: the container's limit or request, else the node's capacity.
fn resource_value(container: &Container, resource: &str) -> String {
    let (kind, name) = resource.split_once('.').unwrap_or(("limits", resource));
    let res = container.resources.as_ref();
    let q = match kind {
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => res.and_then(|r| r.limits.as_ref()),
    };
    match q.and_then(|m| m.get(name)) {
        Some(v) => v.0.clone(),
        None if name == "cpu" => "2".into(),
        None => "8589934592".into(),
    }
}

/// Expands a command line against the final environment.
pub fn expand_all(args: &[String], env: &[(String, String)]) -> Vec<String> {
    let known: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    args.iter()
        .map(|a| expand(a, |n| known.get(n).map(|v| v.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expansion_follows_kubernetes() {
        let env = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)-$(B)", env), "x-$(B)");
        assert_eq!(expand("$$(A) $$ $1 $(", env), "$(A) $ $1 $(");
        assert_eq!(expand("a$(A)b$(A)", env), "axbx");
    }

    #[test]
    fn env_in_order_with_sources_and_fields() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "n", "uid": "u", "labels": {"a": "b"}},
            "spec": {"containers": [{
                "name": "c",
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                "env": [
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "URL", "value": "http://$(POD):$(PORT)/$(NOPE)"},
                    {"name": "PORT", "value": "1"},
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['a']"}}},
                    {"name": "O", "valueFrom": {"secretKeyRef":
                        {"name": "gone", "key": "k", "optional": true}}}
                ]}]}
        }))
        .unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let mut sources = Sources::default();
        sources
            .configmaps
            .insert("cm".into(), [("X".to_string(), "1".to_string())].into());
        sources
            .secrets
            .insert("s".into(), [("k".to_string(), "secret".to_string())].into());
        let rt = Runtime {
            pod_ip: "10.213.1.2".into(),
            ..Runtime::default()
        };
        let env = resolve(&pod, c, &rt, &sources, &[("PORT".into(), "0".into())]).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CM_X"), Some("1"));
        assert_eq!(get("URL"), Some("http://p:0/$(NOPE)"));
        assert_eq!(get("PORT"), Some("1"));
        assert_eq!(get("S"), Some("secret"));
        assert_eq!(get("IP"), Some("10.213.1.2"));
        assert_eq!(get("L"), Some("b"));
        assert_eq!(get("O"), None);
        sources.secrets.clear();
        assert!(matches!(
            resolve(&pod, c, &rt, &sources, &[]),
            Err(EnvError::Missing { kind: "secret", .. })
        ));
    }
}
