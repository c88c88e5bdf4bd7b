//! `/health` (etcd 3.5 body and codes), `/livez`, `/readyz`, `/version` and `/metrics`.

use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use crate::api::Services;
use crate::pb::{AlarmType, RangeRequest};

/// How long a health check's read may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

fn params(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

async fn read_check(s: &Services, serializable: bool) -> Result<(), String> {
    let req = RangeRequest {
        key: b"health".to_vec(),
        keys_only: true,
        limit: 1,
        serializable,
        ..Default::default()
    };
    match tokio::time::timeout(CHECK_TIMEOUT, s.kv.range_request(req)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(st)) => Err(st.message().to_string()),
        Err(_) => Err("context deadline exceeded".into()),
    }
}

fn health_body(ok: bool, reason: &str) -> Response {
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "health": ok.to_string(), "reason": reason });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn health(State(s): State<Services>, method: Method, RawQuery(q): RawQuery) -> Response {
    if method != Method::GET {
        return (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n").into_response();
    }
    let params = params(&q);
    let serializable = params
        .iter()
        .any(|(k, v)| k == "serializable" && v == "true");
    let excluded: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| v.as_str())
        .collect();
    for (_, alarm) in s.api.node.sm.alarms().unwrap_or_default() {
        let name = AlarmType::try_from(alarm)
            .map(|a| a.as_str_name())
            .unwrap_or("UNKNOWN");
        if !excluded.contains(&name) {
            return health_body(false, &format!("ALARM {name}"));
        }
    }
    if !serializable && s.api.node.metrics().current_leader.is_none() {
        return health_body(false, "RAFT NO LEADER");
    }
    match read_check(&s, serializable).await {
        Ok(()) => health_body(true, ""),
        Err(e) => health_body(false, &format!("RANGE ERROR:{e}")),
    }
}

/// Run named checks and answer in the Kubernetes `livez`/`readyz` style.
async fn checks(s: &Services, names: &[&str], q: &Option<String>) -> Response {
    let params = params(q);
    let verbose = params.iter().any(|(k, _)| k == "verbose");
    let excluded: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut lines = String::new();
    let mut ok = true;
    for name in names {
        if excluded.contains(name) {
            lines.push_str(&format!("[+]{name} excluded: ok\n"));
            continue;
        }
        let res = match *name {
            "serializable_read" => read_check(s, true).await,
            "linearizable_read" => read_check(s, false).await,
            "data_corruption" => {
                let corrupt = s
                    .api
                    .node
                    .sm
                    .alarms()
                    .unwrap_or_default()
                    .iter()
                    .any(|(_, a)| *a == AlarmType::Corrupt as i32);
                if corrupt {
                    Err("alarm activated: CORRUPT".into())
                } else {
                    Ok(())
                }
            }
            "non_learner" => {
                let m = s.api.node.metrics();
                let voter = m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == s.api.node.id);
                if voter {
                    Ok(())
                } else {
                    Err("this member is a learner".into())
                }
            }
            _ => Ok(()),
        };
        match res {
            Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
            Err(e) => {
                ok = false;
                lines.push_str(&format!("[-]{name} failed: {e}\n"));
            }
        }
    }
    if ok {
        let body = if verbose {
            format!("{lines}ok\n")
        } else {
            "ok\n".to_string()
        };
        (StatusCode::OK, body).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{lines}{} check failed\n", names.len()),
        )
            .into_response()
    }
}

async fn livez(State(s): State<Services>, RawQuery(q): RawQuery) -> Response {
    checks(&s, &["serializable_read"], &q).await
}

async fn readyz(State(s): State<Services>, RawQuery(q): RawQuery) -> Response {
    checks(
        &s,
        &[
            "data_corruption",
            "serializable_read",
            "linearizable_read",
            "non_learner",
        ],
        &q,
    )
    .await
}

async fn version() -> Response {
    let body = serde_json::json!({ "etcdserver": crate::ETCD_VERSION, "etcdcluster": "3.5.0" });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn metrics(State(s): State<Services>) -> Response {
    let text = crate::metrics::render(&s.api.node);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The health, version and metrics routes.
pub fn routes() -> Router<Services> {
    Router::new()
        .route("/health", any(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
}
