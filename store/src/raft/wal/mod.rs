//! A write-ahead log for the Raft log: an append-only, segmented, checksummed record log in a
//! directory of its own. It stores opaque payloads (log entries by index, the vote, the
//! committed index, the purge point with the caller's note on it) and knows nothing of
//! openraft: [`super::log_store`] puts it under the Raft log, so that an append costs one
//! `write` + `fdatasync` instead of a durable redb commit.
//!
//! Layout (`segment.rs`, `record.rs`): segment files, each preallocated to
//! [`WalOptions::segment_size`] (64 MiB by default), holding records (length, crc32c,
//! sequence number, log index, kind, payload); a record never spans segments. Every record
//! has a sequence number, one more than the previous record's, and a segment is named by the
//! sequence number of its first record: not by its log index, because after a truncation a
//! newer segment can start at a lower log index than an older one, and names must sort in
//! write order.
//!
//! Durability, i.e. what is fsynced when:
//! - [`Wal::append`] encodes the whole batch into one buffer and issues one positioned
//!   `write` and one `fdatasync` (`File::sync_data`); it returns once they are done. Only a
//!   batch that does not fit the current segment is split: the part that fits is written and
//!   synced, then the rotation, then the rest.
//! - A rotation takes the spare segment (zero-filled and fsynced ahead of time by a
//!   background thread), writes its header, `fdatasync`s it, renames it to its final name and
//!   fsyncs the directory, so the new file survives a crash before any record goes into it.
//! - Truncation and purge write a marker record as an append does; a purge then deletes old
//!   segments oldest first, fsyncing the directory after each.
//!
//! Preallocation: with real zeroes, not `File::set_len` (a sparse file: the first write to
//! each block allocates it, and the `fdatasync` must then also commit that allocation in the
//! file system journal) and not `fallocate` (on ext4 and XFS its blocks are "unwritten
//! extents": the first write to each still converts the extent, a metadata change the
//! `fdatasync` has to commit; std also has no `fallocate`, and the workspace forbids
//! `unsafe`). With every block written once and the size fixed, an append's `fdatasync` only
//! flushes data. The 64 MiB of zeroes are written off the append path by the spare's thread,
//! which the first write after an open starts.
//!
//! Truncation (`truncate_after`, for Raft log conflicts) appends a marker record "entries from
//! `n` on are removed" and fsyncs it before returning; entries appended later come after it in
//! the file. Replay applies the marker when it reaches it, and accepts after it only entry
//! `n`. Nothing is overwritten, so a crash at any point leaves either the old history (marker
//! not durable, and nothing written after it) or the marker and a new history after it: the
//! two never mix. Zeroing the old tail in place instead would have needed its own crash
//! protocol, and an overwrite of the same bytes can tear into a mix of old and new records.
//!
//! Purge (`purge_upto`, after a snapshot) appends a marker "entries up to `p` are removed"
//! together with copies of the latest vote and committed payloads, so that no older segment is
//! needed for them; then it deletes, oldest first, the segments before the one holding entry
//! `p + 1` (the segments whose live entries are all at or below `p`), keeping the marker's
//! own segment (and, in an empty log, the one of the marker that set the next index). A crash
//! part way leaves a suffix of the segments, which replays to the same log.
//!
//! Open (`replay.rs`) reads every segment in order, checks each record's checksum and that
//! sequence numbers and entry indices follow each other, stops at the end of the data, and
//! tells a torn tail of the last write (truncated there, its bytes zeroed) from damage to
//! durable data (an error naming the file and offset). Opening twice gives the same log.
//!
//! Reads ([`Wal::read`], [`Wal::read_range`]) find an entry in the in-memory index (segment,
//! offset, length) and read it with one positioned read, checking its checksum again.
//!
//! One process at a time: the WAL takes no lock on its directory.

mod error;
mod read;
mod record;
mod replay;
mod segment;
mod state;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{Result, WalError};
pub use record::{MAX_PAYLOAD, Record};
pub use segment::FORMAT_VERSION;

use error::{corrupt, io_err};
use record::{Kind, RECORD_HEADER, Raw, encode, encoded_len};
use segment::{SEGMENT_HEADER, Segment, Spare};
use state::{Loc, LogState};

use crate::disk::{Disk, Os};

/// The default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// The smallest segment size; smaller settings are raised to it.
pub const MIN_SEGMENT_SIZE: u64 = (SEGMENT_HEADER + RECORD_HEADER) as u64;
/// The largest segment size; larger settings are lowered to it.
pub const MAX_SEGMENT_SIZE: u64 = 1 << 30;

/// Settings of a WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// Bytes each segment is preallocated to. A record larger than this gets a segment of its
    /// own, sized to fit it.
    pub segment_size: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// An open WAL. Every mutating call is durable when it returns.
pub struct Wal {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    segment_size: u64,
    /// By first sequence number; the last one takes the appends.
    segments: BTreeMap<u64, Segment>,
    /// Offset of the next record in the last segment.
    write_pos: u64,
    /// Sequence number of the next record.
    next_seq: u64,
    state: LogState,
    spare: Spare,
    /// The write buffer, reused.
    buf: Vec<u8>,
    /// Set when a write or sync failed: the file's contents are unknown until replayed.
    poisoned: bool,
}

impl Wal {
    /// Open the WAL in `dir`, creating it if needed, and replay it.
    pub fn open(dir: impl AsRef<Path>, options: WalOptions) -> Result<Wal> {
        Self::open_on(Os::shared(), dir, options)
    }

    /// [`Self::open`] on `disk`.
    pub fn open_on(disk: Arc<dyn Disk>, dir: impl AsRef<Path>, options: WalOptions) -> Result<Wal> {
        let dir = dir.as_ref().to_path_buf();
        let segment_size = options
            .segment_size
            .clamp(MIN_SEGMENT_SIZE, MAX_SEGMENT_SIZE);
        let opened = replay::open_dir(&*disk, &dir, segment_size)?;
        let mut wal = Wal {
            spare: Spare::new(disk.clone(), &dir, segment_size),
            disk,
            dir,
            segment_size,
            segments: opened.segments,
            write_pos: opened.write_pos,
            next_seq: opened.next_seq,
            state: opened.state,
            buf: Vec::new(),
            poisoned: false,
        };
        if wal.segments.is_empty() {
            wal.rotate(0)?;
        }
        Ok(wal)
    }

    /// Append `records` durably: one `write` and one `fdatasync` (two of each and a rotation
    /// when the batch does not fit the current segment). Entry indices must follow the last
    /// entry's and each other.
    pub fn append(&mut self, records: &[Record<'_>]) -> Result<()> {
        let raws: Vec<Raw<'_>> = records.iter().map(Raw::from).collect();
        self.writable()?;
        if let Some(r) = raws.iter().find(|r| r.payload.len() > MAX_PAYLOAD) {
            return Err(WalError::TooLarge {
                len: r.payload.len(),
                max: MAX_PAYLOAD,
            });
        }
        let entries = raws.iter().filter(|r| r.kind == Kind::Entry);
        self.state
            .check_entries(entries.map(|r| r.index))
            .map_err(|(expected, got)| WalError::NotContiguous { expected, got })?;
        self.write(&raws)
    }

    /// Remove the entries after `index`: the next entry appended is `index + 1`. A no-op if
    /// there are none.
    pub fn truncate_after(&mut self, index: u64) -> Result<()> {
        match index.checked_add(1) {
            Some(from) => self.truncate_from(from),
            None => Ok(()),
        }
    }

    /// Remove the entries at and after `index` (openraft's `truncate(log_id)`): the next entry
    /// appended is `index`. A no-op if there are none.
    pub fn truncate_from(&mut self, index: u64) -> Result<()> {
        self.writable()?;
        if self.state.next_index().is_none_or(|next| index >= next) {
            return Ok(());
        }
        if let Some(purged) = self.state.purged().filter(|p| index <= *p) {
            return Err(WalError::BelowPurged { index, purged });
        }
        self.write(&[Raw {
            kind: Kind::TruncateFrom,
            index,
            payload: &[],
        }])
    }

    /// Remove the entries up to and including `index` (which may be past the last entry: the
    /// next entry is then `index + 1`), and delete the segments no longer needed. A no-op if
    /// the log is purged that far already.
    pub fn purge_upto(&mut self, index: u64) -> Result<()> {
        self.purge_upto_with(index, &[])
    }

    /// [`Self::purge_upto`], keeping `meta` with the purge marker (see [`Self::purged_meta`]):
    /// the caller's record of what was purged, e.g. the log id with its term.
    pub fn purge_upto_with(&mut self, index: u64, meta: &[u8]) -> Result<()> {
        self.writable()?;
        if self.state.purged().is_some_and(|p| index <= p) {
            return Ok(());
        }
        let next = self.state.purge_payload(index, meta);
        let vote = self.state.vote().map(<[u8]>::to_vec);
        let committed = self.state.committed().map(<[u8]>::to_vec);
        let mut raws = vec![Raw {
            kind: Kind::PurgeUpto,
            index,
            payload: &next,
        }];
        for (kind, payload) in [(Kind::Vote, &vote), (Kind::Committed, &committed)] {
            if let Some(payload) = payload {
                raws.push(Raw {
                    kind,
                    index: 0,
                    payload,
                });
            }
        }
        self.write(&raws)?;
        self.delete_old_segments()
    }

    /// Index of the first entry in the log.
    pub fn first_index(&self) -> Option<u64> {
        self.state.first_index()
    }

    /// Index of the last entry in the log.
    pub fn last_index(&self) -> Option<u64> {
        self.state.last_index()
    }

    /// The log is purged up to and including this index.
    pub fn purged(&self) -> Option<u64> {
        self.state.purged()
    }

    /// The `meta` of the latest purge (empty after [`Self::purge_upto`]).
    pub fn purged_meta(&self) -> Option<&[u8]> {
        self.state.purged_meta()
    }

    /// The latest vote payload appended.
    pub fn vote(&self) -> Option<&[u8]> {
        self.state.vote()
    }

    /// The latest committed payload appended.
    pub fn committed(&self) -> Option<&[u8]> {
        self.state.committed()
    }

    /// The WAL's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn writable(&self) -> Result<()> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        Ok(())
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("an open WAL always has a segment")
    }

    /// Write checked records: as many as fit into the current segment per write, rotating
    /// when none fits.
    fn write(&mut self, raws: &[Raw<'_>]) -> Result<()> {
        // The first write after an open starts the spare (a read-only open never does).
        self.spare.start();
        let mut rest = raws;
        while let Some(first) = rest.first() {
            let room = self.active().capacity.saturating_sub(self.write_pos);
            let mut bytes = 0;
            let fits = rest
                .iter()
                .take_while(|r| {
                    bytes += encoded_len(r.payload.len()) as u64;
                    bytes <= room
                })
                .count();
            if fits == 0 {
                self.rotate(encoded_len(first.payload.len()) as u64)?;
                continue;
            }
            self.write_part(&rest[..fits])?;
            rest = &rest[fits..];
        }
        Ok(())
    }

    /// One `write` and one `fdatasync` of records that fit the current segment, then the
    /// in-memory state.
    fn write_part(&mut self, raws: &[Raw<'_>]) -> Result<()> {
        self.buf.clear();
        for (i, raw) in raws.iter().enumerate() {
            let back = u32::try_from(self.buf.len()).expect("a segment is below 4 GiB");
            encode(&mut self.buf, self.next_seq + i as u64, raw, back);
        }
        let start = self.write_pos;
        let seg = self.active();
        let first_seq = seg.first_seq;
        let written = seg
            .file
            .write_all_at(&self.buf, start)
            .and_then(|()| seg.file.sync_data());
        if let Err(e) = written {
            self.poisoned = true;
            return Err(io_err("append to", &self.active().path)(e));
        }
        let mut offset = start;
        for raw in raws {
            let len = raw.payload.len() as u32;
            let loc = Loc {
                seg: first_seq,
                offset,
                len,
            };
            if let Err(why) = self.state.apply(raw.kind, raw.index, loc, raw.payload) {
                self.poisoned = true;
                return Err(corrupt(&self.active().path, offset as usize, why));
            }
            offset += encoded_len(raw.payload.len()) as u64;
        }
        self.write_pos = offset;
        self.next_seq += raws.len() as u64;
        Ok(())
    }

    /// Start a new segment with room for a record of `record_bytes`.
    fn rotate(&mut self, record_bytes: u64) -> Result<()> {
        let min_size = self.segment_size.max(SEGMENT_HEADER as u64 + record_bytes);
        match segment::install(
            &*self.disk,
            &self.dir,
            &mut self.spare,
            self.next_seq,
            min_size,
        ) {
            Ok(seg) => {
                self.segments.insert(seg.first_seq, seg);
                self.write_pos = SEGMENT_HEADER as u64;
                self.spare.start();
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    /// Delete, oldest first, the segments that replay no longer needs, fsyncing the directory
    /// after each. The current one is always kept.
    fn delete_old_segments(&mut self) -> Result<()> {
        let active = self.active().first_seq;
        let keep_from = self
            .state
            .first_needed_segment()
            .unwrap_or(active)
            .min(active);
        while let Some(entry) = self.segments.first_entry() {
            if *entry.key() >= keep_from {
                break;
            }
            let seg = entry.remove();
            self.disk
                .remove_file(&seg.path)
                .map_err(io_err("remove", &seg.path))?;
            segment::sync_dir(&*self.disk, &self.dir)?;
        }
        Ok(())
    }
}
