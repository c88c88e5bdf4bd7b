//! The Raft log's write-ahead journal (`raft.wal`): every change to `raft.redb` is first
//! appended here and made durable with one `fdatasync`, which costs a fraction of a durable redb
//! commit (one small sequential write against several B-tree, allocator and header pages). The
//! changes then go into redb without an fsync of their own; a durable redb commit now and then
//! (a checkpoint) makes them durable there, after which the journal starts again from empty.
//! After a crash the journal is replayed onto redb: its records are blind writes applied in
//! order, so replaying records redb already holds changes nothing.
//!
//! A record is `[body length u32][crc32c u32][lsn u64][body]`, little-endian. The checksum
//! covers the lsn and the body; the lsn counts up by one per record for the life of the member.
//! Reading stops at the first record that is short, fails its checksum, or does not carry the
//! next lsn, and what follows is cut off: a torn write at the end of the file, or bytes from
//! before a reset that the file system had not yet dropped, are never replayed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Bytes of a record's header.
const HEADER: usize = 16;

/// Largest body accepted when reading (a Raft batch is capped far below this).
const MAX_BODY: usize = 1 << 30;

/// An open journal, positioned at its end.
pub struct Wal {
    file: File,
    len: u64,
    next_lsn: u64,
}

impl Wal {
    /// Open (or create) the journal at `path` and return it with the bodies of its valid
    /// records, in order. Anything after the valid records is cut off (durably).
    pub fn open(path: &Path) -> std::io::Result<(Wal, Vec<Vec<u8>>)> {
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if created && let Some(dir) = path.parent() {
            // The new file's directory entry must survive a crash too.
            File::open(dir)?.sync_all()?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (bodies, valid, next_lsn) = parse(&bytes);
        if valid < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                valid,
                cut = bytes.len() - valid,
                "raft journal: cutting off an incomplete or stale tail"
            );
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(valid as u64))?;
        Ok((
            Wal {
                file,
                len: valid as u64,
                next_lsn,
            },
            bodies,
        ))
    }

    /// Append one record per body (one `write` for all of them; not yet durable).
    pub fn append(&mut self, bodies: &[Vec<u8>]) -> std::io::Result<()> {
        let total: usize = bodies.iter().map(|b| HEADER + b.len()).sum();
        let mut buf = Vec::with_capacity(total);
        for body in bodies {
            let lsn = self.next_lsn.to_le_bytes();
            let crc = crc32c::crc32c_append(crc32c::crc32c(&lsn), body);
            let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&crc.to_le_bytes());
            buf.extend_from_slice(&lsn);
            buf.extend_from_slice(body);
            self.next_lsn += 1;
        }
        self.file.write_all(&buf)?;
        self.len += total as u64;
        Ok(())
    }

    /// Make everything appended so far durable.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Empty the journal (its records are durable elsewhere now); lsns go on counting.
    pub fn reset(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        // The truncation itself must be durable before new records land at offset 0.
        self.file.sync_all()?;
        self.file.seek(SeekFrom::Start(0))?;
        self.len = 0;
        Ok(())
    }

    /// Bytes in the journal.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the journal holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The bodies of the valid records at the start of `bytes`, the length they cover, and the lsn
/// that follows them.
fn parse(bytes: &[u8]) -> (Vec<Vec<u8>>, usize, u64) {
    let mut bodies = Vec::new();
    let mut at = 0;
    let mut expect: Option<u64> = None;
    while bytes.len() - at >= HEADER {
        let word = |i: usize| u32::from_le_bytes(bytes[at + i..at + i + 4].try_into().unwrap());
        let len = word(0) as usize;
        let crc = word(4);
        let lsn_bytes = &bytes[at + 8..at + 16];
        let lsn = u64::from_le_bytes(lsn_bytes.try_into().unwrap());
        if len > MAX_BODY || bytes.len() - at - HEADER < len {
            break;
        }
        let body = &bytes[at + HEADER..at + HEADER + len];
        if crc32c::crc32c_append(crc32c::crc32c(lsn_bytes), body) != crc {
            break;
        }
        if expect.is_some_and(|e| e != lsn) {
            break;
        }
        expect = Some(lsn + 1);
        bodies.push(body.to_vec());
        at += HEADER + len;
    }
    (bodies, at, expect.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8; 10 + i * 7]).collect()
    }

    #[test]
    fn records_come_back_in_order_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.wal");
        let (mut w, got) = Wal::open(&path).unwrap();
        assert!(got.is_empty());
        w.append(&bodies(3)).unwrap();
        w.append(&bodies(2)).unwrap();
        w.sync().unwrap();
        drop(w);
        let (w, got) = Wal::open(&path).unwrap();
        let mut want = bodies(3);
        want.extend(bodies(2));
        assert_eq!(got, want);
        assert_eq!(w.len(), std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn a_torn_or_damaged_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.wal");
        let (mut w, _) = Wal::open(&path).unwrap();
        w.append(&bodies(4)).unwrap();
        drop(w);
        let full = std::fs::read(&path).unwrap();
        // Torn: the last record is missing its last byte.
        std::fs::write(&path, &full[..full.len() - 1]).unwrap();
        let (mut w, got) = Wal::open(&path).unwrap();
        assert_eq!(got, bodies(3));
        // Appending after a cut continues the lsn sequence.
        w.append(&[b"next".to_vec()]).unwrap();
        drop(w);
        let (_, got) = Wal::open(&path).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], b"next");
        // Damaged: one flipped bit in the second record's body stops reading there.
        let mut bytes = std::fs::read(&path).unwrap();
        let second = HEADER + bodies(1)[0].len() + HEADER;
        bytes[second] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (w, got) = Wal::open(&path).unwrap();
        assert_eq!(got, bodies(1));
        assert_eq!(w.len() as usize, HEADER + bodies(1)[0].len());
    }

    #[test]
    fn records_from_before_a_reset_are_never_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.wal");
        let (mut w, _) = Wal::open(&path).unwrap();
        w.append(&bodies(5)).unwrap();
        let old = std::fs::read(&path).unwrap();
        w.reset().unwrap();
        assert!(w.is_empty());
        w.append(&[vec![9; 10 + 7]]).unwrap();
        drop(w);
        // As if the truncation had been lost: the new record over the start of the old file,
        // whose later records are intact and checksummed but carry older lsns.
        let new = std::fs::read(&path).unwrap();
        let mut mixed = old.clone();
        mixed[..new.len()].copy_from_slice(&new);
        std::fs::write(&path, &mixed).unwrap();
        let (_, got) = Wal::open(&path).unwrap();
        assert_eq!(got, vec![vec![9; 17]]);
    }
}
