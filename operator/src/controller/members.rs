//! The membership state machine (pure): from what the operator observes of the pods and of the
//! Raft membership, the one next step that brings the cluster closer to `spec.replicas`.
//!
//! Changes happen one at a time and only while the cluster has a quorum. Every step can be
//! interrupted and recomputed from observation alone: the plan never depends on memory of an
//! earlier reconcile, so a restarted operator resumes where the cluster is.
//!
//! Scale up: add member `k` as a learner (MemberAdd, learner) → create pod `k` (StatefulSet
//! slots) → promote once caught up. Scale down: move leadership away from the member to remove
//! → remove it from Raft → delete its pod (slots); the StatefulSet's volume policy applies.
//! A pod that is missing or failing is never read as a scale down.
//!
//! Replacement: a member whose pod came back with an empty volume (the store exits with
//! [`kvstore::server::EXIT_DATA_LOST`]) is removed and added again as a new member.
//! Rolling update: once membership is as asked and every member is ready, pods whose template
//! is out of date are restarted one at a time, followers first; the leader hands leadership to
//! an updated member before its own pod goes.

/// A member as the Raft membership lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftMember {
    /// Member id.
    pub id: u64,
    /// Ordinal of the pod it belongs to (from its peer URL).
    pub ordinal: i32,
    /// A learner (not voting yet).
    pub learner: bool,
    /// It has run at least once (it published its name).
    pub started: bool,
}

/// What the operator saw of one member pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    /// Ordinal.
    pub ordinal: i32,
    /// The Ready condition is True.
    pub ready: bool,
    /// Built from the current pod template (else a rolling update restarts it).
    pub current: bool,
    /// Its store refused to start because its data dir is empty while the cluster knows it.
    pub lost_data: bool,
}

/// What the operator observed this round.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// `spec.replicas`.
    pub desired: i32,
    /// StatefulSet replicas (member slots); 0 when there is no StatefulSet yet.
    pub slots: i32,
    /// Whether the cluster has been bootstrapped (a member reported a cluster id).
    pub bootstrapped: bool,
    /// The leader's member id, when one answered.
    pub leader: Option<u64>,
    /// The Raft membership, when a member answered.
    pub members: Vec<RaftMember>,
    /// Members that answered a Status call and know a leader.
    pub answered: Vec<u64>,
    /// The member pods that exist.
    pub pods: Vec<PodFacts>,
}

impl Observed {
    fn pod(&self, ordinal: i32) -> Option<&PodFacts> {
        self.pods.iter().find(|p| p.ordinal == ordinal)
    }
}

/// The next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the StatefulSet with member 0 alone, which bootstraps the cluster.
    Bootstrap,
    /// Wait: nothing may change now.
    Wait(&'static str),
    /// Add the member of pod `ordinal` as a learner.
    AddLearner {
        /// Pod ordinal.
        ordinal: i32,
    },
    /// Run this many pods.
    SetSlots(i32),
    /// Promote a caught-up learner.
    Promote {
        /// Member id.
        id: u64,
    },
    /// Move leadership to another voter before removing the leader.
    MoveLeader {
        /// From.
        from: u64,
        /// To.
        to: u64,
    },
    /// Remove a member from Raft.
    Remove {
        /// Member id.
        id: u64,
    },
    /// Remove a member that lost its data, so that it can be added again as a new member.
    Replace {
        /// Member id.
        id: u64,
    },
    /// Delete a pod so that it comes back from the current template (rolling update).
    Restart {
        /// Pod ordinal.
        ordinal: i32,
    },
    /// The cluster is as asked.
    Done,
}

/// Decide the next step.
pub fn next_step(o: &Observed) -> Step {
    if o.slots == 0 {
        return Step::Bootstrap;
    }
    if !o.bootstrapped {
        return Step::Wait("waiting for member 0 to bootstrap the cluster");
    }
    let Some(leader) = o.leader else {
        return Step::Wait("no leader: membership changes wait for a quorum");
    };
    // A member whose data is lost is not running; removing it never costs quorum.
    if let Some(m) = o
        .members
        .iter()
        .find(|m| m.started && m.id != leader && o.pod(m.ordinal).is_some_and(|p| p.lost_data))
    {
        return Step::Replace { id: m.id };
    }
    let max_ordinal = o.members.iter().map(|m| m.ordinal).max().unwrap_or(-1);
    // A learner first: give it a pod, then promote it.
    if let Some(l) = o
        .members
        .iter()
        .filter(|m| m.learner)
        .min_by_key(|m| m.ordinal)
    {
        if l.ordinal >= o.slots {
            return Step::SetSlots(l.ordinal + 1);
        }
        if (o.members.len() as i32) > o.desired && l.ordinal >= o.desired {
            // Scaled back down before it was promoted: drop it.
            return Step::Remove { id: l.id };
        }
        return Step::Promote { id: l.id };
    }
    let count = o.members.len() as i32;
    if count < o.desired {
        let ordinal = (0..)
            .find(|k| !o.members.iter().any(|m| m.ordinal == *k))
            .unwrap_or(count);
        return Step::AddLearner { ordinal };
    }
    if count > o.desired {
        let victim = o
            .members
            .iter()
            .max_by_key(|m| m.ordinal)
            .expect("count > desired >= 1");
        if victim.id == leader {
            let to = o
                .members
                .iter()
                .filter(|m| m.id != leader && !m.learner)
                .min_by_key(|m| m.ordinal)
                .map(|m| m.id);
            return match to {
                Some(to) => Step::MoveLeader { from: leader, to },
                None => Step::Wait("no other voter to hand leadership to"),
            };
        }
        return Step::Remove { id: victim.id };
    }
    // Pods of removed members go; a member without a pod gets one back.
    if o.slots != max_ordinal + 1 {
        return Step::SetSlots(max_ordinal + 1);
    }
    roll(o, leader)
}

/// The rolling-update step, once membership is as asked.
fn roll(o: &Observed, leader: u64) -> Step {
    let stale: Vec<&RaftMember> = o
        .members
        .iter()
        .filter(|m| o.pod(m.ordinal).is_some_and(|p| !p.current))
        .collect();
    if stale.is_empty() {
        return Step::Done;
    }
    let all_well = o.members.iter().all(|m| {
        !m.learner && o.answered.contains(&m.id) && o.pod(m.ordinal).is_some_and(|p| p.ready)
    });
    if !all_well {
        return Step::Wait("the rolling update waits until every member is ready and healthy");
    }
    if let Some(m) = stale
        .iter()
        .filter(|m| m.id != leader)
        .max_by_key(|m| m.ordinal)
    {
        return Step::Restart { ordinal: m.ordinal };
    }
    // Only the leader is left: hand leadership to an updated voter first.
    let to = o
        .members
        .iter()
        .filter(|m| m.id != leader)
        .min_by_key(|m| m.ordinal)
        .map(|m| m.id);
    match to {
        Some(to) => Step::MoveLeader { from: leader, to },
        None => Step::Restart {
            ordinal: stale[0].ordinal,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters(n: i32) -> Vec<RaftMember> {
        (0..n)
            .map(|i| RaftMember {
                id: 100 + i as u64,
                ordinal: i,
                learner: false,
                started: true,
            })
            .collect()
    }

    /// Healthy pods (ready, current) and answers for every member.
    fn all_well(o: &mut Observed) {
        o.answered = o.members.iter().map(|m| m.id).collect();
        o.pods = (0..o.slots)
            .map(|ordinal| PodFacts {
                ordinal,
                ready: true,
                current: true,
                lost_data: false,
            })
            .collect();
    }

    fn observed(desired: i32, slots: i32, members: Vec<RaftMember>) -> Observed {
        Observed {
            desired,
            slots,
            bootstrapped: true,
            leader: Some(100),
            members,
            ..Default::default()
        }
    }

    /// Apply a step to the observation as the cluster would, to drive a whole scenario.
    fn apply(o: &mut Observed, s: &Step) {
        match s {
            Step::Bootstrap => {
                o.slots = 1;
                o.bootstrapped = true;
                o.leader = Some(100);
                o.members = voters(1);
            }
            Step::AddLearner { ordinal } => {
                // A member added again gets a new id.
                let mut id = 100 + *ordinal as u64;
                if o.pods.iter().any(|p| p.ordinal == *ordinal && p.lost_data) {
                    id += 100;
                }
                o.members.push(RaftMember {
                    id,
                    ordinal: *ordinal,
                    learner: true,
                    started: false,
                })
            }
            Step::SetSlots(n) => o.slots = *n,
            Step::Promote { id } => {
                // Promotion succeeds once the new member runs: its pod is healthy again.
                let m = o.members.iter_mut().find(|m| m.id == *id).unwrap();
                m.learner = false;
                m.started = true;
                let ordinal = m.ordinal;
                o.pods
                    .iter_mut()
                    .filter(|p| p.ordinal == ordinal)
                    .for_each(|p| p.lost_data = false);
            }
            Step::MoveLeader { to, .. } => o.leader = Some(*to),
            Step::Remove { id } | Step::Replace { id } => o.members.retain(|m| m.id != *id),
            Step::Restart { ordinal } => o
                .pods
                .iter_mut()
                .filter(|p| p.ordinal == *ordinal)
                .for_each(|p| p.current = true),
            Step::Wait(_) | Step::Done => {}
        }
    }

    fn run(o: &mut Observed) -> Vec<Step> {
        let mut steps = Vec::new();
        for _ in 0..50 {
            let s = next_step(o);
            if s == Step::Done {
                return steps;
            }
            apply(o, &s);
            steps.push(s);
        }
        panic!("did not converge: {steps:?}");
    }

    #[test]
    fn creates_then_grows_one_member_at_a_time() {
        let mut o = Observed {
            desired: 3,
            ..Default::default()
        };
        let steps = run(&mut o);
        assert_eq!(
            steps,
            vec![
                Step::Bootstrap,
                Step::AddLearner { ordinal: 1 },
                Step::SetSlots(2),
                Step::Promote { id: 101 },
                Step::AddLearner { ordinal: 2 },
                Step::SetSlots(3),
                Step::Promote { id: 102 },
            ]
        );
        assert_eq!(o.slots, 3);
        assert!(o.members.iter().all(|m| !m.learner));
    }

    #[test]
    fn shrinks_from_the_highest_ordinal_leader_last() {
        let mut o = observed(3, 5, voters(5));
        o.leader = Some(104);
        let steps = run(&mut o);
        assert_eq!(
            steps,
            vec![
                Step::MoveLeader { from: 104, to: 100 },
                Step::Remove { id: 104 },
                Step::Remove { id: 103 },
                Step::SetSlots(3),
            ]
        );
    }

    #[test]
    fn never_changes_membership_without_quorum_or_before_bootstrap() {
        let mut o = observed(5, 3, voters(3));
        o.leader = None;
        assert!(matches!(next_step(&o), Step::Wait(_)));
        let o = Observed {
            desired: 3,
            slots: 1,
            ..Default::default()
        };
        assert!(matches!(next_step(&o), Step::Wait(_)));
    }

    #[test]
    fn resumes_after_a_restart_at_every_step_of_a_scale_up() {
        // Interrupt the 3 -> 5 scale up after each step and recompute from observation only.
        let mut reference = observed(5, 3, voters(3));
        let steps = run(&mut reference.clone());
        for cut in 0..steps.len() {
            let mut o = observed(5, 3, voters(3));
            for s in &steps[..cut] {
                apply(&mut o, s);
            }
            let rest = run(&mut o);
            assert_eq!(rest, steps[cut..].to_vec(), "resuming after {cut} steps");
        }
        run(&mut reference);
        assert_eq!(reference.members.len(), 5);
    }

    #[test]
    fn a_missing_pod_is_not_a_scale_down() {
        // Pod 2 is gone (slots still 3, member still listed): nothing to do membership-wise.
        let o = observed(3, 3, voters(3));
        assert_eq!(next_step(&o), Step::Done);
    }

    #[test]
    fn a_learner_left_over_from_a_reverted_scale_up_is_removed() {
        let mut members = voters(3);
        members.push(RaftMember {
            id: 103,
            ordinal: 3,
            learner: true,
            started: false,
        });
        let mut o = observed(3, 4, members);
        let steps = run(&mut o);
        assert_eq!(steps, vec![Step::Remove { id: 103 }, Step::SetSlots(3)]);
    }

    #[test]
    fn a_member_that_lost_its_data_is_removed_and_added_again() {
        let mut o = observed(3, 3, voters(3));
        all_well(&mut o);
        o.pods[1].lost_data = true;
        o.pods[1].ready = false;
        let steps = run(&mut o);
        assert_eq!(
            steps,
            vec![
                Step::Replace { id: 101 },
                Step::AddLearner { ordinal: 1 },
                Step::Promote { id: 201 },
            ]
        );
        // A lost member that never started (just added again) is not replaced twice.
        let mut o = observed(3, 3, voters(2));
        all_well(&mut o);
        o.members.push(RaftMember {
            id: 201,
            ordinal: 2,
            learner: true,
            started: false,
        });
        o.pods[2].lost_data = true;
        assert_eq!(next_step(&o), Step::Promote { id: 201 });
    }

    #[test]
    fn a_rolling_update_restarts_followers_first_and_the_leader_last() {
        let mut o = observed(3, 3, voters(3));
        o.leader = Some(101);
        all_well(&mut o);
        o.pods.iter_mut().for_each(|p| p.current = false);
        let steps = run(&mut o);
        assert_eq!(
            steps,
            vec![
                Step::Restart { ordinal: 2 },
                Step::Restart { ordinal: 0 },
                Step::MoveLeader { from: 101, to: 100 },
                Step::Restart { ordinal: 1 },
            ]
        );
    }

    #[test]
    fn a_rolling_update_waits_while_a_member_is_unhealthy() {
        let mut o = observed(3, 3, voters(3));
        all_well(&mut o);
        o.pods.iter_mut().for_each(|p| p.current = false);
        o.pods[0].current = true;
        o.pods[0].ready = false; // just restarted, not ready yet
        assert!(matches!(next_step(&o), Step::Wait(_)));
        o.pods[0].ready = true;
        o.answered.retain(|id| *id != 102);
        assert!(matches!(next_step(&o), Step::Wait(_)));
        o.answered.push(102);
        assert_eq!(next_step(&o), Step::Restart { ordinal: 2 });
    }

    #[test]
    fn a_single_member_is_restarted_in_place() {
        let mut o = observed(1, 1, voters(1));
        all_well(&mut o);
        o.pods[0].current = false;
        assert_eq!(next_step(&o), Step::Restart { ordinal: 0 });
    }
}
