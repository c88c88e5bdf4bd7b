//! A run's summary as text and as files: `summary.md` (ops, faults by kind, snapshots
//! installed, the members at the end, a verdict per checker), `summary.json`, and on failure
//! `history.json` (the recorded history, to check again offline) and `logs.txt`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::run::{Outcome, Summary};

/// The summary as markdown.
pub fn markdown(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Robustness run: {:?}, seed {}, {} s\n",
        s.target, s.seed, s.duration_s
    );
    let _ = writeln!(
        out,
        "Verdict: **{}**. 3 members, `--snapshot-count {}`, {} clients spread over the members, \
         one watch recorder per member.\n",
        if s.passed { "passed" } else { "FAILED" },
        s.snapshot_count,
        s.clients
    );
    let _ = writeln!(
        out,
        "| operation | ok | refused | unknown |\n|---|---:|---:|---:|"
    );
    let mut total = [0u64; 3];
    for (k, v) in &s.operations {
        let _ = writeln!(out, "| {k} | {} | {} | {} |", v[0], v[1], v[2]);
        for i in 0..3 {
            total[i] += v[i];
        }
    }
    let _ = writeln!(
        out,
        "| **all** | {} | {} | {} |\n",
        total[0], total[1], total[2]
    );
    let faults: Vec<String> = s.faults.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(out, "Faults: {}.", faults.join(", "));
    if let Some(e) = &s.fault_error {
        let _ = writeln!(out, "\nThe cluster did not recover from a fault: {e}");
    }
    let _ = writeln!(
        out,
        "\nRaft snapshots installed, per member: {:?}. Watch events received: {}.",
        s.snapshots_installed, s.watch_events
    );
    match &s.final_state {
        Some(f) => {
            let _ = writeln!(
                out,
                "\nAt the end: every member at revision {}, HashKV (hash, compact revision) {:?}, \
                 live keys {:?}.",
                f.revision, f.hashes, f.keys
            );
            for p in &f.problems {
                let _ = writeln!(out, "- PROBLEM: {p}");
            }
        }
        None => {
            let _ = writeln!(out, "\nThe cluster did not heal: no final comparison.");
        }
    }
    let _ = writeln!(out, "\n| checker | verdict | detail |\n|---|---|---|");
    for (name, verdict, msg) in &s.verdicts {
        let msg = msg.replace('|', "\\|").replace('\n', " ");
        let _ = writeln!(out, "| {name} | {verdict} | {msg} |");
    }
    out
}

/// Write the run's files into `dir`.
pub fn write(dir: &Path, o: &Outcome) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("summary.md"), markdown(&o.summary))?;
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&o.summary)?,
    )?;
    if !o.summary.passed {
        std::fs::write(dir.join("history.json"), o.history.to_json())?;
        std::fs::write(dir.join("logs.txt"), &o.logs)?;
    }
    Ok(())
}
