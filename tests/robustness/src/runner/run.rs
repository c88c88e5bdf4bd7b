//! One robustness run: start a cluster, run traffic and watch recorders while injecting
//! faults, heal, collect the history, check it, and compare the members with each other and
//! with the checked history at the end.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use etcd_client::GetOptions;

use super::cluster::{Cluster, Target, connect};
use super::faults::{Fault, Injector};
use super::traffic::{self, Shared};
use super::watchers;
use crate::check::history::{History, Operation, Request, Response};
use crate::check::linearizable::Budget;
use crate::check::{self, Report, Status};

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The store.
    pub target: Target,
    /// Its binary.
    pub bin: PathBuf,
    /// How long traffic and faults run.
    pub duration: Duration,
    /// Seed of every random choice (traffic and faults).
    pub seed: u64,
    /// `--snapshot-count` of the members.
    pub snapshot_count: i64,
    /// Concurrent clients, spread over the members.
    pub clients: u32,
    /// Requests per second, all clients together.
    pub rate: u32,
    /// Fault kinds to draw from.
    pub faults: Vec<Fault>,
    /// Limits of the linearizability search.
    pub budget: Budget,
}

/// The end-of-run comparisons of the members.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FinalState {
    /// The revision every member reached.
    pub revision: i64,
    /// (hash, compact revision) of HashKV at that revision, per member.
    pub hashes: Vec<(u32, i64)>,
    /// Live keys per member.
    pub keys: Vec<usize>,
    /// What differed, if anything.
    pub problems: Vec<String>,
}

/// What a run did and found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// The store.
    pub target: Target,
    /// The seed.
    pub seed: u64,
    /// Seconds of traffic and faults.
    pub duration_s: u64,
    /// `--snapshot-count`.
    pub snapshot_count: i64,
    /// Clients.
    pub clients: u32,
    /// Operations by request kind: [ok, refused, unknown].
    pub operations: BTreeMap<String, [u64; 3]>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u32>,
    /// A fault the cluster did not recover from, if any.
    pub fault_error: Option<String>,
    /// Snapshots each member installed.
    pub snapshots_installed: Vec<usize>,
    /// Watch events received.
    pub watch_events: u64,
    /// The members at the end.
    pub final_state: Option<FinalState>,
    /// Checker name, verdict, message.
    pub verdicts: Vec<(String, String, String)>,
    /// Whether everything passed.
    pub passed: bool,
}

/// A run's summary, its report and its history.
pub struct Outcome {
    /// The summary.
    pub summary: Summary,
    /// The checkers' report.
    pub report: Report,
    /// The history as recorded.
    pub history: History,
    /// The members' last log lines (printed when a run fails).
    pub logs: String,
}

/// Run once.
pub async fn run(cfg: &Config) -> Result<Outcome> {
    let extra = vec![
        "--snapshot-count".to_string(),
        cfg.snapshot_count.to_string(),
    ];
    let mut cluster = Cluster::new(cfg.target, &cfg.bin, 3, &extra)?;
    cluster.start_all()?;
    cluster
        .wait_healthy(Duration::from_secs(30))
        .await
        .context("the cluster did not start")?;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        stop: AtomicBool::new(false),
        leases: Default::default(),
        revision: AtomicI64::new(1),
        watch_events: AtomicU64::new(0),
    });
    let urls = cluster.client_urls();
    let (fin_tx, fin_rx) = tokio::sync::watch::channel(0i64);
    let recorders: Vec<_> = urls
        .iter()
        .enumerate()
        .map(|(i, u)| {
            tokio::spawn(watchers::recorder(
                i,
                u.clone(),
                shared.clone(),
                fin_rx.clone(),
            ))
        })
        .collect();
    let interval = Duration::from_secs_f64(f64::from(cfg.clients) / f64::from(cfg.rate.max(1)));
    let clients: Vec<_> = (0..cfg.clients)
        .map(|c| {
            let member = c as usize % urls.len();
            tokio::spawn(traffic::client(
                c,
                member,
                urls[member].clone(),
                interval,
                cfg.seed.wrapping_add(u64::from(c) + 1),
                shared.clone(),
            ))
        })
        .collect();

    let mut injector = Injector::new(cfg.seed, &cfg.faults, cfg.snapshot_count);
    let until = shared.start + cfg.duration;
    let fault_error = injector
        .run(&mut cluster, &shared, until)
        .await
        .err()
        .map(|e| format!("{e:#}"));
    match &fault_error {
        // The run is over: what follows shows the state the fault left.
        Some(e) => eprintln!("kv-robustness: {e}"),
        None => tokio::time::sleep_until(until.into()).await,
    }
    step(&shared, "faults over: healing");
    injector.heal(&mut cluster)?;
    let healthy = cluster.wait_healthy(Duration::from_secs(60)).await;
    step(&shared, "stopping the clients");
    shared.stop.store(true, Ordering::Relaxed);
    let mut operations: Vec<Operation> = Vec::new();
    for c in clients {
        operations.extend(c.await.context("a client task failed")?);
    }
    // A lease granted to expire may still do so: let it, before the members are compared.
    if healthy.is_ok() {
        tokio::time::sleep(Duration::from_secs(3 * traffic::SHORT_TTL as u64)).await;
    }
    step(&shared, "comparing the members");
    let final_state = match healthy {
        Ok(()) => {
            let (state, reads) = final_state(&urls, &shared).await?;
            operations.extend(reads);
            Some(state)
        }
        Err(e) => {
            eprintln!("kv-robustness: the cluster did not heal: {e:#}");
            None
        }
    };
    let _ = fin_tx.send(final_state.as_ref().map_or(i64::MAX, |f| f.revision));
    step(
        &shared,
        "waiting for the watches to reach the final revision",
    );
    let mut watches = Vec::new();
    for r in recorders {
        watches.extend(r.await.context("a watch recorder failed")?);
    }
    drop(fin_tx);
    add_expiries(&mut operations, shared.now());
    let history = History {
        operations,
        watches,
    };
    let checked_at = Instant::now();
    let report = check::check_with(
        &history,
        &check::Options {
            budget: cfg.budget.clone(),
        },
    );
    eprintln!(
        "kv-robustness: checked in {:.1}s",
        checked_at.elapsed().as_secs_f64()
    );
    let summary = summarize(
        cfg,
        &history,
        &report,
        &injector,
        &cluster,
        fault_error,
        final_state,
        &shared,
    );
    let logs = cluster.log_tails(60);
    Ok(Outcome {
        summary,
        report,
        history,
        logs,
    })
}

fn step(shared: &Shared, what: &str) {
    eprintln!(
        "kv-robustness: {:>6.1}s {what}",
        shared.start.elapsed().as_secs_f64()
    );
}

/// A lease granted to expire is revoked by the server, with no client call to show for it:
/// each such grant gets an operation of its own that may have happened at any time after it
/// (the search places it where the watches saw its key deleted, or nowhere).
fn add_expiries(operations: &mut Vec<Operation>, end: u64) {
    let expiring: Vec<(u64, i64)> = operations
        .iter()
        .filter_map(|o| match (&o.request, &o.response) {
            (Request::LeaseGrant { ttl }, Response::LeaseGrant { id, .. })
                if *ttl == traffic::SHORT_TTL =>
            {
                Some((o.ret, *id))
            }
            _ => None,
        })
        .collect();
    for (n, (granted, id)) in expiring.into_iter().enumerate() {
        operations.push(Operation {
            client: EXPIRY_CLIENTS + n as u32,
            member: 0,
            call: granted,
            ret: end,
            request: Request::LeaseRevoke { id },
            response: Response::Unknown("expiry: the server revokes the lease itself".into()),
        });
    }
}

/// Client ids of the expiry operations start here (the real clients are numbered from 0).
const EXPIRY_CLIENTS: u32 = 1_000_000;

#[allow(clippy::too_many_arguments)]
fn summarize(
    cfg: &Config,
    history: &History,
    report: &Report,
    injector: &Injector,
    cluster: &Cluster,
    fault_error: Option<String>,
    final_state: Option<FinalState>,
    shared: &Shared,
) -> Summary {
    let mut ops: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    for o in &history.operations {
        let kind = match o.client {
            FINAL_CLIENTS.. => "Range (final, every key, each member)",
            EXPIRY_CLIENTS.. => "LeaseRevoke (expiry, by the server)",
            _ => request_kind(&o.request),
        };
        let slot = match o.response {
            Response::Refused(_) => 1,
            Response::Unknown(_) => 2,
            _ => 0,
        };
        ops.entry(kind.to_string()).or_default()[slot] += 1;
    }
    let verdicts: Vec<(String, String, String)> = report
        .verdicts
        .iter()
        .map(|v| {
            let s = match v.status {
                Status::Passed => "passed",
                Status::Failed => "failed",
                Status::TimedOut => "timed out",
                Status::Skipped => "skipped",
            };
            (v.name.to_string(), s.to_string(), v.message.clone())
        })
        .collect();
    let passed = report.passed()
        && fault_error.is_none()
        && final_state.as_ref().is_some_and(|f| f.problems.is_empty());
    Summary {
        target: cfg.target,
        seed: cfg.seed,
        duration_s: cfg.duration.as_secs(),
        snapshot_count: cfg.snapshot_count,
        clients: cfg.clients,
        operations: ops,
        faults: injector
            .counts
            .iter()
            .map(|(k, v)| (format!("{k:?}"), *v))
            .collect(),
        fault_error,
        snapshots_installed: cluster.snapshots_installed(),
        watch_events: shared.watch_events.load(Ordering::Relaxed),
        final_state,
        verdicts,
        passed,
    }
}

fn request_kind(r: &Request) -> &'static str {
    match r {
        Request::Range {
            serializable: true, ..
        } => "Range (serializable)",
        Request::Range { revision, .. } if *revision != 0 => "Range (at a revision)",
        Request::Range { .. } => "Range (linearizable)",
        Request::Put { lease, .. } if *lease != 0 => "Put (with a lease)",
        Request::Put { .. } => "Put",
        Request::DeleteRange { .. } => "DeleteRange",
        Request::Txn { .. } => "Txn",
        Request::LeaseGrant { .. } => "LeaseGrant",
        Request::LeaseRevoke { .. } => "LeaseRevoke",
        Request::LeaseKeepAlive { .. } => "LeaseKeepAlive",
        Request::Compact { .. } => "Compact",
    }
}

/// Every member at one revision: HashKV and the compact revision equal, the same keys. The
/// linearizable read of every key through each member that fixes that revision goes into the
/// history: the checkers then prove that the members end in the state the history leads to
/// (every acknowledged write there, nothing else).
async fn final_state(urls: &[String], shared: &Shared) -> Result<(FinalState, Vec<Operation>)> {
    let mut revision = 0;
    let mut reads = Vec::new();
    for (i, u) in urls.iter().enumerate() {
        let mut c = connect(u).await?;
        let request = Request::Range {
            key: vec![0],
            range_end: vec![0],
            revision: 0,
            limit: 0,
            serializable: false,
        };
        let call = shared.now();
        let response = traffic::send(&mut c, &request).await;
        let ret = shared.now();
        match response.revision() {
            Some(r) => revision = revision.max(r),
            None => anyhow::bail!("the final read through {u} failed: {response:?}"),
        }
        reads.push(Operation {
            client: FINAL_CLIENTS + i as u32,
            member: i,
            call,
            ret,
            request,
            response,
        });
    }
    let mut problems = Vec::new();
    let mut hashes = Vec::new();
    let mut contents = Vec::new();
    for u in urls {
        let mut c = connect(u).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let kvs = loop {
            let all = GetOptions::new().with_all_keys().with_serializable();
            let r = c.get(vec![0u8], Some(all)).await?;
            if r.header().map_or(0, |h| h.revision()) >= revision {
                break r;
            }
            if Instant::now() > deadline {
                problems.push(format!("{u} never reached revision {revision}"));
                break r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let h = c.hash_kv(revision).await?;
        // (etcd-client calls the compact revision `compact_version`.)
        hashes.push((h.hash(), h.compact_version()));
        let kvs: Vec<(Vec<u8>, Vec<u8>, i64)> = kvs
            .kvs()
            .iter()
            .map(|k| (k.key().to_vec(), k.value().to_vec(), k.mod_revision()))
            .collect();
        contents.push(kvs);
    }
    if hashes.windows(2).any(|w| w[0] != w[1]) {
        problems.push(format!("HashKV at {revision} differs: {hashes:?}"));
    }
    if contents.windows(2).any(|w| w[0] != w[1]) {
        problems.push("the members hold different keys".into());
    }
    let state = FinalState {
        revision,
        hashes,
        keys: contents.iter().map(Vec::len).collect(),
        problems,
    };
    Ok((state, reads))
}

/// Client ids of the final reads.
const FINAL_CLIENTS: u32 = 2_000_000;
