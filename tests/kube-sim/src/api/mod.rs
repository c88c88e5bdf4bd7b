//! Request routing: discovery paths, then resource paths
//! (`/api/v1/...`, `/apis/<group>/<version>/...`, with or without `namespaces/<ns>`) dispatched
//! by method and subresource to the read, write, watch and subresource handlers.

mod read;
mod subresources;
mod watch;
mod write;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::error::{ApiError, ApiResult};
use crate::http::{Req, ok, parse_query};
use crate::resources::ResourceDef;
use crate::store::Store;
use crate::{discovery, openapi};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct App {
    /// The object store.
    pub store: Store,
    /// `host:port` of the server, for `/api`.
    pub address: String,
    /// Where pod logs are read from (`<dir>/<namespace>/<pod>/<container>.log`).
    pub pod_log_dir: Option<Arc<std::path::PathBuf>>,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: std::time::Duration,
}

/// A resource path, resolved against the registry.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource.
    pub def: ResourceDef,
    /// The namespace of the path (None: cluster-scoped or all namespaces).
    pub ns: Option<String>,
    /// The object name, if the path names one.
    pub name: Option<String>,
    /// The subresource, if any.
    pub sub: Option<String>,
}

impl Target {
    /// The namespace for storage ("" when cluster-scoped).
    pub fn ns_key(&self) -> String {
        self.ns.clone().unwrap_or_default()
    }

    /// The object name ("" if none).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

/// The fallback handler of the router: every request comes here.
pub async fn dispatch(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req {
        method,
        path: uri.path().to_string(),
        query: parse_query(uri.query()),
        headers,
        body,
    };
    let result = route(&app, &req).await;
    let response = result.unwrap_or_else(IntoResponse::into_response);
    tracing::debug!(method = %req.method, path = %req.path, status = response.status().as_u16(), "request");
    response
}

async fn route(app: &App, req: &Req) -> ApiResult<Response> {
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let reg = || app.store.lock().registry.clone();
    match segs.as_slice() {
        ["version"] => return Ok(ok(&discovery::version())),
        ["healthz" | "livez" | "readyz", ..] => return Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => return Ok(ok(&discovery::core_versions(&app.address))),
        ["apis"] => return Ok(ok(&discovery::group_list(&reg()))),
        ["apis", g] => {
            return discovery::group(&reg(), g)
                .map(|d| ok(&d))
                .ok_or(ApiError::NoRoute);
        }
        ["openapi", "v2"] => {
            return Ok(Response::builder()
                .header(axum::http::header::CONTENT_TYPE, openapi::V2_PROTOBUF)
                .body(axum::body::Body::empty())
                .unwrap_or_default());
        }
        ["openapi", "v3"] => return Ok(ok(&openapi::v3_index(&reg()))),
        ["openapi", "v3", "api", v] => {
            return openapi::v3_group_version(&reg(), "", v)
                .map(|d| ok(&d))
                .ok_or(ApiError::NoRoute);
        }
        ["openapi", "v3", "apis", g, v] => {
            return openapi::v3_group_version(&reg(), g, v)
                .map(|d| ok(&d))
                .ok_or(ApiError::NoRoute);
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::NoRoute),
    };
    if rest.is_empty() {
        return discovery::resource_list(&reg(), group, version)
            .map(|d| ok(&d))
            .ok_or(ApiError::NoRoute);
    }
    let target = resolve(app, group, version, rest)?;
    handle(app, req, target).await
}

fn resolve(app: &App, group: &str, version: &str, rest: &[&str]) -> ApiResult<Target> {
    let state = app.store.lock();
    let lookup = |plural: &str| {
        state
            .registry
            .get(group, version, plural)
            .cloned()
            .ok_or(ApiError::NoRoute)
    };
    let own = |s: &&str| s.to_string();
    let t = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if group.is_empty() && !matches!(*plural, "status" | "finalize")
                || !group.is_empty() =>
        {
            let def = lookup(plural)?;
            if !def.namespaced {
                return Err(ApiError::NoRoute);
            }
            Target {
                def,
                ns: Some(ns.to_string()),
                name: tail.first().map(own),
                sub: tail.get(1).map(own),
            }
        }
        [plural, tail @ ..] => {
            let def = lookup(plural)?;
            if def.namespaced && !tail.is_empty() {
                return Err(ApiError::NoRoute);
            }
            Target {
                def,
                ns: None,
                name: tail.first().map(own),
                sub: tail.get(1).map(own),
            }
        }
        [] => return Err(ApiError::NoRoute),
    };
    if let Some(sub) = &t.sub {
        let known = (sub == "status" && t.def.status)
            || (sub == "scale" && t.def.scale.is_some())
            || t.def.extra_subresources.iter().any(|(n, _, _)| n == sub);
        if !known {
            return Err(ApiError::NoRoute);
        }
    }
    Ok(t)
}

async fn handle(app: &App, req: &Req, t: Target) -> ApiResult<Response> {
    let sub = t.sub.clone();
    match (&req.method, t.name.is_some(), sub.as_deref()) {
        (&Method::GET, false, _) if req.flag("watch") => watch::serve(app, req, t),
        (&Method::GET, false, _) => read::list(app, req, &t),
        (&Method::POST, false, _) => write::create(app, req, &t),
        (&Method::DELETE, false, _) => write::delete_collection(app, req, &t),
        (&Method::GET, true, None | Some("status")) => read::get(app, req, &t),
        (&Method::GET, true, Some("scale")) => subresources::get_scale(app, &t),
        (&Method::GET, true, Some("log")) => subresources::log(app, req, &t).await,
        (&Method::PUT, true, Some("scale")) => subresources::update_scale(app, req, &t),
        (&Method::PATCH, true, Some("scale")) => subresources::patch_scale(app, req, &t),
        (&Method::PUT, true, None | Some("status") | Some("finalize")) => {
            write::update(app, req, &t)
        }
        (&Method::PATCH, true, None | Some("status")) => write::patch(app, req, &t),
        (&Method::DELETE, true, None) => write::delete(app, req, &t),
        (&Method::POST, true, Some("eviction")) => write::evict(app, req, &t),
        (&Method::POST, true, Some("binding")) => write::bind(app, req, &t),
        _ => Err(ApiError::MethodNotAllowed),
    }
}
