//! The KVCluster controller: validate, plan membership, build, apply, status.

pub mod apply;
pub mod backup;
pub mod build;
pub mod member_api;
pub mod members;
pub mod observe;
pub mod reconcile;
pub mod restore;
pub mod status;
pub mod validate;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod reconcile_tests;

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// A call to a member failed.
    #[error("member API call failed: {0}")]
    Member(String),
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> String {
        match self {
            Error::Kube(_) => "kube".into(),
            Error::Member(_) => "member".into(),
        }
    }
}
