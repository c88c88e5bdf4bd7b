//! kv-operator: runs `KVCluster`s (kvstore.io/v1alpha1) as StatefulSets of kvstore members.
//!
//! How it's structured (reconcile = fetch → validate → build → apply → status):
//! - [`controller::validate`]: the spec checked and normalised into a [`controller::validate::Validated`]
//!   cluster (pure);
//! - [`controller::build`]: the Kubernetes objects of a cluster (pure functions, golden-tested);
//! - membership changes, apply and status come next (see the README's operator section).

pub mod context;
pub mod controller;
pub mod http;
pub mod leader;
pub mod metrics;

/// Field manager prefix of every server-side apply.
pub const FIELD_MANAGER: &str = "kv-operator";
