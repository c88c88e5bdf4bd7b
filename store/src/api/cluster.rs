//! `etcdserverpb.Cluster`: member list, add (learner or voter), remove, update, promote.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::Api;
use crate::error::EtcdError;
use crate::pb::cluster_server::Cluster;
use crate::pb::*;
use crate::raft::network::MemberOp;

/// The Cluster service.
#[derive(Clone)]
pub struct ClusterService {
    api: Api,
}

impl ClusterService {
    /// A Cluster service over `api`.
    pub fn new(api: Api) -> Self {
        ClusterService { api }
    }

    /// Wait (briefly) until this member's view of the membership satisfies `f`.
    async fn settle(&self, f: impl Fn(&[Member]) -> bool) -> Vec<Member> {
        for _ in 0..100 {
            let m = self.api.node.members();
            if f(&m) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.api.node.members()
    }

    /// Serve a member list.
    pub async fn list(&self, req: MemberListRequest) -> Result<MemberListResponse, Status> {
        // Always linearizable: a member list read right after a change must show it.
        let _ = req.linearizable;
        self.api.node.linearize().await?;
        Ok(MemberListResponse {
            header: Some(self.api.node.header()),
            members: self.api.node.members(),
        })
    }

    /// Serve a member add.
    pub async fn add(&self, req: MemberAddRequest) -> Result<MemberAddResponse, Status> {
        if req.peer_ur_ls.is_empty() {
            return Err(EtcdError::InvalidArgument(
                "etcdserver: member peer URLs are not provided".into(),
            )
            .into());
        }
        let op = MemberOp::Add {
            peer_urls: req.peer_ur_ls.clone(),
            is_learner: req.is_learner,
        };
        let id = self.api.node.member_op(op).await?;
        let members = self
            .settle(|m| {
                m.iter()
                    .any(|x| x.id == id && x.is_learner == req.is_learner)
            })
            .await;
        let member = members
            .iter()
            .find(|m| m.id == id)
            .cloned()
            .unwrap_or(Member {
                id,
                peer_ur_ls: req.peer_ur_ls,
                is_learner: req.is_learner,
                ..Default::default()
            });
        Ok(MemberAddResponse {
            header: Some(self.api.node.header()),
            member: Some(member),
            members,
        })
    }

    /// Serve a member remove.
    pub async fn remove(&self, req: MemberRemoveRequest) -> Result<MemberRemoveResponse, Status> {
        let id = req.id;
        self.api.node.member_op(MemberOp::Remove { id }).await?;
        let members = self.settle(|m| !m.iter().any(|x| x.id == id)).await;
        Ok(MemberRemoveResponse {
            header: Some(self.api.node.header()),
            members,
        })
    }

    /// Serve a member update.
    pub async fn update(&self, req: MemberUpdateRequest) -> Result<MemberUpdateResponse, Status> {
        let urls = req.peer_ur_ls.clone();
        self.api
            .node
            .member_op(MemberOp::Update {
                id: req.id,
                peer_urls: req.peer_ur_ls,
            })
            .await?;
        let members = self
            .settle(|m| m.iter().any(|x| x.id == req.id && x.peer_ur_ls == urls))
            .await;
        Ok(MemberUpdateResponse {
            header: Some(self.api.node.header()),
            members,
        })
    }

    /// Serve a member promote.
    pub async fn promote(
        &self,
        req: MemberPromoteRequest,
    ) -> Result<MemberPromoteResponse, Status> {
        let id = req.id;
        self.api.node.member_op(MemberOp::Promote { id }).await?;
        let members = self
            .settle(|m| m.iter().any(|x| x.id == id && !x.is_learner))
            .await;
        Ok(MemberPromoteResponse {
            header: Some(self.api.node.header()),
            members,
        })
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Ok(Response::new(self.add(req.into_inner()).await?))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Ok(Response::new(self.remove(req.into_inner()).await?))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Ok(Response::new(self.update(req.into_inner()).await?))
    }

    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(self.list(req.into_inner()).await?))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Ok(Response::new(self.promote(req.into_inner()).await?))
    }
}
