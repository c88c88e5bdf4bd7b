//! WATCH (`?watch=1`): initial ADDED events (no resourceVersion, "0", or `sendInitialEvents`),
//! replay from the history window after a given resourceVersion (410 `Expired` ERROR event when
//! it is too old), live events, BOOKMARKs, `timeoutSeconds`; newline-delimited JSON.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::read::{Filter, served};
use super::{App, Target};
use crate::error::{ApiError, ApiResult};
use crate::http::Req;
use crate::store::{Change, EventType};

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn event(kind: &str, object: Value) -> Bytes {
    line(&json!({"type": kind, "object": object}))
}

fn bookmark(t: &Target, rv: u64, initial_end: bool) -> Bytes {
    let mut md = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event(
        "BOOKMARK",
        json!({"kind": t.def.kind, "apiVersion": t.def.api_version(), "metadata": md}),
    )
}

fn streaming(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream =
        futures::StreamExt::map(ReceiverStream::new(rx), Ok::<_, std::convert::Infallible>);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

struct Watch {
    t: Target,
    filter: Filter,
    table: bool,
}

impl Watch {
    /// The event a watcher sees for a change, if any: with selectors, an object that starts
    /// matching is ADDED and one that stops matching is DELETED, as a real server does.
    fn render(&self, c: &Change) -> Option<Bytes> {
        let in_scope = c.group == self.t.def.group
            && c.resource == self.t.def.plural
            && self.t.ns.as_ref().is_none_or(|ns| *ns == c.namespace);
        if !in_scope {
            return None;
        }
        let now = self.filter.matches(&c.object);
        let kind = match c.kind {
            EventType::Modified => {
                let before = c.old.as_ref().is_some_and(|o| self.filter.matches(o));
                match (before, now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                }
            }
            other if now => other.as_str(),
            _ => return None,
        };
        Some(self.event(kind, &c.object))
    }

    /// An event of `obj`, as a one-row Table when kubectl asked for tables.
    fn event(&self, kind: &str, obj: &Value) -> Bytes {
        let obj = served(&self.t.def, obj);
        if self.table {
            let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
            return event(kind, crate::table::table(&self.t.def, &[obj], meta));
        }
        event(kind, obj)
    }
}

/// Serves a watch.
pub fn serve(app: &App, req: &Req, t: Target) -> ApiResult<Response> {
    let filter = Filter::from_req(req)?;
    let bookmarks = req.flag("allowWatchBookmarks");
    let send_initial = req.q("sendInitialEvents").map(|s| s == "true");
    let timeout = req
        .q("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let rv = req.q("resourceVersion").unwrap_or_default();
    let w = Arc::new(Watch {
        t,
        filter,
        table: req.wants_table(),
    });
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let mut first: Vec<Bytes> = Vec::new();
    let live = {
        let state = app.store.lock();
        let initial = send_initial.unwrap_or(rv.is_empty() || rv == "0");
        let from = if initial || rv.is_empty() || rv == "0" {
            state.rv()
        } else {
            rv.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv}")))?
        };
        if initial {
            for (_, obj) in state.list(&w.t.def.group, &w.t.def.plural, w.t.ns.as_deref()) {
                if w.filter.matches(obj) {
                    first.push(w.event("ADDED", obj));
                }
            }
            if send_initial == Some(true) {
                first.push(bookmark(&w.t, state.rv(), true));
            }
        }
        match state.subscribe_from(from) {
            Ok((backlog, rx)) => {
                first.extend(backlog.iter().filter_map(|c| w.render(c)));
                Some((rx, state.rv()))
            }
            Err(e) => {
                first.push(event("ERROR", e.to_status()));
                None
            }
        }
    };
    let mut epoch = app.store.epoch();
    epoch.mark_unchanged();
    let interval = app.bookmark_interval;
    tokio::spawn(async move {
        for b in first {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        let Some((mut rx, mut last_rv)) = live else {
            return;
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            let out = tokio::select! {
                _ = &mut deadline => return,
                _ = epoch.changed() => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => bookmark(&w.t, last_rv, false),
                got = rx.recv() => match got {
                    Ok(c) => {
                        last_rv = c.rv;
                        match w.render(&c) {
                            Some(b) => b,
                            None => continue,
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if tx.send(out).await.is_err() {
                return;
            }
        }
    });
    Ok(streaming(rx))
}
