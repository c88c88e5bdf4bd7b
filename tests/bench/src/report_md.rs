//! Markdown rendering of a [`Summary`]: machine and versions, the summary table (figure, each
//! system, ratio), the figures where the first system is clearly worse, per-workload details
//! and every error message seen.

use std::fmt::Write as _;

use crate::summary::{Figure, Summary};

/// Differences within this fraction are reported as noise (see the tooling notes: ±15 %).
const NOISE: f64 = 0.15;

/// Formats a number with a precision that suits its size.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `a / b`, if both exist and `b` is not zero.
fn ratio(f: &Figure, a: &str, b: &str) -> Option<f64> {
    let (x, y) = (f.values.get(a)?, f.values.get(b)?);
    (*y != 0.0).then(|| x / y)
}

/// "better", "worse" or "≈" for the first system, given the ratio.
fn verdict(f: &Figure, r: Option<f64>) -> &'static str {
    match r {
        None => "",
        Some(r) if (r - 1.0).abs() <= NOISE => "≈ (within ±15 %)",
        Some(r) if (r > 1.0) == f.higher_is_better => "better",
        Some(_) => "worse",
    }
}

fn table(out: &mut String, s: &Summary) {
    let (a, b) = (&s.systems[0], s.systems.get(1).cloned().unwrap_or_default());
    let _ = writeln!(out, "| figure | {a} | {b} | ratio {a}/{b} | {a} is |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|");
    for f in &s.figures {
        let v = |sys: &str| {
            f.values
                .get(sys)
                .map(|v| num(*v))
                .unwrap_or_else(|| "–".into())
        };
        let r = ratio(f, a, &b);
        let arrow = if f.higher_is_better { "↑" } else { "↓" };
        let _ = writeln!(
            out,
            "| {} {arrow} | {} | {} | {} | {} |",
            f.name,
            v(a),
            v(&b),
            r.map(|r| format!("{r:.2}")).unwrap_or_else(|| "–".into()),
            verdict(f, r)
        );
    }
}

fn details(out: &mut String, s: &Summary) {
    let _ = writeln!(
        out,
        "| workload | system | ops/s (median; per round) | p50 | p90 | p99 | p99.9 | max | errors | timeouts | CAS failures |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in &s.cases {
        for sys in &s.systems {
            let Some(st) = c.per_system.get(sys) else {
                let _ = writeln!(out, "| {} | {sys} | no result | | | | | | | | |", c.label);
                continue;
            };
            let rounds: Vec<String> = st.ops_per_sec_rounds.iter().map(|v| num(*v)).collect();
            let _ = writeln!(
                out,
                "| {} | {sys} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.label,
                num(st.ops_per_sec),
                rounds.join(", "),
                num(st.p50_ms),
                num(st.p90_ms),
                num(st.p99_ms),
                num(st.p999_ms),
                num(st.max_ms),
                st.errors,
                st.timeouts,
                st.cas_failures
            );
        }
    }
}

/// The whole `RESULTS.md`.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let a = s.systems.first().cloned().unwrap_or_default();
    let b = s.systems.get(1).cloned().unwrap_or_default();
    let _ = writeln!(out, "# {a} vs {b}: side-by-side benchmark\n");
    let _ = writeln!(
        out,
        "Produced by `tests/bench/compare.sh` (load generator: `kv-bench`, the `etcd-client` crate \
         driving both systems identically). Each figure is the median over the rounds; latencies \
         in milliseconds. ↑ higher is better, ↓ lower is better. Differences within ±15 % are \
         noise on this 2-core machine (client and 3 members share it).\n"
    );
    let _ = writeln!(out, "## Run, machine and versions\n");
    for (k, v) in &s.meta {
        let _ = writeln!(out, "- **{k}**: {v}");
    }
    let _ = writeln!(out, "\n## Summary\n");
    table(&mut out, s);
    if s.cases.iter().any(|c| c.workload == "watch-latency") {
        let _ = writeln!(
            out,
            "\nWatch latency: put-ack→event is the time from the writer's put response to the \
             event's arrival at a watcher, floored at 1 µs (0.001 ms) when the event arrives \
             first, so its ratios can be huge; put-sent→event counts from sending the put."
        );
    }
    let worse: Vec<(&Figure, f64)> = s
        .figures
        .iter()
        .filter_map(|f| ratio(f, &a, &b).map(|r| (f, r)))
        .filter(|(f, r)| verdict(f, Some(*r)) == "worse")
        .collect();
    let _ = writeln!(out, "\n## Where {a} is worse than {b} by more than 15 %\n");
    if worse.is_empty() {
        let _ = writeln!(out, "Nowhere.");
    }
    for (f, r) in worse {
        let _ = writeln!(
            out,
            "- {}: {a} {}, {b} {} (ratio {r:.2})",
            f.name,
            num(f.values[&a]),
            num(f.values[&b])
        );
    }
    let _ = writeln!(out, "\n## Details per workload\n");
    details(&mut out, s);
    let _ = writeln!(out, "\nWhat ran:\n");
    for c in &s.cases {
        let _ = writeln!(out, "- **{}**: {}", c.label, c.description);
    }
    let _ = writeln!(out, "\n## Errors and timeouts (summed over rounds)\n");
    let mut any = false;
    for c in &s.cases {
        for (sys, st) in &c.per_system {
            if st.errors + st.timeouts == 0 {
                continue;
            }
            any = true;
            let _ = writeln!(
                out,
                "- {} / {sys}: {} errors, {} timeouts",
                c.label, st.errors, st.timeouts
            );
            for (m, n) in &st.error_messages {
                let _ = writeln!(out, "  - {n} × `{m}`");
            }
        }
    }
    if !any {
        let _ = writeln!(out, "None.");
    }
    let _ = writeln!(
        out,
        "\n(Failover errors are expected: they are the writes sent while there was no leader.)"
    );
    if !s.resources.is_empty() {
        let _ = writeln!(out, "\n## Raw resource measurements\n");
        for (sys, m) in &s.resources {
            let vals: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k} = {}", num(*v)))
                .collect();
            let _ = writeln!(out, "- {sys}: {}", vals.join(", "));
        }
    }
    out
}
