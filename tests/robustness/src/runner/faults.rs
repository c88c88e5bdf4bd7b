//! Faults, injected one at a time while the traffic runs: kill -9 of a member, of the leader
//! or of every member; SIGSTOP pauses; peer partitions; a member kept down until the others
//! have written enough to need a snapshot to catch it up; defragmentation. After each, the
//! cluster is healed and must serve again before the next one.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cluster::{Cluster, connect};
use super::partition::Partitions;
use super::traffic::Shared;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
pub enum Fault {
    /// kill -9 of a random member, restarted after a moment.
    KillMember,
    /// kill -9 of the leader, restarted after a moment.
    KillLeader,
    /// kill -9 of every member at once, all restarted.
    KillAll,
    /// SIGSTOP of a random member, SIGCONT after a moment.
    Pause,
    /// A member cut off from its peers (clients still reach it), healed after a moment.
    Partition,
    /// A follower killed until the others wrote enough for it to need a snapshot.
    Behind,
    /// Defragmentation of a random member while the traffic runs.
    Defragment,
}

/// Every fault kind.
pub const ALL: [Fault; 7] = [
    Fault::KillMember,
    Fault::KillLeader,
    Fault::KillAll,
    Fault::Pause,
    Fault::Partition,
    Fault::Behind,
    Fault::Defragment,
];

/// Injects faults into a cluster.
pub struct Injector {
    rng: StdRng,
    kinds: Vec<Fault>,
    partitions: Partitions,
    snapshot_count: i64,
    /// Faults injected, by kind.
    pub counts: BTreeMap<Fault, u32>,
}

impl Injector {
    /// An injector choosing among `kinds` (partitions dropped where iptables cannot make them).
    pub fn new(seed: u64, kinds: &[Fault], snapshot_count: i64) -> Injector {
        let mut kinds = kinds.to_vec();
        if !Partitions::available() {
            eprintln!("kv-robustness: not root or no iptables: no partitions in this run");
            kinds.retain(|k| *k != Fault::Partition);
        }
        Injector {
            rng: StdRng::seed_from_u64(seed),
            kinds,
            partitions: Partitions::new(),
            snapshot_count,
            counts: BTreeMap::new(),
        }
    }

    /// Inject faults until `until`, one every 1 to 3 s, healing and waiting for the cluster to
    /// serve after each.
    pub async fn run(
        &mut self,
        cluster: &mut Cluster,
        shared: &Shared,
        until: Instant,
    ) -> Result<()> {
        while Instant::now() < until && !self.kinds.is_empty() {
            let pause = Duration::from_millis(self.rng.random_range(1000..3000));
            tokio::time::sleep(pause).await;
            if Instant::now() >= until {
                break;
            }
            let kind = self.kinds[self.rng.random_range(0..self.kinds.len())];
            eprintln!(
                "kv-robustness: {:>6.1}s {kind:?}",
                shared.start.elapsed().as_secs_f64()
            );
            self.inject(kind, cluster, shared)
                .await
                .with_context(|| format!("inject {kind:?}"))?;
            *self.counts.entry(kind).or_default() += 1;
            self.heal(cluster)?;
            cluster
                .wait_healthy(Duration::from_secs(60))
                .await
                .with_context(|| format!("the cluster did not recover from {kind:?}"))?;
        }
        Ok(())
    }

    /// Undo every fault: partitions removed, paused members woken, stopped ones started.
    pub fn heal(&mut self, cluster: &mut Cluster) -> Result<()> {
        self.partitions.heal()?;
        cluster.start_all()
    }

    async fn inject(&mut self, kind: Fault, cluster: &mut Cluster, shared: &Shared) -> Result<()> {
        let n = cluster.len();
        let random = self.rng.random_range(0..n);
        let moment = Duration::from_millis(self.rng.random_range(300..2500));
        match kind {
            Fault::KillMember => {
                cluster.kill(random);
                tokio::time::sleep(moment).await;
            }
            Fault::KillLeader => {
                let leader = cluster.leader().await.unwrap_or(random);
                cluster.kill(leader);
                tokio::time::sleep(moment).await;
            }
            Fault::KillAll => {
                for i in 0..n {
                    cluster.kill(i);
                }
                tokio::time::sleep(moment.min(Duration::from_millis(800))).await;
            }
            Fault::Pause => {
                cluster.pause(random)?;
                tokio::time::sleep(moment).await;
                cluster.resume(random)?;
            }
            Fault::Partition => {
                let m = &cluster.members()[random];
                let uid = m.uid().context("members run under their own uid")?;
                let own = m.peer_port();
                let others: Vec<u16> = cluster
                    .members()
                    .iter()
                    .filter(|o| o.name != m.name)
                    .map(|o| o.peer_port())
                    .collect();
                self.partitions.isolate(uid, own, &others)?;
                tokio::time::sleep(moment + Duration::from_millis(500)).await;
            }
            Fault::Behind => {
                let leader = cluster.leader().await.unwrap_or(0);
                let victim = (leader + 1 + self.rng.random_range(0..n - 1)) % n;
                cluster.kill(victim);
                // Enough new requests for the leader to snapshot and purge past the victim.
                let from = shared.revision.load(Ordering::Relaxed);
                let deadline = Instant::now() + Duration::from_secs(8);
                while shared.revision.load(Ordering::Relaxed) < from + 3 * self.snapshot_count
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Fault::Defragment => {
                let url = cluster.members()[random].client_url();
                let mut c = connect(&url).await?;
                match tokio::time::timeout(Duration::from_secs(10), c.defragment()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => bail!("defragment {url}: {e}"),
                    Err(_) => bail!("defragment {url}: no answer in 10 s"),
                }
            }
        }
        Ok(())
    }
}

/// The faults of a run, by kind, for the report.
pub fn summary(counts: &BTreeMap<Fault, u32>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k:?} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
