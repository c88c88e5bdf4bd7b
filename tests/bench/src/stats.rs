//! Measurement: per-task [`Recorder`]s (an HDR histogram of latencies in microseconds plus
//! counted errors and timeouts), merged into one serializable [`BenchResult`].
//!
//! Nothing is dropped silently: every failed request lands in `errors` (grouped by message) or
//! `timeouts`, and both are part of the JSON and text output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Longest error message kept as a grouping key.
const MAX_MSG: usize = 160;

/// Latencies and failures seen by one task (or merged from many).
pub struct Recorder {
    pub hist: Histogram<u64>,
    pub by_kind: BTreeMap<&'static str, Histogram<u64>>,
    pub errors: BTreeMap<String, u64>,
    pub timeouts: u64,
    pub cas_failures: u64,
}

fn new_hist() -> Histogram<u64> {
    // 1 µs .. 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            hist: new_hist(),
            by_kind: BTreeMap::new(),
            errors: BTreeMap::new(),
            timeouts: 0,
            cas_failures: 0,
        }
    }
}

impl Recorder {
    /// Records one completed operation.
    pub fn record(&mut self, kind: Option<&'static str>, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, 3_600_000_000);
        self.hist.record(us).expect("value within bounds");
        if let Some(kind) = kind {
            let h = self.by_kind.entry(kind).or_insert_with(new_hist);
            h.record(us).expect("value within bounds");
        }
    }

    /// Counts one failed request, grouped by its message.
    pub fn error(&mut self, msg: impl std::fmt::Display) {
        let mut msg = msg.to_string().replace('\n', " ");
        if msg.len() > MAX_MSG {
            let mut cut = MAX_MSG;
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg.truncate(cut);
        }
        *self.errors.entry(msg).or_default() += 1;
    }

    /// Adds another recorder's counts into this one.
    pub fn merge(&mut self, other: Recorder) {
        self.hist.add(&other.hist).expect("same bounds");
        for (kind, h) in other.by_kind {
            self.by_kind
                .entry(kind)
                .or_insert_with(new_hist)
                .add(&h)
                .expect("same bounds");
        }
        for (msg, n) in other.errors {
            *self.errors.entry(msg).or_default() += n;
        }
        self.timeouts += other.timeouts;
        self.cas_failures += other.cas_failures;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Builds the final result for a run that took `elapsed`.
    pub fn finish(self, workload: &str, description: String, elapsed: Duration) -> BenchResult {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let ops = self.hist.len();
        BenchResult {
            workload: workload.to_string(),
            description,
            params: BTreeMap::new(),
            duration_s: secs,
            ops,
            ops_per_sec: ops as f64 / secs,
            errors: self.error_count(),
            timeouts: self.timeouts,
            cas_failures: self.cas_failures,
            error_messages: self.errors,
            latency_ms: Percentiles::of(&self.hist),
            by_kind: self
                .by_kind
                .iter()
                .map(|(k, h)| (k.to_string(), Percentiles::of(h)))
                .collect(),
            extra: BTreeMap::new(),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Percentiles {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// The outcome of one workload run, as printed with `--json`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct BenchResult {
    /// Workload name (`put`, `txn-cas`, ...).
    pub workload: String,
    /// One line saying what ran (clients, connections, sizes, endpoints mode).
    pub description: String,
    /// Parameters of the run.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Wall time of the measured phase.
    pub duration_s: f64,
    /// Completed operations (for watch-latency: delivered events).
    pub ops: u64,
    pub ops_per_sec: f64,
    /// Failed requests (all kinds but timeouts), and their messages with counts.
    pub errors: u64,
    pub timeouts: u64,
    /// Compare-and-swap transactions whose compare failed (txn-cas; not errors).
    pub cas_failures: u64,
    pub error_messages: BTreeMap<String, u64>,
    pub latency_ms: Percentiles,
    /// Latencies per operation kind (e.g. `read` / `write` in `mixed`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_kind: BTreeMap<String, Percentiles>,
    /// Workload-specific figures (e.g. failover's `unavailable_ms`).
    #[serde(default)]
    pub extra: BTreeMap<String, f64>,
}

impl BenchResult {
    pub fn param(mut self, key: &str, value: impl Serialize) -> Self {
        let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.params.insert(key.to_string(), v);
        self
    }

    /// Human-readable summary.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let l = &self.latency_ms;
        let _ = writeln!(s, "{}: {}", self.workload, self.description);
        let _ = writeln!(
            s,
            "  ops {}  in {:.2} s  = {:.1} ops/s",
            self.ops, self.duration_s, self.ops_per_sec
        );
        let _ = writeln!(
            s,
            "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        for (kind, p) in &self.by_kind {
            let _ = writeln!(
                s,
                "  {kind:>6} ({} ops): p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}",
                p.count, p.p50, p.p90, p.p99, p.p999
            );
        }
        let _ = writeln!(
            s,
            "  errors {}  timeouts {}  cas failures {}",
            self.errors, self.timeouts, self.cas_failures
        );
        for (msg, n) in &self.error_messages {
            let _ = writeln!(s, "    {n} x {msg}");
        }
        for (k, v) in &self.extra {
            let _ = writeln!(s, "  {k}: {v:.3}");
        }
        s
    }
}
