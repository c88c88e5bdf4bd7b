//! The read path: an entry is found in the in-memory index (segment, offset, length) and read
//! with one positioned read (`read_exact_at`, so reads need no seek and no `&mut`), and its
//! checksum, kind and index are checked again, so damage after the open is reported, not
//! returned as data.

use std::ops::{Bound, RangeBounds};

use super::Wal;
use super::error::{Result, corrupt, io_err};
use super::record::{Decoded, Kind, RECORD_HEADER, decode};
use super::state::Loc;

impl Wal {
    /// The payload of entry `index`, if it is in the log.
    pub fn read(&self, index: u64) -> Result<Option<Vec<u8>>> {
        match self.state.get(index) {
            Some(loc) => self.read_at(index, loc).map(Some),
            None => Ok(None),
        }
    }

    /// The entries of the log within `range`, in order, with their indices.
    pub fn read_range(&self, range: impl RangeBounds<u64>) -> Result<Vec<(u64, Vec<u8>)>> {
        let (Some(first), Some(last)) = (self.first_index(), self.last_index()) else {
            return Ok(Vec::new());
        };
        let lo = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => first,
        };
        let hi = match range.end_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(0) => return Ok(Vec::new()),
            Bound::Excluded(i) => i - 1,
            Bound::Unbounded => last,
        };
        let mut out = Vec::new();
        for index in lo.max(first)..=hi.min(last) {
            if let Some(loc) = self.state.get(index) {
                out.push((index, self.read_at(index, loc)?));
            }
        }
        Ok(out)
    }

    /// Read entry `index` at `loc` and check it.
    fn read_at(&self, index: u64, loc: Loc) -> Result<Vec<u8>> {
        let seg = self
            .segments
            .get(&loc.seg)
            .expect("a live entry's segment is open");
        let mut buf = vec![0; RECORD_HEADER + loc.len as usize];
        seg.file
            .read_exact_at(&mut buf, loc.offset)
            .map_err(io_err("read", &seg.path))?;
        let why = match decode(&buf, 0) {
            Decoded::Valid(h) if h.kind == Kind::Entry && h.index == index && h.len == loc.len => {
                buf.drain(..RECORD_HEADER);
                return Ok(buf);
            }
            Decoded::Valid(h) => format!(
                "entry {index} expected, a {:?} for {} found",
                h.kind, h.index
            ),
            Decoded::Blank => format!("entry {index} expected, zeroes found"),
            Decoded::Damaged(why) => why,
        };
        Err(corrupt(&seg.path, loc.offset as usize, why))
    }
}
