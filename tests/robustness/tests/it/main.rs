//! The short robustness run of the test command: a 3-member kvstore cluster under every fault
//! kind for about 90 s, with `--snapshot-count 20` so that members catch up by installing Raft
//! snapshots; every checker must pass. `KV_ROBUSTNESS_SEED` repeats a run, `KVSTORE_BIN`
//! points at another binary.

use std::path::PathBuf;
use std::time::Duration;

use kv_robustness::runner::cluster::Target;
use kv_robustness::runner::{faults, report, run};

fn kvstore_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KVSTORE_BIN") {
        return PathBuf::from(p);
    }
    // The test command builds every binary of the workspace before the tests.
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/kvstore");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build --bin kvstore` first",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_run_under_every_fault_kind_passes_every_check() {
    let seed = std::env::var("KV_ROBUSTNESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("robustness seed {seed} (KV_ROBUSTNESS_SEED={seed} repeats it)");
    let cfg = run::Config {
        target: Target::Kvstore,
        bin: kvstore_bin(),
        duration: Duration::from_secs(90),
        seed,
        snapshot_count: 20,
        clients: 8,
        rate: 200,
        faults: faults::ALL.to_vec(),
        budget: Default::default(),
    };
    let outcome = run::run(&cfg).await.expect("the run itself failed");
    let s = &outcome.summary;
    eprintln!("{}", report::markdown(s));
    if !s.passed {
        let dir = std::env::temp_dir().join(format!("kv-robustness-failed-{seed}"));
        let _ = report::write(&dir, &outcome);
        panic!(
            "robustness run failed (seed {seed}; history in {}):\n{}\n{}",
            dir.display(),
            outcome.report,
            outcome.logs
        );
    }
    assert!(
        s.snapshots_installed.iter().sum::<usize>() > 0,
        "no member installed a Raft snapshot: the run did not test catching up by snapshot"
    );
    assert!(
        s.faults.len() >= 4,
        "too few fault kinds injected: {:?}",
        s.faults
    );
}
