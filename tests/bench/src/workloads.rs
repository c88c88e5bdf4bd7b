//! The closed-loop workloads: `put`, `range-linearizable` / `range-serializable`, `txn-cas` and
//! `mixed`. Each builds one [`Worker`] per client task over the shared [`Pool`] and hands them
//! to [`runner::run`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use etcd_client::{Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp, TxnOpResponse};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::opts::{MixedArgs, PutArgs, RangeArgs, Settings, TxnArgs};
use crate::pool::Pool;
use crate::runner::{self, Outcome, RunOutput, Worker};
use crate::stats::BenchResult;

/// Key `i` of the shared key space (reads, random puts, mixed).
pub fn key(i: u64) -> String {
    format!("bench/key/{i:010}")
}

/// A value of `size` printable bytes.
pub fn value(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Builds the result with the parameters every workload shares.
pub fn result(
    s: &Settings,
    pool: &Pool,
    out: RunOutput,
    workload: &str,
    what: &str,
) -> BenchResult {
    let length = match s.ops {
        Some(n) => format!("{n} ops"),
        None => format!("{:.0} s", s.duration.as_secs_f64()),
    };
    let description = format!(
        "{what}{}{}, {}, {} B values, {} keys, {length}",
        if what.is_empty() { "" } else { ", " },
        crate::summary::n(s.clients as u64, "client"),
        pool.describe(s.target_leader),
        s.value_size,
        s.key_space,
    );
    out.recorder
        .finish(workload, description, out.elapsed)
        .param("clients", s.clients)
        .param("conns", pool.len())
        .param("endpoints", &s.endpoints)
        .param("target_leader", s.target_leader)
        .param("value_size", s.value_size)
        .param("key_space", s.key_space)
        .param("ops_limit", s.ops)
        .param("duration_limit_s", s.duration.as_secs_f64())
        .param("timeout_ms", s.timeout.as_millis() as u64)
        .param("smoke", s.smoke)
}

fn outcome<T>(r: Result<T, etcd_client::Error>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok(None),
        Err(e) => Outcome::Err(e),
    }
}

struct PutWorker {
    kv: KvClient,
    rng: StdRng,
    key_space: u64,
    seq: Option<Arc<AtomicU64>>,
    value: Vec<u8>,
}

impl Worker for PutWorker {
    async fn op(&mut self) -> Outcome {
        let k = match &self.seq {
            Some(seq) => format!("bench/seq/{:012}", seq.fetch_add(1, Ordering::Relaxed)),
            None => key(self.rng.random_range(0..self.key_space)),
        };
        outcome(self.kv.put(k, self.value.clone(), None).await)
    }
}

/// `put`: random keys over the key space, or sequential unique keys.
pub async fn put(s: &Settings, args: &PutArgs) -> Result<BenchResult> {
    let pool = Pool::connect(s).await?;
    let seq = args.sequential_keys.then(|| Arc::new(AtomicU64::new(0)));
    let out = runner::run(s, |i| PutWorker {
        kv: pool.client(i).kv_client(),
        rng: StdRng::seed_from_u64(i as u64),
        key_space: s.key_space,
        seq: seq.clone(),
        value: value(s.value_size),
    })
    .await?;
    let what = if args.sequential_keys {
        "sequential keys"
    } else {
        "random keys"
    };
    Ok(result(s, &pool, out, "put", what).param("sequential_keys", args.sequential_keys))
}

struct GetWorker {
    kv: KvClient,
    rng: StdRng,
    key_space: u64,
    serializable: bool,
}

impl Worker for GetWorker {
    async fn op(&mut self) -> Outcome {
        let k = key(self.rng.random_range(0..self.key_space));
        let opts = self
            .serializable
            .then(|| GetOptions::new().with_serializable());
        match self.kv.get(k, opts).await {
            Ok(r) if r.kvs().len() == 1 => Outcome::Ok(None),
            Ok(r) => Outcome::Err(etcd_client::Error::InvalidArgs(format!(
                "range of a preloaded key returned {} keys",
                r.kvs().len()
            ))),
            Err(e) => Outcome::Err(e),
        }
    }
}

/// `range-linearizable` / `range-serializable`: single-key gets over a preloaded key space.
pub async fn range(s: &Settings, args: &RangeArgs, serializable: bool) -> Result<BenchResult> {
    let pool = Pool::connect(s).await?;
    if !args.skip_preload {
        runner::preload(&pool, s.key_space, key, &value(s.value_size)).await?;
    }
    let out = runner::run(s, |i| GetWorker {
        kv: pool.client(i).kv_client(),
        rng: StdRng::seed_from_u64(i as u64),
        key_space: s.key_space,
        serializable,
    })
    .await?;
    let (name, what) = if serializable {
        ("range-serializable", "serializable single-key gets")
    } else {
        ("range-linearizable", "linearizable single-key gets")
    };
    Ok(result(s, &pool, out, name, what))
}

struct CasWorker {
    kv: KvClient,
    key: String,
    /// The key's mod_revision as last seen (0: absent).
    rev: i64,
    value: Vec<u8>,
}

impl Worker for CasWorker {
    async fn op(&mut self) -> Outcome {
        let txn = Txn::new()
            .when([Compare::mod_revision(
                self.key.as_str(),
                CompareOp::Equal,
                self.rev,
            )])
            .and_then([TxnOp::put(self.key.as_str(), self.value.clone(), None)])
            .or_else([TxnOp::get(self.key.as_str(), None)]);
        let resp = match self.kv.txn(txn).await {
            Ok(r) => r,
            Err(e) => return Outcome::Err(e),
        };
        if resp.succeeded() {
            self.rev = resp.header().map(|h| h.revision()).unwrap_or(0);
            return Outcome::Ok(None);
        }
        self.rev = match resp.op_responses().first() {
            Some(TxnOpResponse::Get(g)) => g.kvs().first().map(|kv| kv.mod_revision()).unwrap_or(0),
            _ => 0,
        };
        Outcome::CasFailed
    }
}

/// `txn-cas`: compare mod_revision and put, else read the current revision back.
pub async fn txn_cas(s: &Settings, args: &TxnArgs) -> Result<BenchResult> {
    let pool = Pool::connect(s).await?;
    let out = runner::run(s, |i| CasWorker {
        kv: pool.client(i).kv_client(),
        key: if args.contended {
            "bench/cas/shared".to_string()
        } else {
            format!("bench/cas/{i}")
        },
        rev: 0,
        value: value(s.value_size),
    })
    .await?;
    let what = if args.contended {
        "contended (one key)"
    } else {
        "uncontended (key per client)"
    };
    let mut r = result(s, &pool, out, "txn-cas", what).param("contended", args.contended);
    let total = r.ops.max(1) as f64;
    r.extra
        .insert("cas_succeeded".into(), (r.ops - r.cas_failures) as f64);
    r.extra
        .insert("cas_failure_ratio".into(), r.cas_failures as f64 / total);
    Ok(r)
}

struct MixedWorker {
    kv: KvClient,
    rng: StdRng,
    key_space: u64,
    read_ratio: f64,
    value: Vec<u8>,
}

impl Worker for MixedWorker {
    async fn op(&mut self) -> Outcome {
        let k = key(self.rng.random_range(0..self.key_space));
        if self.rng.random_bool(self.read_ratio) {
            match self.kv.get(k, None).await {
                Ok(_) => Outcome::Ok(Some("read")),
                Err(e) => Outcome::Err(e),
            }
        } else {
            match self.kv.put(k, self.value.clone(), None).await {
                Ok(_) => Outcome::Ok(Some("write")),
                Err(e) => Outcome::Err(e),
            }
        }
    }
}

/// `mixed`: linearizable gets and puts over the preloaded key space.
pub async fn mixed(s: &Settings, args: &MixedArgs) -> Result<BenchResult> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.read_ratio),
        "--read-ratio must be in 0..=1"
    );
    let pool = Pool::connect(s).await?;
    if !args.skip_preload {
        runner::preload(&pool, s.key_space, key, &value(s.value_size)).await?;
    }
    let out = runner::run(s, |i| MixedWorker {
        kv: pool.client(i).kv_client(),
        rng: StdRng::seed_from_u64(i as u64),
        key_space: s.key_space,
        read_ratio: args.read_ratio,
        value: value(s.value_size),
    })
    .await?;
    let pct = (args.read_ratio * 100.0).round();
    let what = format!("{pct:.0} % reads / {:.0} % writes", 100.0 - pct);
    Ok(result(s, &pool, out, "mixed", &what).param("read_ratio", args.read_ratio))
}
