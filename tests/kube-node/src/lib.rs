//! kube-node: a local Kubernetes node for the kube-sim API server. Pods run as local processes
//! in their own network namespaces on a bridge; real clients (kubectl, helm, our operator) see a
//! cluster that behaves like one with a single node.
//!
//! How it's structured: [`net`] makes the pod network (guard route, bridge, per-pod network
//! namespaces, the hosts file that serves as cluster DNS, the API server proxy); [`kubelet`]
//! runs pods; [`controllers`] run StatefulSets, Deployments and ReplicaSets, claim binding and
//! Endpoints; [`cache`] holds the shared watches; [`env`] starts it all as a [`Node`] and offers
//! the fault controls tests use.

pub mod cache;
pub mod controllers;
pub mod env;
pub mod kubelet;
pub mod net;
pub mod selector;

pub use env::{Node, NodeError, NodeOptions};
pub use kubelet::images::{ImageBinary, ImageMap};
