//! `grpc_server_*` metrics with go-grpc-prometheus's names and labels, observed around every
//! gRPC call on the client port. A call counts as handled when its response stream ends (so
//! `started - handled` is the number of open watch and keep-alive streams, as dashboards use).
//!
//! The same wrapper gives an oversized request the status grpc-go gives it
//! (`ResourceExhausted`, "grpc: received message larger than max"), which etcd clients expect.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http_body::Frame;

use crate::metrics::{GrpcHandledLabels, GrpcLabels, METRICS};

fn grpc_type(method: &str) -> &'static str {
    match method {
        "Watch" | "LeaseKeepAlive" => "bidi_stream",
        "Snapshot" => "server_stream",
        _ => "unary",
    }
}

/// The text of a numeric grpc-status.
pub fn code_name(code: &str) -> &'static str {
    match code {
        "0" => "OK",
        "1" => "Canceled",
        "2" => "Unknown",
        "3" => "InvalidArgument",
        "4" => "DeadlineExceeded",
        "5" => "NotFound",
        "6" => "AlreadyExists",
        "7" => "PermissionDenied",
        "8" => "ResourceExhausted",
        "9" => "FailedPrecondition",
        "10" => "Aborted",
        "11" => "OutOfRange",
        "12" => "Unimplemented",
        "13" => "Internal",
        "14" => "Unavailable",
        "15" => "DataLoss",
        "16" => "Unauthenticated",
        _ => "Unknown",
    }
}

/// Count and time gRPC calls; other requests pass untouched.
pub async fn observe(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return next.run(req).await;
    };
    if !service.starts_with("etcdserverpb.") && !service.starts_with("grpc.health") {
        return next.run(req).await;
    }
    let labels = GrpcLabels {
        grpc_type: grpc_type(method),
        grpc_service: service.to_string(),
        grpc_method: method.to_string(),
    };
    METRICS.grpc_started.get_or_create(&labels).inc();
    METRICS.grpc_received.get_or_create(&labels).inc();
    let start = Instant::now();
    let mut resp = next.run(req).await;
    fix_status(resp.headers_mut());
    let code = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(code_name);
    let (parts, body) = resp.into_parts();
    let observed = Observed {
        inner: body,
        labels,
        start,
        code,
        done: false,
    };
    Response::from_parts(parts, Body::new(observed))
}

/// Rewrite tonic's "message too large" status into grpc-go's.
fn fix_status(h: &mut axum::http::HeaderMap) {
    let too_large = h.get("grpc-status").is_some_and(|v| v == "11")
        && h.get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| {
                m.starts_with("Error, decoded message length too large")
                    || m.starts_with("Error,%20decoded%20message%20length%20too%20large")
            });
    if !too_large {
        return;
    }
    let msg = h
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .replace("%20", " ");
    let nums: Vec<&str> = msg
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    let text = match nums.as_slice() {
        [found, limit, ..] => {
            format!("grpc: received message larger than max ({found} vs. {limit})")
        }
        _ => "grpc: received message larger than max".to_string(),
    };
    h.insert("grpc-status", axum::http::HeaderValue::from_static("8"));
    if let Ok(v) = axum::http::HeaderValue::from_str(&text) {
        h.insert("grpc-message", v);
    }
}

struct Observed {
    inner: Body,
    labels: GrpcLabels,
    start: Instant,
    code: Option<&'static str>,
    done: bool,
}

impl Observed {
    fn finish(&mut self, fallback: &'static str) {
        if self.done {
            return;
        }
        self.done = true;
        let l = &self.labels;
        let handled = GrpcHandledLabels {
            grpc_type: l.grpc_type,
            grpc_service: l.grpc_service.clone(),
            grpc_method: l.grpc_method.clone(),
            grpc_code: self.code.unwrap_or(fallback),
        };
        METRICS.grpc_handled.get_or_create(&handled).inc();
        METRICS
            .grpc_handling
            .get_or_create(l)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &mut polled
            && let Some(t) = frame.trailers_mut()
        {
            fix_status(t);
        }
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(t) = frame.trailers_ref() {
                    let code = t
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .map(code_name);
                    self.code = code.or(self.code);
                } else if frame.is_data() {
                    METRICS.grpc_sent.get_or_create(&self.labels).inc();
                }
            }
            Poll::Ready(None) => self.finish("OK"),
            Poll::Ready(Some(Err(_))) => self.finish("Unknown"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        self.finish("Canceled");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_requests_get_grpc_go_status() {
        let st = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 2621450 bytes, the limit is: 2097152 bytes",
        );
        let mut resp = st.into_http::<()>();
        fix_status(resp.headers_mut());
        let h = resp.headers();
        assert_eq!(h.get("grpc-status").unwrap(), "8", "{h:?}");
        assert_eq!(
            h.get("grpc-message").unwrap(),
            "grpc: received message larger than max (2621450 vs. 2097152)"
        );
    }
}
