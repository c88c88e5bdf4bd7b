//! `kvctl`: an etcdctl-compatible command line for kvstore (and etcd).
//!
//! Parses the command line, runs it on a single-threaded runtime, prints `Error: <message>`
//! on failure and exits with etcdctl's exit codes.

use std::process::ExitCode;

use clap::Parser;
use kvstore::cli::{Cli, run};

fn main() -> anyhow::Result<ExitCode> {
    // Both ring and aws-lc-rs are linked in (object store clients): choose one for rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return Ok(ExitCode::from(if e.use_stderr() { 1 } else { 0 }));
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.reported {
                eprintln!("Error: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    })
}
