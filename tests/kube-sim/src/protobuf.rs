//! Decoding of the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`) for the
//! few kinds that kubectl's and helm's typed clients write in it: Namespace, Secret (helm's
//! release storage) and ConfigMap. The `k8s\0` envelope holds a `runtime.Unknown` whose `raw`
//! field is the object; fields are mapped by number as in `k8s.io/api/core/v1/generated.proto`.

use base64::Engine;
use serde_json::{Map, Value, json};

/// The content type of the Kubernetes protobuf encoding.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// Failures to decode.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtoError {
    /// Not a well-formed message.
    #[error("malformed protobuf message")]
    Malformed,
    /// A kind this server cannot decode.
    #[error("protobuf is not supported for kind {0:?}; send JSON")]
    Unsupported(String),
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ProtoError> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or(ProtoError::Malformed)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(ProtoError::Malformed)
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ProtoError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (num, wire) = (tag >> 3, tag & 7);
        let f = match wire {
            0 => Field::Varint(varint(buf, &mut pos)?),
            2 => {
                let len =
                    usize::try_from(varint(buf, &mut pos)?).map_err(|_| ProtoError::Malformed)?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or(ProtoError::Malformed)?;
                let b = &buf[pos..end];
                pos = end;
                Field::Bytes(b)
            }
            1 => {
                pos += 8;
                Field::Varint(0)
            }
            5 => {
                pos += 4;
                Field::Varint(0)
            }
            _ => return Err(ProtoError::Malformed),
        };
        out.push((num, f));
    }
    Ok(out)
}

fn string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A map entry (key = 1, value = 2).
fn entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ProtoError> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for (n, f) in fields(b)? {
        if let Field::Bytes(x) = f {
            match n {
                1 => k = string(x),
                2 if bytes_value => v = json!(base64::engine::general_purpose::STANDARD.encode(x)),
                2 => v = json!(string(x)),
                _ => {}
            }
        }
    }
    Ok((k, v))
}

fn insert_entry(
    obj: &mut Value,
    field: &str,
    b: &[u8],
    bytes_value: bool,
) -> Result<(), ProtoError> {
    let (k, v) = entry(b, bytes_value)?;
    if !obj[field].is_object() {
        obj[field] = Value::Object(Map::new());
    }
    obj[field][k] = v;
    Ok(())
}

fn object_meta(b: &[u8]) -> Result<Value, ProtoError> {
    let mut md = json!({});
    for (n, f) in fields(b)? {
        if matches!(f, Field::Bytes([])) {
            continue;
        }
        match (n, f) {
            (1, Field::Bytes(x)) => md["name"] = json!(string(x)),
            (2, Field::Bytes(x)) => md["generateName"] = json!(string(x)),
            (3, Field::Bytes(x)) => md["namespace"] = json!(string(x)),
            (5, Field::Bytes(x)) => md["uid"] = json!(string(x)),
            (6, Field::Bytes(x)) => md["resourceVersion"] = json!(string(x)),
            (11, Field::Bytes(x)) => insert_entry(&mut md, "labels", x, false)?,
            (12, Field::Bytes(x)) => insert_entry(&mut md, "annotations", x, false)?,
            (14, Field::Bytes(x)) => {
                if !md["finalizers"].is_array() {
                    md["finalizers"] = json!([]);
                }
                if let Some(a) = md["finalizers"].as_array_mut() {
                    a.push(json!(string(x)));
                }
            }
            _ => {}
        }
    }
    Ok(md)
}

fn decode_object(kind: &str, raw: &[u8]) -> Result<Value, ProtoError> {
    let mut obj = json!({});
    for (n, f) in fields(raw)? {
        let Field::Bytes(x) = f else {
            if let (Field::Varint(v), "Secret", 5) | (Field::Varint(v), "ConfigMap", 4) =
                (f, kind, n)
            {
                obj["immutable"] = json!(v != 0);
            }
            continue;
        };
        match (kind, n) {
            (_, 1) => obj["metadata"] = object_meta(x)?,
            ("Secret", 2) => insert_entry(&mut obj, "data", x, true)?,
            ("Secret", 3) => obj["type"] = json!(string(x)),
            ("Secret", 4) => insert_entry(&mut obj, "stringData", x, false)?,
            ("ConfigMap", 2) => insert_entry(&mut obj, "data", x, false)?,
            ("ConfigMap", 3) => insert_entry(&mut obj, "binaryData", x, true)?,
            ("Namespace", 2) => {
                let mut fins = Vec::new();
                for (fnum, ff) in fields(x)? {
                    if let (1, Field::Bytes(s)) = (fnum, ff) {
                        fins.push(json!(string(s)));
                    }
                }
                if !fins.is_empty() {
                    obj["spec"] = json!({"finalizers": fins});
                }
            }
            _ => {}
        }
    }
    Ok(obj)
}

fn delete_options(raw: &[u8]) -> Result<Value, ProtoError> {
    let mut o = json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"});
    for (n, f) in fields(raw)? {
        match (n, f) {
            (1, Field::Varint(v)) => o["gracePeriodSeconds"] = json!(v as i64),
            (2, Field::Bytes(x)) => {
                for (pn, pf) in fields(x)? {
                    match (pn, pf) {
                        (1, Field::Bytes(u)) => o["preconditions"]["uid"] = json!(string(u)),
                        (2, Field::Bytes(r)) => {
                            o["preconditions"]["resourceVersion"] = json!(string(r))
                        }
                        _ => {}
                    }
                }
            }
            (3, Field::Varint(v)) => o["orphanDependents"] = json!(v != 0),
            (4, Field::Bytes(x)) => o["propagationPolicy"] = json!(string(x)),
            _ => {}
        }
    }
    Ok(o)
}

/// Decodes an enveloped object into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtoError::Malformed)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(rest)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (tn, tf) in fields(tm)? {
                    match (tn, tf) {
                        (1, Field::Bytes(x)) => api_version = string(x),
                        (2, Field::Bytes(x)) => kind = string(x),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    if kind == "DeleteOptions" {
        return delete_options(raw);
    }
    if !matches!(kind.as_str(), "Secret" | "ConfigMap" | "Namespace") {
        return Err(ProtoError::Unsupported(kind));
    }
    let mut obj = decode_object(&kind, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(num: u8, b: &[u8]) -> Vec<u8> {
        let mut out = vec![(num << 3) | 2, u8::try_from(b.len()).unwrap()];
        out.extend_from_slice(b);
        out
    }

    #[test]
    fn decodes_a_secret() {
        let meta = [
            ld(1, b"s"),
            ld(3, b"ns"),
            ld(11, &[ld(1, b"owner"), ld(2, b"helm")].concat()),
        ]
        .concat();
        let secret = [
            ld(1, &meta),
            ld(2, &[ld(1, b"k"), ld(2, b"\x01\x02")].concat()),
            ld(3, b"Opaque"),
        ]
        .concat();
        let tm = [ld(1, b"v1"), ld(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), ld(1, &tm), ld(2, &secret)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(obj["metadata"]["labels"]["owner"], "helm");
        assert_eq!(obj["data"]["k"], "AQI=");
        assert_eq!(obj["type"], "Opaque");
        assert_eq!(obj["kind"], "Secret");
    }
}
