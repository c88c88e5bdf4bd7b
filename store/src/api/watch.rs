//! `etcdserverpb.Watch`: many watches per stream, replay from history, live events from the
//! state machine's apply stream, progress notifications, cancellation and compaction.
//!
//! Each stream is one task. Live events arrive through a bounded broadcast of applied batches;
//! a stream that falls behind (its client stopped reading) is told it lagged and catches up
//! from storage instead, as etcd's unsynced watchers do, so a stalled watcher costs neither
//! memory nor writer throughput.
//!
//! A stream never jumps: a batch is taken as it is only by a watcher that has seen everything
//! before it ([`AppliedEvents::start`]); a watcher further back (after a Raft snapshot replaced
//! the state, or a lag) reads the revisions in between from storage first, or is canceled with
//! the compaction revision when they are gone. Progress notifications report the revision up
//! to which the stream has handed out every event, not the store's
//! current one, which is set before its events reach this stream.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use prost::Message;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::Api;
use crate::mvcc::Span;
use crate::mvcc::events::events_between;
use crate::pb::mvccpb::{Event, event::EventType};
use crate::pb::watch_server::Watch;
use crate::pb::{
    WatchCreateRequest, WatchRequest, WatchResponse, watch_create_request, watch_request,
};
use crate::raft::state_machine::{AppliedEvents, SmShared};

/// Bytes of events read from storage per round of catch-up.
const CATCH_UP_BYTES: usize = 1 << 20;
/// Responses buffered per stream before the stream stops reading live events.
const OUT_BUFFER: usize = 16;

/// The Watch service.
#[derive(Clone)]
pub struct WatchService {
    api: Api,
}

impl WatchService {
    /// A Watch service over `api`.
    pub fn new(api: Api) -> Self {
        WatchService { api }
    }
}

struct Watcher {
    span: Span,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    progress_notify: bool,
    fragment: bool,
    /// The first revision this watcher has not been sent yet.
    next_rev: i64,
}

impl Watcher {
    fn wants(&self, e: &Event) -> bool {
        let Some(kv) = &e.kv else { return false };
        if kv.mod_revision < self.next_rev || !self.span.contains(&kv.key) {
            return false;
        }
        let delete = e.r#type == EventType::Delete as i32;
        !(delete && self.no_delete || !delete && self.no_put)
    }

    fn shape(&self, e: &Event) -> Event {
        let mut e = e.clone();
        if !self.prev_kv {
            e.prev_kv = None;
        }
        e
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let m = &crate::metrics::METRICS;
        m.watch_streams.dec();
        m.watchers.dec_by(self.watchers.len() as i64);
    }
}

/// One client stream.
struct Session {
    api: Api,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
    /// Every event up to this revision has been handed to every watcher that wants it (or is
    /// read from storage before anything newer): the revision a progress notification may
    /// report. Only grows.
    synced: i64,
    /// A progress request came while a watcher was not synced: answer it once they all are.
    progress_deferred: bool,
}

type Closed = ();

impl Session {
    async fn send(&self, r: WatchResponse) -> Result<(), Closed> {
        self.out.send(Ok(r)).await.map_err(|_| ())
    }

    fn response(&self, watch_id: i64, revision: i64) -> WatchResponse {
        WatchResponse {
            header: Some(self.api.node.header_at(revision)),
            watch_id,
            ..Default::default()
        }
    }

    async fn create(&mut self, req: WatchCreateRequest) -> Result<(), Closed> {
        let revs = self.api.node.sm.revs();
        let fail = |reason: &str| WatchResponse {
            header: Some(self.api.node.header()),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..Default::default()
        };
        if req.start_revision < 0 {
            return self
                .send(fail(
                    "etcdserver: mvcc: required revision is a future revision",
                ))
                .await;
        }
        let id = if req.watch_id != 0 {
            if self.watchers.contains_key(&req.watch_id) {
                return self
                    .send(fail(
                        "etcdserver: duplicate watch ID provided on the WatchStream",
                    ))
                    .await;
            }
            req.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        };
        self.next_id = self.next_id.max(id + 1);
        let key = if req.key.is_empty() {
            vec![0]
        } else {
            req.key.clone()
        };
        let filters = &req.filters;
        let w = Watcher {
            span: Span::new(&key, &req.range_end),
            no_put: filters.contains(&(watch_create_request::FilterType::Noput as i32)),
            no_delete: filters.contains(&(watch_create_request::FilterType::Nodelete as i32)),
            prev_kv: req.prev_kv,
            progress_notify: req.progress_notify,
            fragment: req.fragment,
            next_rev: if req.start_revision > 0 {
                req.start_revision
            } else {
                revs.current + 1
            },
        };
        let mut created = self.response(id, revs.current);
        created.created = true;
        self.send(created).await?;
        if req.start_revision > 0 && req.start_revision < revs.compact {
            let mut c = self.response(id, revs.current);
            c.canceled = true;
            c.compact_revision = revs.compact;
            c.cancel_reason = "etcdserver: mvcc: required revision has been compacted".into();
            return self.send(c).await;
        }
        let behind = w.next_rev <= revs.current;
        self.watchers.insert(id, w);
        crate::metrics::METRICS.watchers.inc();
        if behind {
            self.catch_up(id).await
        } else {
            Ok(())
        }
    }

    /// Send watcher `id` everything from its next revision up to the current one, from storage.
    async fn catch_up(&mut self, id: i64) -> Result<(), Closed> {
        loop {
            let Some(w) = self.watchers.get(&id) else {
                return Ok(());
            };
            let (from, span) = (w.next_rev, w.span.clone());
            let sm: Arc<SmShared> = self.api.node.sm.clone();
            let read = tokio::task::spawn_blocking(move || -> crate::Result<_> {
                let txn = sm.read()?;
                let revs = SmShared::revs_in(&txn)?;
                if from < revs.compact {
                    return Ok(Err(revs.compact));
                }
                let (events, scanned) =
                    events_between(&txn, from, revs.current, CATCH_UP_BYTES, &|k| {
                        span.contains(k)
                    })?;
                Ok(Ok((events, scanned, revs.current)))
            })
            .await;
            let read = match read {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "watch catch-up read failed");
                    return self.cancel(id, "etcdserver: watch catch-up failed").await;
                }
                Err(_) => return Err(()),
            };
            match read {
                Err(compact) => {
                    if self.watchers.remove(&id).is_some() {
                        crate::metrics::METRICS.watchers.dec();
                    }
                    let mut c = self.response(id, 0);
                    c.canceled = true;
                    c.compact_revision = compact;
                    c.cancel_reason =
                        "etcdserver: mvcc: required revision has been compacted".into();
                    return self.send(c).await;
                }
                Ok((events, scanned, current)) => {
                    let Some(w) = self.watchers.get_mut(&id) else {
                        return Ok(());
                    };
                    let events: Vec<Event> = events
                        .iter()
                        .filter(|e| w.wants(e))
                        .map(|e| w.shape(e))
                        .collect();
                    w.next_rev = scanned + 1;
                    let fragment = w.fragment;
                    if !events.is_empty() {
                        self.send_events(id, scanned.min(current), events, fragment)
                            .await?;
                    }
                    if scanned >= current {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn send_events(
        &self,
        id: i64,
        revision: i64,
        events: Vec<Event>,
        fragment: bool,
    ) -> Result<(), Closed> {
        let limit = self.api.max_request_bytes;
        let mut resp = self.response(id, revision);
        resp.events = events;
        if !fragment || resp.encoded_len() <= limit {
            return self.send(resp).await;
        }
        // Split into fragments under the limit; all but the last carry `fragment = true`.
        let all = std::mem::take(&mut resp.events);
        let mut part = Vec::new();
        let mut size = 0;
        let n = all.len();
        for (i, e) in all.into_iter().enumerate() {
            let len = e.encoded_len() + 8;
            if !part.is_empty() && size + len > limit {
                let mut r = self.response(id, revision);
                r.events = std::mem::take(&mut part);
                r.fragment = true;
                self.send(r).await?;
                size = 0;
            }
            size += len;
            part.push(e);
            if i + 1 == n {
                let mut r = self.response(id, revision);
                r.events = std::mem::take(&mut part);
                self.send(r).await?;
            }
        }
        Ok(())
    }

    async fn cancel(&mut self, id: i64, reason: &str) -> Result<(), Closed> {
        if self.watchers.remove(&id).is_none() {
            return Ok(());
        }
        crate::metrics::METRICS.watchers.dec();
        let mut c = self.response(id, 0);
        c.canceled = true;
        c.cancel_reason = reason.to_string();
        self.send(c).await
    }

    async fn deliver(&mut self, batch: &AppliedEvents) -> Result<(), Closed> {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            let Some(w) = self.watchers.get(&id) else {
                continue;
            };
            if w.next_rev <= batch.start {
                // Revisions next_rev..=start never came through this stream (a snapshot was
                // installed, or batches were dropped): read them from storage first. The
                // catch-up reads up to the store's current revision, at or past this batch.
                self.catch_up(id).await?;
            }
            let Some(w) = self.watchers.get_mut(&id) else {
                continue;
            };
            let events: Vec<Event> = batch
                .events
                .iter()
                .filter(|e| w.wants(e))
                .map(|e| w.shape(e))
                .collect();
            w.next_rev = w.next_rev.max(batch.revision + 1);
            let fragment = w.fragment;
            if !events.is_empty() {
                self.send_events(id, batch.revision, events, fragment)
                    .await?;
            }
        }
        self.synced = self.synced.max(batch.revision);
        self.answer_deferred_progress().await
    }

    /// The revision a progress notification may report now: every watcher has been handed
    /// every event up to it. None while a watcher stands before it (it is catching up).
    fn progress_revision(&self) -> Option<i64> {
        let all_synced = self.watchers.values().all(|w| w.next_rev > self.synced);
        all_synced.then_some(self.synced)
    }

    /// A progress request (`watch_id` -1 for the whole stream), answered as etcd does: only
    /// when every watcher of the stream is synced, else as soon as they are.
    async fn request_progress(&mut self) -> Result<(), Closed> {
        match self.progress_revision() {
            Some(rev) => {
                self.progress_deferred = false;
                self.send(self.response(-1, rev)).await
            }
            None => {
                self.progress_deferred = true;
                Ok(())
            }
        }
    }

    async fn answer_deferred_progress(&mut self) -> Result<(), Closed> {
        if self.progress_deferred {
            self.request_progress().await
        } else {
            Ok(())
        }
    }

    /// Batches were dropped for this stream: every watcher reads what it missed from storage.
    async fn catch_up_all(&mut self) -> Result<(), Closed> {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            self.catch_up(id).await?;
        }
        self.answer_deferred_progress().await
    }

    /// The periodic progress notification of the watchers that asked for one (etcd sends it
    /// only to synced watchers; here all are, between two steps of the stream).
    async fn notify_progress(&mut self) -> Result<(), Closed> {
        let Some(rev) = self.progress_revision() else {
            return Ok(());
        };
        let ids: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.progress_notify)
            .map(|(i, _)| *i)
            .collect();
        for id in ids {
            self.send(self.response(id, rev)).await?;
        }
        Ok(())
    }

    async fn handle(&mut self, req: WatchRequest) -> Result<(), Closed> {
        match req.request_union {
            Some(watch_request::RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(watch_request::RequestUnion::CancelRequest(c)) => {
                self.cancel(c.watch_id, "").await
            }
            Some(watch_request::RequestUnion::ProgressRequest(_)) => self.request_progress().await,
            None => Ok(()),
        }
    }

    async fn run<S>(mut self, mut input: S)
    where
        S: Stream<Item = Result<WatchRequest, Status>> + Unpin,
    {
        let mut live = self.api.node.sm.subscribe();
        // Batches applied after this read reach `live`; the ones before are in storage.
        self.synced = self.api.node.sm.revs().current;
        let mut tick = tokio::time::interval(self.api.watch_progress_interval);
        tick.tick().await;
        // A client that closes its sending side keeps its watches (as etcd): only a closed
        // receiving side or a stream error ends the session.
        let mut input_open = true;
        loop {
            let out = self.out.clone();
            let step = tokio::select! {
                req = input.next(), if input_open => match req {
                    Some(Ok(r)) => self.handle(r).await,
                    Some(Err(_)) => Err(()),
                    None => {
                        input_open = false;
                        Ok(())
                    }
                },
                _ = out.closed() => Err(()),
                ev = live.recv() => match ev {
                    Ok(batch) => self.deliver(&batch).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up_all().await,
                    Err(broadcast::error::RecvError::Closed) => Err(()),
                },
                _ = tick.tick() => self.notify_progress().await,
            };
            if step.is_err() {
                return;
            }
        }
    }
}

/// A stream of watch responses.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

impl WatchService {
    /// Serve one watch session fed by `input` (gRPC or the HTTP gateway).
    pub fn open<S>(&self, input: S) -> WatchStream
    where
        S: Stream<Item = Result<WatchRequest, Status>> + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(OUT_BUFFER);
        crate::metrics::METRICS.watch_streams.inc();
        let session = Session {
            api: self.api.clone(),
            out: tx,
            watchers: BTreeMap::new(),
            next_id: 0,
            synced: 0,
            progress_deferred: false,
        };
        tokio::spawn(session.run(input));
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        Ok(Response::new(self.open(req.into_inner())))
    }
}
