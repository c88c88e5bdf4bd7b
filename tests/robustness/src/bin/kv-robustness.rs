//! `kv-robustness`: one fault-injection run against a 3-member kvstore or etcd cluster, its
//! history checked for linearizability and etcd's watch guarantees. Exits 1 when a check fails.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use kv_robustness::check::history::History;
use kv_robustness::check::linearizable::Budget;
use kv_robustness::check::{Options, check_with};
use kv_robustness::runner::cluster::Target;
use kv_robustness::runner::faults::{ALL, Fault};
use kv_robustness::runner::{report, run};

#[derive(Parser, Debug)]
#[command(about = "Fault-injection robustness run, modelled on etcd's tests/robustness")]
struct Args {
    /// The store under test.
    #[arg(long, value_enum, default_value = "kvstore")]
    target: Target,
    /// Its binary (default: kvstore next to this one, or etcd on the PATH).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// How long traffic and faults run: `90s`, `20m`.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    duration: Duration,
    /// Seed of every random choice (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// `--snapshot-count` of the members (small, so that snapshots are installed).
    #[arg(long, default_value_t = 20)]
    snapshot_count: i64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Requests per second, all clients together.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Fault kinds to draw from (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    faults: Vec<Fault>,
    /// Where to write summary.md, summary.json (and history.json, logs.txt on failure).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run nothing: check a history.json a failed run wrote, again (with `--budget`).
    #[arg(long, value_name = "HISTORY_JSON")]
    check: Option<PathBuf>,
    /// Time limit of the linearizability search.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    budget: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("not a duration: {s}"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("not a duration: {s} (use s, m or h)")),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let budget = Budget {
        max_time: args.budget,
        max_steps: u64::MAX,
    };
    if let Some(path) = &args.check {
        let history = History::from_json(&std::fs::read_to_string(path)?)?;
        let report = check_with(&history, &Options { budget });
        println!("{report}");
        std::process::exit(if report.passed() { 0 } else { 1 });
    }
    let bin = match args.bin {
        Some(b) => b,
        None => match args.target {
            Target::Kvstore => std::env::current_exe()?.with_file_name("kvstore"),
            Target::Etcd => PathBuf::from("etcd"),
        },
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!(
        "kv-robustness: {:?} at {}, seed {seed}",
        args.target,
        bin.display()
    );
    let cfg = run::Config {
        target: args.target,
        bin,
        duration: args.duration,
        seed,
        snapshot_count: args.snapshot_count,
        clients: args.clients,
        rate: args.rate,
        faults: if args.faults.is_empty() {
            ALL.to_vec()
        } else {
            args.faults
        },
        budget,
    };
    let outcome = run::run(&cfg).await?;
    println!("{}", report::markdown(&outcome.summary));
    if let Some(dir) = &args.out {
        report::write(dir, &outcome)?;
    }
    if !outcome.summary.passed {
        eprintln!("{}", outcome.logs);
        std::process::exit(1);
    }
    Ok(())
}
