//! Opening a WAL directory: find the segments, drop what an interrupted rotation left behind,
//! read every record in order into a [`LogState`], and decide where the valid log ends and
//! appends continue.
//!
//! Where the records of a segment stop (zeroes, or a damaged record), replay looks at the
//! rest of the segment:
//! - nothing but zeroes: the clean end of the data (the preallocated, never written part);
//! - in a segment that is not the last: an error, since a segment is complete and fsynced
//!   before the next one is made, so this is damage to durable data;
//! - in the last segment, a valid record of a *later* write than the one the stop is in: an
//!   error, since that later write was only issued after the stop's write was fsynced;
//! - otherwise (bytes of the same interrupted write, garbage): a torn tail. Replay stops
//!   there, and the bytes from there to the last non-zero byte are overwritten with zeroes,
//!   so that a shorter write appended later can never be followed by a stale, valid-looking
//!   record of the torn one.
//!
//! The other changes an open makes: a blank last segment (no header, nothing in it) is
//! removed, a last segment shorter than the segment size is filled up with zeroes, and a
//! leftover spare `.tmp` file is removed. Valid records are never changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{Result, corrupt, io_err};
use super::record::{ALIGN, Decoded, decode};
use super::segment::{self, SEGMENT_HEADER, Segment, sync_dir, write_zeroes};
use super::state::{Loc, LogState};
use crate::disk::{Disk, Open};

/// What an open found.
pub(crate) struct Opened {
    /// The segments by first sequence number; the last one takes the appends.
    pub segments: BTreeMap<u64, Segment>,
    pub state: LogState,
    /// Sequence number of the next record.
    pub next_seq: u64,
    /// Where the next record goes in the last segment.
    pub write_pos: u64,
}

/// Where the records of one segment stop.
struct End {
    pos: usize,
    next_seq: u64,
    /// End of the torn bytes to overwrite with zeroes (from `pos`).
    zero_to: Option<usize>,
}

/// Open `dir` (creating it if needed) and replay it. The last segment is filled up to
/// `segment_size` bytes if it is shorter. With no segment, `segments` is empty.
pub(crate) fn open_dir(disk: &dyn Disk, dir: &Path, segment_size: u64) -> Result<Opened> {
    if !disk.exists(dir) {
        disk.create_dir_all(dir)
            .map_err(io_err("create directory", dir))?;
        // The new directory's entry must be durable before anything in it counts as durable.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(disk, parent)?;
        }
    }
    let mut names = list_segments(disk, dir)?;
    drop_blank_tail(disk, dir, &mut names)?;
    let mut opened = Opened {
        segments: BTreeMap::new(),
        state: LogState::default(),
        next_seq: 1,
        write_pos: 0,
    };
    let count = names.len();
    for (i, (seq, path)) in names.into_iter().enumerate() {
        let last = i + 1 == count;
        let how = if last { Open::ReadWrite } else { Open::Read };
        let file = disk.open(&path, how).map_err(io_err("open", &path))?;
        let buf = file.read_all().map_err(io_err("read", &path))?;
        let first = segment::check_header(&path, &buf)?;
        if first != seq {
            let why = format!("the header says the first record is {first}, the name {seq}");
            return Err(corrupt(&path, 0, why));
        }
        if i > 0 && first != opened.next_seq {
            let why = format!(
                "the segment starts at record {first} but the previous one ends before record \
                 {}: a segment is missing",
                opened.next_seq
            );
            return Err(corrupt(&path, 0, why));
        }
        let end = replay_segment(&path, &buf, first, last, &mut opened.state)?;
        let mut capacity = buf.len() as u64;
        if last {
            if let Some(to) = end.zero_to {
                write_zeroes(&*file, end.pos as u64, to as u64)
                    .and_then(|()| file.sync_data())
                    .map_err(io_err("zero the torn tail of", &path))?;
            }
            if capacity < segment_size {
                write_zeroes(&*file, capacity, segment_size)
                    .and_then(|()| file.sync_all())
                    .map_err(io_err("preallocate", &path))?;
                capacity = segment_size;
            }
            opened.write_pos = end.pos as u64;
        }
        opened.next_seq = end.next_seq;
        let seg = Segment {
            first_seq: first,
            path,
            file,
            capacity,
        };
        opened.segments.insert(first, seg);
    }
    Ok(opened)
}

/// The segment files of `dir` in order; leftover spare files are removed.
fn list_segments(disk: &dyn Disk, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for path in disk.list(dir).map_err(io_err("list", dir))? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(seq) = segment::parse_name(name) {
            found.push((seq, path));
        } else if name.ends_with(".tmp") {
            disk.remove_file(&path).map_err(io_err("remove", &path))?;
        }
    }
    found.sort();
    Ok(found)
}

/// Remove trailing segments that a rotation created but never gave a header: nothing can
/// have been written to them. A headerless segment holding data is an error.
fn drop_blank_tail(disk: &dyn Disk, dir: &Path, names: &mut Vec<(u64, PathBuf)>) -> Result<()> {
    while let Some((_, path)) = names.last() {
        let file = disk.open(path, Open::Read).map_err(io_err("open", path))?;
        let len = file.size().map_err(io_err("stat", path))?;
        let mut head = vec![0; SEGMENT_HEADER.min(len as usize)];
        file.read_exact_at(&mut head, 0)
            .map_err(io_err("read", path))?;
        if !segment::header_is_blank(&head) {
            return Ok(());
        }
        let buf = file.read_all().map_err(io_err("read", path))?;
        if let Some(at) = buf.iter().skip(SEGMENT_HEADER).position(|b| *b != 0) {
            let why = "a segment without a header holds data";
            return Err(corrupt(path, SEGMENT_HEADER + at, why));
        }
        disk.remove_file(path).map_err(io_err("remove", path))?;
        sync_dir(disk, dir)?;
        names.pop();
    }
    Ok(())
}

/// Replay the records of one segment (its contents in `buf`) into `state`.
fn replay_segment(
    path: &Path,
    buf: &[u8],
    first_seq: u64,
    last: bool,
    state: &mut LogState,
) -> Result<End> {
    let mut pos = SEGMENT_HEADER;
    let mut seq = first_seq;
    // Start of the write the previous record belonged to.
    let mut write_start = None;
    let stop = loop {
        let h = match decode(buf, pos) {
            Decoded::Valid(h) => h,
            Decoded::Blank => break None,
            Decoded::Damaged(why) => break Some(why),
        };
        if h.seq != seq {
            return Err(corrupt(
                path,
                pos,
                format!("record {} where {seq} was expected", h.seq),
            ));
        }
        let start = pos
            .checked_sub(h.back as usize)
            .filter(|s| *s >= SEGMENT_HEADER);
        if start.is_none() || (h.back != 0 && start != write_start) {
            return Err(corrupt(
                path,
                pos,
                "a record whose write offset is inconsistent",
            ));
        }
        write_start = start;
        let loc = Loc {
            seg: first_seq,
            offset: pos as u64,
            len: h.len,
        };
        let payload = &buf[h.payload(pos)];
        state
            .apply(h.kind, h.index, loc, payload)
            .map_err(|why| corrupt(path, pos, why))?;
        seq += 1;
        pos += h.size();
    };
    let zero_to = check_tail(path, buf, pos, stop, write_start, last)?;
    Ok(End {
        pos,
        next_seq: seq,
        zero_to,
    })
}

/// Decide what the bytes from `at` (where the records stopped, for the reason `stop`, or at
/// zeroes) to the end of the segment are: `None` if they are all zero, the end of a torn tail
/// to zero if they are debris of the last write, an error if they hide durable data.
fn check_tail(
    path: &Path,
    buf: &[u8],
    at: usize,
    stop: Option<String>,
    write_start: Option<usize>,
    last: bool,
) -> Result<Option<usize>> {
    let rest = buf.get(at..).unwrap_or_default();
    let Some(last_nonzero) = rest.iter().rposition(|b| *b != 0) else {
        return Ok(None);
    };
    let end = at + last_nonzero + 1;
    let why = stop.unwrap_or_else(|| "zeroes followed by data".into());
    if !last {
        return Err(corrupt(
            path,
            at,
            format!("{why}, in a segment that newer ones follow"),
        ));
    }
    // A record of the interrupted write started either with the previous record's write or
    // at `at`; a record of any other write was written after a durable `at`.
    let mut p = at + ALIGN;
    while p < end {
        if let Decoded::Valid(h) = decode(buf, p) {
            let start = p.checked_sub(h.back as usize);
            if start != Some(at) && (start.is_none() || start != write_start) {
                let why = format!("{why}, followed by a valid record of a later write at {p}");
                return Err(corrupt(path, at, why));
            }
            p += h.size();
        } else {
            p += ALIGN;
        }
    }
    Ok(Some(end.next_multiple_of(ALIGN).min(buf.len())))
}
