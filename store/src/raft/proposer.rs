//! Proposal batching: write requests that wait at the same time go through Raft as one entry.
//!
//! openraft 0.9 appends, replicates and applies every `client_write` as its own log entry, at a
//! fixed cost per entry (a log append and its completion, a replication step, an apply call).
//! The proposer keeps at most [`MAX_IN_FLIGHT`] entries on their way through Raft; requests that
//! arrive meanwhile queue, and the next free slot takes them all as one [`Command::Batch`]
//! entry. A lone request goes alone, as before, so an idle cluster answers as fast as it did;
//! under load the per-entry cost is shared by the whole batch. Each request in a batch is still
//! applied as its own etcd request, with its own revision.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::typ::{ClientWriteError, RaftError};
use super::{Command, CommandResponse, Raft};

/// Raft entries being proposed at once by one member.
pub const MAX_IN_FLIGHT: usize = 4;

/// Requests put in one batch entry at most.
pub const MAX_BATCH: usize = 512;

/// Encoded bytes of requests put in one batch entry at most (a single larger request goes
/// alone).
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// What a proposal comes back with: the response and the log index of the entry it was applied
/// in, or openraft's error for that entry.
pub type ProposeResult = Result<(CommandResponse, u64), RaftError<ClientWriteError>>;

struct Pending {
    cmd: Command,
    size: usize,
    reply: oneshot::Sender<ProposeResult>,
}

/// Submits commands to Raft, batching those that wait together.
#[derive(Clone)]
pub struct Proposer {
    queue: mpsc::UnboundedSender<Pending>,
    slots: Arc<Semaphore>,
}

impl Proposer {
    /// A proposer for `raft`; its task ends when every handle is dropped. While `quiet` is
    /// true, proposals wait (queued, in order) instead of going to Raft: a leader handing over
    /// leadership sends nothing that would renew its followers' lease.
    pub fn start(raft: Raft, quiet: watch::Receiver<bool>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        tokio::spawn(run(raft, rx, quiet, slots.clone()));
        Proposer { queue: tx, slots }
    }

    /// Whether no entry of this proposer is on its way through Raft.
    pub fn idle(&self) -> bool {
        self.slots.available_permits() == MAX_IN_FLIGHT
    }

    /// Propose `cmd` and wait until it is applied (or refused).
    pub async fn write(&self, cmd: Command) -> ProposeResult {
        let (reply, rx) = oneshot::channel();
        let size = cmd.approx_size();
        let stopped = || RaftError::Fatal(openraft::error::Fatal::Stopped);
        self.queue
            .send(Pending { cmd, size, reply })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

async fn run(
    raft: Raft,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    mut quiet: watch::Receiver<bool>,
    slots: Arc<Semaphore>,
) {
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        // Wait for a free slot first: whatever arrives meanwhile joins this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        if quiet.wait_for(|q| !*q).await.is_err() {
            return;
        }
        let mut bytes = first.size;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) if bytes + p.size > MAX_BATCH_BYTES => {
                    carry = Some(p);
                    break;
                }
                Ok(p) => {
                    bytes += p.size;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch).await;
            drop(slot);
        });
    }
}

async fn propose(raft: &Raft, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        let p = batch.remove(0);
        let res = raft
            .client_write(p.cmd)
            .await
            .map(|r| (r.data, r.log_id.index));
        let _ = p.reply.send(res);
        return;
    }
    let (cmds, replies): (Vec<Command>, Vec<_>) =
        batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
    match raft.client_write(Command::Batch(cmds)).await {
        Ok(resp) => match resp.data {
            CommandResponse::Batch(results) if results.len() == replies.len() => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok((r, resp.log_id.index)));
                }
            }
            other => {
                let e = crate::error::EtcdError::Internal(format!(
                    "batch entry answered with {other:?}"
                ));
                for reply in replies {
                    let _ = reply.send(Ok((CommandResponse::Failed(e.clone()), resp.log_id.index)));
                }
            }
        },
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
