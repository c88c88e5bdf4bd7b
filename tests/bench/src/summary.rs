//! The summary data model shared by `report` and `chart`: per-case statistics (medians over
//! rounds), figures (rows of the summary table) and the row labels of each workload case.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stats::BenchResult;

/// One system's figures for one case, medians over rounds.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct CaseStats {
    pub rounds: usize,
    pub ops_per_sec: f64,
    pub ops_per_sec_rounds: Vec<f64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    pub timeouts: u64,
    pub cas_failures: u64,
    pub error_messages: BTreeMap<String, u64>,
    pub extra: BTreeMap<String, f64>,
}

/// One workload case across systems.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Case {
    pub case: String,
    pub workload: String,
    pub label: String,
    pub description: String,
    pub per_system: BTreeMap<String, CaseStats>,
}

/// One row of the summary table.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub higher_is_better: bool,
    pub values: BTreeMap<String, f64>,
}

/// The summary JSON.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Summary {
    pub meta: Vec<(String, String)>,
    pub systems: Vec<String>,
    pub cases: Vec<Case>,
    pub figures: Vec<Figure>,
    pub resources: BTreeMap<String, BTreeMap<String, f64>>,
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn stats_of(runs: &[BenchResult]) -> CaseStats {
    let med = |f: &dyn Fn(&BenchResult) -> f64| median(runs.iter().map(f).collect());
    let mut st = CaseStats {
        rounds: runs.len(),
        ops_per_sec: med(&|r| r.ops_per_sec),
        ops_per_sec_rounds: runs.iter().map(|r| r.ops_per_sec).collect(),
        p50_ms: med(&|r| r.latency_ms.p50),
        p90_ms: med(&|r| r.latency_ms.p90),
        p99_ms: med(&|r| r.latency_ms.p99),
        p999_ms: med(&|r| r.latency_ms.p999),
        max_ms: med(&|r| r.latency_ms.max),
        ..CaseStats::default()
    };
    for r in runs {
        st.errors += r.errors;
        st.timeouts += r.timeouts;
        st.cas_failures += r.cas_failures;
        for (m, n) in &r.error_messages {
            *st.error_messages.entry(m.clone()).or_default() += n;
        }
    }
    let keys: Vec<String> = runs.iter().flat_map(|r| r.extra.keys().cloned()).collect();
    for k in keys {
        let v = median(
            runs.iter()
                .filter_map(|r| r.extra.get(&k).copied())
                .collect(),
        );
        st.extra.insert(k, v);
    }
    st
}

/// `1 client`, `16 clients`.
pub fn n(count: u64, what: &str) -> String {
    if count == 1 {
        format!("1 {what}")
    } else {
        format!("{count} {what}s")
    }
}

fn param_u64(r: &BenchResult, key: &str) -> u64 {
    r.params.get(key).and_then(|v| v.as_u64()).unwrap_or(0)
}

/// Short row label of a case, and its sort key.
pub fn label(r: &BenchResult) -> (String, (usize, u64, String)) {
    let order = [
        "put",
        "range-linearizable",
        "range-serializable",
        "txn-cas",
        "watch-latency",
        "mixed",
        "failover",
    ];
    let rank = order
        .iter()
        .position(|w| *w == r.workload)
        .unwrap_or(order.len());
    let clients = param_u64(r, "clients");
    let flag = |k: &str| r.params.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    let text = match r.workload.as_str() {
        "put" if flag("sequential_keys") => {
            let ops = param_u64(r, "ops_limit");
            format!("put, sequential keys, {}, {ops} ops", n(clients, "client"))
        }
        "txn-cas" => {
            let c = if flag("contended") {
                "contended"
            } else {
                "uncontended"
            };
            format!("txn-cas {c}, {}", n(clients, "client"))
        }
        "watch-latency" => format!("watch latency, {}", n(param_u64(r, "watchers"), "watcher")),
        "mixed" => format!("mixed 90/10, {}", n(clients, "client")),
        "failover" => "leader failover".to_string(),
        w => format!("{w}, {}", n(clients, "client")),
    };
    let tie = if flag("sequential_keys") {
        1 << 40
    } else {
        clients
    };
    (text, (rank, tie, r.description.clone()))
}
