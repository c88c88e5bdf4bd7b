//! kube-sim: a local Kubernetes API server, in memory, that the real clients (kubectl, helm,
//! kube-rs) use unchanged. Start it in-process with [`ApiServer::start`] or with the
//! `kube-sim serve --dir DIR` binary (which writes `DIR/kubeconfig`).
//!
//! How it's structured: [`server`] accepts TLS connections ([`tls`]) and hands every request
//! to [`api`], which routes discovery ([`discovery`]) and resource paths to reads (with
//! [`selectors`] and [`table`]), watches and writes. Writes go through [`admission`] (names,
//! concurrency, status rules, [`schema`] validation of custom resources, generation,
//! managedFields from [`apply`]) into the [`store`], then [`gc`] runs finalizers, owner
//! references and namespace deletion. [`patch`] implements the patch formats, [`kinds`] the
//! behaviour of particular kinds (CRDs, namespaces, pods, services).

pub mod admission;
pub mod api;
pub mod apply;
pub mod discovery;
pub mod error;
pub mod gc;
pub mod http;
pub mod jsonpath;
pub mod kinds;
pub mod kubeconfig;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod store;
pub mod table;
pub mod tls;

pub use error::{ApiError, ApiResult};
pub use server::{ApiServer, ServerError, ServerOptions};
