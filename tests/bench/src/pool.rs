//! Connections: a small pool of `etcd_client::Client`s (one per 16 tasks by default, like etcd's
//! benchmark `--conns`) shared by the client tasks, and leader discovery.
//!
//! Each pooled `Client` talks to exactly one endpoint: connection `j` goes to endpoint
//! `j % endpoints`, or every connection goes to the leader with `--target-leader`. Cloning a
//! `Client` shares its HTTP/2 connection, so tasks `i`, `i + conns`, ... multiplex one connection.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use etcd_client::{Client, ConnectOptions};

use crate::opts::Settings;

/// Connection options used everywhere: bounded connect time, no client-side request timeout
/// (the runner applies its own so that timeouts are counted separately).
pub fn connect_options() -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10))
}

/// Connects to one endpoint and makes sure the connection is up (the channel is lazy).
pub async fn connect_one(endpoint: &str) -> Result<Client> {
    let mut client = Client::connect([endpoint], Some(connect_options()))
        .await
        .with_context(|| format!("connecting to {endpoint}"))?;
    tokio::time::timeout(Duration::from_secs(10), client.status())
        .await
        .with_context(|| format!("status of {endpoint} timed out"))?
        .with_context(|| format!("status of {endpoint}"))?;
    Ok(client)
}

/// Index in `endpoints` of the member that is leader (by `Status`: member_id == leader).
pub async fn find_leader(endpoints: &[String]) -> Result<usize> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        for (i, ep) in endpoints.iter().enumerate() {
            let Ok(mut c) = connect_one(ep).await else {
                continue;
            };
            let Ok(Ok(st)) = tokio::time::timeout(Duration::from_secs(3), c.status()).await else {
                continue;
            };
            let member = st.header().map(|h| h.member_id()).unwrap_or(0);
            if member != 0 && st.leader() == member {
                return Ok(i);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no endpoint of {endpoints:?} reports itself as leader");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The shared connections of one run.
pub struct Pool {
    clients: Vec<Client>,
    /// Endpoint of each connection, for the run's description.
    pub targets: Vec<String>,
}

impl Pool {
    /// Opens `s.conns` connections as described in the module header.
    pub async fn connect(s: &Settings) -> Result<Self> {
        let endpoints = if s.target_leader {
            let leader = find_leader(&s.endpoints).await?;
            vec![s.endpoints[leader].clone()]
        } else {
            s.endpoints.clone()
        };
        Self::connect_to(&endpoints, s.conns).await
    }

    /// Opens `conns` connections spread round-robin over `endpoints`.
    pub async fn connect_to(endpoints: &[String], conns: usize) -> Result<Self> {
        if endpoints.is_empty() {
            bail!("no endpoints");
        }
        let targets: Vec<String> = (0..conns.max(1))
            .map(|j| endpoints[j % endpoints.len()].clone())
            .collect();
        let clients =
            futures::future::try_join_all(targets.iter().map(|ep| connect_one(ep))).await?;
        Ok(Self { clients, targets })
    }

    /// The connection used by task `task`.
    pub fn client(&self, task: usize) -> Client {
        self.clients[task % self.clients.len()].clone()
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Short description: `3 conns -> [a, b, c]` (leader / spread).
    pub fn describe(&self, target_leader: bool) -> String {
        let mut eps: Vec<&str> = Vec::new();
        for t in &self.targets {
            if !eps.contains(&t.as_str()) {
                eps.push(t);
            }
        }
        let mode = if target_leader { "leader" } else { "spread" };
        let conns = crate::summary::n(self.len() as u64, "conn");
        format!("{conns} ({mode}: {})", eps.join(","))
    }
}
