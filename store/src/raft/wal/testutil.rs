//! Helpers of the WAL's tests: build a log, look at its files, break them.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{Record, Wal, WalOptions};

pub(super) const SMALL: WalOptions = WalOptions { segment_size: 512 };

pub(super) fn payload(index: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (index as usize * 31 + i) as u8).collect()
}

/// Everything a reopen must reproduce.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Dump {
    pub first: Option<u64>,
    pub last: Option<u64>,
    pub purged: Option<u64>,
    pub vote: Option<Vec<u8>>,
    pub committed: Option<Vec<u8>>,
    pub entries: Vec<(u64, Vec<u8>)>,
}

pub(super) fn dump(wal: &Wal) -> Dump {
    Dump {
        first: wal.first_index(),
        last: wal.last_index(),
        purged: wal.purged(),
        vote: wal.vote().map(<[u8]>::to_vec),
        committed: wal.committed().map(<[u8]>::to_vec),
        entries: wal.read_range(..).unwrap(),
    }
}

pub(super) fn reopen(dir: &Path) -> Wal {
    Wal::open(dir, SMALL).unwrap()
}

/// Append entries `range`, one write each, with payloads of `len` bytes.
pub(super) fn entries(wal: &mut Wal, range: std::ops::RangeInclusive<u64>, len: usize) {
    for i in range {
        let p = payload(i, len);
        wal.append(&[Record::Entry {
            index: i,
            payload: &p,
        }])
        .unwrap();
    }
}

pub(super) fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

pub(super) fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    segment_files(dir)
        .into_iter()
        .map(|p| (p.clone(), fs::read(p).unwrap()))
        .collect()
}

/// The file and offset of entry `index`.
pub(super) fn place(wal: &Wal, index: u64) -> (PathBuf, u64) {
    let loc = wal.state.get(index).unwrap();
    (wal.segments[&loc.seg].path.clone(), loc.offset)
}

pub(super) fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

pub(super) fn flip(path: &Path, offset: u64) {
    let mut b = [0];
    fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut b, offset)
        .unwrap();
    write_at(path, offset, &[b[0] ^ 0x40]);
}
