//! A pod's runtime state as the kubelet keeps it, and the `status` it is written as (phase,
//! conditions with stable transition times, container statuses, IPs, start time).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::net::pod::PodNet;

/// Pod phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not every container has started yet.
    Pending,
    /// Containers were started.
    Running,
    /// Every container ended with 0 and none restarts.
    Succeeded,
    /// Containers ended, one with an error, and none restarts.
    Failed,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }
}

/// What the kubelet knows about one pod.
#[derive(Debug, Clone)]
pub struct PodState {
    /// The network, once attached.
    pub net: Option<PodNet>,
    /// The node IP.
    pub host_ip: String,
    /// When the kubelet took the pod.
    pub start_time: Option<Time>,
    /// The phase.
    pub phase: Phase,
    /// Init containers are done.
    pub initialized: bool,
    /// Init container statuses.
    pub init: Vec<ContainerStatus>,
    /// Container statuses.
    pub main: Vec<ContainerStatus>,
    /// Live container processes by container name.
    pub pids: BTreeMap<String, u32>,
    /// Transition times of the conditions, by type and status.
    transitions: BTreeMap<&'static str, (bool, Time)>,
}

/// A timestamp of now.
pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// `waiting` with a reason.
pub fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..ContainerState::default()
    }
}

/// `running` since `at`.
pub fn running(at: Time) -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(at),
        }),
        ..ContainerState::default()
    }
}

/// `terminated`.
pub fn terminated(
    code: i32,
    started: Option<Time>,
    message: Option<String>,
    container_id: Option<String>,
) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
            message,
            started_at: started,
            finished_at: Some(now()),
            container_id,
            signal: None,
        }),
        ..ContainerState::default()
    }
}

fn initial(name: &str, image: &str) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        image: image.into(),
        image_id: format!("kube-node://{image}"),
        ready: false,
        restart_count: 0,
        started: Some(false),
        state: Some(waiting("ContainerCreating", None)),
        ..ContainerStatus::default()
    }
}

impl PodState {
    /// The state of a pod just taken: every container waiting in `ContainerCreating`.
    pub fn new(spec: &k8s_openapi::api::core::v1::PodSpec, host_ip: String) -> Self {
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| {
                let mut s = initial(&c.name, c.image.as_deref().unwrap_or_default());
                s.state = Some(waiting("PodInitializing", None));
                s
            })
            .collect::<Vec<_>>();
        PodState {
            net: None,
            host_ip,
            start_time: None,
            phase: Phase::Pending,
            initialized: init.is_empty(),
            init,
            main: spec
                .containers
                .iter()
                .map(|c| initial(&c.name, c.image.as_deref().unwrap_or_default()))
                .collect(),
            pids: BTreeMap::new(),
            transitions: BTreeMap::new(),
        }
    }

    /// The status of a container by slot.
    pub fn container_mut(&mut self, init: bool, index: usize) -> &mut ContainerStatus {
        if init {
            &mut self.init[index]
        } else {
            &mut self.main[index]
        }
    }

    fn condition(&mut self, kind: &'static str, ok: bool) -> PodCondition {
        let at = match self.transitions.get(kind) {
            Some((was, at)) if *was == ok => at.clone(),
            _ => {
                let t = now();
                self.transitions.insert(kind, (ok, t.clone()));
                t
            }
        };
        PodCondition {
            type_: kind.into(),
            status: if ok { "True" } else { "False" }.into(),
            last_transition_time: Some(at),
            ..PodCondition::default()
        }
    }

    /// The `status` to write.
    pub fn status(&mut self) -> PodStatus {
        let ready = self.phase == Phase::Running && self.main.iter().all(|c| c.ready);
        let initialized = self.initialized;
        let conditions = vec![
            self.condition("PodScheduled", true),
            self.condition("Initialized", initialized),
            self.condition("ContainersReady", ready),
            self.condition("Ready", ready),
        ];
        let ip = self.net.as_ref().map(|n| n.ip.to_string());
        PodStatus {
            phase: Some(self.phase.as_str().into()),
            conditions: Some(conditions),
            host_ip: Some(self.host_ip.clone()),
            host_ips: Some(vec![HostIP {
                ip: self.host_ip.clone(),
            }]),
            pod_ip: ip.clone(),
            pod_ips: ip.map(|ip| vec![PodIP { ip }]),
            start_time: self.start_time.clone(),
            container_statuses: Some(self.main.clone()),
            init_container_statuses: (!self.init.is_empty()).then(|| self.init.clone()),
            qos_class: Some("BestEffort".into()),
            ..PodStatus::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    #[test]
    fn conditions_keep_their_transition_time() {
        let spec = PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("sh".into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        };
        let mut s = PodState::new(&spec, "10.213.1.1".into());
        let first = s.status();
        assert_eq!(first.phase.as_deref(), Some("Pending"));
        let t0 = first.conditions.as_ref().unwrap()[3]
            .last_transition_time
            .clone();
        let again = s.status();
        assert_eq!(
            again.conditions.as_ref().unwrap()[3].last_transition_time,
            t0
        );
        s.phase = Phase::Running;
        s.main[0].ready = true;
        let ready = s.status();
        assert_eq!(ready.conditions.as_ref().unwrap()[3].status, "True");
    }
}
