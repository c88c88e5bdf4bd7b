//! The in-place restore procedure as a state machine (pure).
//!
//! The phase is kept in `status.restore.phase`; every reconcile calls [`advance`] with that
//! phase and what it observes now, and gets the phase to record and the one action to take.
//! A phase whose work is already visible is passed through, so an operator restarted at any
//! point, or an action that failed and is retried, resumes where the cluster is.
//!
//! Order, and why: the source is verified (checksum) before anything is touched, so a corrupt
//! or missing backup leaves the cluster as it was; a safety backup of the current data comes
//! next; client traffic stops (the client Service selects no pod) before members stop; the
//! volumes of members other than the first are deleted while every member is stopped, so no
//! member with old data can rejoin (their cluster id stamp would refuse it anyway); the first
//! member starts from the snapshot under a new cluster id; the others join it as new members
//! (learners, then voters); traffic resumes.

/// Where a restore is (in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Download the source and check its SHA-256 against its metadata.
    Verifying,
    /// Back up the current data first.
    SafetyBackup,
    /// Make the client Service select no pod.
    StoppingTraffic,
    /// Scale the members to zero.
    StoppingMembers,
    /// Delete the volumes of every member but the first.
    Restoring,
    /// Start the first member from the snapshot (new cluster id).
    Starting,
    /// Add the other members back, one at a time.
    AddingMembers,
    /// Let clients in again.
    ResumingTraffic,
    /// Done.
    Complete,
    /// Stopped; `status.restore.message` says why.
    Failed,
}

impl Phase {
    /// The name recorded in status.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Verifying => "Verifying",
            Phase::SafetyBackup => "SafetyBackup",
            Phase::StoppingTraffic => "StoppingTraffic",
            Phase::StoppingMembers => "StoppingMembers",
            Phase::Restoring => "Restoring",
            Phase::Starting => "Starting",
            Phase::AddingMembers => "AddingMembers",
            Phase::ResumingTraffic => "ResumingTraffic",
            Phase::Complete => "Complete",
            Phase::Failed => "Failed",
        }
    }

    /// The phase of a name recorded in status.
    pub fn parse(s: &str) -> Option<Phase> {
        ALL.iter().copied().find(|p| p.name() == s)
    }
}

const ALL: [Phase; 10] = [
    Phase::Verifying,
    Phase::SafetyBackup,
    Phase::StoppingTraffic,
    Phase::StoppingMembers,
    Phase::Restoring,
    Phase::Starting,
    Phase::AddingMembers,
    Phase::ResumingTraffic,
    Phase::Complete,
    Phase::Failed,
];

/// What the controller sees this round.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Result of verifying the source: `None` not done yet, `Some(Err(reason))` refused.
    pub verified: Option<Result<(), String>>,
    /// A safety backup is wanted (`spec.restore.safetyBackup`).
    pub safety_wanted: bool,
    /// The safety backup taken (its URI), if any.
    pub safety_backup: Option<String>,
    /// The client Service selects no pod.
    pub traffic_stopped: bool,
    /// Member pods that exist.
    pub pods: i32,
    /// Volumes of members other than the first that still exist.
    pub other_volumes: i32,
    /// The first member serves the restored data (it reports the new cluster id).
    pub first_restored: bool,
    /// The first member's restore failed for good (e.g. its checksum check refused the object).
    pub first_failed: Option<String>,
    /// Voters now, and how many are wanted.
    pub voters: i32,
    /// `spec.replicas`.
    pub desired: i32,
}

/// The one thing to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Download and check the source.
    Verify,
    /// Take the safety backup.
    TakeSafetyBackup,
    /// Point the client Service at no pod.
    StopTraffic,
    /// Scale the StatefulSet to zero and wait for the pods to go.
    ScaleToZero,
    /// Delete the volumes of members `1..`.
    DeleteOtherVolumes,
    /// Run the first member with the restore step in front of it.
    StartFirstMember,
    /// Let the membership machinery add the others.
    AddMembers,
    /// Point the client Service at the members again.
    ResumeTraffic,
    /// Nothing (complete or failed).
    None,
}

/// From the recorded phase and what is observed: the phase to record, the action, and for a
/// failure the reason.
pub fn advance(phase: Phase, o: &Observed) -> (Phase, Action, Option<String>) {
    let mut p = phase;
    loop {
        let (next, action) = match p {
            Phase::Verifying => match &o.verified {
                None => (p, Action::Verify),
                Some(Err(why)) => {
                    return (
                        Phase::Failed,
                        Action::None,
                        Some(format!(
                            "the backup was refused, nothing was changed: {why}"
                        )),
                    );
                }
                Some(Ok(())) => (Phase::SafetyBackup, Action::None),
            },
            Phase::SafetyBackup if !o.safety_wanted || o.safety_backup.is_some() => {
                (Phase::StoppingTraffic, Action::None)
            }
            Phase::SafetyBackup => (p, Action::TakeSafetyBackup),
            Phase::StoppingTraffic if o.traffic_stopped => (Phase::StoppingMembers, Action::None),
            Phase::StoppingTraffic => (p, Action::StopTraffic),
            Phase::StoppingMembers if o.pods == 0 => (Phase::Restoring, Action::None),
            Phase::StoppingMembers => (p, Action::ScaleToZero),
            Phase::Restoring if o.other_volumes == 0 => (Phase::Starting, Action::None),
            Phase::Restoring => (p, Action::DeleteOtherVolumes),
            Phase::Starting => {
                if let Some(why) = &o.first_failed {
                    let safety = o
                        .safety_backup
                        .as_deref()
                        .map(|u| format!("; the data before the restore is in {u}"))
                        .unwrap_or_default();
                    return (
                        Phase::Failed,
                        Action::None,
                        Some(format!(
                            "the first member could not start from the backup: {why}; the \
                             members are stopped and client traffic is off{safety}"
                        )),
                    );
                }
                if o.first_restored {
                    (Phase::AddingMembers, Action::None)
                } else {
                    (p, Action::StartFirstMember)
                }
            }
            Phase::AddingMembers if o.voters >= o.desired => (Phase::ResumingTraffic, Action::None),
            Phase::AddingMembers => (p, Action::AddMembers),
            Phase::ResumingTraffic if !o.traffic_stopped => (Phase::Complete, Action::None),
            Phase::ResumingTraffic => (p, Action::ResumeTraffic),
            Phase::Complete | Phase::Failed => return (p, Action::None, None),
        };
        if next == p {
            return (p, action, None);
        }
        p = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster as the actions change it.
    #[derive(Debug, Clone)]
    struct World {
        o: Observed,
        /// Actions that fail (have no effect) the next time they run.
        failing: Vec<Action>,
    }

    impl World {
        fn new(desired: i32) -> World {
            World {
                o: Observed {
                    safety_wanted: true,
                    pods: desired,
                    other_volumes: desired - 1,
                    voters: desired,
                    desired,
                    ..Default::default()
                },
                failing: Vec::new(),
            }
        }

        fn act(&mut self, a: &Action) {
            if let Some(i) = self.failing.iter().position(|f| f == a) {
                self.failing.remove(i);
                return;
            }
            let o = &mut self.o;
            match a {
                Action::Verify => o.verified = Some(Ok(())),
                Action::TakeSafetyBackup => o.safety_backup = Some("s3://b/safety".into()),
                Action::StopTraffic => o.traffic_stopped = true,
                Action::ScaleToZero => {
                    o.pods = 0;
                    o.voters = 0;
                }
                Action::DeleteOtherVolumes => o.other_volumes = 0,
                Action::StartFirstMember => {
                    o.pods = 1;
                    o.voters = 1;
                    o.first_restored = true;
                }
                Action::AddMembers => {
                    o.pods += 1;
                    o.voters += 1;
                }
                Action::ResumeTraffic => o.traffic_stopped = false,
                Action::None => {}
            }
        }
    }

    /// Run to the end; the phases recorded and actions taken.
    fn run(w: &mut World, mut phase: Phase) -> (Phase, Vec<Action>) {
        let mut actions = Vec::new();
        for _ in 0..100 {
            let (p, a, _) = advance(phase, &w.o);
            phase = p;
            if a == Action::None {
                return (phase, actions);
            }
            w.act(&a);
            actions.push(a);
        }
        panic!("restore did not finish: {phase:?}");
    }

    #[test]
    fn every_step_in_order() {
        let mut w = World::new(3);
        let (end, actions) = run(&mut w, Phase::Verifying);
        assert_eq!(end, Phase::Complete);
        assert_eq!(
            actions,
            [
                Action::Verify,
                Action::TakeSafetyBackup,
                Action::StopTraffic,
                Action::ScaleToZero,
                Action::DeleteOtherVolumes,
                Action::StartFirstMember,
                Action::AddMembers,
                Action::AddMembers,
                Action::ResumeTraffic,
            ]
        );
        assert_eq!(w.o.voters, 3);
        assert!(!w.o.traffic_stopped);
    }

    #[test]
    fn a_failure_between_any_two_steps_is_retried_and_a_restart_resumes() {
        let all = [
            Action::Verify,
            Action::TakeSafetyBackup,
            Action::StopTraffic,
            Action::ScaleToZero,
            Action::DeleteOtherVolumes,
            Action::StartFirstMember,
            Action::AddMembers,
            Action::ResumeTraffic,
        ];
        for failing in &all {
            // The action fails once; the next reconcile sees it not done and does it again.
            let mut w = World::new(3);
            w.failing.push(failing.clone());
            let (end, actions) = run(&mut w, Phase::Verifying);
            assert_eq!(end, Phase::Complete, "after a failed {failing:?}");
            assert_eq!(
                actions.iter().filter(|a| *a == failing).count(),
                if *failing == Action::AddMembers { 3 } else { 2 },
                "{failing:?} retried once: {actions:?}"
            );
            assert_eq!(w.o.voters, 3);
        }
        // An operator restarted after each phase resumes from the recorded phase alone.
        let mut reference = World::new(3);
        let mut phase = Phase::Verifying;
        let mut seen = vec![phase];
        loop {
            let (p, a, _) = advance(phase, &reference.o);
            if a == Action::None {
                break;
            }
            reference.act(&a);
            phase = p;
            seen.push(p);
            // "Restart": a fresh call with only the recorded phase and a fresh observation.
            let mut copy = reference.clone();
            let (end, _) = run(&mut copy, phase);
            assert_eq!(end, Phase::Complete, "resumed at {phase:?}");
            assert_eq!(copy.o.voters, 3);
        }
    }

    #[test]
    fn a_refused_backup_changes_nothing() {
        let mut w = World::new(3);
        w.o.verified = Some(Err(
            "sha256 mismatch: metadata says ab12, object is cd34".into()
        ));
        let (p, a, why) = advance(Phase::Verifying, &w.o);
        assert_eq!((p, a), (Phase::Failed, Action::None));
        let why = why.unwrap();
        assert!(why.contains("nothing was changed") && why.contains("sha256 mismatch"));
        assert_eq!(w.o.pods, 3);
        assert!(!w.o.traffic_stopped);
    }

    #[test]
    fn a_first_member_that_cannot_restore_stops_with_the_way_back() {
        let mut w = World::new(3);
        w.failing.push(Action::StartFirstMember);
        let mut phase = Phase::Verifying;
        loop {
            let (p, a, _) = advance(phase, &w.o);
            phase = p;
            if a == Action::StartFirstMember {
                break;
            }
            w.act(&a);
        }
        w.o.first_failed = Some("checksum of the downloaded snapshot differs".into());
        let (p, a, why) = advance(phase, &w.o);
        assert_eq!((p, a), (Phase::Failed, Action::None));
        let why = why.unwrap();
        assert!(why.contains("s3://b/safety"), "{why}");
        // No member of the old cluster is left to mix with a new one.
        assert_eq!((w.o.pods, w.o.other_volumes), (0, 0));
    }

    #[test]
    fn without_a_safety_backup_and_phase_names_round_trip() {
        let mut w = World::new(1);
        w.o.safety_wanted = false;
        let (end, actions) = run(&mut w, Phase::Verifying);
        assert_eq!(end, Phase::Complete);
        assert!(!actions.contains(&Action::TakeSafetyBackup));
        assert!(!actions.contains(&Action::AddMembers));
        for p in ALL {
            assert_eq!(Phase::parse(p.name()), Some(p));
        }
    }
}
