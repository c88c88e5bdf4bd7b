//! `failover`: a steady write load on the followers, then `kill -9` of the leader's PID, and the
//! time until writes succeed again.
//!
//! Writers only use the surviving members' endpoints, so the figure is the servers' failover
//! (election plus resumed commits), not a client's reconnection. `unavailable_ms` is the time
//! from the kill to the first successful put that was *sent* after the kill; `max_gap_ms` is the
//! longest time without any completed put around the kill; `new_leader_ms` is when a survivor
//! first reports a new leader in `Status`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::opts::{FailoverArgs, Settings};
use crate::pool::{self, Pool};
use crate::runner::RunOutput;
use crate::stats::{BenchResult, Recorder};
use crate::workloads;

/// Shared between the writers and the controller.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    killed_at: Mutex<Option<Instant>>,
    recovered_at: Mutex<Option<Instant>>,
}

/// One writer: puts until stopped; returns its recorder and success completion times.
async fn writer(
    mut kv: etcd_client::KvClient,
    seed: u64,
    s: Settings,
    shared: Arc<Shared>,
) -> (Recorder, Vec<Instant>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rec = Recorder::default();
    let mut done = Vec::new();
    let value = workloads::value(s.value_size);
    while !shared.stop.load(Ordering::Relaxed) {
        let k = workloads::key(rng.random_range(0..s.key_space));
        let t0 = Instant::now();
        match tokio::time::timeout(s.timeout, kv.put(k, value.clone(), None)).await {
            Ok(Ok(_)) => {
                let t1 = Instant::now();
                rec.record(None, t1 - t0);
                done.push(t1);
                let killed = *shared.killed_at.lock().expect("lock");
                if killed.is_some_and(|k| t0 >= k) {
                    let mut r = shared.recovered_at.lock().expect("lock");
                    if r.is_none_or(|r| t1 < r) {
                        *r = Some(t1);
                    }
                }
            }
            Ok(Err(e)) => {
                rec.error(e);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(_) => rec.timeouts += 1,
        }
    }
    (rec, done)
}

/// True when a survivor reports a leader other than `old`.
async fn new_leader_seen(survivors: &mut [etcd_client::Client], old: u64) -> bool {
    for c in survivors {
        if let Ok(Ok(st)) = tokio::time::timeout(Duration::from_millis(200), c.status()).await
            && st.leader() != 0
            && st.leader() != old
        {
            return true;
        }
    }
    false
}

/// Runs the failover measurement.
pub async fn run(s: &Settings, args: &FailoverArgs) -> Result<BenchResult> {
    ensure!(
        args.pids.len() == s.endpoints.len(),
        "--pids must match --endpoints one to one"
    );
    let leader = pool::find_leader(&s.endpoints).await?;
    let old_leader_id = {
        let mut c = pool::connect_one(&s.endpoints[leader]).await?;
        c.status().await?.leader()
    };
    let survivors: Vec<String> = (0..s.endpoints.len())
        .filter(|&i| i != leader)
        .map(|i| s.endpoints[i].clone())
        .collect();
    ensure!(!survivors.is_empty(), "failover needs at least 2 members");
    let pool = Pool::connect_to(&survivors, s.conns.max(survivors.len())).await?;
    let mut watchers =
        futures::future::try_join_all(survivors.iter().map(|e| pool::connect_one(e))).await?;

    let shared = Arc::new(Shared::default());
    let start = Instant::now();
    let tasks: Vec<_> = (0..s.clients)
        .map(|i| {
            tokio::spawn(writer(
                pool.client(i).kv_client(),
                i as u64,
                s.clone(),
                shared.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.steady)).await;

    let pid = args.pids[leader];
    let kill_at = Instant::now();
    *shared.killed_at.lock().expect("lock") = Some(kill_at);
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .context("running kill")?;
    ensure!(status.success(), "kill -9 {pid} failed");

    let give_up = kill_at + Duration::from_secs_f64(args.max_wait);
    let mut new_leader_at = None;
    while Instant::now() < give_up {
        if new_leader_at.is_none() && new_leader_seen(&mut watchers, old_leader_id).await {
            new_leader_at = Some(Instant::now());
        }
        let recovered = *shared.recovered_at.lock().expect("lock");
        if recovered.is_some() && new_leader_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs_f64(args.after)).await;
    shared.stop.store(true, Ordering::Relaxed);

    let mut rec = Recorder::default();
    let mut done = Vec::new();
    for t in tasks {
        let (r, d) = t.await?;
        rec.merge(r);
        done.extend(d);
    }
    let elapsed = start.elapsed();
    done.sort();
    let before: Vec<Instant> = done.iter().copied().filter(|t| *t <= kill_at).collect();
    let max_gap = done
        .windows(2)
        .filter(|w| w[1] >= kill_at)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let recovered = *shared.recovered_at.lock().expect("lock");

    let out = RunOutput {
        recorder: rec,
        elapsed,
    };
    let what = format!(
        "kill -9 of the leader (endpoint {}) after {} s",
        s.endpoints[leader], args.steady
    );
    let mut r = workloads::result(s, &pool, out, "failover", &what).param("killed_pid", pid);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    r.extra
        .insert("recovered".into(), f64::from(u8::from(recovered.is_some())));
    if let Some(t) = recovered {
        r.extra.insert("unavailable_ms".into(), ms(t - kill_at));
    }
    if let Some(t) = new_leader_at {
        r.extra.insert("new_leader_ms".into(), ms(t - kill_at));
    }
    r.extra.insert("max_gap_ms".into(), ms(max_gap));
    r.extra.insert(
        "ops_per_sec_before_kill".into(),
        before.len() as f64 / (kill_at - start).as_secs_f64().max(1e-9),
    );
    Ok(r)
}
