//! POST (create), PUT (update, `/status`), PATCH (merge, JSON, strategic, apply), DELETE (one
//! object or a collection) and pod eviction: request decoding around the admission pipeline.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::read::{Filter, served};
use super::{App, Target};
use crate::admission::{self, FieldValidation, WriteOpts, Written, key, subject};
use crate::apply;
use crate::error::{ApiError, ApiResult};
use crate::gc::{self, Propagation};
use crate::http::{Req, json_response};
use crate::patch;

fn opts(req: &Req, t: &Target, apply: bool) -> WriteOpts {
    WriteOpts {
        manager: req.field_manager(),
        apply,
        sub: t.sub.clone().filter(|s| s == "status"),
        field_validation: FieldValidation::parse(req.q("fieldValidation")),
    }
}

fn respond(t: &Target, w: Written) -> Response {
    let code = if w.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = json_response(code, &served(&t.def, &w.object));
    for warning in w.warnings {
        let text = format!("299 - {warning:?}");
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("Warning", v);
        }
    }
    resp
}

fn dry_run(req: &Req) -> bool {
    req.q("dryRun").is_some_and(|d| d == "All")
}

/// POST `/.../<resource>`.
pub fn create(app: &App, req: &Req, t: &Target) -> ApiResult<Response> {
    let review = t.def.plural == "selfsubjectaccessreviews";
    // kubectl auth can-i sends its review in protobuf: the answer does not depend on it.
    let body = match req.json_body() {
        Err(_) if review => json!({}),
        other => other?,
    };
    if t.def.namespaced && t.ns.is_none() {
        return Err(ApiError::MethodNotAllowed);
    }
    if review {
        // No authorization here: everything is allowed.
        let mut review = body;
        review["apiVersion"] = json!(t.def.api_version());
        review["kind"] = json!(t.def.kind);
        review["status"] = json!({"allowed": true, "reason": "kube-sim allows everything"});
        return Ok(json_response(StatusCode::CREATED, &review));
    }
    let mut state = app.store.lock();
    if dry_run(req) {
        let mut b = body;
        b["apiVersion"] = json!(t.def.api_version());
        b["kind"] = json!(t.def.kind);
        return Ok(json_response(StatusCode::CREATED, &b));
    }
    let w = admission::create(&mut state, &t.def, &t.ns_key(), body, &opts(req, t, false))?;
    Ok(respond(t, w))
}

/// PUT `/.../<name>` and `/status`.
pub fn update(app: &App, req: &Req, t: &Target) -> ApiResult<Response> {
    let body = req.json_body()?;
    let mut state = app.store.lock();
    let w = admission::update(
        &mut state,
        &t.def,
        &t.ns_key(),
        t.name(),
        body,
        &opts(req, t, false),
    )?;
    Ok(respond(t, w))
}

/// The object after applying the request's patch to `live`.
pub fn patched(req: &Req, t: &Target, live: &Value) -> ApiResult<Value> {
    let body = req.json_body()?;
    let mut obj = live.clone();
    match req.content_type().as_str() {
        "application/merge-patch+json" => patch::merge_patch(&mut obj, &body),
        "application/json-patch+json" => patch::json_patch(&mut obj, &body)?,
        "application/strategic-merge-patch+json" if !t.def.custom => {
            patch::strategic_merge(&mut obj, &body)
        }
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "application/json-patch+json, application/merge-patch+json, \
                 application/apply-patch+yaml{} (got {other})",
                if t.def.custom {
                    ""
                } else {
                    ", application/strategic-merge-patch+json"
                }
            )));
        }
    }
    Ok(obj)
}

/// PATCH `/.../<name>` and `/status`.
pub fn patch(app: &App, req: &Req, t: &Target) -> ApiResult<Response> {
    let mut state = app.store.lock();
    let (group, plural, ns, name) = key(&t.def, &t.ns_key(), t.name());
    let live = state.get(&group, &plural, &ns, &name).cloned();
    if req.content_type() == "application/apply-patch+yaml" {
        let applied = req.json_body()?;
        if !applied.is_object() {
            return Err(ApiError::BadRequest(
                "the applied configuration must be an object".into(),
            ));
        }
        // An applied configuration without a name keeps the live object's (as the result of
        // the merge does on a real API server); creating needs the name.
        let applied_name = applied["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty() || live.is_none())
            .unwrap_or(t.name());
        if applied_name != t.name() {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({applied_name}) does not match the name on the URL ({})",
                t.name()
            )));
        }
        let Some(field_manager) = req.q("fieldManager") else {
            return Err(ApiError::BadRequest(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is \
                 required for apply patch"
                    .into(),
            ));
        };
        let sub = t.sub.as_deref().filter(|s| *s == "status");
        let mut o = opts(req, t, true);
        o.manager = field_manager.to_string();
        let w = match live {
            None if sub.is_some() => return Err(ApiError::NotFound(subject(&t.def, t.name()))),
            None => {
                let obj = apply::apply(None, &applied, field_manager, sub);
                admission::create(&mut state, &t.def, &t.ns_key(), obj, &o)?
            }
            Some(live) => {
                let mut obj = apply::apply(Some(&live), &applied, field_manager, sub);
                obj["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
                admission::update(&mut state, &t.def, &t.ns_key(), t.name(), obj, &o)?
            }
        };
        return Ok(respond(t, w));
    }
    let live = live.ok_or_else(|| ApiError::NotFound(subject(&t.def, t.name())))?;
    let mut obj = patched(req, t, &live)?;
    // A patch carries no resourceVersion unless it sets one (a precondition).
    if obj["metadata"]["resourceVersion"].is_null() {
        obj["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
    }
    let w = admission::update(
        &mut state,
        &t.def,
        &t.ns_key(),
        t.name(),
        obj,
        &opts(req, t, false),
    )?;
    Ok(respond(t, w))
}

struct DeleteOpts {
    propagation: Propagation,
    grace: Option<i64>,
    uid: Option<String>,
    rv: Option<String>,
}

fn delete_opts(req: &Req) -> ApiResult<DeleteOpts> {
    let body = req.json_body()?;
    let policy = body["propagationPolicy"]
        .as_str()
        .or(req.q("propagationPolicy"))
        .map(String::from);
    let policy = match (
        policy,
        body["orphanDependents"]
            .as_bool()
            .or(req.q("orphanDependents").map(|o| o == "true")),
    ) {
        (Some(p), _) => Some(p),
        (None, Some(true)) => Some("Orphan".to_string()),
        _ => None,
    };
    Ok(DeleteOpts {
        propagation: Propagation::parse(policy.as_deref()),
        grace: body["gracePeriodSeconds"]
            .as_i64()
            .or(req.q("gracePeriodSeconds").and_then(|g| g.parse().ok())),
        uid: body["preconditions"]["uid"].as_str().map(String::from),
        rv: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(String::from),
    })
}

/// DELETE `/.../<name>`.
pub fn delete(app: &App, req: &Req, t: &Target) -> ApiResult<Response> {
    let o = delete_opts(req)?;
    let mut state = app.store.lock();
    let k = key(&t.def, &t.ns_key(), t.name());
    let obj = state
        .get(&k.0, &k.1, &k.2, &k.3)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(subject(&t.def, t.name())))?;
    let md = &obj["metadata"];
    if let Some(uid) = &o.uid
        && md["uid"].as_str() != Some(uid)
    {
        return Err(ApiError::Conflict(
            subject(&t.def, t.name()),
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                md["uid"].as_str().unwrap_or_default()
            ),
        ));
    }
    if let Some(rv) = &o.rv
        && md["resourceVersion"].as_str() != Some(rv)
    {
        return Err(ApiError::Conflict(
            subject(&t.def, t.name()),
            format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in \
                 object meta: {}",
                md["resourceVersion"].as_str().unwrap_or_default()
            ),
        ));
    }
    if dry_run(req) {
        return Ok(json_response(StatusCode::OK, &served(&t.def, &obj)));
    }
    let after = gc::delete(&mut state, &k, o.propagation, o.grace).unwrap_or(obj);
    gc::collect(&mut state);
    let code = if after["metadata"].get("deletionTimestamp").is_some()
        && state.get(&k.0, &k.1, &k.2, &k.3).is_some()
    {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(json_response(code, &served(&t.def, &after)))
}

/// DELETE `/.../<resource>` (with selectors).
pub fn delete_collection(app: &App, req: &Req, t: &Target) -> ApiResult<Response> {
    let o = delete_opts(req)?;
    let filter = Filter::from_req(req)?;
    let mut state = app.store.lock();
    let keys: Vec<_> = state
        .list(&t.def.group, &t.def.plural, t.ns.as_deref())
        .filter(|(_, v)| filter.matches(v))
        .map(|(k, _)| k.clone())
        .collect();
    let mut items = Vec::new();
    for k in keys {
        if let Some(obj) = gc::delete(&mut state, &k, o.propagation, o.grace) {
            items.push(served(&t.def, &obj));
        }
    }
    gc::collect(&mut state);
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", t.def.kind), "apiVersion": t.def.api_version(),
                "metadata": {"resourceVersion": state.rv().to_string()}, "items": items}),
    ))
}

/// POST `/pods/<name>/eviction`: deletes the pod (disruption budgets are not checked).
pub fn evict(app: &App, req: &Req, t: &Target) -> ApiResult<Response> {
    let mut state = app.store.lock();
    let k = key(&t.def, &t.ns_key(), t.name());
    let _ = req;
    gc::delete(&mut state, &k, Propagation::Background, None)
        .ok_or_else(|| ApiError::NotFound(subject(&t.def, t.name())))?;
    gc::collect(&mut state);
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// POST `/pods/<name>/binding`: assigns the pod to a node (`spec.nodeName`), as a scheduler does.
pub fn bind(app: &App, req: &Req, t: &Target) -> ApiResult<Response> {
    let body = req.json_body()?;
    let node = body["target"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::BadRequest(
            "binding target name is required".into(),
        ));
    }
    let mut state = app.store.lock();
    let k = key(&t.def, &t.ns_key(), t.name());
    let mut pod = state
        .get(&k.0, &k.1, &k.2, &k.3)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(subject(&t.def, t.name())))?;
    if let Some(bound) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Err(ApiError::Conflict(
            subject(&t.def, t.name()),
            format!("pod {} is already assigned to node {bound:?}", t.name()),
        ));
    }
    pod["spec"]["nodeName"] = json!(node);
    let mut o = opts(req, t, false);
    o.sub = None;
    admission::update(&mut state, &t.def, &t.ns_key(), t.name(), pod, &o)?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}
