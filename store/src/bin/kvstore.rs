//! `kvstore`: run one member of a kvstore cluster (etcd's flags; see `kvstore --help`).

use clap::Parser;
use kvstore::config::ServerConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = ServerConfig::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{},openraft=warn", cfg.log_level))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = kvstore::server::run(cfg).await {
        eprintln!("kvstore: {e}");
        let code = match e {
            kvstore::error::Error::DataLost(_) => kvstore::server::EXIT_DATA_LOST,
            _ => 1,
        };
        std::process::exit(code);
    }
    Ok(())
}
