//! The KVCluster controller: validation and the pure builders of every child object.

pub mod build;
pub mod members;
pub mod validate;
