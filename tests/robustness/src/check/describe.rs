//! Short human-readable descriptions of operations, responses, key-values and watch events,
//! for the checkers' failure messages (one line each, bytes shown as text when printable).

use std::fmt::Write;

use super::history::{
    Compare, CompareResult, CompareTarget, EventKind, KeyValue, Operation, Request, Response,
    TxnOp, TxnOpResult, WatchEvent, WatchSpec,
};

/// Bytes as a quoted string, escaping quotes, backslashes and what is not printable ASCII.
pub fn bytes(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        if (c.is_ascii_graphic() || c == b' ') && c != b'"' && c != b'\\' {
            s.push(char::from(c));
        } else {
            let _ = write!(s, "\\x{c:02x}");
        }
    }
    s.push('"');
    s
}

fn range(key: &[u8], range_end: &[u8]) -> String {
    match range_end {
        [] => bytes(key),
        [0] => format!("[{}, end)", bytes(key)),
        end => format!("[{}, {})", bytes(key), bytes(end)),
    }
}

/// A key-value: `key=value@mod(create c, version v, lease l)`.
pub fn kv(kv: &KeyValue) -> String {
    let mut s = format!(
        "{}={}@{}",
        bytes(&kv.key),
        bytes(&kv.value),
        kv.mod_revision
    );
    let _ = write!(s, "(create {}, version {}", kv.create_revision, kv.version);
    if kv.lease != 0 {
        let _ = write!(s, ", lease {}", kv.lease);
    }
    s.push(')');
    s
}

fn kvs(list: &[KeyValue]) -> String {
    let parts: Vec<String> = list.iter().map(kv).collect();
    format!("[{}]", parts.join(", "))
}

fn txn_op(op: &TxnOp) -> String {
    match op {
        TxnOp::Range { key, range_end } => format!("get {}", range(key, range_end)),
        TxnOp::Put { key, value, lease } => put(key, value, *lease),
        TxnOp::DeleteRange { key, range_end } => format!("delete {}", range(key, range_end)),
    }
}

fn put(key: &[u8], value: &[u8], lease: i64) -> String {
    let mut s = format!("put {}={}", bytes(key), bytes(value));
    if lease != 0 {
        let _ = write!(s, " lease {lease}");
    }
    s
}

fn compare(c: &Compare) -> String {
    let (field, target) = match &c.target {
        CompareTarget::Value(v) => ("value", bytes(v)),
        CompareTarget::Version(v) => ("version", v.to_string()),
        CompareTarget::CreateRevision(v) => ("create", v.to_string()),
        CompareTarget::ModRevision(v) => ("mod", v.to_string()),
        CompareTarget::Lease(v) => ("lease", v.to_string()),
    };
    let rel = match c.result {
        CompareResult::Equal => "==",
        CompareResult::NotEqual => "!=",
        CompareResult::Greater => ">",
        CompareResult::Less => "<",
    };
    format!("{field}({}) {rel} {target}", bytes(&c.key))
}

fn list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    items.iter().map(f).collect::<Vec<_>>().join("; ")
}

/// A request.
pub fn request(r: &Request) -> String {
    match r {
        Request::Range {
            key,
            range_end,
            revision,
            limit,
            serializable,
        } => {
            let mut s = format!("get {}", range(key, range_end));
            if *revision != 0 {
                let _ = write!(s, " at revision {revision}");
            }
            if *limit != 0 {
                let _ = write!(s, " limit {limit}");
            }
            if *serializable {
                s.push_str(" serializable");
            }
            s
        }
        Request::Put { key, value, lease } => put(key, value, *lease),
        Request::DeleteRange { key, range_end } => format!("delete {}", range(key, range_end)),
        Request::Txn {
            compare: c,
            success,
            failure,
        } => format!(
            "txn if ({}) then ({}) else ({})",
            list(c, compare),
            list(success, txn_op),
            list(failure, txn_op)
        ),
        Request::LeaseGrant { ttl } => format!("lease grant ttl {ttl}"),
        Request::LeaseRevoke { id } => format!("lease revoke {id}"),
        Request::LeaseKeepAlive { id } => format!("lease keepalive {id}"),
        Request::Compact { revision } => format!("compact {revision}"),
    }
}

/// A response.
pub fn response(r: &Response) -> String {
    match r {
        Response::Range {
            revision,
            kvs: k,
            count,
        } => {
            format!("rev {revision} count {count} {}", kvs(k))
        }
        Response::Put { revision } => format!("rev {revision}"),
        Response::DeleteRange { revision, deleted } => format!("rev {revision} deleted {deleted}"),
        Response::Txn {
            revision,
            succeeded,
            results,
        } => {
            let parts = list(results, |t| match t {
                TxnOpResult::Range { kvs: k, count } => format!("count {count} {}", kvs(k)),
                TxnOpResult::Put => "put".to_string(),
                TxnOpResult::DeleteRange { deleted } => format!("deleted {deleted}"),
            });
            format!("rev {revision} succeeded {succeeded} [{parts}]")
        }
        Response::LeaseGrant { revision, id } => format!("rev {revision} lease {id}"),
        Response::LeaseRevoke { revision } => format!("rev {revision}"),
        Response::LeaseKeepAlive { ttl } => format!("ttl {ttl}"),
        Response::Compact { revision } => format!("rev {revision}"),
        Response::Refused(text) => format!("refused: {text}"),
        Response::Unknown(text) => format!("unknown: {text}"),
        Response::Persisted {
            revision,
            succeeded,
        } => {
            format!("persisted at rev {revision} (seen in a watch, succeeded {succeeded})")
        }
    }
}

/// An operation with its index, client, member and times (in ms since the run start).
pub fn operation(index: usize, op: &Operation) -> String {
    let ms = |ns: u64| ns as f64 / 1e6;
    let ret = if op.response.is_unknown() {
        format!("gave up {:.3}", ms(op.ret))
    } else {
        format!("{:.3}", ms(op.ret))
    };
    format!(
        "op #{index} client {} member {} [{:.3} ms .. {ret} ms] {} -> {}",
        op.client,
        op.member,
        ms(op.call),
        request(&op.request),
        response(&op.response)
    )
}

/// A watch event.
pub fn event(e: &WatchEvent) -> String {
    let mut s = match e.kind {
        EventKind::Put => format!("put {}", kv(&e.kv)),
        EventKind::Delete => format!("delete {}@{}", bytes(&e.kv.key), e.kv.mod_revision),
    };
    if let Some(prev) = &e.prev_kv {
        let _ = write!(s, " prev {}", kv(prev));
    }
    s
}

/// A watch request.
pub fn watch(index: usize, member: usize, spec: &WatchSpec) -> String {
    let mut s = format!(
        "watch #{index} on member {member} {}",
        range(&spec.key, &spec.range_end)
    );
    if spec.start_revision != 0 {
        let _ = write!(s, " from revision {}", spec.start_revision);
    }
    for (on, name) in [
        (spec.prev_kv, "prev_kv"),
        (spec.progress_notify, "progress_notify"),
        (spec.no_put, "no_put"),
        (spec.no_delete, "no_delete"),
    ] {
        if on {
            let _ = write!(s, " {name}");
        }
    }
    s
}
