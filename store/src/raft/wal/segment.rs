//! Segment files: their names, their header, preallocation with real zeroes, and the spare
//! segment that a background thread prepares so that a rotation does not write 64 MiB of
//! zeroes on the append path.
//!
//! A segment is named by the sequence number of its first record in 16 hex digits
//! (`0000000000000001.wal`), so names sort in write order. Its 32-byte header:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `KVSTWAL\0` |
//! | 8 | 1 | format version ([`FORMAT_VERSION`]) |
//! | 9 | 7 | zero |
//! | 16 | 8 | sequence number of the segment's first record |
//! | 24 | 4 | crc32c of bytes 0..24 |
//! | 28 | 4 | zero |
//!
//! A segment is made in a file named `spare.wal.tmp`: filled with zeroes to its full size and
//! fsynced, then given its header (fdatasync), renamed to its final name, and the directory
//! fsynced. So a `*.wal` file always has its full size and a durable header, and anything that
//! a crash leaves behind is either a `.tmp` file (removed at open) or a complete empty segment.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::error::{Result, WalError, corrupt, io_err};
use crate::disk::{Disk, DiskFile, Open};

/// Bytes of a segment header; the first record starts here.
pub(crate) const SEGMENT_HEADER: usize = 32;
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
const MAGIC: [u8; 8] = *b"KVSTWAL\0";
/// The name of the spare segment while it is prepared.
pub(crate) const SPARE_NAME: &str = "spare.wal.tmp";
/// Zeroes are written in chunks of this size.
const ZERO_CHUNK: usize = 1 << 20;

/// The file name of the segment whose first record has sequence number `first_seq`.
pub(crate) fn file_name(first_seq: u64) -> String {
    format!("{first_seq:016x}.wal")
}

/// The first sequence number a segment file name stands for, if it is one.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".wal")?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The header of a segment starting at `first_seq`.
pub(crate) fn encode_header(first_seq: u64) -> [u8; SEGMENT_HEADER] {
    let mut h = [0; SEGMENT_HEADER];
    h[..8].copy_from_slice(&MAGIC);
    h[8] = FORMAT_VERSION;
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Whether a segment's header is blank: never written (zeroes) or cut short by the end of the
/// file. Such a file is what an interrupted rotation may leave.
pub(crate) fn header_is_blank(buf: &[u8]) -> bool {
    buf.len() < SEGMENT_HEADER || buf[..SEGMENT_HEADER].iter().all(|b| *b == 0)
}

/// Check the header at the start of `buf` (a segment's contents) and return the sequence
/// number of its first record. The version is checked before the checksum, so a segment of
/// another version is reported as such even if its header layout differs.
pub(crate) fn check_header(path: &Path, buf: &[u8]) -> Result<u64> {
    if buf.len() < SEGMENT_HEADER {
        return Err(corrupt(path, 0, "a segment header cut short"));
    }
    if buf[..8] != MAGIC {
        return Err(WalError::NotASegment {
            path: path.to_path_buf(),
        });
    }
    if buf[8] != FORMAT_VERSION {
        return Err(WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: buf[8],
            supported: FORMAT_VERSION,
        });
    }
    let mut crc = [0; 4];
    crc.copy_from_slice(&buf[24..28]);
    if crc32c::crc32c(&buf[..24]) != u32::from_le_bytes(crc) {
        return Err(corrupt(
            path,
            0,
            "a segment header whose checksum does not match",
        ));
    }
    let mut seq = [0; 8];
    seq.copy_from_slice(&buf[16..24]);
    Ok(u64::from_le_bytes(seq))
}

/// Write zeroes over `from..to` of `file` (no sync).
pub(crate) fn write_zeroes(file: &dyn DiskFile, from: u64, to: u64) -> io::Result<()> {
    let zeroes = vec![0; ZERO_CHUNK.min(to.saturating_sub(from) as usize)];
    let mut at = from;
    while at < to {
        let n = zeroes.len().min((to - at) as usize);
        file.write_all_at(&zeroes[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Make the directory's entries (created, renamed, removed files) durable.
pub(crate) fn sync_dir(disk: &dyn Disk, dir: &Path) -> Result<()> {
    disk.sync_dir(dir).map_err(io_err("fsync directory", dir))
}

/// Create (or replace) `path` as a file of `size` zero bytes whose blocks are all allocated
/// and written, and make it durable.
fn prepare(disk: &dyn Disk, path: &Path, size: u64) -> io::Result<()> {
    let file = disk.open(path, Open::Create)?;
    write_zeroes(&*file, 0, size)?;
    file.sync_all()
}

/// The next segment, prepared ahead by a background thread.
pub(crate) struct Spare {
    disk: Arc<dyn Disk>,
    path: PathBuf,
    size: u64,
    job: Option<JoinHandle<io::Result<()>>>,
}

impl Spare {
    /// A spare of `size` bytes in `dir`, not started yet.
    pub fn new(disk: Arc<dyn Disk>, dir: &Path, size: u64) -> Spare {
        Spare {
            disk,
            path: dir.join(SPARE_NAME),
            size,
            job: None,
        }
    }

    /// Start preparing the spare in the background, unless that is under way. If no thread
    /// can be started, [`Spare::take`] prepares it instead.
    pub fn start(&mut self) {
        if self.job.is_some() {
            return;
        }
        let (disk, path, size) = (self.disk.clone(), self.path.clone(), self.size);
        self.job = std::thread::Builder::new()
            .name("wal-spare".into())
            .spawn(move || prepare(&*disk, &path, size))
            .ok();
    }

    /// Wait for the spare and return its path: zero-filled to at least `min_size` bytes and
    /// durable. The caller renames it away before the next [`Spare::start`].
    pub fn take(&mut self, min_size: u64) -> Result<&Path> {
        let ready = match self.job.take() {
            Some(job) => job.join().is_ok_and(|r| r.is_ok()),
            None => false,
        };
        let extend = || -> io::Result<()> {
            let file = self.disk.open(&self.path, Open::ReadWrite)?;
            let len = file.size()?;
            if len < min_size {
                write_zeroes(&*file, len, min_size)?;
                file.sync_all()?;
            }
            Ok(())
        };
        if ready {
            extend()
        } else {
            prepare(&*self.disk, &self.path, self.size.max(min_size))
        }
        .map_err(io_err("prepare spare segment", &self.path))?;
        Ok(&self.path)
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        // Never leave a thread writing into the directory after the WAL is gone.
        if let Some(job) = self.job.take() {
            let _ = job.join();
        }
    }
}

/// An open segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Sequence number of its first record (the key it is known by).
    pub first_seq: u64,
    pub path: PathBuf,
    pub file: Box<dyn DiskFile>,
    /// Its size: records never extend past it.
    pub capacity: u64,
}

/// Turn the spare into the segment starting at `first_seq`, at least `min_size` bytes long:
/// header, fdatasync, rename, directory fsync. An existing empty segment of that name (one
/// too small for the record that caused the rotation) is replaced.
pub(crate) fn install(
    disk: &dyn Disk,
    dir: &Path,
    spare: &mut Spare,
    first_seq: u64,
    min_size: u64,
) -> Result<Segment> {
    let tmp = spare.take(min_size)?.to_path_buf();
    let file = disk
        .open(&tmp, Open::ReadWrite)
        .map_err(io_err("open", &tmp))?;
    file.write_all_at(&encode_header(first_seq), 0)
        .and_then(|()| file.sync_data())
        .map_err(io_err("write the header of", &tmp))?;
    let path = dir.join(file_name(first_seq));
    disk.rename(&tmp, &path)
        .map_err(io_err("rename spare segment to", &path))?;
    sync_dir(disk, dir)?;
    let capacity = file.size().map_err(io_err("stat", &path))?;
    Ok(Segment {
        first_seq,
        path,
        file,
        capacity,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    use crate::disk::Os;

    use super::*;

    #[test]
    fn names_sort_in_sequence_order_and_parse_back() {
        assert_eq!(file_name(1), "0000000000000001.wal");
        assert_eq!(file_name(0xabc), "0000000000000abc.wal");
        for seq in [0, 1, 255, u64::MAX] {
            assert_eq!(parse_name(&file_name(seq)), Some(seq));
        }
        assert!(file_name(9) < file_name(10));
        for bad in [
            "1.wal",
            "000000000000000g.wal",
            "0000000000000001.tmp",
            SPARE_NAME,
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_header_is_checked_for_magic_version_and_checksum() {
        let p = Path::new("x.wal");
        let h = encode_header(77);
        assert_eq!(check_header(p, &h).unwrap(), 77);
        assert!(!header_is_blank(&h));
        assert!(header_is_blank(&[0; 40]));
        assert!(header_is_blank(&h[..10]));

        let mut v2 = h;
        v2[8] = 2;
        let e = check_header(p, &v2).unwrap_err();
        assert!(
            matches!(
                e,
                WalError::UnsupportedVersion {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{e}"
        );

        let mut magic = h;
        magic[0] = b'X';
        assert!(matches!(
            check_header(p, &magic),
            Err(WalError::NotASegment { .. })
        ));

        let mut flipped = h;
        flipped[17] ^= 1;
        assert!(matches!(
            check_header(p, &flipped),
            Err(WalError::Corrupt { offset: 0, .. })
        ));
    }

    #[test]
    fn a_spare_is_zero_filled_with_allocated_blocks_not_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let mut spare = Spare::new(Os::shared(), dir.path(), 256 * 1024);
        spare.start();
        let path = spare.take(0).unwrap().to_path_buf();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 256 * 1024);
        // st_blocks counts 512-byte units actually allocated: a sparse file would have ~0.
        assert!(
            meta.blocks() * 512 >= meta.len(),
            "blocks {}",
            meta.blocks()
        );
        assert!(fs::read(&path).unwrap().iter().all(|b| *b == 0));
    }

    #[test]
    fn install_renames_the_spare_and_grows_it_for_a_large_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut spare = Spare::new(Os::shared(), dir.path(), 4096);
        let seg = install(&Os, dir.path(), &mut spare, 5, 10_000).unwrap();
        assert_eq!(seg.capacity, 10_000);
        assert_eq!(seg.path, dir.path().join(file_name(5)));
        assert!(!dir.path().join(SPARE_NAME).exists());
        let buf = fs::read(&seg.path).unwrap();
        assert_eq!(check_header(&seg.path, &buf).unwrap(), 5);
        assert!(buf[SEGMENT_HEADER..].iter().all(|b| *b == 0));

        spare.start();
        let next = install(&Os, dir.path(), &mut spare, 9, 0).unwrap();
        assert_eq!(next.capacity, 4096);
    }
}
