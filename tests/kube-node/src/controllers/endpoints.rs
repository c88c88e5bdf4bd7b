//! Endpoints and EndpointSlices of Services with selectors: the selected pods' IPs, ready or
//! not (`publishNotReadyAddresses` makes all ready), with hostnames for the Service's headless
//! subdomain and ports resolved against the pods' named container ports. Written only when
//! they change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use super::{owner, report};
use crate::cache::Informers;
use crate::net::hosts::{live_pod_ip, service_pods};
use crate::net::lock;

const MANAGER: &str = "kube-node/endpoints";

/// The endpoints controller.
#[derive(Clone)]
pub struct Controller {
    client: Client,
    informers: Arc<Informers>,
    written: Arc<Mutex<HashMap<(String, String), Value>>>,
}

fn target_port(port: Option<&IntOrString>, fallback: i32, pod: Option<&Pod>) -> i32 {
    match port {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => pod
            .and_then(|p| p.spec.as_ref())
            .into_iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map_or(fallback, |p| p.container_port),
        None => fallback,
    }
}

/// The Endpoints and EndpointSlice of a Service, as JSON.
pub fn build(svc: &Service, pods: &[Pod]) -> (Value, Value) {
    let name = svc.name_any();
    let ns = svc.namespace().unwrap_or_default();
    let spec = svc.spec.clone().unwrap_or_default();
    let all_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let selected = service_pods(svc, pods);
    let first = selected.first().map(|(p, _)| *p);
    let ports: Vec<Value> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            json!({"name": p.name, "port": target_port(p.target_port.as_ref(), p.port, first),
                   "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into())})
        })
        .collect();
    let (mut ready, mut not_ready, mut slice_eps) = (Vec::new(), Vec::new(), Vec::new());
    for (pod, is_ready) in &selected {
        let ip = live_pod_ip(pod).unwrap_or_default();
        let ps = pod.spec.as_ref();
        let hostname = ps
            .filter(|s| s.subdomain.as_deref() == Some(name.as_str()))
            .and_then(|s| s.hostname.clone());
        let target = json!({"kind": "Pod", "name": pod.name_any(), "namespace": ns,
            "uid": pod.uid()});
        let node = ps.and_then(|s| s.node_name.clone());
        let addr = json!({"ip": ip, "hostname": hostname, "nodeName": node, "targetRef": target});
        let terminating = pod.metadata.deletion_timestamp.is_some();
        // A terminating pod leaves the ready addresses at once (clients stop picking it while
        // it shuts down), unless the Service publishes not-ready addresses.
        let counts = if terminating {
            all_ready
        } else {
            *is_ready || all_ready
        };
        if counts {
            ready.push(addr);
        } else {
            not_ready.push(addr);
        }
        slice_eps.push(
            json!({"addresses": [ip], "hostname": hostname, "nodeName": node,
            "targetRef": target,
            "conditions": {"ready": counts, "serving": *is_ready || all_ready,
                           "terminating": terminating}}),
        );
    }
    let owner_ref = owner("v1", "Service", &svc.metadata, true);
    let mut labels = svc.labels().clone();
    if spec.cluster_ip.as_deref() == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    }
    let subsets = if ready.is_empty() && not_ready.is_empty() {
        json!([])
    } else {
        json!([{"addresses": ready, "notReadyAddresses": not_ready, "ports": ports}])
    };
    let endpoints = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
                     "ownerReferences": [owner_ref]},
        "subsets": subsets});
    let mut slice_labels = labels;
    slice_labels.insert("kubernetes.io/service-name".into(), name.clone());
    slice_labels.insert(
        "endpointslice.kubernetes.io/managed-by".into(),
        "kube-node".into(),
    );
    let slice_ports: Vec<Value> = ports.clone();
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-kn"), "namespace": ns, "labels": slice_labels,
                     "ownerReferences": [owner_ref]},
        "addressType": "IPv4", "endpoints": slice_eps, "ports": slice_ports});
    (endpoints, slice)
}

impl Controller {
    /// A controller.
    pub fn new(client: Client, informers: Arc<Informers>) -> Self {
        Controller {
            client,
            informers,
            written: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Writes the Endpoints and EndpointSlice of every Service with a selector.
    pub async fn reconcile_all(&self) {
        let pods: Vec<Pod> = self
            .informers
            .pods
            .all()
            .iter()
            .map(|p| (**p).clone())
            .collect();
        for svc in self.informers.services.all() {
            let has_selector = svc
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|s| !s.is_empty());
            if !has_selector || svc.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let ns = svc.namespace().unwrap_or_default();
            let (ep, slice) = build(&svc, &pods);
            let key = (ns.clone(), svc.uid().unwrap_or_default());
            let both = json!([ep, slice]);
            if lock(&self.written).get(&key) == Some(&both) {
                continue;
            }
            let pp = PatchParams::apply(MANAGER).force();
            let eps: Api<Endpoints> = Api::namespaced(self.client.clone(), &ns);
            let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &ns);
            let r = async {
                eps.patch(&svc.name_any(), &pp, &Patch::Apply(&ep)).await?;
                slices
                    .patch(
                        &format!("{}-kn", svc.name_any()),
                        &pp,
                        &Patch::Apply(&slice),
                    )
                    .await?;
                Ok::<_, kube::Error>(())
            }
            .await;
            match r {
                Ok(()) => {
                    lock(&self.written).insert(key, both);
                }
                Err(e) => report("Service", &ns, &svc.name_any(), &e),
            }
        }
    }
}
