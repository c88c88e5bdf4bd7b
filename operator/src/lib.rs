//! kv-operator: runs `KVCluster`s (kvstore.io/v1alpha1) as StatefulSets of kvstore members.
//!
//! How it's structured (reconcile = fetch → validate → build → apply → status):
//! - [`controller::validate`]: the spec checked and normalised into a [`controller::validate::Validated`]
//!   cluster (pure);
//! - [`controller::build`]: the Kubernetes objects of a cluster (pure functions, golden-tested);
//! - [`controller::members`]: the next membership step (pure), [`controller::apply`] and
//!   [`controller::status`];
//! - [`backup`]: backup schedule, retention and the restore state machine (pure).

pub mod backup;
pub mod context;
pub mod controller;
pub mod http;
pub mod leader;
pub mod metrics;

/// Field manager prefix of every server-side apply.
pub const FIELD_MANAGER: &str = "kv-operator";
