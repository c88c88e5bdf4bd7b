//! One container's runs: resolve its environment and command, start the process, follow the
//! probes, and when it ends record `terminated` (exit code, reason, the log tail as message
//! with `FallbackToLogsOnError`), then restart per `restartPolicy` after an exponential
//! back-off (`CrashLoopBackOff`). A stop request terminates it: SIGTERM to its process group,
//! the grace period, SIGKILL.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use rustix::process::Signal;
use tokio::process::Child;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::PodCtx;
use super::env::{self, Runtime};
use super::images;
use super::mounts;
use super::probe::{self, ProbeEvent};
use super::process::{self, Launch};
use super::status::{self, now};
use super::volumes::{self, Prepared};
use super::worker::stopped_within;
use crate::net::lock;

/// Which container of the pod.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// An init container.
    pub init: bool,
    /// Its index in its list.
    pub index: usize,
}

/// How a container's runs ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this code and will not restart.
    Exited(i32),
    /// The pod is stopping.
    Stopped,
}

/// Why a container could not start (it waits and retries).
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("no binary for image {0}")]
    Image(String),
    #[error(transparent)]
    Env(#[from] env::EnvError),
    #[error(transparent)]
    Volume(#[from] volumes::VolumeError),
    #[error("failed to start the process")]
    Spawn(#[source] std::io::Error),
    #[error("the kubelet is shutting down")]
    Closed,
}

impl StartError {
    fn reason(&self) -> &'static str {
        match self {
            StartError::Image(_) => "ErrImagePull",
            StartError::Env(_) | StartError::Volume(_) => "CreateContainerConfigError",
            StartError::Spawn(_) | StartError::Closed => "RunContainerError",
        }
    }
}

fn log_path(ctx: &PodCtx, c: &Container) -> PathBuf {
    ctx.shared
        .cfg
        .log_dir
        .join(&ctx.ns)
        .join(&ctx.name)
        .join(format!("{}.log", c.name))
}

/// The service variables every container gets.
fn service_env(ctx: &PodCtx) -> Vec<(String, String)> {
    let host = ctx.shared.net.service_host().to_string();
    let port = crate::net::API_PORT.to_string();
    vec![
        ("HOSTNAME".into(), ctx.name.clone()),
        ("HOME".into(), "/root".into()),
        ("KUBERNETES_SERVICE_HOST".into(), host.clone()),
        ("KUBERNETES_SERVICE_PORT".into(), port.clone()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.clone()),
        ("KUBERNETES_PORT".into(), format!("tcp://{host}:{port}")),
    ]
}

async fn start(
    ctx: &PodCtx,
    c: &Container,
    prepared: &Prepared,
    rt: &Runtime,
) -> Result<(Child, Vec<(String, String)>, Vec<String>), StartError> {
    let image = c.image.clone().unwrap_or_default();
    let binary = ctx
        .shared
        .cfg
        .images
        .resolve(&image)
        .ok_or_else(|| StartError::Image(image.clone()))?;
    let pod = ctx.object();
    let sources = volumes::env_sources(&ctx.shared.client, &ctx.ns, &[c]).await?;
    let env = env::resolve(&pod, c, rt, &sources, &service_env(ctx))?;
    let argv = images::command_line(binary, c.command.as_deref(), c.args.as_deref());
    let argv = env::expand_all(&argv, &env);
    let mut mounts = volumes::container_mounts(c, prepared);
    mounts.push(mounts::Mount {
        source: ctx.shared.net.hosts().path().to_path_buf(),
        target: PathBuf::from("/etc/hosts"),
    });
    let stage = ctx
        .shared
        .cfg
        .pods_dir
        .join(&ctx.uid)
        .join("stage")
        .join(&c.name);
    let hostname = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| ctx.name.clone());
    let prologue = mounts::prologue(&mounts, &stage, &hostname, c.working_dir.as_deref());
    let log = log_path(ctx, c);
    let netns = lock(&ctx.state)
        .net
        .as_ref()
        .map(|n| n.netns.clone())
        .unwrap_or_default();
    // Spawn under the PID table's lock: once the kubelet is closed nothing new starts, and
    // every process that did start is in the table its shutdown kills.
    let mut pids = lock(&ctx.shared.pids);
    if ctx.shared.closed.load(Ordering::SeqCst) {
        return Err(StartError::Closed);
    }
    let child = process::spawn(&Launch {
        netns: &netns,
        prologue: &prologue,
        argv: &argv,
        env: &env,
        log: &log,
    })
    .map_err(StartError::Spawn)?;
    pids.insert(child.id().unwrap_or_default(), ctx.uid.clone());
    Ok((child, env, argv))
}

fn exit_code(s: std::process::ExitStatus) -> i32 {
    s.code()
        .or_else(|| s.signal().map(|n| 128 + n))
        .unwrap_or(255)
}

/// SIGTERM, wait up to `grace`, SIGKILL; returns the exit code.
async fn terminate(child: &mut Child, pid: u32, grace: Duration) -> i32 {
    process::signal_group(pid, Signal::TERM);
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(s) => s,
        Err(_) => {
            process::signal_group(pid, Signal::KILL);
            child.wait().await
        }
    };
    status.map(exit_code).unwrap_or(137)
}

fn pod_grace(ctx: &PodCtx) -> Duration {
    let s = ctx
        .object()
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(s.max(0)).unwrap_or(0))
}

/// Resolves with the grace period once a stop is requested.
async fn stop_requested(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    loop {
        let now = *stop.borrow_and_update();
        if let Some(grace) = now {
            return grace;
        }
        if stop.changed().await.is_err() {
            let last = *stop.borrow();
            return last.unwrap_or_default();
        }
    }
}

/// Runs the container until it ends for good or the pod stops.
pub async fn run(
    ctx: Arc<PodCtx>,
    slot: Slot,
    c: Container,
    prepared: Arc<Prepared>,
    mut stop: watch::Receiver<Option<Duration>>,
) -> Outcome {
    let cfg = ctx.shared.cfg.clone();
    let policy = ctx
        .object()
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let mut crashes: u32 = 0;
    let log = log_path(&ctx, &c);
    let _ = std::fs::create_dir_all(log.parent().unwrap_or(&log));
    let _ = std::fs::write(&log, b"");
    loop {
        if stop.borrow().is_some() {
            return Outcome::Stopped;
        }
        let rt = ctx.runtime();
        let log_from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let (mut child, env, argv) = match start(&ctx, &c, &prepared, &rt).await {
            Ok(x) => x,
            Err(StartError::Closed) => return Outcome::Stopped,
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(pod = %ctx.name, container = %c.name, error = %msg, "container not started");
                ctx.update(|s| {
                    s.container_mut(slot.init, slot.index).state =
                        Some(status::waiting(e.reason(), Some(msg)));
                });
                if stopped_within(&mut stop, Duration::from_secs(1)).await {
                    return Outcome::Stopped;
                }
                continue;
            }
        };
        let pid = child.id().unwrap_or_default();
        process::wait_exec(&mut child, pid, &argv).await;
        let started = now();
        let started_at = Instant::now();
        ctx.update(|s| {
            s.pids.insert(c.name.clone(), pid);
            let cs = s.container_mut(slot.init, slot.index);
            cs.state = Some(status::running(started.clone()));
            cs.container_id = Some(format!("kube-node://{pid}"));
            cs.started = Some(false);
            cs.ready = false;
        });
        tracing::info!(pod = %ctx.name, container = %c.name, pid, "container started");

        let (tx, mut events) = mpsc::channel(8);
        let probes = (!slot.init).then(|| {
            let ip = lock(&ctx.state)
                .net
                .as_ref()
                .map(|n| n.ip)
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST);
            let target = probe::Target {
                ip,
                pid,
                ports: c.ports.clone().unwrap_or_default(),
                env: env.clone(),
            };
            tokio::spawn(probe::run(c.clone(), target, started_at, tx))
        });
        let code = loop {
            tokio::select! {
                s = child.wait() => break s.map(exit_code).unwrap_or(255),
                grace = stop_requested(&mut stop) => {
                    break terminate(&mut child, pid, grace).await;
                }
                Some(ev) = events.recv() => match ev {
                    ProbeEvent::Started => ctx.update(|s| s.container_mut(slot.init, slot.index).started = Some(true)),
                    ProbeEvent::Ready(r) => ctx.update(|s| s.container_mut(slot.init, slot.index).ready = r),
                    ProbeEvent::Kill(why) => {
                        tracing::info!(pod = %ctx.name, container = %c.name, why, "killing the container");
                        break terminate(&mut child, pid, pod_grace(&ctx)).await;
                    }
                },
            }
        };
        if let Some(p) = probes {
            p.abort();
        }
        process::signal_group(pid, Signal::KILL);
        lock(&ctx.shared.pids).remove(&pid);
        let ran = started_at.elapsed();
        let message = (code != 0
            && c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"))
        .then(|| process::log_tail(&log, log_from, 80, 4096))
        .filter(|m| !m.is_empty());
        let stopped = stop.borrow().is_some();
        tracing::info!(pod = %ctx.name, container = %c.name, pid, code, "container exited");
        let restart = !stopped
            && match policy.as_str() {
                "Never" => false,
                "OnFailure" => code != 0,
                _ => !slot.init || code != 0,
            };
        let delay = if ran > cfg.backoff_max * 2 {
            crashes = 0;
            cfg.backoff_base
        } else {
            let d = cfg.backoff_base.saturating_mul(1 << crashes.min(16));
            crashes += 1;
            d.min(cfg.backoff_max)
        };
        ctx.update(|s| {
            s.pids.remove(&c.name);
            let cs = s.container_mut(slot.init, slot.index);
            let term = status::terminated(code, Some(started), message, cs.container_id.clone());
            cs.ready = false;
            cs.started = Some(false);
            if restart {
                cs.last_state = Some(term);
                cs.state = Some(status::waiting(
                    "CrashLoopBackOff",
                    Some(format!(
                        "back-off {}s restarting failed container={} pod={}",
                        delay.as_secs(),
                        c.name,
                        ctx.name
                    )),
                ));
            } else {
                cs.state = Some(term);
            }
        });
        if stopped {
            return Outcome::Stopped;
        }
        if !restart {
            return Outcome::Exited(code);
        }
        if stopped_within(&mut stop, delay).await {
            return Outcome::Stopped;
        }
        ctx.update(|s| s.container_mut(slot.init, slot.index).restart_count += 1);
    }
}
