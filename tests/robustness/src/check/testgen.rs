//! Test helpers: short constructors for hand-made histories, and a generator of valid
//! histories from the model (concurrent clients with random linearization points, Unknown
//! answers whose writes may or may not have happened, and watches fed by the real changes).

use super::history::{
    EventKind, History, KeyValue, Operation, Request, Response, TxnOp, WatchRecord, WatchResponse,
    WatchSpec,
};
use super::model::State;

pub fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub fn put(key: &str, value: &str) -> Request {
    Request::Put {
        key: b(key),
        value: b(value),
        lease: 0,
    }
}

pub fn get(key: &str) -> Request {
    Request::Range {
        key: b(key),
        range_end: Vec::new(),
        revision: 0,
        limit: 0,
        serializable: false,
    }
}

pub fn get_at(key: &str, revision: i64, serializable: bool) -> Request {
    Request::Range {
        key: b(key),
        range_end: Vec::new(),
        revision,
        limit: 0,
        serializable,
    }
}

pub fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64) -> KeyValue {
    KeyValue {
        key: b(key),
        value: b(value),
        create_revision: create,
        mod_revision: modified,
        version,
        lease: 0,
    }
}

pub fn read(revision: i64, kvs: Vec<KeyValue>) -> Response {
    let count = i64::try_from(kvs.len()).unwrap_or_default();
    Response::Range {
        revision,
        kvs,
        count,
    }
}

pub fn op(client: u32, call: u64, ret: u64, request: Request, response: Response) -> Operation {
    Operation {
        client,
        member: 0,
        call,
        ret,
        request,
        response,
    }
}

pub fn unknown() -> Response {
    Response::Unknown("context deadline exceeded".to_string())
}

/// A watch over every key, from revision 1, without prev_kv.
pub fn all_keys() -> WatchSpec {
    WatchSpec {
        key: vec![0],
        range_end: vec![0],
        start_revision: 1,
        ..WatchSpec::default()
    }
}

pub fn record(spec: WatchSpec, responses: Vec<WatchResponse>) -> WatchRecord {
    WatchRecord {
        member: 0,
        spec,
        responses,
        ended: "run over".to_string(),
    }
}

pub fn put_event(kv: KeyValue, prev_kv: Option<KeyValue>) -> super::history::WatchEvent {
    super::history::WatchEvent {
        kind: EventKind::Put,
        kv,
        prev_kv,
    }
}

pub fn delete_event(
    key: &str,
    revision: i64,
    prev_kv: Option<KeyValue>,
) -> super::history::WatchEvent {
    let kv = KeyValue {
        key: b(key),
        mod_revision: revision,
        ..KeyValue::default()
    };
    super::history::WatchEvent {
        kind: EventKind::Delete,
        kv,
        prev_kv,
    }
}

pub fn events_at(time: u64, events: Vec<super::history::WatchEvent>) -> WatchResponse {
    let revision = events.last().map_or(0, |e| e.kv.mod_revision);
    WatchResponse {
        time,
        revision,
        events,
        ..WatchResponse::default()
    }
}

pub fn progress(time: u64, revision: i64) -> WatchResponse {
    WatchResponse {
        time,
        revision,
        ..WatchResponse::default()
    }
}

/// A small deterministic random generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True `per_mille` times in a thousand.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// What to generate.
pub struct Shape {
    pub clients: u32,
    pub operations: usize,
    pub keys: usize,
    /// Answers lost, per mille.
    pub unknown: u64,
    pub seed: u64,
}

struct Planned {
    op: Operation,
    /// When it takes effect; None for an Unknown write that never happened.
    point: Option<u64>,
}

fn random_request(
    rng: &mut Rng,
    n: usize,
    shape: &Shape,
    leases: &[i64],
    revision: i64,
) -> Request {
    let key = |rng: &mut Rng| b(&format!("k{}", rng.below(shape.keys as u64)));
    let value = format!("v{n}");
    match rng.below(100) {
        0..=29 => Request::Range {
            key: key(rng),
            range_end: Vec::new(),
            revision: 0,
            limit: 0,
            serializable: false,
        },
        30..=34 => Request::Range {
            key: b("k"),
            range_end: b("l"),
            revision: 0,
            limit: 3,
            serializable: rng.chance(500),
        },
        35..=39 => {
            let at =
                1 + i64::try_from(rng.below(u64::try_from(revision).unwrap_or(1))).unwrap_or(0);
            Request::Range {
                key: key(rng),
                range_end: Vec::new(),
                revision: at,
                limit: 0,
                serializable: rng.chance(500),
            }
        }
        40..=69 => Request::Put {
            key: key(rng),
            value: b(&value),
            lease: 0,
        },
        70..=79 => {
            let k = key(rng);
            let compare = vec![super::history::Compare {
                key: k.clone(),
                result: super::history::CompareResult::Less,
                target: super::history::CompareTarget::ModRevision(revision - 3),
            }];
            let success = vec![TxnOp::Put {
                key: k.clone(),
                value: b(&value),
                lease: 0,
            }];
            let failure = vec![TxnOp::Range {
                key: k,
                range_end: Vec::new(),
            }];
            Request::Txn {
                compare,
                success,
                failure,
            }
        }
        80..=87 => Request::DeleteRange {
            key: key(rng),
            range_end: Vec::new(),
        },
        88..=90 => Request::LeaseGrant { ttl: 60 },
        91..=94 if !leases.is_empty() => {
            let lease = leases[usize::try_from(rng.below(leases.len() as u64)).unwrap_or(0)];
            Request::Put {
                key: key(rng),
                value: b(&value),
                lease,
            }
        }
        95..=96 if !leases.is_empty() => Request::LeaseRevoke {
            id: leases[usize::try_from(rng.below(leases.len() as u64)).unwrap_or(0)],
        },
        97 => Request::LeaseKeepAlive {
            id: leases.last().copied().unwrap_or(1),
        },
        98 => Request::Compact {
            revision: (revision - 20).max(1),
        },
        _ => Request::Range {
            key: key(rng),
            range_end: Vec::new(),
            revision: 0,
            limit: 0,
            serializable: true,
        },
    }
}

/// A valid history: every answer is what the model gave at the operation's linearization
/// point. Watches: one over every key from revision 1, one on `k1` with prev_kv from revision 5.
pub fn generate(shape: &Shape) -> History {
    let mut rng = Rng::new(shape.seed);
    let mut planned: Vec<Planned> = Vec::new();
    let mut clock = vec![0u64; shape.clients as usize];
    // Requests are drawn with a rough idea of the revision (the exact one is not needed).
    for n in 0..shape.operations {
        let c = (0..clock.len()).min_by_key(|&c| clock[c]).unwrap_or(0);
        let call = clock[c] + 1 + rng.below(50);
        let latency = 10 + rng.below(500);
        let lost = rng.chance(shape.unknown);
        let revision = i64::try_from(n / 2 + 1).unwrap_or(1);
        let leases: Vec<i64> = (1..=i64::try_from(n / 40).unwrap_or(0))
            .rev()
            .take(3)
            .collect();
        let request = random_request(&mut rng, n, shape, &leases, revision);
        // A lost grant's id is unknown to everyone: let it not happen, so nobody uses it.
        let happened = !lost || (rng.chance(500) && !matches!(request, Request::LeaseGrant { .. }));
        let point =
            happened.then(|| call + 1 + rng.below(if lost { 2 * latency } else { latency - 1 }));
        let response = if lost {
            Response::Unknown("timeout".to_string())
        } else {
            Response::Refused(String::new())
        };
        let op = Operation {
            client: u32::try_from(c).unwrap_or(0),
            member: c % 3,
            call,
            ret: call + latency,
            request,
            response,
        };
        clock[c] = call + latency;
        planned.push(Planned { op, point });
    }
    let mut order: Vec<usize> = (0..planned.len())
        .filter(|&i| planned[i].point.is_some())
        .collect();
    order.sort_by_key(|&i| planned[i].point);
    let mut state = State::new();
    let mut states = vec![state.clone(), state.clone()];
    let mut next_lease = 1;
    let (mut all, mut one) = (Vec::new(), Vec::new());
    for i in order {
        let time = planned[i].point.unwrap_or_default();
        let p = &mut planned[i].op;
        let grant = Response::LeaseGrant {
            revision: state.revision(),
            id: next_lease,
        };
        let mut events = Vec::new();
        let applied = state.apply(&p.request, &grant, Some(&mut events));
        let mut response = applied.response;
        if let (
            Request::Range {
                key,
                range_end,
                revision,
                limit,
                ..
            },
            Response::Range { kvs, count, .. },
        ) = (&p.request, &mut response)
            && *revision > 0
            && *revision < state.revision()
        {
            // The model keeps no history: fill in a past revision's data.
            (*kvs, *count) =
                states[usize::try_from(*revision).unwrap_or(0)].range(key, range_end, *limit);
        }
        if matches!(p.request, Request::LeaseGrant { .. }) {
            next_lease += 1;
        }
        if !p.response.is_unknown() {
            p.response = response;
        }
        if applied.state.revision() != state.revision() {
            states.push(applied.state.clone());
            let strip = |e: &super::history::WatchEvent| super::history::WatchEvent {
                prev_kv: None,
                ..e.clone()
            };
            all.push(events_at(time + 5, events.iter().map(strip).collect()));
            let on_k1: Vec<_> = events
                .iter()
                .filter(|e| e.kv.key == b"k1")
                .cloned()
                .collect();
            if applied.state.revision() >= 5 && !on_k1.is_empty() {
                one.push(events_at(time + 7, on_k1));
            }
            if rng.chance(50) {
                all.push(progress(time + 6, applied.state.revision()));
            }
        }
        state = applied.state;
    }
    let k1 = WatchSpec {
        key: b("k1"),
        start_revision: 5,
        prev_kv: true,
        ..WatchSpec::default()
    };
    History {
        operations: planned.into_iter().map(|p| p.op).collect(),
        watches: vec![record(all_keys(), all), record(k1, one)],
    }
}

/// The keys returned by the last linearizable read of the latest revision that returned any:
/// the read a test corrupts to make a history wrong.
pub fn last_read_kvs(history: &mut History) -> Option<&mut Vec<KeyValue>> {
    let op = history.operations.iter_mut().rev().find(|op| {
        matches!(&op.response, Response::Range { kvs, .. } if !kvs.is_empty())
            && matches!(
                op.request,
                Request::Range {
                    revision: 0,
                    serializable: false,
                    ..
                }
            )
    })?;
    match &mut op.response {
        Response::Range { kvs, .. } => Some(kvs),
        _ => None,
    }
}
