//! Client traffic: concurrent clients, each bound to one member, sending a random mix of etcd
//! requests (Put, linearizable and serializable Range, Txn compare-and-set, DeleteRange, lease
//! grant / keepalive / revoke and puts with a lease, Compact) over a small key space, at a
//! bounded rate, and recording every call with its times and its answer, or the lack of one.
//!
//! Every Put writes a value no other write uses, so a watch event names the write it came
//! from. Every request has a deadline: a request without an answer by then is recorded as
//! [`Response::Unknown`] (it may or may not have taken effect).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOpResponse};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cluster::connect;
use crate::check::history::{
    Compare, CompareResult, CompareTarget, KeyValue, Operation, Request, Response, TxnOp,
    TxnOpResult,
};

/// Keys the traffic writes: few, so that clients contend on them.
pub const KEYS: usize = 10;
/// Keys written with a lease.
pub const LEASE_KEYS: usize = 4;
/// Time to live of the leases clients keep using (longer than any run: they never expire).
pub const LONG_TTL: i64 = 24 * 3600;
/// Time to live of the leases granted to expire: one key attached right after the grant, then
/// never touched again, so that the expiry shows as the deletion of that key (with the lease
/// in its `prev_kv`), the only trace it can leave.
pub const SHORT_TTL: i64 = 2;
/// How long a client waits for an answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What the clients share.
pub struct Shared {
    /// Run start: every time in the history counts from it.
    pub start: Instant,
    /// Set to stop the clients.
    pub stop: AtomicBool,
    /// Leases granted and not known to be revoked.
    pub leases: Mutex<Vec<i64>>,
    /// The highest revision any answer carried.
    pub revision: std::sync::atomic::AtomicI64,
    /// Events the watch recorders received.
    pub watch_events: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Nanoseconds since the run started.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("key{i}").into_bytes()
}

fn lease_key(i: usize) -> Vec<u8> {
    format!("lkey{i}").into_bytes()
}

fn expiring_key(client: u32) -> Vec<u8> {
    format!("ekey{client}").into_bytes()
}

/// Send `request` to `c`, recording it.
async fn record(
    c: &mut Client,
    id: u32,
    member: usize,
    request: Request,
    shared: &Shared,
    ops: &mut Vec<Operation>,
) -> Response {
    let call = shared.now();
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, send(c, &request)).await {
        Ok(r) => r,
        Err(_) => Response::Unknown("timeout".into()),
    };
    let ret = shared.now();
    ops.push(Operation {
        client: id,
        member,
        call,
        ret,
        request,
        response: response.clone(),
    });
    response
}

/// One client: sends requests to `url` until told to stop, one every `interval` at most.
pub async fn client(
    id: u32,
    member: usize,
    url: String,
    interval: Duration,
    seed: u64,
    shared: Arc<Shared>,
) -> Vec<Operation> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ops = Vec::new();
    let mut conn: Option<Client> = None;
    let mut seq = 0u64;
    // The mod revision this client last saw per key, for compare-and-set.
    let mut seen = [0i64; KEYS];
    while !shared.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        if conn.is_none() {
            conn = connect(&url).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        seq += 1;
        let value = format!("c{id}-{seq}").into_bytes();
        let request = pick(&mut rng, &seen, value.clone(), &shared);
        let response = record(c, id, member, request.clone(), &shared, &mut ops).await;
        learn(&request, &response, &mut seen, &shared);
        let mut failed = response.is_unknown();
        if let (Request::LeaseGrant { ttl: SHORT_TTL }, Response::LeaseGrant { id: lease, .. }) =
            (&request, &response)
        {
            let put = Request::Put {
                key: expiring_key(id),
                value: [value, b"-e".to_vec()].concat(),
                lease: *lease,
            };
            failed = record(c, id, member, put, &shared, &mut ops)
                .await
                .is_unknown();
        }
        if failed {
            // A fresh connection after a failure, as a client library would redial.
            conn = None;
        }
        if let Some(rest) = interval.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    ops
}

/// A random request.
fn pick(rng: &mut StdRng, seen: &[i64; KEYS], value: Vec<u8>, shared: &Shared) -> Request {
    let k = rng.random_range(0..KEYS);
    let lease = {
        let l = shared.leases.lock().unwrap_or_else(|e| e.into_inner());
        if l.is_empty() {
            0
        } else {
            l[rng.random_range(0..l.len())]
        }
    };
    match rng.random_range(0..100) {
        0..25 => Request::Put {
            key: key(k),
            value,
            lease: 0,
        },
        25..40 => Request::Range {
            key: key(k),
            range_end: Vec::new(),
            revision: 0,
            limit: 0,
            serializable: false,
        },
        40..45 => Request::Range {
            key: b"key".to_vec(),
            range_end: b"kez".to_vec(),
            revision: 0,
            limit: 0,
            serializable: false,
        },
        45..55 => Request::Range {
            key: key(k),
            range_end: Vec::new(),
            revision: 0,
            limit: 0,
            serializable: true,
        },
        55..70 => Request::Txn {
            compare: vec![Compare {
                key: key(k),
                result: CompareResult::Equal,
                target: CompareTarget::ModRevision(seen[k]),
            }],
            success: vec![TxnOp::Put {
                key: key(k),
                value,
                lease: 0,
            }],
            failure: vec![TxnOp::Range {
                key: key(k),
                range_end: Vec::new(),
            }],
        },
        70..76 => Request::DeleteRange {
            key: key(k),
            range_end: Vec::new(),
        },
        76..79 => Request::LeaseGrant { ttl: LONG_TTL },
        79..80 => Request::LeaseGrant { ttl: SHORT_TTL },
        80..88 if lease != 0 => Request::Put {
            key: lease_key(rng.random_range(0..LEASE_KEYS)),
            value,
            lease,
        },
        88..92 if lease != 0 => Request::LeaseKeepAlive { id: lease },
        92..95 if lease != 0 => Request::LeaseRevoke { id: lease },
        95..97 => Request::Range {
            key: b"lkey".to_vec(),
            range_end: b"lkez".to_vec(),
            revision: 0,
            limit: 0,
            serializable: false,
        },
        97..98 => {
            // Far enough back that a watch resuming after a fault is rarely canceled by it:
            // the watches are how Unknown writes are resolved.
            let rev = shared.revision.load(Ordering::Relaxed) - 1000;
            Request::Compact {
                revision: rev.max(1),
            }
        }
        _ => Request::Put {
            key: key(k),
            value,
            lease: 0,
        },
    }
}

/// What a client keeps from an answer: the mod revisions it saw, the leases that exist.
fn learn(request: &Request, response: &Response, seen: &mut [i64; KEYS], shared: &Shared) {
    if let Some(rev) = response.revision() {
        shared.revision.fetch_max(rev, Ordering::Relaxed);
    }
    let index = |k: &[u8]| {
        std::str::from_utf8(k)
            .ok()
            .and_then(|s| s.strip_prefix("key"))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n < KEYS)
    };
    match (request, response) {
        (Request::Range { key, range_end, .. }, Response::Range { kvs, .. })
            if range_end.is_empty() =>
        {
            if let Some(i) = index(key) {
                seen[i] = kvs.first().map_or(0, |kv| kv.mod_revision);
            }
        }
        (Request::Put { key, .. }, Response::Put { revision }) => {
            if let Some(i) = index(key) {
                seen[i] = *revision;
            }
        }
        (
            Request::Txn { compare, .. },
            Response::Txn {
                revision,
                succeeded,
                results,
            },
        ) => {
            if let Some(i) = index(&compare[0].key) {
                if *succeeded {
                    seen[i] = *revision;
                } else if let Some(TxnOpResult::Range { kvs, .. }) = results.first() {
                    seen[i] = kvs.first().map_or(0, |kv| kv.mod_revision);
                }
            }
        }
        (Request::LeaseGrant { ttl: LONG_TTL }, Response::LeaseGrant { id, .. }) => {
            let mut l = shared.leases.lock().unwrap_or_else(|e| e.into_inner());
            l.push(*id);
            if l.len() > 8 {
                l.remove(0);
            }
        }
        (Request::LeaseRevoke { id }, Response::LeaseRevoke { .. } | Response::Refused(_))
        | (Request::LeaseKeepAlive { id }, Response::LeaseKeepAlive { ttl: 0 }) => {
            shared
                .leases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|l| l != id);
        }
        _ => {}
    }
}

/// Send one request and turn its answer into the history's terms.
pub async fn send(c: &mut Client, request: &Request) -> Response {
    match send_inner(c, request).await {
        Ok(r) => r,
        Err(e) => classify(&e),
    }
}

/// The error texts that are definite answers: the request changed nothing.
const DEFINITE: [&str; 3] = [
    "etcdserver: mvcc: required revision has been compacted",
    "etcdserver: mvcc: required revision is a future revision",
    "etcdserver: requested lease not found",
];

fn classify(e: &etcd_client::Error) -> Response {
    if let etcd_client::Error::GRpcStatus(s) = e
        && DEFINITE.contains(&s.message())
    {
        return Response::Refused(s.message().to_string());
    }
    Response::Unknown(e.to_string())
}

fn header_rev(h: Option<&etcd_client::ResponseHeader>) -> i64 {
    h.map_or(0, |h| h.revision())
}

/// A key-value pair as the history records it.
pub fn kv(k: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: k.key().to_vec(),
        value: k.value().to_vec(),
        create_revision: k.create_revision(),
        mod_revision: k.mod_revision(),
        version: k.version(),
        lease: k.lease(),
    }
}

fn get_options(range_end: &[u8], revision: i64, limit: i64, serializable: bool) -> GetOptions {
    let mut o = GetOptions::new();
    if !range_end.is_empty() {
        o = o.with_range(range_end.to_vec());
    }
    if revision != 0 {
        o = o.with_revision(revision);
    }
    if limit != 0 {
        o = o.with_limit(limit);
    }
    if serializable {
        o = o.with_serializable();
    }
    o
}

fn txn_op(op: &TxnOp) -> etcd_client::TxnOp {
    match op {
        TxnOp::Range { key, range_end } => {
            etcd_client::TxnOp::get(key.clone(), Some(get_options(range_end, 0, 0, false)))
        }
        TxnOp::Put { key, value, lease } => etcd_client::TxnOp::put(
            key.clone(),
            value.clone(),
            (*lease != 0).then(|| PutOptions::new().with_lease(*lease)),
        ),
        TxnOp::DeleteRange { key, range_end } => {
            let o =
                (!range_end.is_empty()).then(|| DeleteOptions::new().with_range(range_end.clone()));
            etcd_client::TxnOp::delete(key.clone(), o)
        }
    }
}

fn compare(c: &Compare) -> etcd_client::Compare {
    let op = match c.result {
        CompareResult::Equal => CompareOp::Equal,
        CompareResult::NotEqual => CompareOp::NotEqual,
        CompareResult::Greater => CompareOp::Greater,
        CompareResult::Less => CompareOp::Less,
    };
    let k = c.key.clone();
    match &c.target {
        CompareTarget::Value(v) => etcd_client::Compare::value(k, op, v.clone()),
        CompareTarget::Version(v) => etcd_client::Compare::version(k, op, *v),
        CompareTarget::CreateRevision(r) => etcd_client::Compare::create_revision(k, op, *r),
        CompareTarget::ModRevision(r) => etcd_client::Compare::mod_revision(k, op, *r),
        CompareTarget::Lease(l) => etcd_client::Compare::lease(k, op, *l),
    }
}

async fn send_inner(c: &mut Client, request: &Request) -> Result<Response, etcd_client::Error> {
    Ok(match request {
        Request::Range {
            key,
            range_end,
            revision,
            limit,
            serializable,
        } => {
            let r = c
                .get(
                    key.clone(),
                    Some(get_options(range_end, *revision, *limit, *serializable)),
                )
                .await?;
            Response::Range {
                revision: header_rev(r.header()),
                kvs: r.kvs().iter().map(kv).collect(),
                count: r.count(),
            }
        }
        Request::Put { key, value, lease } => {
            let o = (*lease != 0).then(|| PutOptions::new().with_lease(*lease));
            let r = c.put(key.clone(), value.clone(), o).await?;
            Response::Put {
                revision: header_rev(r.header()),
            }
        }
        Request::DeleteRange { key, range_end } => {
            let o =
                (!range_end.is_empty()).then(|| DeleteOptions::new().with_range(range_end.clone()));
            let r = c.delete(key.clone(), o).await?;
            Response::DeleteRange {
                revision: header_rev(r.header()),
                deleted: r.deleted(),
            }
        }
        Request::Txn {
            compare: cmp,
            success,
            failure,
        } => {
            let txn = Txn::new()
                .when(cmp.iter().map(compare).collect::<Vec<_>>())
                .and_then(success.iter().map(txn_op).collect::<Vec<_>>())
                .or_else(failure.iter().map(txn_op).collect::<Vec<_>>());
            let r = c.txn(txn).await?;
            let results = r
                .op_responses()
                .iter()
                .map(|o| match o {
                    TxnOpResponse::Get(g) => TxnOpResult::Range {
                        kvs: g.kvs().iter().map(kv).collect(),
                        count: g.count(),
                    },
                    TxnOpResponse::Put(_) => TxnOpResult::Put,
                    TxnOpResponse::Delete(d) => TxnOpResult::DeleteRange {
                        deleted: d.deleted(),
                    },
                    TxnOpResponse::Txn(_) => TxnOpResult::Put,
                })
                .collect();
            Response::Txn {
                revision: header_rev(r.header()),
                succeeded: r.succeeded(),
                results,
            }
        }
        Request::LeaseGrant { ttl } => {
            let r = c.lease_grant(*ttl, None).await?;
            Response::LeaseGrant {
                revision: header_rev(r.header()),
                id: r.id(),
            }
        }
        Request::LeaseRevoke { id } => {
            let r = c.lease_revoke(*id).await?;
            Response::LeaseRevoke {
                revision: header_rev(r.header()),
            }
        }
        Request::LeaseKeepAlive { id } => {
            // The library sends the first keepalive and reads its answer itself: a lease it
            // found is all it tells (its ttl is not handed out), a missing one is an error.
            match c.lease_keep_alive(*id).await {
                Ok(_) => Response::LeaseKeepAlive { ttl: 1 },
                Err(etcd_client::Error::LeaseKeepAliveError(m)) if m == "lease not found" => {
                    Response::LeaseKeepAlive { ttl: 0 }
                }
                Err(e) => return Err(e),
            }
        }
        Request::Compact { revision } => {
            let r = c.compact(*revision, None).await?;
            Response::Compact {
                revision: header_rev(r.header()),
            }
        }
    })
}
