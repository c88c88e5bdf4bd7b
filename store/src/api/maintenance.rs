//! `etcdserverpb.Maintenance`: status, alarms, hashes, snapshot streaming, defragment,
//! leader transfer.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::Api;
use super::lease::async_stream;
use super::snapshot_stream;
use crate::error::EtcdError;
use crate::mvcc::hash;
use crate::pb::maintenance_server::Maintenance;
use crate::pb::*;
use crate::raft::Command;
use crate::raft::state_machine::SmShared;

/// The Maintenance service.
#[derive(Clone)]
pub struct MaintenanceService {
    api: Api,
}

impl MaintenanceService {
    /// A Maintenance service over `api`.
    pub fn new(api: Api) -> Self {
        MaintenanceService { api }
    }

    /// Serve a status request.
    pub fn status_response(&self) -> StatusResponse {
        let node = &self.api.node;
        let m = node.metrics();
        let mut errors = Vec::new();
        if m.current_leader.is_none() {
            errors.push(EtcdError::NoLeader.to_string());
        }
        for (member, alarm) in node.sm.alarms().unwrap_or_default() {
            let name = AlarmType::try_from(alarm)
                .map(|a| a.as_str_name())
                .unwrap_or("UNKNOWN");
            errors.push(format!("memberID:{member} alarm:{name} "));
        }
        let is_voter = m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == node.id);
        StatusResponse {
            header: Some(node.header()),
            version: crate::ETCD_VERSION.to_string(),
            db_size: node.sm.db_size(),
            leader: m.current_leader.unwrap_or(0),
            raft_index: m.last_log_index.unwrap_or(0),
            raft_term: m.current_term,
            raft_applied_index: m.last_applied.map_or(0, |l| l.index),
            errors,
            db_size_in_use: node.sm.db_size_in_use(),
            is_learner: !is_voter,
            storage_version: String::new(),
            db_size_quota: self.api.quota as i64,
            downgrade_info: None,
        }
    }

    /// Serve an alarm request.
    pub async fn alarm_request(&self, req: AlarmRequest) -> Result<AlarmResponse, Status> {
        use alarm_request::AlarmAction;
        let action = AlarmAction::try_from(req.action).unwrap_or(AlarmAction::Get);
        if action != AlarmAction::Get {
            let cmd = Command::Alarm {
                activate: action == AlarmAction::Activate,
                member_id: req.member_id,
                alarm: req.alarm,
            };
            self.api.propose(cmd).await?;
        }
        let alarms = self
            .api
            .node
            .sm
            .alarms()?
            .into_iter()
            .filter(|(m, a)| {
                (req.member_id == 0 || *m == req.member_id)
                    && (req.alarm == AlarmType::None as i32 || *a == req.alarm)
            })
            .map(|(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect();
        Ok(AlarmResponse {
            header: Some(self.api.node.header()),
            alarms,
        })
    }

    fn hash_kv_blocking(sm: &SmShared, rev: i64) -> crate::Result<(u32, i64, i64)> {
        let txn = sm.read()?;
        let revs = SmShared::revs_in(&txn)?;
        let (h, at) = hash::hash_kv(&txn, revs, rev)?;
        Ok((h, revs.compact, at))
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        Ok(Response::new(self.alarm_request(req.into_inner()).await?))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(self.status_response()))
    }

    async fn defragment(
        &self,
        _req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        let sm = self.api.node.sm.clone();
        tokio::task::spawn_blocking(move || sm.defragment())
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(DefragmentResponse {
            header: Some(self.api.node.header()),
        }))
    }

    async fn hash(&self, _req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let sm = self.api.node.sm.clone();
        let h = tokio::task::spawn_blocking(move || -> crate::Result<u32> {
            let txn = sm.read()?;
            let revs = SmShared::revs_in(&txn)?;
            hash::hash_all(&txn, revs)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(HashResponse {
            header: Some(self.api.node.header()),
            hash: h,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let sm = self.api.node.sm.clone();
        let rev = req.into_inner().revision;
        let (hash, compact_revision, hash_revision) =
            tokio::task::spawn_blocking(move || Self::hash_kv_blocking(&sm, rev))
                .await
                .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(HashKvResponse {
            header: Some(self.api.node.header_at(hash_revision)),
            hash,
            compact_revision,
            hash_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _req: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let sm = self.api.node.sm.clone();
        let (txn, revision, padded) = tokio::task::spawn_blocking(move || -> crate::Result<_> {
            let txn = sm.read()?;
            let revision = SmShared::revs_in(&txn)?.current;
            let padded = snapshot_stream::padded_size(&txn)?;
            Ok((txn, revision, padded))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        // Every message carries the header, at the revision the snapshot holds (as etcd's).
        let header = self.api.node.header_at(revision);
        let out = async_stream(move |tx| async move {
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = snapshot_stream::stream(&txn, padded, &header, &tx) {
                    // End the stream with an error, not as if the snapshot were whole: a
                    // backup that only checks for the end of the stream would keep it.
                    tracing::warn!(error = %e, "snapshot stream failed");
                    let _ = tx.blocking_send(Err(Status::internal(format!(
                        "snapshot stream failed: {e}"
                    ))));
                }
            })
            .await;
        });
        Ok(Response::new(out))
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let target = req.into_inner().target_id;
        let node = &self.api.node;
        let m = node.metrics();
        if m.current_leader != Some(node.id) {
            return Err(EtcdError::NotLeader.into());
        }
        if target == node.id {
            return Ok(Response::new(MoveLeaderResponse {
                header: Some(node.header()),
            }));
        }
        if !m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == target)
        {
            return Err(EtcdError::BadLeaderTransferee.into());
        }
        node.transfer_leadership(target).await?;
        Ok(Response::new(MoveLeaderResponse {
            header: Some(node.header()),
        }))
    }

    async fn downgrade(
        &self,
        _req: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented("kvstore does not support downgrades"))
    }
}
