//! Cluster DNS as one hosts file per environment, bind-mounted over `/etc/hosts` in every pod:
//! pod names under their headless subdomain, Service names to the IPs of the pods they select,
//! and `kubernetes.default.svc` to the bridge address (where the API server proxy listens).
//! Rewritten in place (same inode), so the bind mounts see every change.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, Service};

/// Whether the pod has a Ready condition set to True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod IP of a pod that is not finished.
pub fn live_pod_ip(pod: &Pod) -> Option<&str> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    status.pod_ip.as_deref().filter(|ip| !ip.is_empty())
}

/// The pods a Service sends traffic to, with whether each one counts as ready.
pub fn service_pods<'a>(svc: &Service, pods: &'a [Pod]) -> Vec<(&'a Pod, bool)> {
    let Some(selector) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return Vec::new();
    };
    let ns = svc.metadata.namespace.as_deref();
    pods.iter()
        .filter(|p| p.metadata.namespace.as_deref() == ns)
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            crate::selector::map_matches(selector, &labels)
        })
        .filter(|p| live_pod_ip(p).is_some())
        .map(|p| (p, pod_ready(p) && p.metadata.deletion_timestamp.is_none()))
        .collect()
}

/// The whole hosts file.
pub fn render(pods: &[Pod], services: &[Service], gateway: Ipv4Addr) -> String {
    let mut lines = BTreeSet::new();
    for pod in pods {
        let (Some(ip), Some(spec)) = (live_pod_ip(pod), pod.spec.as_ref()) else {
            continue;
        };
        let (Some(host), Some(sub)) = (spec.hostname.as_deref(), spec.subdomain.as_deref()) else {
            continue;
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        lines.insert(format!(
            "{ip} {host}.{sub}.{ns}.svc.cluster.local {host}.{sub}.{ns}.svc"
        ));
    }
    for svc in services {
        let (Some(name), Some(ns)) = (
            svc.metadata.name.as_deref(),
            svc.metadata.namespace.as_deref(),
        ) else {
            continue;
        };
        let all = svc
            .spec
            .as_ref()
            .and_then(|s| s.publish_not_ready_addresses)
            .unwrap_or(false);
        for (pod, ready) in service_pods(svc, pods) {
            if ready || all {
                let ip = live_pod_ip(pod).unwrap_or_default();
                lines.insert(format!(
                    "{ip} {name}.{ns}.svc.cluster.local {name}.{ns}.svc {name}.{ns}"
                ));
            }
        }
    }
    let mut out = String::from(
        "# kube-node cluster DNS\n127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
    );
    out.push_str(&format!(
        "{gateway} kubernetes.default.svc.cluster.local kubernetes.default.svc kubernetes.default\n"
    ));
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// The hosts file of one environment.
#[derive(Debug, Clone)]
pub struct HostsFile {
    path: PathBuf,
}

impl HostsFile {
    /// Creates the file with `content`.
    pub fn create(path: &Path, content: &str) -> std::io::Result<Self> {
        std::fs::write(path, content)?;
        Ok(HostsFile {
            path: path.to_path_buf(),
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the content in place (truncate and write: the inode stays, so bind mounts of
    /// it see the new content).
    pub fn rewrite(&self, content: &str) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        f.write_all(content.as_bytes())?;
        f.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "d", "labels": {"app": "kv"}},
            "spec": {"containers": [], "hostname": name, "subdomain": "peer"},
            "status": {"podIP": ip, "phase": "Running",
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .unwrap()
    }

    fn svc(name: &str, publish: bool) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "d"},
            "spec": {"selector": {"app": "kv"}, "publishNotReadyAddresses": publish}
        }))
        .unwrap()
    }

    #[test]
    fn pods_services_and_the_api_server() {
        let pods = [
            pod("kv-0", "10.213.1.2", true),
            pod("kv-1", "10.213.1.3", false),
        ];
        let out = render(
            &pods,
            &[svc("kv", false), svc("peer", true)],
            Ipv4Addr::new(10, 213, 1, 1),
        );
        assert!(out.contains("10.213.1.1 kubernetes.default.svc.cluster.local"));
        assert!(out.contains("10.213.1.2 kv-0.peer.d.svc.cluster.local kv-0.peer.d.svc\n"));
        assert!(out.contains("10.213.1.3 kv-1.peer.d.svc.cluster.local"));
        assert!(out.contains("10.213.1.2 kv.d.svc.cluster.local kv.d.svc kv.d\n"));
        assert!(!out.contains("10.213.1.3 kv.d.svc"), "not ready: {out}");
        assert!(out.contains("10.213.1.3 peer.d.svc.cluster.local"));
    }

    #[test]
    fn rewrite_keeps_the_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let f = HostsFile::create(&dir.path().join("hosts"), "a\n").unwrap();
        let before = std::fs::metadata(f.path()).unwrap().ino();
        f.rewrite("b\n").unwrap();
        assert_eq!(std::fs::metadata(f.path()).unwrap().ino(), before);
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), "b\n");
    }
}
