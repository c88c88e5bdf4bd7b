//! The closed-loop driver: N client tasks, each running its [`Worker`] back to back until the
//! duration is over or the shared operation budget is spent.
//!
//! Every request is bounded by the per-request timeout; a request over it is abandoned and
//! counted as a timeout, a request that fails is counted as an error with its message.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::opts::Settings;
use crate::stats::Recorder;

/// What one operation came to.
pub enum Outcome {
    /// Completed; `Some(kind)` also files the latency under that kind (e.g. `read`).
    Ok(Option<&'static str>),
    /// A compare-and-swap whose compare failed: completed, but counted apart.
    CasFailed,
    /// The request failed.
    Err(etcd_client::Error),
}

/// One client task's operation.
pub trait Worker: Send + 'static {
    fn op(&mut self) -> impl Future<Output = Outcome> + Send;
}

/// The merged measurements of a run and its measured wall time.
pub struct RunOutput {
    pub recorder: Recorder,
    pub elapsed: Duration,
}

/// Stops tasks at the deadline or when the shared budget of operations is spent.
#[derive(Clone)]
struct Limit {
    deadline: Option<Instant>,
    budget: Option<Arc<AtomicU64>>,
}

impl Limit {
    fn take(&self) -> bool {
        if let Some(d) = self.deadline
            && Instant::now() >= d
        {
            return false;
        }
        match &self.budget {
            Some(b) => b
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
            None => true,
        }
    }
}

/// Runs `s.clients` tasks, task `i` using the worker `make(i)`.
///
/// Workers are built (and so their connections warmed up) before the clock starts.
pub async fn run<W, F>(s: &Settings, mut make: F) -> Result<RunOutput>
where
    W: Worker,
    F: FnMut(usize) -> W,
{
    let workers: Vec<W> = (0..s.clients).map(&mut make).collect();
    let start = Instant::now();
    let limit = Limit {
        deadline: s.ops.is_none().then(|| start + s.duration),
        budget: s.ops.map(|n| Arc::new(AtomicU64::new(n))),
    };
    let timeout = s.timeout;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut w| {
            let limit = limit.clone();
            tokio::spawn(async move {
                let mut rec = Recorder::default();
                while limit.take() {
                    let t0 = Instant::now();
                    match tokio::time::timeout(timeout, w.op()).await {
                        Ok(Outcome::Ok(kind)) => rec.record(kind, t0.elapsed()),
                        Ok(Outcome::CasFailed) => {
                            rec.record(None, t0.elapsed());
                            rec.cas_failures += 1;
                        }
                        Ok(Outcome::Err(e)) => {
                            rec.error(e);
                            // Don't spin on a failing server.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(_) => rec.timeouts += 1,
                    }
                }
                rec
            })
        })
        .collect();
    let mut recorder = Recorder::default();
    for t in tasks {
        recorder.merge(t.await?);
    }
    Ok(RunOutput {
        recorder,
        elapsed: start.elapsed(),
    })
}

/// Writes keys `0..key_space` (`key(i)`) with `value` from 64 tasks, so that reads hit.
pub async fn preload(
    pool: &crate::pool::Pool,
    key_space: u64,
    key: impl Fn(u64) -> String,
    value: &[u8],
) -> Result<()> {
    const TASKS: u64 = 64;
    let tasks = (0..TASKS).map(|t| {
        let mut kv = pool.client(t as usize).kv_client();
        let keys: Vec<String> = (t..key_space).step_by(TASKS as usize).map(&key).collect();
        let value = value.to_vec();
        async move {
            for k in keys {
                let mut tries = 0;
                while let Err(e) = kv.put(k.as_str(), value.clone(), None).await {
                    tries += 1;
                    if tries >= 5 {
                        anyhow::bail!("preloading {k}: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Ok(())
        }
    });
    futures::future::try_join_all(tasks).await?;
    Ok(())
}
