//! Proposal batching: write requests that wait at the same time go through Raft as one entry.
//!
//! openraft 0.9 appends, replicates and applies every `client_write` as its own log entry, at a
//! fixed cost per entry (a log append and its completion, a replication step, an apply call).
//! The proposer keeps at most [`MAX_IN_FLIGHT`] entries on their way through Raft; requests that
//! arrive meanwhile queue, and the next free slot takes them all as one [`Command::Batch`]
//! entry. A lone request goes alone, as before, so an idle cluster answers as fast as it did;
//! under load the per-entry cost is shared by the whole batch. Each request in a batch is still
//! applied as its own etcd request, with its own revision.
//!
//! A request that finds the proposer idle (nothing queued, no entry in flight) goes to Raft from
//! its own task: through the proposer's task it would cost two task hand-offs on the way in and
//! one on the way out, each a thread switch on an idle member (see
//! `results/bench/profile/PROFILE.md`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::log_store::{Leaders, Standing};
use super::typ::{ClientWriteError, RaftError};
use super::{Command, CommandResponse, PeerNode, Raft};

/// Raft entries being proposed at once by one member.
pub const MAX_IN_FLIGHT: usize = 4;

/// Requests put in one batch entry at most.
pub const MAX_BATCH: usize = 512;

/// Encoded bytes of requests put in one batch entry at most (a single larger request goes
/// alone).
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// What a proposal comes back with: the response and the log index of the entry it was applied
/// in, or why there is none.
pub type ProposeResult = Result<(CommandResponse, u64), ProposeError>;

/// Why a proposal has no response.
#[derive(Debug, Clone)]
pub enum ProposeError {
    /// Never appended: this member is not the leader (the leader's node, if one is known).
    /// Safe to send elsewhere.
    NotLeader(Option<PeerNode>),
    /// Perhaps appended while this member led, and its leadership ended before the entry was
    /// applied: the entry may still commit under the next leader, or never. Sending it again
    /// could apply it twice.
    Lost,
    /// openraft refused it (a membership change) or stopped.
    Raft(RaftError<ClientWriteError>),
}

/// Who proposes: the Raft handle, this member's id, and who led when.
#[derive(Clone)]
struct Ctx {
    raft: Raft,
    me: u64,
    leaders: Leaders,
}

impl Ctx {
    /// This member's standing before it submits.
    fn standing(&self) -> Standing {
        self.leaders.standing(self.me)
    }

    /// Tell openraft's `ForwardToLeader` apart: it answers both a write refused because this
    /// member is not the leader (never appended) and an entry appended, then truncated by a
    /// new leader (which, with five voters or more, another member may still hold and commit).
    /// Only a member that could not lead when it submitted, and did not become leader since,
    /// had the first; the saved votes say both exactly (see [`Leaders`]).
    fn classify(&self, before: Standing, e: RaftError<ClientWriteError>) -> ProposeError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                let now = self.standing();
                if !before.may_lead && now.times_led == before.times_led {
                    ProposeError::NotLeader(f.leader_node)
                } else {
                    tracing::info!(
                        may_have_led = before.may_lead,
                        became_leader = now.times_led != before.times_led,
                        "a proposal's entry may have been appended before leadership ended: \
                         answered 'leader changed'"
                    );
                    ProposeError::Lost
                }
            }
            other => ProposeError::Raft(other),
        }
    }
}

struct Pending {
    cmd: Command,
    size: usize,
    reply: oneshot::Sender<ProposeResult>,
}

/// Submits commands to Raft, batching those that wait together.
#[derive(Clone)]
pub struct Proposer {
    queue: mpsc::UnboundedSender<Pending>,
    /// Requests sent to the queue and not taken by the proposer's task yet.
    queued: Arc<AtomicUsize>,
    slots: Arc<Semaphore>,
    quiet: watch::Receiver<bool>,
    ctx: Ctx,
}

impl Proposer {
    /// A proposer for `raft`; its task ends when every handle is dropped. While `quiet` is
    /// true, proposals wait (queued, in order) instead of going to Raft: a leader handing over
    /// leadership sends nothing that would renew its followers' lease.
    /// `me` is this member's id and `leaders` what its log store knows of who led when.
    pub fn start(raft: Raft, me: u64, leaders: Leaders, quiet: watch::Receiver<bool>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let queued = Arc::new(AtomicUsize::new(0));
        let ctx = Ctx { raft, me, leaders };
        let queue = Queue {
            rx,
            queued: queued.clone(),
        };
        tokio::spawn(run(ctx.clone(), queue, quiet.clone(), slots.clone()));
        Proposer {
            queue: tx,
            queued,
            slots,
            quiet,
            ctx,
        }
    }

    /// Whether no entry of this proposer is on its way through Raft.
    pub fn idle(&self) -> bool {
        self.slots.available_permits() == MAX_IN_FLIGHT
    }

    /// Propose `cmd` and wait until it is applied (or refused).
    pub async fn write(&self, cmd: Command) -> ProposeResult {
        // Only when idle: under load, a request that took a freed slot alone would not join the
        // batch that queues behind it, and more, smaller entries cost more than the hops.
        if self.idle()
            && self.queued.load(Ordering::Acquire) == 0
            && !*self.quiet.borrow()
            && let Ok(slot) = self.slots.clone().try_acquire_owned()
        {
            let res = propose_one(&self.ctx, cmd).await;
            drop(slot);
            return res;
        }
        let (reply, rx) = oneshot::channel();
        let size = cmd.approx_size();
        let stopped = || ProposeError::Raft(RaftError::Fatal(openraft::error::Fatal::Stopped));
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.queue.send(Pending { cmd, size, reply }).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(stopped());
        }
        rx.await.map_err(|_| stopped())?
    }
}

/// The proposer task's end of the queue, counting what it takes.
struct Queue {
    rx: mpsc::UnboundedReceiver<Pending>,
    queued: Arc<AtomicUsize>,
}

impl Queue {
    async fn recv(&mut self) -> Option<Pending> {
        let p = self.rx.recv().await;
        if p.is_some() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
        p
    }

    fn try_recv(&mut self) -> Option<Pending> {
        let p = self.rx.try_recv().ok();
        if p.is_some() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
        p
    }
}

async fn run(ctx: Ctx, mut rx: Queue, mut quiet: watch::Receiver<bool>, slots: Arc<Semaphore>) {
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        // Wait while leadership is handed over, then for a free slot: whatever arrives
        // meanwhile joins this batch. A request held during a handover takes no slot, so the
        // handover, which waits until no entry is in flight, is not held up by it (it was: the
        // slot made the proposer look busy until the handover's catch-up deadline, a second).
        let slot = loop {
            if quiet.wait_for(|q| !*q).await.is_err() {
                return;
            }
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            if !*quiet.borrow() {
                break slot;
            }
        };
        let mut bytes = first.size;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Some(p) if bytes + p.size > MAX_BATCH_BYTES => {
                    carry = Some(p);
                    break;
                }
                Some(p) => {
                    bytes += p.size;
                    batch.push(p);
                }
                None => break,
            }
        }
        let ctx = ctx.clone();
        tokio::spawn(async move {
            propose(&ctx, batch).await;
            drop(slot);
        });
    }
}

/// Propose one command as an entry of its own.
async fn propose_one(ctx: &Ctx, cmd: Command) -> ProposeResult {
    let before = ctx.standing();
    ctx.raft
        .client_write(cmd)
        .await
        .map(|r| (r.data, r.log_id.index))
        .map_err(|e| ctx.classify(before, e))
}

async fn propose(ctx: &Ctx, mut batch: Vec<Pending>) {
    let raft = &ctx.raft;
    if batch.len() == 1 {
        let p = batch.remove(0);
        let _ = p.reply.send(propose_one(ctx, p.cmd).await);
        return;
    }
    let (cmds, replies): (Vec<Command>, Vec<_>) =
        batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
    let before = ctx.standing();
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
            let e = ctx.classify(before, e);
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
