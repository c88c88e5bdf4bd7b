//! The leader's lease clock: when each lease expires, keep-alives that push it back, and the
//! expiry loop that revokes expired leases through Raft.
//!
//! Only the leader's clock counts. A new leader starts every lease afresh with its full TTL, as
//! etcd does, so a leader change never expires a lease early. Followers forward keep-alives and
//! time-to-live queries to the leader.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::EtcdError;
use crate::node::Node;
use crate::raft::Command;

/// A lease query forwarded to the leader.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum LeaseOp {
    /// Renew; answers the TTL (0 when the lease is unknown).
    KeepAlive(i64),
    /// Remaining TTL (-1 when unknown).
    TimeToLive(i64),
}

/// Lease deadlines as kept by the leader.
#[derive(Default)]
pub struct Lessor {
    state: Mutex<ClockState>,
}

#[derive(Default)]
struct ClockState {
    /// The term in which the deadlines were set (0 = not leader).
    term: u64,
    deadlines: HashMap<i64, Instant>,
}

impl Lessor {
    /// Start (or keep) the clock for `term`: a new term starts every lease afresh.
    fn enter_term(&self, term: u64, leases: &[(i64, i64)]) {
        let mut s = self.state.lock().expect("lessor poisoned");
        let now = Instant::now();
        if s.term != term {
            s.term = term;
            s.deadlines.clear();
        }
        let live: std::collections::HashSet<i64> = leases.iter().map(|(id, _)| *id).collect();
        s.deadlines.retain(|id, _| live.contains(id));
        for (id, ttl) in leases {
            s.deadlines
                .entry(*id)
                .or_insert(now + Duration::from_secs(*ttl as u64));
        }
    }

    fn leave(&self) {
        let mut s = self.state.lock().expect("lessor poisoned");
        s.term = 0;
        s.deadlines.clear();
    }

    fn expired(&self) -> Vec<i64> {
        let s = self.state.lock().expect("lessor poisoned");
        let now = Instant::now();
        s.deadlines
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    fn renew(&self, id: i64, ttl: i64) {
        let mut s = self.state.lock().expect("lessor poisoned");
        s.deadlines
            .insert(id, Instant::now() + Duration::from_secs(ttl as u64));
    }

    fn remaining(&self, id: i64, ttl: i64) -> i64 {
        let s = self.state.lock().expect("lessor poisoned");
        match s.deadlines.get(&id) {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_secs_f64().ceil() as i64
            }
            None => ttl,
        }
    }
}

impl Node {
    fn lease_ttl(&self, id: i64) -> Option<i64> {
        self.sm
            .leases()
            .ok()?
            .into_iter()
            .find(|(l, _)| *l == id)
            .map(|(_, r)| r.ttl)
    }

    /// Answer a lease query as the leader.
    pub fn lease_local(&self, op: LeaseOp) -> Result<i64, EtcdError> {
        if self.raft.metrics().borrow().current_leader != Some(self.id) {
            return Err(EtcdError::NotLeader);
        }
        Ok(match op {
            LeaseOp::KeepAlive(id) => match self.lease_ttl(id) {
                Some(ttl) => {
                    self.lessor.renew(id, ttl);
                    ttl
                }
                None => 0,
            },
            LeaseOp::TimeToLive(id) => match self.lease_ttl(id) {
                Some(ttl) => self.lessor.remaining(id, ttl),
                None => -1,
            },
        })
    }

    /// Answer a lease query here if leader, else at the leader.
    pub async fn lease_op(&self, op: LeaseOp) -> Result<i64, EtcdError> {
        let deadline = Instant::now() + self.settings.request_timeout;
        loop {
            let res = match self.leader_url() {
                Some((lid, _)) if lid == self.id => self.lease_local(op),
                Some((_, url)) => match self.peers.lease(&url, op).await {
                    Ok(r) => r,
                    Err(_) => Err(EtcdError::NotLeader),
                },
                None => Err(EtcdError::NotLeader),
            };
            match res {
                Err(EtcdError::NotLeader) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(EtcdError::NotLeader) => return Err(EtcdError::NoLeader),
                other => return other,
            }
        }
    }
}

/// The leader's expiry loop: revoke leases whose deadline passed.
pub async fn expiry_loop(node: Weak<Node>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(n) = node.upgrade() else { return };
        let m = n.metrics();
        if m.current_leader != Some(n.id) {
            n.lessor.leave();
            continue;
        }
        let leases: Vec<(i64, i64)> =
            n.sm.leases()
                .unwrap_or_default()
                .into_iter()
                .map(|(id, r)| (id, r.ttl))
                .collect();
        n.lessor.enter_term(m.current_term, &leases);
        for id in n.lessor.expired() {
            match n.propose_local(Command::LeaseRevoke { id }).await {
                Ok(_) => tracing::info!(lease = %format!("{id:016x}"), "lease expired and revoked"),
                Err(e) => {
                    tracing::debug!(lease = %format!("{id:016x}"), error = %e, "lease revoke failed")
                }
            }
            // Either revoked or already gone: forget it; a failure is retried next round.
            let mut s = n.lessor.state.lock().expect("lessor poisoned");
            s.deadlines.remove(&id);
        }
    }
}
