//! Probes: `httpGet` and `tcpSocket` dial the pod IP from the root namespace (over the bridge),
//! `exec` runs inside the container's namespaces. The startup probe gates the others; readiness
//! and liveness apply their thresholds and report to the container runner as [`ProbeEvent`]s.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use super::process;

/// What the probes tell the container runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeEvent {
    /// The startup probe passed (or there is none).
    Started,
    /// Readiness changed.
    Ready(bool),
    /// The startup or liveness probe failed its threshold: restart the container.
    Kill(&'static str),
}

/// Where probes are aimed.
#[derive(Debug, Clone)]
pub struct Target {
    /// The pod IP.
    pub ip: Ipv4Addr,
    /// The container process.
    pub pid: u32,
    /// The container's ports (for named ports).
    pub ports: Vec<ContainerPort>,
    /// The container's environment (for exec probes).
    pub env: Vec<(String, String)>,
}

fn port(p: &IntOrString, ports: &[ContainerPort]) -> Option<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => name.parse().ok().or_else(|| {
            ports
                .iter()
                .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                .and_then(|cp| u16::try_from(cp.container_port).ok())
        }),
    }
}

async fn http_get(addr: SocketAddr, path: &str, headers: &[(String, String)]) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return false;
    };
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while !got.contains(&b'\n') && got.len() < 64 {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&got);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (200..400).contains(&code)
}

/// Runs one probe once: success or not (a timeout is a failure).
pub async fn check(probe: &Probe, t: &Target) -> bool {
    let limit =
        Duration::from_secs(u64::try_from(probe.timeout_seconds.unwrap_or(1).max(1)).unwrap_or(1));
    let fut = async {
        if let Some(h) = &probe.http_get {
            let Some(p) = port(&h.port, &t.ports) else {
                return false;
            };
            let headers: Vec<(String, String)> = h
                .http_headers
                .iter()
                .flatten()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect();
            let path = h.path.clone().unwrap_or_else(|| "/".into());
            if h.scheme.as_deref() == Some("HTTPS") {
                return TcpStream::connect((t.ip, p)).await.is_ok();
            }
            return http_get(SocketAddr::from((t.ip, p)), &path, &headers).await;
        }
        if let Some(s) = &probe.tcp_socket {
            let Some(p) = port(&s.port, &t.ports) else {
                return false;
            };
            return TcpStream::connect((t.ip, p)).await.is_ok();
        }
        if let Some(e) = &probe.exec {
            let argv = e.command.clone().unwrap_or_default();
            if argv.is_empty() {
                return false;
            }
            return process::exec_in(t.pid, &argv, &t.env)
                .status()
                .await
                .is_ok_and(|s| s.success());
        }
        false
    };
    timeout(limit, fut).await.unwrap_or(false)
}

fn secs(n: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(u64::try_from(n.unwrap_or(default).max(0)).unwrap_or(0))
}

/// Runs the container's probes until the receiver is gone or a Kill is sent.
pub async fn run(
    container: Container,
    t: Target,
    started_at: Instant,
    tx: mpsc::Sender<ProbeEvent>,
) {
    if let Some(p) = &container.startup_probe {
        sleep_until(started_at + secs(p.initial_delay_seconds, 0)).await;
        let threshold = p.failure_threshold.unwrap_or(3).max(1);
        let mut failures = 0;
        loop {
            if check(p, &t).await {
                break;
            }
            failures += 1;
            if failures >= threshold {
                let _ = tx.send(ProbeEvent::Kill("startup probe failed")).await;
                return;
            }
            sleep(secs(p.period_seconds, 10)).await;
        }
    }
    if tx.send(ProbeEvent::Started).await.is_err() {
        return;
    }
    let readiness = async {
        let Some(p) = &container.readiness_probe else {
            let _ = tx.send(ProbeEvent::Ready(true)).await;
            return std::future::pending::<()>().await;
        };
        sleep_until(started_at + secs(p.initial_delay_seconds, 0)).await;
        let (need_ok, need_fail) = (
            p.success_threshold.unwrap_or(1).max(1),
            p.failure_threshold.unwrap_or(3).max(1),
        );
        let (mut oks, mut fails, mut ready) = (0, 0, None);
        loop {
            if check(p, &t).await {
                oks += 1;
                fails = 0;
            } else {
                fails += 1;
                oks = 0;
            }
            let now = if oks >= need_ok {
                Some(true)
            } else if fails >= need_fail || ready.is_none() {
                Some(false)
            } else {
                ready
            };
            if now != ready {
                ready = now;
                if tx.send(ProbeEvent::Ready(now == Some(true))).await.is_err() {
                    return;
                }
            }
            sleep(secs(p.period_seconds, 10)).await;
        }
    };
    let liveness = async {
        let Some(p) = &container.liveness_probe else {
            return std::future::pending::<()>().await;
        };
        sleep_until(started_at + secs(p.initial_delay_seconds, 0)).await;
        let threshold = p.failure_threshold.unwrap_or(3).max(1);
        let mut fails = 0;
        loop {
            if check(p, &t).await {
                fails = 0;
            } else {
                fails += 1;
                if fails >= threshold {
                    let _ = tx.send(ProbeEvent::Kill("liveness probe failed")).await;
                    return;
                }
            }
            sleep(secs(p.period_seconds, 10)).await;
        }
    };
    tokio::select! {
        () = readiness => {}
        () = liveness => {}
    }
}
