//! HTTP plumbing shared by the handlers: the parsed request, query parameters, content
//! negotiation and JSON responses.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// A request, as the handlers see it.
#[derive(Debug)]
pub struct Req {
    /// HTTP method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// Decoded query parameters (last one wins).
    pub query: BTreeMap<String, String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Req {
    /// A query parameter.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A boolean query parameter (`1`, `true`).
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.q(name), Some("1" | "true" | "True"))
    }

    /// The media type of the body, without parameters.
    pub fn content_type(&self) -> String {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_string())
            .unwrap_or_default()
    }

    /// The Accept header.
    pub fn accept(&self) -> &str {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Whether the client asked for a `meta.k8s.io` Table.
    pub fn wants_table(&self) -> bool {
        self.accept()
            .split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table"))
    }

    /// The body as JSON (YAML accepted too, as for apply patches).
    pub fn json_body(&self) -> ApiResult<Value> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        if self.content_type() == crate::protobuf::CONTENT_TYPE {
            return crate::protobuf::decode(&self.body).map_err(|e| match e {
                crate::protobuf::ProtoError::Unsupported(_) => {
                    ApiError::UnsupportedMediaType(format!("application/json ({e})"))
                }
                e => ApiError::BadRequest(e.to_string()),
            });
        }
        match serde_json::from_slice(&self.body) {
            Ok(v) => Ok(v),
            Err(json_err) => serde_yaml::from_slice::<Value>(&self.body).map_err(|_| {
                ApiError::BadRequest(format!("unable to decode the request body: {json_err}"))
            }),
        }
    }

    /// The field manager of a write: `fieldManager`, else the User-Agent's program name.
    pub fn field_manager(&self) -> String {
        if let Some(m) = self.q("fieldManager") {
            return m.to_string();
        }
        self.headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    }
}

/// Decodes `a=b&c=d%20e`.
pub fn parse_query(q: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k), percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON response.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
        .unwrap_or_default()
}

/// A 200 JSON response.
pub fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// A 201 JSON response.
pub fn created(body: &Value) -> Response {
    json_response(StatusCode::CREATED, body)
}

/// The current time as the API server writes it (RFC 3339, seconds, UTC).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A random UUID (version 4), for `metadata.uid`.
pub fn uuid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        (b[8] & 0x3) | 0x8,
        &h[17..20],
        &h[20..32]
    )
}

/// `n` random lowercase alphanumerics, for `generateName`.
pub fn random_suffix(n: usize) -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| CHARS[rand::random_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_decoded() {
        let q = parse_query(Some("labelSelector=a%3Db%2Cc+in+%28x%29&watch=1"));
        assert_eq!(q["labelSelector"], "a=b,c in (x)");
        assert_eq!(q["watch"], "1");
    }

    #[test]
    fn uuid_has_the_v4_shape() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
