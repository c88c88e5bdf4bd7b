//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn, Compact.

use tonic::{Request, Response, Status};

use super::{Api, unexpected};
use crate::error::EtcdError;
use crate::mvcc::{read, txn};
use crate::pb::kv_server::Kv;
use crate::pb::*;
use crate::raft::state_machine::SmShared;
use crate::raft::{Command, CommandResponse};

/// The KV service.
#[derive(Clone)]
pub struct KvService {
    api: Api,
}

impl KvService {
    /// A KV service over `api`.
    pub fn new(api: Api) -> Self {
        KvService { api }
    }

    /// Serve a range (shared with the HTTP gateway).
    pub async fn range_request(&self, req: RangeRequest) -> Result<RangeResponse, Status> {
        crate::metrics::METRICS.ranges.inc();
        if req.key.is_empty() {
            return Err(EtcdError::KeyNotProvided.into());
        }
        self.api.check_size(&req)?;
        if !req.serializable {
            self.api.node.linearize().await?;
        }
        let sm = self.api.node.sm.clone();
        let mut resp = tokio::task::spawn_blocking(move || {
            let txn = sm.read()?;
            let revs = SmShared::revs_in(&txn)?;
            let latest = txn.open_table(crate::mvcc::tables::KV_LATEST)?;
            let history = txn.open_table(crate::mvcc::tables::KV_HISTORY)?;
            read::range(&latest, &history, revs, &req)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        resp.header = self.api.fill(resp.header);
        Ok(resp)
    }

    /// Serve a put.
    pub async fn put_request(&self, req: PutRequest) -> Result<PutResponse, Status> {
        crate::metrics::METRICS.puts.inc();
        if req.key.is_empty() {
            return Err(EtcdError::KeyNotProvided.into());
        }
        self.api.check_size(&req)?;
        self.api.check_space().await?;
        match self.api.propose(Command::Put(req)).await? {
            CommandResponse::Put(mut r) => {
                r.header = self.api.fill(r.header);
                Ok(r)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Serve a delete-range.
    pub async fn delete_request(
        &self,
        req: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Status> {
        crate::metrics::METRICS.deletes.inc();
        if req.key.is_empty() {
            return Err(EtcdError::KeyNotProvided.into());
        }
        self.api.check_size(&req)?;
        match self.api.propose(Command::DeleteRange(req)).await? {
            CommandResponse::DeleteRange(mut r) => {
                r.header = self.api.fill(r.header);
                Ok(r)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Serve a txn.
    pub async fn txn_request(&self, req: TxnRequest) -> Result<TxnResponse, Status> {
        crate::metrics::METRICS.txns.inc();
        txn::validate(&req, self.api.max_txn_ops)?;
        self.api.check_size(&req)?;
        if has_put(&req) {
            self.api.check_space().await?;
        }
        match self.api.propose(Command::Txn(req)).await? {
            CommandResponse::Txn(mut r) => {
                r.header = self.api.fill(r.header);
                Ok(r)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Serve a compaction.
    pub async fn compact_request(
        &self,
        req: CompactionRequest,
    ) -> Result<CompactionResponse, Status> {
        match self
            .api
            .propose(Command::Compact {
                revision: req.revision,
            })
            .await?
        {
            CommandResponse::Compact(mut r) => {
                r.header = self.api.fill(r.header);
                Ok(r)
            }
            other => Err(unexpected(&other)),
        }
    }
}

fn has_put(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .any(|op| match &op.request {
            Some(request_op::Request::RequestPut(_)) => true,
            Some(request_op::Request::RequestTxn(t)) => has_put(t),
            _ => false,
        })
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        Ok(Response::new(self.range_request(req.into_inner()).await?))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        Ok(Response::new(self.put_request(req.into_inner()).await?))
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        Ok(Response::new(self.delete_request(req.into_inner()).await?))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        Ok(Response::new(self.txn_request(req.into_inner()).await?))
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        Ok(Response::new(self.compact_request(req.into_inner()).await?))
    }
}
