//! The in-memory tail of the Raft log: the most recent entries, flushed or not, so appends are
//! readable at once and replication reads of recent entries never touch the disk. Entries not
//! yet in redb are never dropped from it; durable ones go once the tail exceeds its budget.

use std::collections::VecDeque;

use super::log_store::TAIL_BYTES;
use super::typ::{Entry, LogId};

/// An entry in the tail: the entry, its encoded size, and the sequence number of its append.
pub(super) type TailEntry = (Entry, usize, u64);

/// The most recent entries: every entry of the log at or after `start`, in index order.
#[derive(Default)]
pub(super) struct Tail {
    pub(super) entries: VecDeque<TailEntry>,
    /// Index of the first entry the tail stands for (the next index to append when empty).
    pub(super) start: u64,
    /// Encoded bytes held.
    pub(super) bytes: usize,
    /// Sequence number of the next append.
    pub(super) next_seq: u64,
    /// Appends with a sequence number below this are in the database. An entry removed from
    /// the log (truncated or purged) is removed from the tail first, so an entry still in the
    /// tail whose append is durable is in the database.
    pub(super) durable_seq: u64,
    /// The last purged log id.
    pub(super) purged: Option<LogId>,
}

impl Tail {
    pub(super) fn next_index(&self) -> u64 {
        self.start + self.entries.len() as u64
    }

    pub(super) fn push(&mut self, e: Entry, size: usize, seq: u64) {
        let index = e.log_id.index;
        if index < self.next_index() {
            // Overwrite without an explicit truncation: drop the stale suffix first.
            self.truncate(index);
        }
        if self.entries.is_empty() {
            self.start = index;
        }
        debug_assert_eq!(index, self.next_index(), "log entries must be contiguous");
        self.bytes += size;
        self.entries.push_back((e, size, seq));
    }

    pub(super) fn truncate(&mut self, index: u64) {
        if index <= self.start {
            self.entries.clear();
            self.bytes = 0;
            self.start = index;
        } else {
            let keep = (index - self.start) as usize;
            for (_, size, _) in self.entries.drain(keep.min(self.entries.len())..) {
                self.bytes -= size;
            }
        }
    }

    pub(super) fn purge(&mut self, index: u64) {
        while self
            .entries
            .front()
            .is_some_and(|(e, _, _)| e.log_id.index <= index)
        {
            if let Some((_, size, _)) = self.entries.pop_front() {
                self.bytes -= size;
            }
            self.start += 1;
        }
        if self.entries.is_empty() {
            self.start = self.start.max(index + 1);
        }
    }

    /// Drop the oldest durable entries beyond the memory budget (keeping the last one).
    pub(super) fn trim(&mut self) {
        while self.bytes > TAIL_BYTES && self.entries.len() > 1 {
            match self.entries.front() {
                Some((_, _, seq)) if *seq < self.durable_seq => {}
                _ => break,
            }
            if let Some((_, size, _)) = self.entries.pop_front() {
                self.bytes -= size;
            }
            self.start += 1;
        }
    }
}
