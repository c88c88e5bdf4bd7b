//! GET of one object and LIST with label/field selectors, `limit`/`continue` pagination and
//! Table output.

use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use super::{App, Target};
use crate::admission::subject;
use crate::error::{ApiError, ApiResult};
use crate::http::{Req, ok};
use crate::resources::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::table;

/// The object as served at `def`'s version.
pub fn served(def: &ResourceDef, obj: &Value) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(def.api_version());
    o["kind"] = json!(def.kind);
    o
}

/// GET `/.../<name>` (and `/status`).
pub fn get(app: &App, req: &Req, t: &Target) -> ApiResult<Response> {
    let state = app.store.lock();
    let obj = state
        .get(&t.def.group, &t.def.plural, &t.ns_key(), t.name())
        .ok_or_else(|| ApiError::NotFound(subject(&t.def, t.name())))?;
    let obj = served(&t.def, obj);
    if req.wants_table() {
        let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
        return Ok(ok(&table::table(&t.def, &[obj], meta)));
    }
    Ok(ok(&obj))
}

/// Parsed selectors of a list or watch.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    /// From `labelSelector` and `fieldSelector`.
    pub fn from_req(req: &Req) -> ApiResult<Self> {
        Ok(Filter {
            labels: LabelSelector::parse(req.q("labelSelector").unwrap_or_default())?,
            fields: FieldSelector::parse(req.q("fieldSelector").unwrap_or_default())?,
        })
    }

    /// Whether the object passes both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches(obj)
    }
}

fn encode_continue(ns: &str, name: &str) -> String {
    let raw = json!({"ns": ns, "name": name}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> ApiResult<(String, String)> {
    let bad = || ApiError::BadRequest(format!("continue key is not valid: {token}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        v["ns"].as_str().ok_or_else(bad)?.to_string(),
        v["name"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

/// LIST `/.../<resource>`.
pub fn list(app: &App, req: &Req, t: &Target) -> ApiResult<Response> {
    let filter = Filter::from_req(req)?;
    let limit = req
        .q("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let after = req
        .q("continue")
        .filter(|c| !c.is_empty())
        .map(decode_continue)
        .transpose()?;
    let state = app.store.lock();
    let mut items = Vec::new();
    let mut next = None;
    let mut remaining = 0usize;
    for (k, obj) in state.list(&t.def.group, &t.def.plural, t.ns.as_deref()) {
        if let Some((ns, name)) = &after
            && (&k.2, &k.3) <= (ns, name)
        {
            continue;
        }
        if !filter.matches(obj) {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            if next.is_none() {
                let last: &Value = items.last().expect("limit is positive");
                next = Some(encode_continue(
                    last["metadata"]["namespace"].as_str().unwrap_or_default(),
                    last["metadata"]["name"].as_str().unwrap_or_default(),
                ));
            }
            remaining += 1;
            continue;
        }
        items.push(served(&t.def, obj));
    }
    let mut meta = json!({"resourceVersion": state.rv().to_string()});
    if let Some(c) = next {
        meta["continue"] = json!(c);
        meta["remainingItemCount"] = json!(remaining);
    }
    drop(state);
    if req.wants_table() {
        return Ok(ok(&table::table(&t.def, &items, meta)));
    }
    Ok(ok(&json!({
        "kind": format!("{}List", t.def.kind),
        "apiVersion": t.def.api_version(),
        "metadata": meta,
        "items": items,
    })))
}
