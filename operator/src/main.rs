//! `kv-operator`: `run` starts the controller (with leader election when it runs in a pod);
//! `crd` prints the KVCluster CRD.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use kv_operator::context::Context;
use kv_operator::http::{HttpState, router};

#[derive(Parser)]
#[command(
    name = "kv-operator",
    version,
    about = "The kvstore Kubernetes operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the controller.
    Run {
        /// Address of /metrics, /healthz and /readyz.
        #[arg(long, env = "KV_OPERATOR_HTTP", default_value = "0.0.0.0:8080")]
        http: String,
    },
    /// Print the KVCluster CustomResourceDefinition as YAML.
    Crd,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Both ring (kube's TLS) and aws-lc-rs (the object store client's) are linked in: choose.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Cmd::Crd => print!("{}", kv_crds::crd_yaml()),
        Cmd::Run { http } => run(http).await?,
    }
    Ok(())
}

async fn run(http: String) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let client = kube::Client::try_default().await?;
    let pod = std::env::var("POD_NAME").ok();
    let ctx = Arc::new(Context::new(client.clone(), pod.clone()));
    let mut registry = prometheus_client::registry::Registry::default();
    ctx.metrics.register(&mut registry);
    let ready = Arc::new(AtomicBool::new(false));
    let state = HttpState {
        registry: Arc::new(registry),
        ready: ready.clone(),
    };
    let listener = tokio::net::TcpListener::bind(&http).await?;
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    // Ready once the API server answers: a standby replica waiting for the lease is ready too
    // (it can take over at once), or a Deployment of two would never be available.
    client.apiserver_version().await?;
    ready.store(true, Ordering::Release);
    let mut leading = match (std::env::var("POD_NAMESPACE"), &pod) {
        (Ok(ns), Some(me)) => Some(kv_operator::leader::lead(client, &ns, me).await),
        _ => None,
    };
    tracing::info!("controller starting");
    let controller = kv_operator::controller::reconcile::run(ctx);
    match leading.as_mut() {
        Some(rx) => {
            tokio::select! {
                _ = controller => {}
                _ = rx.wait_for(|l| !*l) => anyhow::bail!("lost the leader lease; exiting so another replica takes over"),
            }
        }
        None => controller.await,
    }
    Ok(())
}
