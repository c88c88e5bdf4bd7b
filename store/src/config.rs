//! Server flags, named and defaulted as etcd's, each also read from `KVSTORE_<FLAG>`.

use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::error::{Error, Result};

/// `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterState {
    /// Bootstrap a new cluster from `--initial-cluster`.
    New,
    /// Join a running cluster that already added this member.
    Existing,
    /// kvstore extension for operators: bootstrap with `--initial-cluster` when this member is
    /// named in it, otherwise join the running cluster through the members it names (waiting
    /// until this member has been added).
    Auto,
}

/// The `kvstore` server flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kvstore",
    version,
    about = "A Raft-replicated, etcd v3 compatible key-value store"
)]
pub struct ServerConfig {
    /// Human-readable name for this member.
    #[arg(long, env = "KVSTORE_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: `<name>.kvstore`).
    #[arg(long, env = "KVSTORE_DATA_DIR")]
    pub data_dir: Option<String>,
    /// URLs to listen on for client traffic (gRPC).
    #[arg(
        long,
        env = "KVSTORE_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379",
        value_delimiter = ','
    )]
    pub listen_client_urls: Vec<String>,
    /// Client URLs advertised to the rest of the cluster.
    #[arg(
        long,
        env = "KVSTORE_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379",
        value_delimiter = ','
    )]
    pub advertise_client_urls: Vec<String>,
    /// URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "KVSTORE_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380",
        value_delimiter = ','
    )]
    pub listen_peer_urls: Vec<String>,
    /// Peer URLs advertised to the rest of the cluster.
    #[arg(
        long,
        env = "KVSTORE_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380",
        value_delimiter = ','
    )]
    pub initial_advertise_peer_urls: Vec<String>,
    /// Initial cluster configuration for bootstrapping: `name=peerURL,...`.
    #[arg(long, env = "KVSTORE_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// `new` to bootstrap, `existing` to join a running cluster.
    #[arg(
        long,
        env = "KVSTORE_INITIAL_CLUSTER_STATE",
        value_enum,
        default_value = "new"
    )]
    pub initial_cluster_state: ClusterState,
    /// Token that makes the ids of this cluster unique.
    #[arg(
        long,
        env = "KVSTORE_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "KVSTORE_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "KVSTORE_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Raise an alarm when the backend size exceeds this many bytes (0 = 2 GiB).
    #[arg(long, env = "KVSTORE_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "KVSTORE_MAX_REQUEST_BYTES", default_value_t = 1536 * 1024)]
    pub max_request_bytes: usize,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "KVSTORE_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: usize,
    /// Number of committed entries that trigger a snapshot and log compaction.
    #[arg(long, env = "KVSTORE_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Maximum number of raft snapshot files to retain (etcd's flag, accepted for its command
    /// lines). kvstore keeps none: a Raft snapshot is the state machine at a durable point,
    /// written out only while a follower receives it.
    #[arg(long, env = "KVSTORE_MAX_SNAPSHOTS", default_value_t = 5)]
    pub max_snapshots: usize,
    /// Bytes each Raft WAL segment is preallocated to (kvstore's own; etcd fixes 64 MB). A new
    /// segment and its spare are written with zeroes, so that appends only flush data.
    #[arg(long = "experimental-wal-segment-size", env = "KVSTORE_EXPERIMENTAL_WAL_SEGMENT_SIZE", default_value_t = crate::raft::wal::DEFAULT_SEGMENT_SIZE)]
    pub wal_segment_size: u64,
    /// Interval between progress notifications to watchers that asked for them (e.g. 10m, 5s).
    #[arg(long = "experimental-watch-progress-notify-interval", env = "KVSTORE_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub watch_progress_notify_interval: Duration,
    /// Log level: debug, info, warn, error.
    #[arg(long, env = "KVSTORE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// The default backend quota (2 GiB), as etcd.
pub const DEFAULT_QUOTA: u64 = 2 * 1024 * 1024 * 1024;

impl ServerConfig {
    /// The data directory.
    pub fn data_dir(&self) -> String {
        self.data_dir
            .clone()
            .unwrap_or_else(|| format!("{}.kvstore", self.name))
    }

    /// The effective backend quota.
    pub fn quota(&self) -> u64 {
        if self.quota_backend_bytes == 0 {
            DEFAULT_QUOTA
        } else {
            self.quota_backend_bytes
        }
    }

    /// The request timeout etcd derives from its timers.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(5000 + 2 * self.election_timeout)
    }

    /// `--initial-cluster` as (name, peer URL) pairs; without the flag, this member alone.
    pub fn initial_members(&self) -> Result<Vec<(String, Vec<String>)>> {
        let Some(spec) = &self.initial_cluster else {
            return Ok(vec![(
                self.name.clone(),
                self.initial_advertise_peer_urls.clone(),
            )]);
        };
        let out = parse_initial_cluster(spec)?;
        if self.initial_cluster_state != ClusterState::Auto
            && !out.iter().any(|(n, _)| *n == self.name)
        {
            return Err(Error::Config(format!(
                "--initial-cluster has no member named {:?} (this member's --name)",
                self.name
            )));
        }
        Ok(out)
    }

    /// Check the flags for contradictions.
    pub fn validate(&self) -> Result<()> {
        /// The smallest WAL segment accepted from the command line: 1 MiB.
        const MIN_WAL_SEGMENT: u64 = 1 << 20;
        if self.heartbeat_interval == 0 || self.election_timeout < 5 * self.heartbeat_interval {
            return Err(Error::Config(format!(
                "--election-timeout ({} ms) must be at least 5 times --heartbeat-interval ({} ms)",
                self.election_timeout, self.heartbeat_interval
            )));
        }
        if !(MIN_WAL_SEGMENT..=crate::raft::wal::MAX_SEGMENT_SIZE).contains(&self.wal_segment_size)
        {
            return Err(Error::Config(format!(
                "--experimental-wal-segment-size ({}) must be between {MIN_WAL_SEGMENT} and {} bytes",
                self.wal_segment_size,
                crate::raft::wal::MAX_SEGMENT_SIZE
            )));
        }
        for u in self.listen_client_urls.iter().chain(&self.listen_peer_urls) {
            listen_addr(u)?;
        }
        self.initial_members()?;
        Ok(())
    }
}

/// Parse an `--initial-cluster` value: `name=peerURL,...` (a name may repeat for several URLs).
pub fn parse_initial_cluster(spec: &str) -> Result<Vec<(String, Vec<String>)>> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = part.split_once('=').ok_or_else(|| {
            Error::Config(format!("--initial-cluster: {part:?} is not name=peerURL"))
        })?;
        url::Url::parse(url)
            .map_err(|e| Error::Config(format!("--initial-cluster: bad URL {url:?}: {e}")))?;
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.push(url.to_string()),
            None => out.push((name.to_string(), vec![url.to_string()])),
        }
    }
    if out.is_empty() {
        return Err(Error::Config("--initial-cluster is empty".into()));
    }
    Ok(out)
}

/// Parse a duration written as Go does for etcd flags: `500ms`, `5s`, `10m`, `1h`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    Ok(Duration::from_secs_f64(secs))
}

/// The socket address to bind for a listen URL such as `http://127.0.0.1:2379`.
pub fn listen_addr(url: &str) -> Result<String> {
    let u =
        url::Url::parse(url).map_err(|e| Error::Config(format!("bad listen URL {url:?}: {e}")))?;
    if u.scheme() != "http" {
        return Err(Error::Config(format!(
            "listen URL {url:?}: only http is supported"
        )));
    }
    let host = u
        .host_str()
        .ok_or_else(|| Error::Config(format!("listen URL {url:?} has no host")))?;
    let port = u
        .port()
        .ok_or_else(|| Error::Config(format!("listen URL {url:?} has no port")))?;
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        ServerConfig::command().debug_assert();
    }

    #[test]
    fn defaults_are_etcds() {
        let c = ServerConfig::parse_from(["kvstore"]);
        assert_eq!(c.data_dir(), "default.kvstore");
        assert_eq!(c.listen_client_urls, vec!["http://localhost:2379"]);
        assert_eq!(c.heartbeat_interval, 100);
        assert_eq!(c.election_timeout, 1000);
        assert_eq!(
            c.initial_members().unwrap(),
            vec![(
                "default".to_string(),
                vec!["http://localhost:2380".to_string()]
            )]
        );
        c.validate().unwrap();
    }

    #[test]
    fn initial_cluster_parsing() {
        let c = ServerConfig::parse_from([
            "kvstore",
            "--name",
            "b",
            "--initial-cluster",
            "a=http://127.0.0.1:1,b=http://127.0.0.1:2",
        ]);
        assert_eq!(c.initial_members().unwrap().len(), 2);
        let c = ServerConfig::parse_from([
            "kvstore",
            "--name",
            "z",
            "--initial-cluster",
            "a=http://127.0.0.1:1",
        ]);
        assert!(c.initial_members().is_err());
    }
}
