//! Reaching the cluster: endpoint URLs, dialing within `--dial-timeout`, running a request
//! within `--command-timeout`, and Go-style durations (`2s`, `500ms`) as etcdctl takes them.
//!
//! A connection is one HTTP/2 channel to one endpoint: with several endpoints, all are dialed
//! at once and the first to answer is used (etcdctl balances; either way one member serves a
//! request).

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Response, Status};

use super::error::{CliError, ExitKind, Result, root_cause};
use crate::pb::cluster_client::ClusterClient;
use crate::pb::kv_client::KvClient;
use crate::pb::lease_client::LeaseClient;
use crate::pb::maintenance_client::MaintenanceClient;
use crate::pb::watch_client::WatchClient;

/// A channel to one endpoint plus the command timeout.
#[derive(Clone)]
pub struct Conn {
    channel: Channel,
    /// The endpoint as the user wrote it.
    pub endpoint: String,
    command_timeout: Duration,
}

/// `host:port` or `http://host:port` as a URL tonic can dial.
pub fn endpoint_url(ep: &str) -> Result<String> {
    let ep = ep.trim();
    if ep.is_empty() {
        return Err(CliError::bad_args("empty endpoint"));
    }
    if ep.starts_with("https://") || ep.starts_with("unixs://") {
        return Err(CliError::bad_args(format!(
            "{ep}: TLS endpoints are not supported by kvctl (use http://)"
        )));
    }
    if ep.starts_with("http://") {
        Ok(ep.to_string())
    } else if ep.contains("://") {
        Err(CliError::bad_args(format!(
            "{ep}: unsupported endpoint scheme"
        )))
    } else {
        Ok(format!("http://{ep}"))
    }
}

/// Dial one endpoint, retrying refused connections until `deadline`.
async fn dial_url(url: &str, deadline: Instant) -> Result<Channel, String> {
    let ep = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("invalid endpoint: {e}"))?
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(6));
    let mut last = String::from("no answer");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(last);
        }
        match tokio::time::timeout(left, ep.connect()).await {
            Ok(Ok(ch)) => return Ok(ch),
            Ok(Err(e)) => last = root_cause(&e),
            Err(_) => return Err(last),
        }
        let pause =
            Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(pause).await;
    }
}

impl Conn {
    /// Dial every endpoint at once and keep the first that connects within `dial_timeout`.
    pub async fn dial_any(
        endpoints: &[String],
        dial_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Conn> {
        if endpoints.is_empty() {
            return Err(CliError::bad_args("no endpoints given"));
        }
        let urls = endpoints
            .iter()
            .map(|e| endpoint_url(e).map(|u| (e.clone(), u)))
            .collect::<Result<Vec<_>>>()?;
        let deadline = Instant::now() + dial_timeout;
        let mut pending: FuturesUnordered<_> = urls
            .into_iter()
            .map(|(ep, url)| async move {
                let r = dial_url(&url, deadline).await;
                (ep, r)
            })
            .collect();
        let mut errors = Vec::new();
        while let Some((endpoint, r)) = pending.next().await {
            match r {
                Ok(channel) => {
                    return Ok(Conn {
                        channel,
                        endpoint,
                        command_timeout,
                    });
                }
                Err(e) => errors.push(format!("{endpoint}: {e}")),
            }
        }
        Err(CliError::new(
            ExitKind::BadConnection,
            format!(
                "context deadline exceeded: could not connect to {} within --dial-timeout={} ({})",
                if endpoints.len() == 1 {
                    "endpoint"
                } else {
                    "any endpoint"
                },
                go_duration(dial_timeout),
                errors.join("; ")
            ),
        ))
    }

    /// Dial one endpoint.
    pub async fn dial(
        endpoint: &str,
        dial_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Conn> {
        Self::dial_any(&[endpoint.to_string()], dial_timeout, command_timeout).await
    }

    /// The command timeout of this connection.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// KV service client.
    pub fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX)
    }

    /// Watch service client.
    pub fn watch(&self) -> WatchClient<Channel> {
        WatchClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX)
    }

    /// Lease service client.
    pub fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX)
    }

    /// Cluster service client.
    pub fn cluster(&self) -> ClusterClient<Channel> {
        ClusterClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX)
    }

    /// Maintenance service client.
    pub fn maintenance(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX)
    }

    /// Run one unary request within the command timeout.
    pub async fn call<T>(
        &self,
        fut: impl Future<Output = Result<Response<T>, Status>>,
    ) -> Result<T> {
        within(self.command_timeout, fut).await
    }
}

/// Run one request within `timeout`; a timeout reads `context deadline exceeded` as etcdctl's.
pub async fn within<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<Response<T>, Status>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(s.into()),
        Err(_) => Err(CliError::deadline()),
    }
}

/// Parse a Go duration (`2s`, `1.5s`, `500ms`, `1m30s`, `100us`, `0`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() || t.starts_with('-') {
        return Err(bad());
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    Ok(Duration::from_secs_f64(total))
}

/// A duration as Go prints it (`1.5s`, `2m0s`, `1.234567ms`, `350µs`).
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let frac = |v: u128, unit: u128, digits: usize| -> String {
        let whole = v / unit;
        let rem = v % unit;
        if rem == 0 {
            whole.to_string()
        } else {
            let s = format!("{rem:0digits$}");
            format!("{whole}.{}", s.trim_end_matches('0'))
        }
    };
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{}µs", frac(ns, 1_000, 3))
    } else if ns < 1_000_000_000 {
        format!("{}ms", frac(ns, 1_000_000, 6))
    } else {
        let secs = ns / 1_000_000_000;
        let sub = ns % 1_000_000_000;
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        let s = frac(s * 1_000_000_000 + sub, 1_000_000_000, 9);
        if h > 0 {
            format!("{h}h{m}m{s}s")
        } else if m > 0 {
            format!("{m}m{s}s")
        } else {
            format!("{s}s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("x").is_err());
        assert_eq!(go_duration(Duration::from_micros(1471)), "1.471ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(2500)), "2.5s");
        assert_eq!(go_duration(Duration::from_nanos(1_160_879)), "1.160879ms");
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint_url("127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(endpoint_url("http://h:1").unwrap(), "http://h:1");
        assert!(endpoint_url("https://h:1").is_err());
    }
}
