//! The in-memory view of the log that replay rebuilds and every write updates: where each
//! live entry is on disk, the purge point, and the latest vote and committed payloads.
//!
//! It also holds the one definition of what each record kind does to the log, so that replay
//! and the write path cannot disagree:
//! - an entry must have the index after the last one (any index when the log has no position
//!   yet: a new WAL, or the start of the segments left after a purge);
//! - a truncation marker `n` removes the entries at and after `n`; the next entry is `n`;
//! - a purge marker `p` removes the entries up to `p`; if the log ends before `p + 1`, the
//!   next entry is `p + 1`. The marker also holds the index of the next entry, so that a
//!   replay of the segments left after a later purge, which may begin with this marker but
//!   without the entries it followed, knows where the log goes on;
//! - the vote and committed records replace the previous ones.

use std::collections::VecDeque;

use super::record::Kind;

/// Where a record is: its segment (by first sequence number), its offset in that segment and
/// its payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub seg: u64,
    pub offset: u64,
    pub len: u32,
}

/// The live log and the latest metadata.
#[derive(Debug, Default)]
pub(crate) struct LogState {
    /// Locations of the live entries `first..next`.
    entries: VecDeque<Loc>,
    /// Index of `entries[0]`, or of the next entry when there are none.
    first: u64,
    /// Index the next entry must have; `None` until the log has a position.
    next: Option<u64>,
    purged: Option<u64>,
    /// Segment of the latest purge marker.
    purge_seg: Option<u64>,
    /// Segment of the latest truncation or purge marker: when the log has no entries, that
    /// marker is what sets the index of the next one.
    marker_seg: Option<u64>,
    vote: Option<Vec<u8>>,
    committed: Option<Vec<u8>>,
    /// The caller's payload of the latest purge marker.
    purged_meta: Option<Vec<u8>>,
}

impl LogState {
    /// Index of the first live entry.
    pub fn first_index(&self) -> Option<u64> {
        (!self.entries.is_empty()).then_some(self.first)
    }

    /// Index of the last live entry.
    pub fn last_index(&self) -> Option<u64> {
        (!self.entries.is_empty()).then(|| self.first + self.entries.len() as u64 - 1)
    }

    /// Index the next entry must have, once the log has a position.
    pub fn next_index(&self) -> Option<u64> {
        self.next
    }

    /// The highest purge point.
    pub fn purged(&self) -> Option<u64> {
        self.purged
    }

    /// The latest vote payload.
    pub fn vote(&self) -> Option<&[u8]> {
        self.vote.as_deref()
    }

    /// The latest committed payload.
    pub fn committed(&self) -> Option<&[u8]> {
        self.committed.as_deref()
    }

    /// Where the live entry `index` is.
    pub fn get(&self, index: u64) -> Option<Loc> {
        let i = usize::try_from(index.checked_sub(self.first)?).ok()?;
        self.entries.get(i).copied()
    }

    /// The oldest segment that replay needs to rebuild this state: the one holding the first
    /// live entry (or, with no entries, the marker that set the next index) or the latest
    /// purge marker, whichever is older. The vote and committed are not counted: a purge
    /// writes copies of them after its marker.
    pub fn first_needed_segment(&self) -> Option<u64> {
        let anchor = match self.entries.front() {
            Some(loc) => Some(loc.seg),
            None => self.marker_seg,
        };
        match (anchor, self.purge_seg) {
            (Some(a), Some(p)) => Some(a.min(p)),
            (a, p) => a.or(p),
        }
    }

    /// Check that entries with these indices, in this order, may be appended; on failure,
    /// the index that was expected and the one found.
    pub fn check_entries(&self, indices: impl Iterator<Item = u64>) -> Result<(), (u64, u64)> {
        let mut next = self.next;
        for i in indices {
            match next {
                Some(n) if n != i => return Err((n, i)),
                _ => next = Some(i.saturating_add(1)),
            }
        }
        Ok(())
    }

    /// The caller's payload of the latest purge marker.
    pub fn purged_meta(&self) -> Option<&[u8]> {
        self.purged_meta.as_deref()
    }

    /// The payload of a purge marker up to `index`: the index of the next entry after it, then
    /// the caller's `meta`.
    pub fn purge_payload(&self, index: u64, meta: &[u8]) -> Vec<u8> {
        let after = index.saturating_add(1);
        let next = self.next.map_or(after, |n| n.max(after));
        [&next.to_le_bytes()[..], meta].concat()
    }

    /// Apply a record (found at `loc`) to the log, or say why it cannot follow what came
    /// before it.
    pub fn apply(
        &mut self,
        kind: Kind,
        index: u64,
        loc: Loc,
        payload: &[u8],
    ) -> Result<(), String> {
        match kind {
            Kind::Entry => {
                match self.next {
                    Some(n) if n != index => {
                        return Err(format!("entry {index} where entry {n} was expected"));
                    }
                    Some(_) => {}
                    None => self.first = index,
                }
                self.entries.push_back(loc);
                self.next = Some(index.saturating_add(1));
            }
            Kind::TruncateFrom => {
                if let Some(n) = self.next.filter(|n| index > *n) {
                    return Err(format!("truncation from {index} beyond the log's end {n}"));
                }
                if let Some(p) = self.purged.filter(|p| index <= *p) {
                    return Err(format!(
                        "truncation from {index} into the purged log (up to {p})"
                    ));
                }
                let keep = index.saturating_sub(self.first);
                if keep < self.entries.len() as u64 {
                    self.entries.truncate(keep as usize);
                }
                if self.entries.is_empty() {
                    self.first = index;
                }
                self.next = Some(index);
                self.marker_seg = Some(loc.seg);
            }
            Kind::PurgeUpto => {
                if let Some(p) = self.purged.filter(|p| index <= *p) {
                    return Err(format!("purge up to {index} after a purge up to {p}"));
                }
                let Some(marked_next) = purge_next(payload) else {
                    return Err("a purge marker without the next index".into());
                };
                let after = index.saturating_add(1);
                let drop = after.saturating_sub(self.first);
                self.entries
                    .drain(..(drop.min(self.entries.len() as u64) as usize));
                self.first = self.first.max(after);
                let next = match self.next {
                    Some(n) => n.max(after),
                    // Replay of the segments left by an earlier purge: the entries before this
                    // marker are gone, the marker says where the log went on.
                    None => marked_next,
                };
                if next != marked_next {
                    return Err(format!(
                        "a purge marker for next index {marked_next} where the log goes on at {next}"
                    ));
                }
                self.next = Some(next);
                if self.entries.is_empty() {
                    self.first = next;
                }
                self.purged = Some(index);
                self.purged_meta = Some(payload[8..].to_vec());
                self.purge_seg = Some(loc.seg);
                self.marker_seg = Some(loc.seg);
            }
            Kind::Vote => self.vote = Some(payload.to_vec()),
            Kind::Committed => self.committed = Some(payload.to_vec()),
        }
        Ok(())
    }
}

/// The next index a purge marker's payload holds (its first 8 bytes).
fn purge_next(payload: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64) -> Loc {
        Loc {
            seg: 1,
            offset,
            len: 0,
        }
    }

    fn purge(s: &mut LogState, index: u64, loc: Loc) -> Result<(), String> {
        let payload = s.purge_payload(index, &[]);
        s.apply(Kind::PurgeUpto, index, loc, &payload)
    }

    fn entries(s: &mut LogState, range: std::ops::Range<u64>) {
        for i in range {
            s.apply(Kind::Entry, i, at(i), b"").unwrap();
        }
    }

    #[test]
    fn entries_must_follow_each_other_once_the_log_has_a_position() {
        let mut s = LogState::default();
        assert_eq!(s.check_entries([5, 6, 7].into_iter()), Ok(()));
        entries(&mut s, 5..8);
        assert_eq!((s.first_index(), s.last_index()), (Some(5), Some(7)));
        assert_eq!(s.check_entries([8, 10].into_iter()), Err((9, 10)));
        assert!(s.apply(Kind::Entry, 9, at(9), b"").is_err());
        assert_eq!(s.get(6), Some(at(6)));
        assert_eq!((s.get(4), s.get(8)), (None, None));
    }

    #[test]
    fn truncation_removes_the_suffix_and_sets_the_next_index() {
        let mut s = LogState::default();
        entries(&mut s, 1..10);
        s.apply(Kind::TruncateFrom, 6, at(0), b"").unwrap();
        assert_eq!(s.last_index(), Some(5));
        assert!(s.apply(Kind::TruncateFrom, 7, at(0), b"").is_err());
        entries(&mut s, 6..8);
        assert_eq!(s.last_index(), Some(7));
        // Below the first entry (segments before it were purged): the log starts over there.
        s.apply(Kind::TruncateFrom, 0, at(0), b"").unwrap();
        assert_eq!((s.first_index(), s.next_index()), (None, Some(0)));
    }

    #[test]
    fn purge_removes_the_prefix_and_may_move_past_the_end() {
        let mut s = LogState::default();
        entries(&mut s, 1..10);
        purge(&mut s, 3, at(0)).unwrap();
        assert_eq!(
            (s.first_index(), s.last_index(), s.purged()),
            (Some(4), Some(9), Some(3))
        );
        assert!(purge(&mut s, 3, at(0)).is_err());
        assert!(s.apply(Kind::TruncateFrom, 3, at(0), b"").is_err());
        purge(&mut s, 20, at(0)).unwrap();
        assert_eq!((s.first_index(), s.next_index()), (None, Some(21)));
        assert!(s.apply(Kind::Entry, 20, at(0), b"").is_err());
        entries(&mut s, 21..23);
        assert_eq!((s.first_index(), s.last_index()), (Some(21), Some(22)));
    }

    #[test]
    fn the_needed_segments_start_at_the_first_entry_or_the_markers() {
        let mut s = LogState::default();
        let seg = |seg| Loc {
            seg,
            offset: 0,
            len: 0,
        };
        assert_eq!(s.first_needed_segment(), None);
        for i in 1..=4 {
            s.apply(Kind::Entry, i, seg(i), b"").unwrap();
        }
        assert_eq!(s.first_needed_segment(), Some(1));
        purge(&mut s, 2, seg(5)).unwrap();
        assert_eq!(s.first_needed_segment(), Some(3));
        // With no entries left, the truncation marker sets the next index: keep it.
        s.apply(Kind::TruncateFrom, 3, seg(6), b"").unwrap();
        purge(&mut s, 2, seg(7)).unwrap_err();
        assert_eq!(s.first_needed_segment(), Some(5));
        s.apply(Kind::Entry, 3, seg(8), b"").unwrap();
        assert_eq!(s.first_needed_segment(), Some(5));
        purge(&mut s, 3, seg(9)).unwrap();
        assert_eq!(s.first_needed_segment(), Some(9));
    }

    #[test]
    fn a_replay_that_starts_at_a_purge_marker_goes_on_where_the_marker_says() {
        // Entries 1..=8 were written, then a purge up to 6; the segments holding the entries
        // are gone, the one holding the marker is where replay starts.
        let mut s = LogState::default();
        s.apply(Kind::PurgeUpto, 6, at(0), &9u64.to_le_bytes())
            .unwrap();
        assert_eq!((s.next_index(), s.first_index()), (Some(9), None));
        entries(&mut s, 9..11);
        assert_eq!((s.first_index(), s.last_index()), (Some(9), Some(10)));
        // Once the position is known, a marker must agree with it.
        let e = s
            .apply(Kind::PurgeUpto, 7, at(0), &8u64.to_le_bytes())
            .unwrap_err();
        assert!(e.contains("next index 8"), "{e}");
        assert!(s.apply(Kind::PurgeUpto, 8, at(0), b"").is_err());
    }

    #[test]
    fn the_latest_vote_and_committed_win() {
        let mut s = LogState::default();
        s.apply(Kind::Vote, 0, at(0), b"v1").unwrap();
        s.apply(Kind::Vote, 0, at(0), b"v2").unwrap();
        s.apply(Kind::Committed, 0, at(0), b"c1").unwrap();
        assert_eq!(
            (s.vote(), s.committed()),
            (Some(&b"v2"[..]), Some(&b"c1"[..]))
        );
        assert_eq!(s.next_index(), None);
    }
}
