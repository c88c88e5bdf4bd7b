//! `kv-bench`: a load generator for etcd-v3-compatible stores.
//!
//! It speaks the etcd v3 API only through the `etcd-client` crate, so the very same client code
//! drives kvstore and etcd. Workloads (`put`, `range-linearizable`, `range-serializable`,
//! `txn-cas`, `watch-latency`, `mixed`, `failover`) print a human-readable summary or JSON
//! (`--json`, `--out FILE`); `report` and `chart` turn a folder of JSON results from
//! `tests/bench/compare.sh` into `RESULTS.md`, a summary JSON and a PNG chart.

mod chart;
mod failover;
mod opts;
mod pool;
mod report;
mod report_md;
mod runner;
mod stats;
mod summary;
mod watch;
mod workloads;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::opts::{Common, FailoverArgs, MixedArgs, PutArgs, RangeArgs, TxnArgs, WatchArgs};

/// Load generator for etcd-v3-compatible key-value stores (kvstore, etcd).
#[derive(Parser, Debug)]
#[command(name = "kv-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Puts of fixed-size values, random keys over the key space or sequential unique keys.
    Put {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: PutArgs,
    },
    /// Single-key linearizable gets over a preloaded key space.
    RangeLinearizable {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: RangeArgs,
    },
    /// Single-key serializable gets over a preloaded key space (served by any member).
    RangeSerializable {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: RangeArgs,
    },
    /// Compare-and-swap transactions on mod_revision, on one shared key or one key per client.
    TxnCas {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: TxnArgs,
    },
    /// Time from put acknowledgement to watch event delivery, with N watchers.
    WatchLatency {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: WatchArgs,
    },
    /// Reads and writes mixed (90 % linearizable gets, 10 % puts by default).
    Mixed {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: MixedArgs,
    },
    /// SIGKILL the leader under a steady write load; time until writes succeed again.
    Failover {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: FailoverArgs,
    },
    /// Aggregate a folder of raw JSON results (medians over rounds) into Markdown and JSON.
    Report(report::ReportArgs),
    /// Draw a PNG chart from the summary JSON written by `report`.
    Chart(chart::ChartArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Report(args) => report::run(&args),
        Cmd::Chart(args) => chart::run(&args),
        cmd => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(run_workload(cmd))
        }
    }
}

async fn run_workload(cmd: Cmd) -> Result<()> {
    let (common, result) = match cmd {
        Cmd::Put { common, args } => {
            let s = common.settings();
            (common, workloads::put(&s, &args).await?)
        }
        Cmd::RangeLinearizable { common, args } => {
            let s = common.settings();
            (common, workloads::range(&s, &args, false).await?)
        }
        Cmd::RangeSerializable { common, args } => {
            let s = common.settings();
            (common, workloads::range(&s, &args, true).await?)
        }
        Cmd::TxnCas { common, args } => {
            let s = common.settings();
            (common, workloads::txn_cas(&s, &args).await?)
        }
        Cmd::WatchLatency { common, args } => {
            let s = common.settings();
            (common, watch::run(&s, &args).await?)
        }
        Cmd::Mixed { common, args } => {
            let s = common.settings();
            (common, workloads::mixed(&s, &args).await?)
        }
        Cmd::Failover { common, args } => {
            let s = common.settings();
            (common, failover::run(&s, &args).await?)
        }
        Cmd::Report(_) | Cmd::Chart(_) => unreachable!("handled without a runtime"),
    };
    common.emit(&result)
}
