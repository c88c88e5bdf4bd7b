//! kube-node integration tests: a kube-sim API server in-process, a node next to it, real pods
//! as local processes. They need root (network namespaces) and skip otherwise.

mod common;
mod kvstore;
mod operator;
mod pods;
mod workloads;
