//! `etcdserverpb.Watch`: not served yet; answers `Unimplemented`.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::Api;
use crate::pb::watch_server::Watch;
use crate::pb::{WatchRequest, WatchResponse};

/// The Watch service.
#[derive(Clone)]
pub struct WatchService {
    #[allow(dead_code)]
    api: Api,
}

impl WatchService {
    /// A Watch service over `api`.
    pub fn new(api: Api) -> Self {
        WatchService { api }
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

    async fn watch(
        &self,
        _req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch is not available yet"))
    }
}
