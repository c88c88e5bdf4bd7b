//! The multi-version key space, as etcd defines it, over redb tables.
//!
//! One global main revision counts write requests; the writes of one request share it and are
//! ordered by a sub-revision. Every key keeps `create_revision`, `mod_revision` and `version`
//! (1 when created, +1 per change, reset by a delete). Old versions stay readable until a
//! compaction removes them.
//!
//! - [`tables`]: the redb tables and record codecs;
//! - [`read`]: ranges at the current or a past revision (pure functions over readable tables);
//! - [`write`]: [`write::Store`], applying puts, deletes, txns, compactions and leases inside one
//!   redb write transaction;
//! - [`txn`]: txn validation and compare evaluation;
//! - [`hash`]: `Hash` and `HashKV`;
//! - [`events`]: the changes between two revisions, for watchers that start in the past;
//! - [`migrate`]: layout changes between data formats.

pub mod events;
pub mod hash;
pub mod migrate;
pub mod read;
pub mod tables;
pub mod txn;
pub mod write;

#[cfg(test)]
mod model;

use std::ops::Bound;

/// The keys a request addresses: `key` with etcd's `range_end` rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// Exactly one key (`range_end` empty).
    Single(Vec<u8>),
    /// `[start, end)`; `end` unbounded when `range_end` is `"\0"`.
    Range {
        /// First key, inclusive.
        start: Vec<u8>,
        /// Upper bound, exclusive.
        end: Bound<Vec<u8>>,
    },
}

impl Span {
    /// The span of an etcd `(key, range_end)` pair.
    pub fn new(key: &[u8], range_end: &[u8]) -> Self {
        if range_end.is_empty() {
            Span::Single(key.to_vec())
        } else if range_end == [0] {
            Span::Range {
                start: key.to_vec(),
                end: Bound::Unbounded,
            }
        } else {
            Span::Range {
                start: key.to_vec(),
                end: Bound::Excluded(range_end.to_vec()),
            }
        }
    }

    /// Whether `k` lies in the span.
    pub fn contains(&self, k: &[u8]) -> bool {
        match self {
            Span::Single(key) => key == k,
            Span::Range { start, end } => {
                k >= start.as_slice()
                    && match end {
                        Bound::Excluded(e) => k < e.as_slice(),
                        _ => true,
                    }
            }
        }
    }

    /// Whether two spans share a key.
    pub fn overlaps(&self, other: &Span) -> bool {
        let (a0, a1) = self.bounds();
        let (b0, b1) = other.bounds();
        let below = |lo: &[u8], hi: &Bound<Vec<u8>>| match hi {
            Bound::Excluded(h) => lo < h.as_slice(),
            Bound::Included(h) => lo <= h.as_slice(),
            Bound::Unbounded => true,
        };
        below(&a0, &b1) && below(&b0, &a1)
    }

    fn bounds(&self) -> (Vec<u8>, Bound<Vec<u8>>) {
        match self {
            Span::Single(k) => (k.clone(), Bound::Included(k.clone())),
            Span::Range { start, end } => (start.clone(), end.clone()),
        }
    }

    /// Whether the span names a single key.
    pub fn is_single(&self) -> bool {
        matches!(self, Span::Single(_))
    }
}

/// The key after which no key has `prefix` as a prefix: etcd's `--prefix` range end.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert!(Span::new(b"a", b"").contains(b"a"));
        assert!(!Span::new(b"a", b"").contains(b"ab"));
        assert!(Span::new(b"a", b"c").contains(b"b"));
        assert!(!Span::new(b"a", b"c").contains(b"c"));
        assert!(Span::new(b"a", &[0]).contains(b"zzz"));
        assert!(Span::new(&[0], &[0]).contains(b"\x01"));
        assert!(Span::new(b"a", b"c").overlaps(&Span::new(b"b", b"")));
        assert!(!Span::new(b"a", b"c").overlaps(&Span::new(b"c", b"")));
        assert_eq!(prefix_end(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
