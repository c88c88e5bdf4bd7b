//! Watch recorders: one per member, watching every key from revision 1 with `prev_kv` and
//! progress notifications, asking for progress now and then, and recording every response.
//!
//! When a stream breaks (its member was killed, paused or cut off), the recorder opens a new
//! one on the same member from the revision after the last event it saw, as an informer does,
//! and records it as a new watch (the resumable guarantee is checked on it). A watch canceled
//! for compaction resumes at the compaction revision. Once the run's final revision is known,
//! each recorder reads until its stream has delivered everything up to it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use etcd_client::{EventType, WatchOptions};
use tokio::sync::watch;

use super::cluster::connect;
use super::traffic::{Shared, kv};
use crate::check::history::{EventKind, WatchEvent, WatchRecord, WatchResponse, WatchSpec};

/// How often a recorder asks its stream for progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(300);
/// How long a recorder waits for its stream to reach the final revision.
const FINAL_WAIT: Duration = Duration::from_secs(60);

/// Record watches on member `member` at `url` until the final revision (sent on `fin`, 0 until
/// known) has been delivered.
pub async fn recorder(
    member: usize,
    url: String,
    shared: Arc<Shared>,
    mut fin: watch::Receiver<i64>,
) -> Vec<WatchRecord> {
    let mut records = Vec::new();
    let mut next = 1i64;
    let mut final_deadline: Option<Instant> = None;
    loop {
        let target = *fin.borrow();
        if target > 0 {
            let d = *final_deadline.get_or_insert_with(|| Instant::now() + FINAL_WAIT);
            if Instant::now() > d {
                break;
            }
        }
        let spec = WatchSpec {
            key: vec![0],
            range_end: vec![0],
            start_revision: next,
            prev_kv: true,
            progress_notify: true,
            no_put: false,
            no_delete: false,
        };
        let mut record = WatchRecord {
            member,
            spec,
            responses: Vec::new(),
            ended: String::new(),
        };
        let (done, resume) = follow(&url, &mut record, &shared, &mut fin, final_deadline).await;
        if let Some(r) = resume {
            next = r;
        }
        if !record.responses.is_empty() {
            records.push(record);
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    records
}

/// Follow one watch stream into `record`; whether the final revision was reached, and the
/// revision to resume from.
async fn follow(
    url: &str,
    record: &mut WatchRecord,
    shared: &Shared,
    fin: &mut watch::Receiver<i64>,
    final_deadline: Option<Instant>,
) -> (bool, Option<i64>) {
    let opts = WatchOptions::new()
        .with_all_keys()
        .with_prev_key()
        .with_progress_notify()
        .with_start_revision(record.spec.start_revision);
    let stream = async {
        let mut c = connect(url).await?;
        c.watch(vec![0u8], Some(opts)).await
    };
    let stream = match tokio::time::timeout(Duration::from_secs(3), stream).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            record.ended = format!("could not open: {e}");
            return (false, None);
        }
        Err(_) => {
            record.ended = "could not open: timeout".into();
            return (false, None);
        }
    };
    let (mut tx, mut rx) = stream.split();
    let asker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(PROGRESS_EVERY).await;
            if tx.request_progress().await.is_err() {
                return;
            }
        }
    });
    let mut resume = None;
    let done = loop {
        let target = *fin.borrow();
        // A stalled stream (its member paused or cut off) is given up after a while.
        let wait = match (target, final_deadline) {
            (t, Some(d)) if t > 0 => d.saturating_duration_since(Instant::now()),
            _ => Duration::from_secs(5),
        };
        let msg = tokio::select! {
            m = tokio::time::timeout(wait, rx.message()) => m,
            _ = fin.changed() => continue,
        };
        let msg = match msg {
            Err(_) => {
                record.ended = "no response in time".into();
                break false;
            }
            Ok(Err(e)) => {
                record.ended = format!("stream error: {e}");
                break false;
            }
            Ok(Ok(None)) => {
                record.ended = "stream closed".into();
                break false;
            }
            Ok(Ok(Some(m))) => m,
        };
        let resp = convert(&msg, shared.now());
        if let Some(e) = resp.events.last() {
            resume = Some(e.kv.mod_revision + 1);
        }
        let reached = target > 0
            && !resp.canceled
            && (resp
                .events
                .last()
                .is_some_and(|e| e.kv.mod_revision >= target)
                || resp.is_progress_notify() && resp.revision >= target);
        let canceled = resp.canceled.then_some(resp.compact_revision);
        record.responses.push(resp);
        if let Some(compact) = canceled {
            record.ended = format!("canceled: {}", msg.cancel_reason());
            if compact > 0 {
                resume = Some(compact);
            }
            break false;
        }
        if reached {
            record.ended = "reached the final revision".into();
            break true;
        }
    };
    asker.abort();
    shared.watch_events.fetch_add(
        record.responses.iter().map(|r| r.events.len() as u64).sum(),
        Ordering::Relaxed,
    );
    (done, resume)
}

fn convert(m: &etcd_client::WatchResponse, time: u64) -> WatchResponse {
    WatchResponse {
        time,
        revision: m.header().map_or(0, |h| h.revision()),
        events: m
            .events()
            .iter()
            .filter_map(|e| {
                Some(WatchEvent {
                    kind: match e.event_type() {
                        EventType::Put => EventKind::Put,
                        EventType::Delete => EventKind::Delete,
                    },
                    kv: kv(e.kv()?),
                    prev_kv: e.prev_kv().map(kv),
                })
            })
            .collect(),
        created: m.created(),
        canceled: m.canceled(),
        compact_revision: m.compact_revision(),
        cancel_reason: m.cancel_reason().to_string(),
    }
}
