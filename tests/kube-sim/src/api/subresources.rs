//! The `scale` subresource (autoscaling/v1 Scale over the resource's replicas paths) and
//! `pods/log` (files under the pod log directory; `container`, `tailLines`, `follow`).

use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{App, Target};
use crate::admission::{self, FieldValidation, WriteOpts, key, subject};
use crate::error::{ApiError, ApiResult};
use crate::http::{Req, ok};
use crate::jsonpath;
use crate::patch;
use crate::selectors::LabelSelector;

fn live(app: &App, t: &Target) -> ApiResult<Value> {
    let state = app.store.lock();
    let k = key(&t.def, &t.ns_key(), t.name());
    state
        .get(&k.0, &k.1, &k.2, &k.3)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(subject(&t.def, t.name())))
}

fn scale_of(t: &Target, obj: &Value) -> Value {
    let paths = t
        .def
        .scale
        .clone()
        .unwrap_or_else(|| unreachable!("routed only with scale"));
    let replicas = |p: &str| jsonpath::get(obj, p).and_then(Value::as_i64).unwrap_or(0);
    let selector = match &paths.label_selector {
        Some(p) => jsonpath::get(obj, p)
            .and_then(Value::as_str)
            .map(String::from),
        None if !t.def.custom => {
            Some(LabelSelector::from_object(&obj["spec"]["selector"]).render())
        }
        None => None,
    };
    let md = &obj["metadata"];
    let mut status = json!({"replicas": replicas(&paths.status_replicas)});
    if let Some(s) = selector {
        status["selector"] = json!(s);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": md["name"], "namespace": md["namespace"], "uid": md["uid"],
                     "resourceVersion": md["resourceVersion"],
                     "creationTimestamp": md["creationTimestamp"]},
        "spec": {"replicas": replicas(&paths.spec_replicas)},
        "status": status,
    })
}

/// GET `/scale`.
pub fn get_scale(app: &App, t: &Target) -> ApiResult<Response> {
    Ok(ok(&scale_of(t, &live(app, t)?)))
}

fn write_scale(
    app: &App,
    req: &Req,
    t: &Target,
    scale: &Value,
    base: &Value,
) -> ApiResult<Response> {
    let replicas = scale["spec"]["replicas"].clone();
    let mut obj = base.clone();
    let paths = t
        .def
        .scale
        .clone()
        .unwrap_or_else(|| unreachable!("routed only with scale"));
    jsonpath::set(&mut obj, &paths.spec_replicas, replicas);
    if let Some(rv) = scale["metadata"]["resourceVersion"].as_str() {
        obj["metadata"]["resourceVersion"] = json!(rv);
    }
    let opts = WriteOpts {
        manager: req.field_manager(),
        apply: false,
        sub: None,
        field_validation: FieldValidation::Ignore,
    };
    let mut state = app.store.lock();
    let w = admission::update(&mut state, &t.def, &t.ns_key(), t.name(), obj, &opts)?;
    Ok(ok(&scale_of(t, &w.object)))
}

/// PUT `/scale`.
pub fn update_scale(app: &App, req: &Req, t: &Target) -> ApiResult<Response> {
    let base = live(app, t)?;
    write_scale(app, req, t, &req.json_body()?, &base)
}

/// PATCH `/scale`.
pub fn patch_scale(app: &App, req: &Req, t: &Target) -> ApiResult<Response> {
    let base = live(app, t)?;
    let mut scale = scale_of(t, &base);
    let body = req.json_body()?;
    match req.content_type().as_str() {
        "application/json-patch+json" => patch::json_patch(&mut scale, &body)?,
        _ => patch::merge_patch(&mut scale, &body),
    }
    scale["metadata"]["resourceVersion"] = base["metadata"]["resourceVersion"].clone();
    write_scale(app, req, t, &scale, &base)
}

fn tail(text: &str, lines: Option<usize>) -> String {
    match lines {
        None => text.to_string(),
        Some(n) => {
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(n);
            all[start..].iter().map(|l| format!("{l}\n")).collect()
        }
    }
}

/// GET `/pods/<name>/log`.
pub async fn log(app: &App, req: &Req, t: &Target) -> ApiResult<Response> {
    let pod = live(app, t)?;
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    let container = match (req.q("container"), containers.as_slice()) {
        (Some(c), _) => c.to_string(),
        (None, [one]) => one.clone(),
        (None, many) => {
            return Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {}, choose one of: [{}]",
                t.name(),
                many.join(" ")
            )));
        }
    };
    let path = app.pod_log_dir.as_ref().map(|d| {
        d.join(t.ns_key())
            .join(t.name())
            .join(format!("{container}.log"))
    });
    let read = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    let lines = req.q("tailLines").and_then(|n| n.parse().ok());
    let text = tail(&read(&path), lines);
    let response = |body: Body| {
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(body)
            .unwrap_or_default()
    };
    if !req.flag("follow") {
        return Ok(response(Body::from(text)));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let store = app.store.clone();
    let k = key(&t.def, &t.ns_key(), t.name());
    let full_len = read(&path).len();
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(text))).await.is_err() {
            return;
        }
        let mut sent = full_len;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = read(&path);
            if now.len() > sent {
                if tx
                    .send(Ok(Bytes::from(now[sent..].to_string())))
                    .await
                    .is_err()
                {
                    return;
                }
                sent = now.len();
            }
            let gone = {
                let s = store.lock();
                s.get(&k.0, &k.1, &k.2, &k.3).is_none_or(|p| {
                    matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                })
            };
            if gone || tx.is_closed() {
                return;
            }
        }
    });
    Ok(response(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    )))
}
