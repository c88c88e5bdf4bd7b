//! `report`: reads the raw results of `compare.sh` and writes the summary JSON and `RESULTS.md`.
//!
//! Raw files: `SYSTEM__CASE__rROUND.json` (one [`BenchResult`] per workload run) and
//! `SYSTEM__resources.json` (a flat `{figure: number}` map measured by the script). Each figure
//! is the median over rounds; errors and timeouts are summed over all rounds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::stats::BenchResult;
use crate::summary::{Case, CaseStats, Figure, Summary, label, stats_of};

/// Options of `report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Folder of raw results.
    #[arg(long)]
    pub raw_dir: PathBuf,
    /// `key=value` lines describing the run (date, machine, versions, method).
    #[arg(long)]
    pub meta: Option<PathBuf>,
    /// Systems, first is the one the ratio is about.
    #[arg(long, value_delimiter = ',', default_value = "kvstore,etcd")]
    pub systems: Vec<String>,
    /// Summary JSON to write (input of `chart`).
    #[arg(long)]
    pub out_json: PathBuf,
    /// Markdown to write.
    #[arg(long)]
    pub out_md: PathBuf,
}

/// Reads every raw file of `dir`.
fn load(dir: &Path, systems: &[String]) -> Result<Summary> {
    let mut runs: BTreeMap<String, BTreeMap<String, Vec<BenchResult>>> = BTreeMap::new();
    let mut resources = BTreeMap::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    for path in names {
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let parts: Vec<&str> = stem.split("__").collect();
        let text = std::fs::read_to_string(&path)?;
        match parts.as_slice() {
            [sys, "resources"] => {
                let map: BTreeMap<String, f64> = serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?;
                resources.insert(sys.to_string(), map);
            }
            [sys, case, _round] => {
                let r: BenchResult = serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?;
                let by_sys = runs.entry(case.to_string()).or_default();
                by_sys.entry(sys.to_string()).or_default().push(r);
            }
            _ => {}
        }
    }
    let mut cases: Vec<(_, Case)> = runs
        .into_iter()
        .map(|(case, by_sys)| {
            let first = by_sys.values().flatten().next().expect("non-empty").clone();
            let (label, key) = label(&first);
            let per_system = by_sys
                .iter()
                .map(|(s, rs)| (s.clone(), stats_of(rs)))
                .collect();
            let c = Case {
                case,
                workload: first.workload.clone(),
                label,
                description: first.description.clone(),
                per_system,
            };
            (key, c)
        })
        .collect();
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    let cases: Vec<Case> = cases.into_iter().map(|(_, c)| c).collect();
    let figures = figures(&cases, &resources, systems);
    Ok(Summary {
        meta: Vec::new(),
        systems: systems.to_vec(),
        cases,
        figures,
        resources,
    })
}

/// The rows of the summary table.
fn figures(
    cases: &[Case],
    resources: &BTreeMap<String, BTreeMap<String, f64>>,
    systems: &[String],
) -> Vec<Figure> {
    let mut out = Vec::new();
    let mut add = |name: String, higher: bool, f: &dyn Fn(&CaseStats) -> Option<f64>, c: &Case| {
        let values = c
            .per_system
            .iter()
            .filter_map(|(s, st)| f(st).map(|v| (s.clone(), v)))
            .collect();
        out.push(Figure {
            name,
            higher_is_better: higher,
            values,
        });
    };
    for c in cases {
        let l = &c.label;
        match c.workload.as_str() {
            "failover" => {
                for (k, what) in [
                    ("unavailable_ms", "writes unavailable after kill -9 (ms)"),
                    ("new_leader_ms", "new leader reported after kill -9 (ms)"),
                    ("max_gap_ms", "longest gap between completed puts (ms)"),
                ] {
                    add(
                        format!("{l}: {what}"),
                        false,
                        &|s| s.extra.get(k).copied(),
                        c,
                    );
                }
            }
            "watch-latency" => {
                add(
                    format!("{l}: p50 put-ack→event (ms)"),
                    false,
                    &|s| Some(s.p50_ms),
                    c,
                );
                add(
                    format!("{l}: p99 put-ack→event (ms)"),
                    false,
                    &|s| Some(s.p99_ms),
                    c,
                );
                for (k, what) in [
                    ("send_to_event_p50_ms", "p50 put-sent→event (ms)"),
                    ("send_to_event_p99_ms", "p99 put-sent→event (ms)"),
                ] {
                    add(
                        format!("{l}: {what}"),
                        false,
                        &|s| s.extra.get(k).copied(),
                        c,
                    );
                }
            }
            _ => {
                add(
                    format!("{l}: throughput (ops/s)"),
                    true,
                    &|s| Some(s.ops_per_sec),
                    c,
                );
                add(
                    format!("{l}: p50 latency (ms)"),
                    false,
                    &|s| Some(s.p50_ms),
                    c,
                );
                add(
                    format!("{l}: p99 latency (ms)"),
                    false,
                    &|s| Some(s.p99_ms),
                    c,
                );
            }
        }
    }
    let names = [
        ("peak_rss_mib_max", "peak RSS (VmHWM), largest member (MiB)"),
        (
            "peak_rss_mib_mean",
            "peak RSS (VmHWM), mean of members (MiB)",
        ),
        ("data_dir_mib_max", "data dir size, largest member (MiB)"),
        ("snapshot_save_s", "snapshot save, etcdctl (s)"),
        ("snapshot_mib", "snapshot file size (MiB)"),
    ];
    let mut keys: Vec<&String> = resources.values().flat_map(|m| m.keys()).collect();
    keys.sort();
    keys.dedup();
    let puts = resources
        .values()
        .find_map(|m| m.get("puts_total"))
        .copied();
    for k in keys.into_iter().filter(|k| *k != "puts_total") {
        let base = names
            .iter()
            .find(|(n, _)| *n == k.as_str())
            .map(|(_, t)| *t)
            .unwrap_or(k);
        let name = match puts {
            Some(n) => format!("after {n:.0} puts: {base}"),
            None => base.to_string(),
        };
        let values = systems
            .iter()
            .filter_map(|s| {
                resources
                    .get(s)
                    .and_then(|m| m.get(k))
                    .map(|v| (s.clone(), *v))
            })
            .collect();
        out.push(Figure {
            name,
            higher_is_better: false,
            values,
        });
    }
    let mut failures = Figure {
        name: "errors + timeouts, all runs".into(),
        higher_is_better: false,
        values: BTreeMap::new(),
    };
    for s in systems {
        let n: u64 = cases
            .iter()
            .filter(|c| c.workload != "failover")
            .filter_map(|c| c.per_system.get(s))
            .map(|st| st.errors + st.timeouts)
            .sum();
        failures.values.insert(s.clone(), n as f64);
    }
    out.push(failures);
    out
}

/// Runs `report`.
pub fn run(args: &ReportArgs) -> Result<()> {
    let mut summary = load(&args.raw_dir, &args.systems)?;
    if let Some(meta) = &args.meta {
        let text =
            std::fs::read_to_string(meta).with_context(|| format!("reading {}", meta.display()))?;
        summary.meta = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
    }
    std::fs::write(
        &args.out_json,
        serde_json::to_string_pretty(&summary)? + "\n",
    )?;
    std::fs::write(&args.out_md, crate::report_md::render(&summary))?;
    Ok(())
}
