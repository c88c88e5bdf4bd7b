//! `kv-operator`: `crd` prints the KVCluster CRD; `run` will start the controller.

use clap::{Parser, Subcommand};

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
    /// Print the KVCluster CustomResourceDefinition as YAML.
    Crd,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Crd => print!("{}", kv_crds::crd_yaml()),
    }
    Ok(())
}
