//! `watch-latency`: one writer puts a key at a fixed rate on the leader; N watchers (each its own
//! watch stream, spread over the pooled connections) record when each event arrives.
//!
//! The latency is the time from the writer's put acknowledgement to the event's delivery to a
//! watcher (an event that arrives before the acknowledgement counts as ~0 and is tallied in
//! `events_before_ack`); the time from sending the put is reported too. An acknowledged put whose
//! event a watcher never gets within the grace period counts as a timeout (`missing_events`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use etcd_client::Client;
use hdrhistogram::Histogram;

use crate::opts::{Settings, WatchArgs};
use crate::pool::{self, Pool};
use crate::runner::RunOutput;
use crate::stats::{Percentiles, Recorder};
use crate::workloads;

const KEY: &str = "bench/watch/key";

/// Events one watcher received: (sequence number, arrival) and its failures.
struct Received {
    events: Vec<(u64, Instant)>,
    rec: Recorder,
}

async fn start_watcher(
    mut client: Client,
    total: Arc<AtomicU64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<Received>> {
    let mut stream = client.watch(KEY, None).await.context("creating watch")?;
    let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .context("watch creation timed out")??;
    match first {
        Some(r) if r.created() => {}
        other => bail!("unexpected first watch response: {other:?}"),
    }
    Ok(tokio::spawn(async move {
        let mut out = Received {
            events: Vec::new(),
            rec: Recorder::default(),
        };
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                msg = stream.message() => match msg {
                    Ok(Some(resp)) => {
                        let now = Instant::now();
                        if resp.canceled() {
                            out.rec.error(format!("watch canceled: {}", resp.cancel_reason()));
                            break;
                        }
                        for ev in resp.events() {
                            let Some(kv) = ev.kv() else { continue };
                            match kv.value().get(..8) {
                                Some(b) => {
                                    let seq = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                                    out.events.push((seq, now));
                                    total.fetch_add(1, Ordering::Relaxed);
                                }
                                None => out.rec.error("watch event with a short value"),
                            }
                        }
                    }
                    Ok(None) => {
                        out.rec.error("watch stream closed by the server");
                        break;
                    }
                    Err(e) => {
                        out.rec.error(e);
                        break;
                    }
                },
            }
        }
        // Keep the stream (and so the watch) alive until the end.
        drop(stream);
        out
    }))
}

/// Runs the watch-latency workload.
pub async fn run(s: &Settings, args: &WatchArgs) -> Result<crate::stats::BenchResult> {
    anyhow::ensure!(args.watchers >= 1, "--watchers must be at least 1");
    anyhow::ensure!(args.put_rate > 0.0, "--put-rate must be positive");
    let leader = pool::find_leader(&s.endpoints).await?;
    let targets = if s.target_leader {
        vec![s.endpoints[leader].clone()]
    } else {
        s.endpoints.clone()
    };
    let conns = s.conns.max(args.watchers.div_ceil(16));
    let watch_pool = Pool::connect_to(&targets, conns).await?;
    let mut writer = pool::connect_one(&s.endpoints[leader]).await?.kv_client();

    let total = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut handles = Vec::new();
    for w in 0..args.watchers {
        let c = watch_pool.client(w);
        handles.push(start_watcher(c, total.clone(), stop_rx.clone()).await?);
    }

    let puts = s
        .ops
        .unwrap_or_else(|| (args.put_rate * s.duration.as_secs_f64()).ceil() as u64)
        .max(1);
    let mut acks: Vec<Option<(Instant, Instant)>> = vec![None; puts as usize];
    let mut rec = Recorder::default();
    let mut put_hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.put_rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Instant::now();
    for seq in 0..puts {
        tick.tick().await;
        let mut v = workloads::value(s.value_size.max(8));
        v[..8].copy_from_slice(&seq.to_be_bytes());
        let sent = Instant::now();
        match tokio::time::timeout(s.timeout, writer.put(KEY, v, None)).await {
            Ok(Ok(_)) => {
                let acked = Instant::now();
                put_hist.record((acked - sent).as_micros().max(1) as u64)?;
                acks[seq as usize] = Some((sent, acked));
            }
            Ok(Err(e)) => rec.error(format!("put: {e}")),
            Err(_) => rec.timeouts += 1,
        }
    }
    let acked = acks.iter().filter(|a| a.is_some()).count() as u64;
    let expected = acked * args.watchers as u64;
    let grace_end = Instant::now() + Duration::from_secs_f64(args.grace);
    while total.load(Ordering::Relaxed) < expected && Instant::now() < grace_end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = start.elapsed();
    let _ = stop_tx.send(true);

    let mut from_send = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let (mut before_ack, mut without_ack, mut missing) = (0u64, 0u64, 0u64);
    for h in handles {
        let got = h.await?;
        rec.merge(got.rec);
        let mut seen = vec![false; puts as usize];
        for (seq, at) in got.events {
            match acks.get(seq as usize).copied().flatten() {
                Some((sent, acked)) if !seen[seq as usize] => {
                    seen[seq as usize] = true;
                    if at < acked {
                        before_ack += 1;
                    }
                    rec.record(None, at.saturating_duration_since(acked));
                    from_send
                        .record(at.saturating_duration_since(sent).as_micros().max(1) as u64)?;
                }
                _ => without_ack += 1,
            }
        }
        missing += acks
            .iter()
            .zip(&seen)
            .filter(|(a, s)| a.is_some() && !**s)
            .count() as u64;
    }
    rec.timeouts += missing;

    let out = RunOutput {
        recorder: rec,
        elapsed,
    };
    let what = format!(
        "{}, 1 writer on the leader at {} puts/s",
        crate::summary::n(args.watchers as u64, "watcher"),
        args.put_rate
    );
    let mut s1 = s.clone();
    s1.clients = args.watchers;
    let mut r = workloads::result(&s1, &watch_pool, out, "watch-latency", &what)
        .param("watchers", args.watchers)
        .param("put_rate", args.put_rate);
    let put_p = Percentiles::of(&put_hist);
    let send_p = Percentiles::of(&from_send);
    for (k, v) in [
        ("puts_acked", acked as f64),
        ("missing_events", missing as f64),
        ("events_before_ack", before_ack as f64),
        ("events_without_ack", without_ack as f64),
        ("put_p50_ms", put_p.p50),
        ("put_p99_ms", put_p.p99),
        ("send_to_event_p50_ms", send_p.p50),
        ("send_to_event_p99_ms", send_p.p99),
    ] {
        r.extra.insert(k.to_string(), v);
    }
    Ok(r)
}
