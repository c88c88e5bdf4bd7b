//! The two Services of a cluster: the headless peer Service (stable member DNS names, published
//! before members are ready so they can find each other) and the client Service.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta;
use crate::controller::validate::{CLIENT_PORT, PEER_PORT, Validated};

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// The headless Service behind the StatefulSet.
pub fn peer(v: &Validated) -> Service {
    Service {
        metadata: meta(v, &v.peer_service),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(v.selector.clone()),
            ports: Some(vec![port("client", CLIENT_PORT), port("peer", PEER_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A label no pod has: the client Service selects it while client traffic is stopped.
pub const TRAFFIC_STOPPED: &str = "kvstore.io/traffic-stopped";

/// The client Service (etcd clients point here); while `stopped` it selects no pod.
pub fn client(v: &Validated, stopped: bool) -> Service {
    let mut m = meta(v, &v.client_service);
    if !v.spec.service.annotations.is_empty() {
        m.annotations = Some(v.spec.service.annotations.clone());
    }
    let type_ = match v.spec.service.type_ {
        kv_crds::v1alpha1::ServiceType::ClusterIP => "ClusterIP",
        kv_crds::v1alpha1::ServiceType::NodePort => "NodePort",
        kv_crds::v1alpha1::ServiceType::LoadBalancer => "LoadBalancer",
    };
    Service {
        metadata: m,
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            selector: Some({
                let mut s = v.selector.clone();
                if stopped {
                    s.insert(TRAFFIC_STOPPED.into(), "true".into());
                }
                s
            }),
            ports: Some(vec![port("client", CLIENT_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
