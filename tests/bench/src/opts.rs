//! Command-line options shared by every workload, the `--smoke` preset, and result output.
//!
//! Tunables are `Option`s so that an explicit flag beats the `--smoke` preset, which beats the
//! default: [`Common::settings`] resolves them into a plain [`Settings`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::stats::BenchResult;

/// Options every workload takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Client endpoints, comma-separated (`host:port` or `http://host:port`).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Concurrent client tasks [default: 16; smoke: 4].
    #[arg(long)]
    pub clients: Option<usize>,
    /// Connections (etcd-client `Client`s) shared by the tasks [default: one per 16 tasks].
    #[arg(long)]
    pub conns: Option<usize>,
    /// Run for this many seconds [default: 10; smoke: 2] (ignored when --ops is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Run exactly this many operations in total instead of a fixed duration.
    #[arg(long)]
    pub ops: Option<u64>,
    /// Value size in bytes [default: 256; smoke: 64].
    #[arg(long)]
    pub value_size: Option<usize>,
    /// Number of distinct keys [default: 10000; smoke: 100].
    #[arg(long)]
    pub key_space: Option<u64>,
    /// Send every request to the current leader instead of spreading connections over endpoints.
    #[arg(long)]
    pub target_leader: bool,
    /// Per-request timeout in milliseconds; a request over it counts as a timeout.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Small, short preset for CI: 2 s, 4 clients, 64-byte values, 100 keys.
    #[arg(long)]
    pub smoke: bool,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Resolved workload settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub conns: usize,
    pub duration: Duration,
    pub ops: Option<u64>,
    pub value_size: usize,
    pub key_space: u64,
    pub target_leader: bool,
    pub timeout: Duration,
    pub smoke: bool,
}

impl Common {
    /// Resolves explicit flags, then the smoke preset, then defaults.
    pub fn settings(&self) -> Settings {
        let pick = |explicit: Option<u64>, smoke: u64, default: u64| {
            explicit.unwrap_or(if self.smoke { smoke } else { default })
        };
        let clients = pick(self.clients.map(|c| c as u64), 4, 16).max(1) as usize;
        let conns = self.conns.unwrap_or(clients.div_ceil(16)).clamp(1, clients);
        let duration = self.duration.unwrap_or(if self.smoke { 2.0 } else { 10.0 });
        Settings {
            endpoints: self.endpoints.clone(),
            clients,
            conns,
            duration: Duration::from_secs_f64(duration.max(0.01)),
            ops: self.ops,
            value_size: pick(self.value_size.map(|v| v as u64), 64, 256) as usize,
            key_space: pick(self.key_space, 100, 10_000).max(1),
            target_leader: self.target_leader,
            timeout: Duration::from_millis(self.timeout_ms.unwrap_or(5_000)),
            smoke: self.smoke,
        }
    }

    /// Prints the result (text or JSON) and writes the JSON file if asked.
    pub fn emit(&self, result: &BenchResult) -> Result<()> {
        let json = serde_json::to_string_pretty(result)?;
        if let Some(path) = &self.out {
            std::fs::write(path, format!("{json}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if self.json {
            println!("{json}");
        } else {
            print!("{}", result.to_text());
        }
        Ok(())
    }
}

/// Options of `put`.
#[derive(Args, Debug, Clone)]
pub struct PutArgs {
    /// Unique increasing keys (`bench/seq/0000000001`, ...) instead of random keys.
    #[arg(long)]
    pub sequential_keys: bool,
}

/// Options of the range workloads.
#[derive(Args, Debug, Clone)]
pub struct RangeArgs {
    /// Don't write the key space before reading (it was preloaded by an earlier run).
    #[arg(long)]
    pub skip_preload: bool,
}

/// Options of `txn-cas`.
#[derive(Args, Debug, Clone)]
pub struct TxnArgs {
    /// All clients compete for one key (CAS failures expected); default: one key per client.
    #[arg(long)]
    pub contended: bool,
}

/// Options of `watch-latency`.
#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// Number of watchers (each its own watch stream), spread over the connections.
    #[arg(long, default_value_t = 1)]
    pub watchers: usize,
    /// Puts per second by the single writer (paced, so latency is not throughput-bound).
    #[arg(long, default_value_t = 100.0)]
    pub put_rate: f64,
    /// How long to wait after the last put for its events before counting them missing.
    #[arg(long, default_value_t = 5.0)]
    pub grace: f64,
}

/// Options of `mixed`.
#[derive(Args, Debug, Clone)]
pub struct MixedArgs {
    /// Fraction of operations that are reads (linearizable single-key gets).
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Don't write the key space before the run.
    #[arg(long)]
    pub skip_preload: bool,
}

/// Options of `failover`.
#[derive(Args, Debug, Clone)]
pub struct FailoverArgs {
    /// Server PIDs, comma-separated, in the same order as --endpoints.
    #[arg(long, value_delimiter = ',', required = true)]
    pub pids: Vec<u32>,
    /// Seconds of steady write load before the leader is killed.
    #[arg(long, default_value_t = 3.0)]
    pub steady: f64,
    /// Seconds of load kept after writes succeed again.
    #[arg(long, default_value_t = 3.0)]
    pub after: f64,
    /// Give up if writes have not succeeded again this many seconds after the kill.
    #[arg(long, default_value_t = 30.0)]
    pub max_wait: f64,
}
