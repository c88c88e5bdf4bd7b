//! The `/v3/...` JSON routes of etcd's grpc-gateway, served by the same service code as gRPC.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt};
use prost::Message;
use serde::Deserialize;

use super::json::{self, BadJson};
use crate::api::Services;
use crate::mvcc::prefix_end;
use crate::pb::auth_server::Auth;
use crate::pb::cluster_server::Cluster;
use crate::pb::kv_server::Kv;
use crate::pb::lease_server::Lease;
use crate::pb::maintenance_server::Maintenance;
use crate::pb::*;

/// The HTTP status grpc-gateway maps a gRPC code to.
pub fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code::*;
    match code {
        Ok => StatusCode::OK,
        Cancelled => StatusCode::REQUEST_TIMEOUT,
        InvalidArgument | FailedPrecondition | OutOfRange => StatusCode::BAD_REQUEST,
        DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        NotFound => StatusCode::NOT_FOUND,
        AlreadyExists | Aborted => StatusCode::CONFLICT,
        PermissionDenied => StatusCode::FORBIDDEN,
        Unauthenticated => StatusCode::UNAUTHORIZED,
        ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Unknown | Internal | DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A gRPC error as grpc-gateway writes it.
pub fn error_response(status: &tonic::Status) -> Response {
    let body = serde_json::json!({
        "error": status.message(),
        "code": status.code() as i32,
        "message": status.message(),
    });
    (
        http_status(status.code()),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn bad_json(e: BadJson) -> Response {
    error_response(&tonic::Status::invalid_argument(e.0))
}

fn json_response(v: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// A streamed response: one `{"result": ...}` (or `{"error": ...}`) object per line.
fn stream_response<T, S>(name: &'static str, s: S) -> Response
where
    T: Message + 'static,
    S: Stream<Item = Result<T, tonic::Status>> + Send + 'static,
{
    let lines = s.map(move |item| {
        let v = match item {
            Ok(m) => serde_json::json!({ "result": json::encode(name, &m) }),
            Err(st) => serde_json::json!({ "error": {
                "grpc_code": st.code() as i32,
                "http_code": http_status(st.code()).as_u16(),
                "message": st.message(),
                "http_status": http_status(st.code()).canonical_reason().unwrap_or(""),
            }}),
        };
        Ok::<_, std::convert::Infallible>(Bytes::from(format!("{v}\n")))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(lines),
    )
        .into_response()
}

/// The JSON objects of a request body, in order (a stream request may hold several).
fn body_objects<T: Message + Default>(name: &str, body: &[u8]) -> Result<Vec<T>, BadJson> {
    let mut out = Vec::new();
    let stream = serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>();
    for v in stream {
        let v = v.map_err(|e| BadJson(format!("invalid JSON: {e}")))?;
        out.push(json::decode_value(name, v).map_err(|e| BadJson(e.0))?);
    }
    Ok(out)
}

macro_rules! unary {
    ($router:ident, $path:literal, $field:ident, $method:ident, $req:ident, $resp:literal) => {
        unary!(
            $router,
            $path,
            $field,
            $method,
            $req as stringify!($req),
            $resp
        )
    };
    ($router:ident, $path:literal, $field:ident, $method:ident, $req:ident as $req_name:expr, $resp:literal) => {
        $router = $router.route(
            $path,
            post(|State(s): State<Services>, body: Bytes| async move {
                let req: $req = match json::decode($req_name, &body) {
                    Ok(r) => r,
                    Err(e) => return bad_json(e),
                };
                match s.$field.$method(tonic::Request::new(req)).await {
                    Ok(r) => json_response(json::encode($resp, &r.into_inner())),
                    Err(st) => error_response(&st),
                }
            }),
        );
    };
}

/// `GET /v3/kv/range?key=...`: a plain-text form of range.
#[derive(Debug, Deserialize)]
struct RangeQuery {
    key: String,
    range_end: Option<String>,
    prefix: Option<bool>,
    limit: Option<i64>,
    revision: Option<i64>,
    serializable: Option<bool>,
    keys_only: Option<bool>,
    count_only: Option<bool>,
}

async fn range_get(
    State(s): State<Services>,
    q: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error_response(&tonic::Status::invalid_argument(e.body_text())),
    };
    let key = q.key.into_bytes();
    let range_end = match (q.prefix, q.range_end) {
        (Some(true), _) => prefix_end(&key),
        (_, Some(e)) => e.into_bytes(),
        _ => Vec::new(),
    };
    let req = RangeRequest {
        key,
        range_end,
        limit: q.limit.unwrap_or(0),
        revision: q.revision.unwrap_or(0),
        serializable: q.serializable.unwrap_or(false),
        keys_only: q.keys_only.unwrap_or(false),
        count_only: q.count_only.unwrap_or(false),
        ..Default::default()
    };
    match s.kv.range_request(req).await {
        Ok(r) => json_response(json::encode("RangeResponse", &r)),
        Err(st) => error_response(&st),
    }
}

async fn watch(State(s): State<Services>, body: Bytes) -> Response {
    let reqs: Vec<WatchRequest> = match body_objects("WatchRequest", &body) {
        Ok(r) => r,
        Err(e) => return bad_json(e),
    };
    let input = futures::stream::iter(reqs.into_iter().map(Ok));
    stream_response("WatchResponse", s.watch.open(input))
}

async fn keepalive(State(s): State<Services>, body: Bytes) -> Response {
    let reqs: Vec<LeaseKeepAliveRequest> = match body_objects("LeaseKeepAliveRequest", &body) {
        Ok(r) => r,
        Err(e) => return bad_json(e),
    };
    let lease = s.lease.clone();
    let out = futures::stream::iter(reqs).then(move |r| {
        let lease = lease.clone();
        async move { lease.keep_alive_once(r.id).await }
    });
    stream_response("LeaseKeepAliveResponse", out)
}

async fn snapshot(State(s): State<Services>) -> Response {
    match s
        .maintenance
        .snapshot(tonic::Request::new(SnapshotRequest {}))
        .await
    {
        Ok(r) => stream_response("SnapshotResponse", r.into_inner()),
        Err(st) => error_response(&st),
    }
}

/// Every `/v3` route of etcd's gateway.
pub fn routes() -> Router<Services> {
    let mut r = Router::new();
    unary!(r, "/v3/kv/range", kv, range, RangeRequest, "RangeResponse");
    unary!(r, "/v3/kv/put", kv, put, PutRequest, "PutResponse");
    unary!(
        r,
        "/v3/kv/deleterange",
        kv,
        delete_range,
        DeleteRangeRequest,
        "DeleteRangeResponse"
    );
    unary!(r, "/v3/kv/txn", kv, txn, TxnRequest, "TxnResponse");
    unary!(
        r,
        "/v3/kv/compaction",
        kv,
        compact,
        CompactionRequest,
        "CompactionResponse"
    );
    unary!(
        r,
        "/v3/lease/grant",
        lease,
        lease_grant,
        LeaseGrantRequest,
        "LeaseGrantResponse"
    );
    unary!(
        r,
        "/v3/lease/revoke",
        lease,
        lease_revoke,
        LeaseRevokeRequest,
        "LeaseRevokeResponse"
    );
    unary!(
        r,
        "/v3/kv/lease/revoke",
        lease,
        lease_revoke,
        LeaseRevokeRequest,
        "LeaseRevokeResponse"
    );
    unary!(
        r,
        "/v3/lease/timetolive",
        lease,
        lease_time_to_live,
        LeaseTimeToLiveRequest,
        "LeaseTimeToLiveResponse"
    );
    unary!(
        r,
        "/v3/kv/lease/timetolive",
        lease,
        lease_time_to_live,
        LeaseTimeToLiveRequest,
        "LeaseTimeToLiveResponse"
    );
    unary!(
        r,
        "/v3/lease/leases",
        lease,
        lease_leases,
        LeaseLeasesRequest,
        "LeaseLeasesResponse"
    );
    unary!(
        r,
        "/v3/kv/lease/leases",
        lease,
        lease_leases,
        LeaseLeasesRequest,
        "LeaseLeasesResponse"
    );
    unary!(
        r,
        "/v3/cluster/member/add",
        cluster,
        member_add,
        MemberAddRequest,
        "MemberAddResponse"
    );
    unary!(
        r,
        "/v3/cluster/member/remove",
        cluster,
        member_remove,
        MemberRemoveRequest,
        "MemberRemoveResponse"
    );
    unary!(
        r,
        "/v3/cluster/member/update",
        cluster,
        member_update,
        MemberUpdateRequest,
        "MemberUpdateResponse"
    );
    unary!(
        r,
        "/v3/cluster/member/list",
        cluster,
        member_list,
        MemberListRequest,
        "MemberListResponse"
    );
    unary!(
        r,
        "/v3/cluster/member/promote",
        cluster,
        member_promote,
        MemberPromoteRequest,
        "MemberPromoteResponse"
    );
    unary!(
        r,
        "/v3/maintenance/alarm",
        maintenance,
        alarm,
        AlarmRequest,
        "AlarmResponse"
    );
    unary!(
        r,
        "/v3/maintenance/status",
        maintenance,
        status,
        StatusRequest,
        "StatusResponse"
    );
    unary!(
        r,
        "/v3/maintenance/defragment",
        maintenance,
        defragment,
        DefragmentRequest,
        "DefragmentResponse"
    );
    unary!(
        r,
        "/v3/maintenance/hash",
        maintenance,
        hash,
        HashRequest,
        "HashResponse"
    );
    unary!(r, "/v3/maintenance/hashkv", maintenance, hash_kv, HashKvRequest as "HashKVRequest", "HashKVResponse");
    unary!(
        r,
        "/v3/maintenance/transfer-leadership",
        maintenance,
        move_leader,
        MoveLeaderRequest,
        "MoveLeaderResponse"
    );
    unary!(
        r,
        "/v3/auth/status",
        auth,
        auth_status,
        AuthStatusRequest,
        "AuthStatusResponse"
    );
    unary!(
        r,
        "/v3/auth/authenticate",
        auth,
        authenticate,
        AuthenticateRequest,
        "AuthenticateResponse"
    );
    r = r
        .route("/v3/kv/range", get(range_get))
        .route("/v3/watch", post(watch))
        .route("/v3/lease/keepalive", post(keepalive))
        .route("/v3/maintenance/snapshot", post(snapshot));
    r
}
