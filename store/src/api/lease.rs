//! `etcdserverpb.Lease`: grant, revoke, keep-alive, time-to-live and list.

use std::pin::Pin;

use futures::Stream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{Api, unexpected};
use crate::lessor::LeaseOp;
use crate::pb::lease_server::Lease;
use crate::pb::*;
use crate::raft::{Command, CommandResponse};

/// The Lease service.
#[derive(Clone)]
pub struct LeaseService {
    api: Api,
}

impl LeaseService {
    /// A Lease service over `api`.
    pub fn new(api: Api) -> Self {
        LeaseService { api }
    }

    fn find(&self, id: i64) -> Result<Option<i64>, Status> {
        let leases = self.api.node.sm.leases()?;
        Ok(leases
            .into_iter()
            .find(|(l, _)| *l == id)
            .map(|(_, r)| r.ttl))
    }

    /// Serve a grant.
    pub async fn grant(&self, req: LeaseGrantRequest) -> Result<LeaseGrantResponse, Status> {
        self.api.check_space().await?;
        let ttl = req.ttl.max(self.api.min_lease_ttl);
        let id = if req.id != 0 {
            req.id
        } else {
            (rand::random::<u64>() >> 1).max(1) as i64
        };
        match self.api.propose(Command::LeaseGrant { id, ttl }).await? {
            CommandResponse::Done { revision } => Ok(LeaseGrantResponse {
                header: Some(self.api.node.header_at(revision)),
                id,
                ttl,
                error: String::new(),
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Serve a revoke.
    pub async fn revoke(&self, req: LeaseRevokeRequest) -> Result<LeaseRevokeResponse, Status> {
        match self
            .api
            .propose(Command::LeaseRevoke { id: req.id })
            .await?
        {
            CommandResponse::Done { revision } => Ok(LeaseRevokeResponse {
                header: Some(self.api.node.header_at(revision)),
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Serve a time-to-live query.
    pub async fn time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        let ttl = self.api.node.lease_op(LeaseOp::TimeToLive(req.id)).await?;
        let granted = self.find(req.id)?;
        let (Some(granted), true) = (granted, ttl >= 0) else {
            return Ok(LeaseTimeToLiveResponse {
                header: Some(self.api.node.header()),
                id: req.id,
                ttl: -1,
                ..Default::default()
            });
        };
        let keys = if req.keys {
            self.api.node.sm.lease_keys(req.id)?
        } else {
            Vec::new()
        };
        Ok(LeaseTimeToLiveResponse {
            header: Some(self.api.node.header()),
            id: req.id,
            ttl,
            granted_ttl: granted,
            keys,
        })
    }

    /// Serve a lease list.
    pub async fn list(&self) -> Result<LeaseLeasesResponse, Status> {
        self.api.node.linearize().await?;
        let leases = self
            .api
            .node
            .sm
            .leases()?
            .into_iter()
            .map(|(id, _)| LeaseStatus { id })
            .collect();
        Ok(LeaseLeasesResponse {
            header: Some(self.api.node.header()),
            leases,
        })
    }

    /// Answer one keep-alive (at the leader).
    pub async fn keep_alive_once(&self, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
        let ttl = self.api.node.lease_op(LeaseOp::KeepAlive(id)).await?;
        Ok(LeaseKeepAliveResponse {
            header: Some(self.api.node.header()),
            id,
            ttl,
        })
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        Ok(Response::new(self.grant(req.into_inner()).await?))
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        Ok(Response::new(self.revoke(req.into_inner()).await?))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut input = req.into_inner();
        let me = self.clone();
        let out = async_stream(move |tx| async move {
            while let Some(Ok(r)) = input.next().await {
                let resp = me.keep_alive_once(r.id).await;
                if tx.send(resp).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(out))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        Ok(Response::new(self.time_to_live(req.into_inner()).await?))
    }

    async fn lease_leases(
        &self,
        _req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        Ok(Response::new(self.list().await?))
    }
}

/// A response stream fed by a task through a bounded channel.
pub fn async_stream<T, F, Fut>(f: F) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
