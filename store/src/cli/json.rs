//! `-w json` as etcdctl prints it: Go's `encoding/json` of the etcd protobuf structs, i.e.
//! the proto field names, zero values omitted (`omitempty`), bytes in base64, enums as numbers,
//! and `<`, `>`, `&` escaped. Fields keep etcdctl's order, so the builder writes text directly.

use crate::pb::mvccpb::Event;
use crate::pb::response_op::Response as Resp;
use crate::pb::{
    DeleteRangeResponse, KeyValue, Member, PutResponse, RangeResponse, ResponseHeader, TxnResponse,
};

/// An object under construction, fields in insertion order.
#[derive(Debug, Default)]
pub struct Obj {
    fields: Vec<(String, String)>,
}

impl Obj {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// A field holding already-encoded JSON.
    pub fn raw(mut self, k: &str, v: impl Into<String>) -> Self {
        self.fields.push((k.to_string(), v.into()));
        self
    }

    /// A field holding encoded JSON if present (`omitempty` of a pointer).
    pub fn opt(self, k: &str, v: Option<String>) -> Self {
        match v {
            Some(v) => self.raw(k, v),
            None => self,
        }
    }

    /// A signed integer, omitted when zero.
    pub fn int(self, k: &str, v: i64) -> Self {
        if v == 0 {
            self
        } else {
            self.raw(k, v.to_string())
        }
    }

    /// An unsigned integer, omitted when zero.
    pub fn uint(self, k: &str, v: u64) -> Self {
        if v == 0 {
            self
        } else {
            self.raw(k, v.to_string())
        }
    }

    /// A number, always present.
    pub fn num(self, k: &str, v: impl ToString) -> Self {
        self.raw(k, v.to_string())
    }

    /// A boolean, omitted when false.
    pub fn flag(self, k: &str, v: bool) -> Self {
        if v { self.raw(k, "true") } else { self }
    }

    /// A boolean, always present.
    pub fn boolean(self, k: &str, v: bool) -> Self {
        self.raw(k, v.to_string())
    }

    /// Bytes as base64, omitted when empty.
    pub fn bytes(self, k: &str, v: &[u8]) -> Self {
        if v.is_empty() {
            self
        } else {
            self.raw(k, string(&base64(v)))
        }
    }

    /// A string, omitted when empty.
    pub fn text(self, k: &str, v: &str) -> Self {
        if v.is_empty() {
            self
        } else {
            self.raw(k, string(v))
        }
    }

    /// A string, always present.
    pub fn text_always(self, k: &str, v: &str) -> Self {
        self.raw(k, string(v))
    }

    /// Fields of another object, inlined (Go's embedded structs).
    pub fn inline(mut self, other: Obj) -> Self {
        self.fields.extend(other.fields);
        self
    }

    /// The encoded object.
    pub fn done(self) -> String {
        let body: Vec<String> = self
            .fields
            .into_iter()
            .map(|(k, v)| format!("{}:{v}", string(&k)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

/// An array of encoded values.
pub fn array(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
}

/// An array, or `null` when empty (a nil Go slice).
pub fn array_or_null(items: Vec<String>) -> String {
    if items.is_empty() {
        "null".into()
    } else {
        array(items)
    }
}

/// A JSON string escaped as Go's encoder does.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The header's fields (for Go structs that embed `*pb.ResponseHeader`).
pub fn header_fields(h: Option<&ResponseHeader>) -> Obj {
    let d = ResponseHeader::default();
    let h = h.unwrap_or(&d);
    Obj::new()
        .uint("cluster_id", h.cluster_id)
        .uint("member_id", h.member_id)
        .int("revision", h.revision)
        .uint("raft_term", h.raft_term)
}

/// `"header"` as an object, if the response has one.
pub fn header(h: Option<&ResponseHeader>) -> Option<String> {
    h.map(|h| header_fields(Some(h)).done())
}

/// An `mvccpb.KeyValue`.
pub fn kv(kv: &KeyValue) -> String {
    Obj::new()
        .bytes("key", &kv.key)
        .int("create_revision", kv.create_revision)
        .int("mod_revision", kv.mod_revision)
        .int("version", kv.version)
        .bytes("value", &kv.value)
        .int("lease", kv.lease)
        .done()
}

/// An `mvccpb.Event`.
pub fn event(e: &Event) -> String {
    Obj::new()
        .int("type", e.r#type as i64)
        .opt("kv", e.kv.as_ref().map(kv))
        .opt("prev_kv", e.prev_kv.as_ref().map(kv))
        .done()
}

/// A `RangeResponse`.
pub fn range(r: &RangeResponse) -> String {
    Obj::new()
        .opt("header", header(r.header.as_ref()))
        .opt(
            "kvs",
            (!r.kvs.is_empty()).then(|| array(r.kvs.iter().map(kv))),
        )
        .flag("more", r.more)
        .int("count", r.count)
        .done()
}

/// A `PutResponse`.
pub fn put(r: &PutResponse) -> String {
    Obj::new()
        .opt("header", header(r.header.as_ref()))
        .opt("prev_kv", r.prev_kv.as_ref().map(kv))
        .done()
}

/// A `DeleteRangeResponse`.
pub fn delete(r: &DeleteRangeResponse) -> String {
    Obj::new()
        .opt("header", header(r.header.as_ref()))
        .int("deleted", r.deleted)
        .opt(
            "prev_kvs",
            (!r.prev_kvs.is_empty()).then(|| array(r.prev_kvs.iter().map(kv))),
        )
        .done()
}

/// A `TxnResponse` (responses wrapped as Go's oneof: `{"Response":{"ResponsePut":...}}`).
pub fn txn(r: &TxnResponse) -> String {
    let ops: Vec<String> = r
        .responses
        .iter()
        .map(|op| {
            let inner = match &op.response {
                Some(Resp::ResponseRange(x)) => Obj::new().raw("ResponseRange", range(x)).done(),
                Some(Resp::ResponsePut(x)) => Obj::new().raw("ResponsePut", put(x)).done(),
                Some(Resp::ResponseDeleteRange(x)) => {
                    Obj::new().raw("ResponseDeleteRange", delete(x)).done()
                }
                Some(Resp::ResponseTxn(x)) => Obj::new().raw("ResponseTxn", txn(x)).done(),
                None => "null".into(),
            };
            Obj::new().raw("Response", inner).done()
        })
        .collect();
    Obj::new()
        .opt("header", header(r.header.as_ref()))
        .flag("succeeded", r.succeeded)
        .opt("responses", (!ops.is_empty()).then(|| array(ops)))
        .done()
}

/// A `Member`.
pub fn member(m: &Member) -> String {
    let urls = |u: &[String]| (!u.is_empty()).then(|| array(u.iter().map(|s| string(s))));
    Obj::new()
        .uint("ID", m.id)
        .text("name", &m.name)
        .opt("peerURLs", urls(&m.peer_ur_ls))
        .opt("clientURLs", urls(&m.client_ur_ls))
        .flag("isLearner", m.is_learner)
        .done()
}

/// A list of members, or nothing when empty.
pub fn members(ms: &[Member]) -> Option<String> {
    (!ms.is_empty()).then(|| array(ms.iter().map(member)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_go() {
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(string("<a&b>\u{1}"), "\"\\u003ca\\u0026b\\u003e\\u0001\"");
        let k = KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            value: b"baz".to_vec(),
            lease: 0,
        };
        assert_eq!(
            kv(&k),
            r#"{"key":"Zm9v","create_revision":2,"mod_revision":3,"version":2,"value":"YmF6"}"#
        );
    }
}
