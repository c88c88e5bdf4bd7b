//! `kube-sim serve --dir DIR`: runs the API server until interrupted.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "A local Kubernetes API server for kubectl, helm and kube-rs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve until interrupted; writes DIR/kubeconfig.
    Serve {
        /// Directory for the kubeconfig, the CA and pod logs.
        #[arg(long, env = "KUBE_SIM_DIR")]
        dir: PathBuf,
        /// Port on 127.0.0.1 (0: ephemeral).
        #[arg(long, default_value_t = 0, env = "KUBE_SIM_PORT")]
        port: u16,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match Cli::parse().command {
        Command::Serve { dir, port } => {
            let mut opts = kube_sim::ServerOptions::new(dir);
            opts.port = port;
            let server = kube_sim::ApiServer::start(opts).await?;
            println!("{}", server.kubeconfig_path().display());
            tokio::signal::ctrl_c().await?;
            server.shutdown().await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
