//! HTTP on the client port, beside gRPC (etcd serves both on 2379): the JSON gateway
//! (`/v3/...`), `/health`, `/livez`, `/readyz`, `/version` and `/metrics`.
//!
//! One axum router holds the tonic services and the HTTP routes; the listener speaks HTTP/1.1
//! and HTTP/2 (h2c), so gRPC clients and curl share the port.

pub mod authority;
pub mod grpc_metrics;
pub mod health;
pub mod json;
pub mod rpc;

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use tokio::net::TcpListener;

use crate::api::Services;

/// The whole client-port router: gRPC services plus HTTP routes.
pub fn router(grpc: tonic::service::Routes, services: Services) -> Router {
    let http = Router::new()
        .merge(rpc::routes())
        .merge(health::routes())
        .with_state(services);
    grpc.into_axum_router()
        .layer(axum::middleware::from_fn(grpc_metrics::observe))
        .merge(http)
        .fallback(not_found)
}

async fn not_found(req: Request) -> impl IntoResponse {
    (
        axum::http::StatusCode::NOT_FOUND,
        format!("404 page not found: {}\n", req.uri().path()),
    )
}

/// Serve `app` on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(authority::ClientListener(listener), app).await
}
