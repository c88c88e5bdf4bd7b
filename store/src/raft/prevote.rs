//! Elections with a pre-vote, as etcd runs them. openraft 0.9 campaigns as soon as a follower's
//! election timer fires, and a leader that sees the higher term steps down, even when the
//! candidate's log is too short to win. A member that the leader cannot reach for a moment (a
//! pod back under a new address) would so depose a healthy leader, and a rolling restart would
//! cost an election per member. Here openraft's own election timer stays off in clusters of
//! more than one voter; [`run`] keeps the timer instead and, when it fires, first asks the
//! other voters whether they would vote: only a member that a quorum would elect (none of
//! them hears from a leader, and its log is as long as theirs) campaigns.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openraft::RaftMetrics;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::network::Peers;
use super::{PeerNode, Raft};

/// When this member last heard from a leader (an AppendEntries or snapshot it accepted), or
/// was the leader itself.
#[derive(Debug)]
pub struct LeaderContact {
    base: Instant,
    last_ms: AtomicU64,
}

impl Default for LeaderContact {
    fn default() -> Self {
        LeaderContact {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl LeaderContact {
    /// A leader was heard now.
    pub fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Time since a leader was last heard (since start when never).
    pub fn since(&self) -> Duration {
        let now = self.base.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A pre-vote request: the index of the would-be candidate's last log entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVote {
    /// The candidate's last log index.
    pub last_log_index: Option<u64>,
}

/// The answer to `req` from a member with `metrics` that last heard a leader `since` ago:
/// yes when it is no leader itself, has heard none for an election timeout, and the
/// candidate's log is at least as long as its own. (Indexes only: the vote that follows
/// compares whole log ids; this only keeps members that cannot win from trying.)
pub fn grant(
    req: &PreVote,
    metrics: &RaftMetrics<u64, PeerNode>,
    since: Duration,
    election_timeout: Duration,
) -> bool {
    metrics.current_leader != Some(metrics.id)
        && since >= election_timeout
        && req.last_log_index >= metrics.last_log_index
}

/// Drive elections for `raft` (see the module header). Runs until Raft shuts down.
///
/// The timer runs from the last time a leader was heard and, separately, from this member's
/// own last pre-vote: a failed pre-vote is not leader contact, so it does not keep this member
/// from granting the next one another member asks for (as in etcd, where a pre-candidate has
/// no leader).
pub async fn run(raft: Raft, peers: Peers, contact: Arc<LeaderContact>) {
    let cfg = raft.config();
    let (et, lease) = (cfg.election_timeout_min, cfg.election_timeout_max);
    let mut rx = raft.metrics();
    let mut timeout: Option<Duration> = None;
    let mut last_try: Option<Instant> = None;
    let mut own_elections = true;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let m = rx.borrow_and_update().clone();
        if m.running_state.is_err() {
            return;
        }
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        // One voter: nobody to ask, openraft's timer decides.
        let single = voters.len() <= 1;
        if single != own_elections {
            raft.runtime_config().elect(single);
            own_elections = single;
        }
        if single || !voters.contains(&m.id) {
            continue;
        }
        if m.current_leader == Some(m.id) {
            contact.touch();
            continue;
        }
        let due = *timeout.get_or_insert_with(|| draw(et, lease));
        if contact.since() < due || last_try.is_some_and(|t| t.elapsed() < due) {
            continue;
        }
        timeout = Some(draw(et, lease));
        last_try = Some(Instant::now());
        let req = PreVote {
            last_log_index: m.last_log_index,
        };
        let asks = voters.iter().filter(|v| **v != m.id).filter_map(|v| {
            let url = membership.get_node(v)?.peer_urls.first()?.clone();
            let (peers, req) = (peers.clone(), req.clone());
            Some(async move { peers.pre_vote(&url, &req).await.unwrap_or(false) })
        });
        let granted = 1 + futures::future::join_all(asks)
            .await
            .into_iter()
            .filter(|g| *g)
            .count();
        if granted * 2 > voters.len() {
            tracing::info!(granted, voters = voters.len(), "pre-vote won: campaigning");
            let _ = raft.trigger().elect().await;
        } else {
            tracing::info!(
                granted,
                voters = voters.len(),
                "pre-vote lost: not campaigning"
            );
        }
    }
}

/// A randomized election timeout, from one to two election timeouts (`et` ms), and never
/// shorter than the leader lease (`lease` ms) the voters hold against a candidate.
fn draw(et: u64, lease: u64) -> Duration {
    let r = rand::rng().random_range(et..=et.saturating_mul(2).max(et));
    Duration::from_millis(r.max(lease))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_counts_from_the_last_touch() {
        let c = LeaderContact::default();
        std::thread::sleep(Duration::from_millis(30));
        assert!(c.since() >= Duration::from_millis(30));
        c.touch();
        assert!(c.since() < Duration::from_millis(30));
    }

    #[test]
    fn votes_only_without_a_leader_for_a_log_as_long() {
        let et = Duration::from_secs(1);
        let mut m = RaftMetrics::<u64, PeerNode>::new_initial(1);
        m.last_log_index = Some(10);
        let req = |i| PreVote {
            last_log_index: Some(i),
        };
        assert!(grant(&req(10), &m, Duration::from_secs(2), et));
        assert!(
            !grant(&req(9), &m, Duration::from_secs(2), et),
            "shorter log"
        );
        assert!(
            !grant(&req(10), &m, Duration::from_millis(300), et),
            "a leader heard lately"
        );
        m.current_leader = Some(1);
        assert!(
            !grant(&req(10), &m, Duration::from_secs(2), et),
            "the leader itself"
        );
    }

    #[test]
    fn timeouts_are_randomized_and_outlast_the_lease() {
        for _ in 0..50 {
            let d = draw(1000, 1001).as_millis();
            assert!((1001..=2000).contains(&d), "{d}");
            let d = draw(1000, 2500).as_millis();
            assert_eq!(d, 2500);
        }
    }
}
