//! Crash and damage scenarios: each builds a log, breaks its files the way a crash or a bad
//! disk would, and reopens.

use std::fs::{self, OpenOptions};
use std::path::PathBuf;

use super::record::{Kind, Raw};
use super::segment::{SPARE_NAME, encode_header, file_name};
use super::testutil::*;
use super::*;

#[test]
fn a_torn_last_record_is_cut_off_and_appends_continue() {
    for cut_file in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = reopen(dir.path());
        entries(&mut wal, 1..=5, 100);
        let (path, offset) = place(&wal, 5);
        drop(wal);
        let mid = offset + 60;
        if cut_file {
            // The file ends in the middle of the record.
            OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(mid)
                .unwrap();
        } else {
            // The second half of the record never reached the disk.
            write_at(&path, mid, &[0; 100]);
        }
        let mut wal = reopen(dir.path());
        assert_eq!(wal.last_index(), Some(4), "cut_file {cut_file}");
        assert_eq!(fs::metadata(&path).unwrap().len(), 512);
        wal.append(&[Record::Entry {
            index: 5,
            payload: b"new five",
        }])
        .unwrap();
        entries(&mut wal, 6..=8, 50);
        let after = dump(&wal);
        drop(wal);
        assert_eq!(dump(&reopen(dir.path())), after);
        assert_eq!(dump(&reopen(dir.path())), after);
        assert_eq!(after.entries[4], (5, b"new five".to_vec()));
    }
}

#[test]
fn a_flipped_byte_in_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = reopen(dir.path());
    entries(&mut wal, 1..=4, 40);
    let (path, offset) = place(&wal, 4);
    drop(wal);
    flip(&path, offset + 40);
    let mut wal = reopen(dir.path());
    assert_eq!(wal.last_index(), Some(3));
    // The torn record's bytes are gone.
    let buf = fs::read(&path).unwrap();
    assert!(buf[offset as usize..].iter().all(|b| *b == 0));
    entries(&mut wal, 4..=6, 10);
    drop(wal);
    assert_eq!(reopen(dir.path()).last_index(), Some(6));
}

#[test]
fn a_damaged_record_before_later_writes_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = reopen(dir.path());
    entries(&mut wal, 1..=12, 60);
    let (last_seg, _) = place(&wal, 12);
    let (first_seg, _) = place(&wal, 1);
    assert_ne!(first_seg, last_seg);
    // The second to last record of the last segment, and the last record of the first one.
    let (path, offset) = place(&wal, 11);
    assert_eq!(path, last_seg);
    let first_seg_last = (1..12)
        .take_while(|i| place(&wal, *i).0 == first_seg)
        .last()
        .unwrap();
    let (_, offset_in_first) = place(&wal, first_seg_last);
    drop(wal);

    flip(&path, offset + 45);
    let err = Wal::open(dir.path(), SMALL).err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, WalError::Corrupt { .. }), "{msg}");
    assert!(
        msg.contains(&*path.to_string_lossy()) && msg.contains(&format!("offset {offset}")),
        "{msg}"
    );
    assert!(msg.contains("later write"), "{msg}");
    flip(&path, offset + 45);

    flip(&first_seg, offset_in_first + 33);
    let msg = Wal::open(dir.path(), SMALL).err().unwrap().to_string();
    assert!(msg.contains(&*first_seg.to_string_lossy()), "{msg}");
    assert!(msg.contains(&format!("offset {offset_in_first}")), "{msg}");
    assert!(msg.contains("newer ones follow"), "{msg}");
}

#[test]
fn an_unwritten_preallocated_tail_ends_the_log_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(
        dir.path(),
        WalOptions {
            segment_size: 1 << 20,
        },
    )
    .unwrap();
    entries(&mut wal, 0..=9, 300);
    drop(wal);
    let files = contents(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].1.len(), 1 << 20);
    let wal = Wal::open(
        dir.path(),
        WalOptions {
            segment_size: 1 << 20,
        },
    )
    .unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (Some(0), Some(9)));
    assert_eq!(contents(dir.path()), files);
}

#[test]
fn a_torn_write_never_brings_back_its_stale_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), WalOptions { segment_size: 4096 }).unwrap();
    entries(&mut wal, 1..=3, 40);
    let payloads: Vec<Vec<u8>> = (4..=8).map(|i| payload(i, 40)).collect();
    let batch: Vec<Record<'_>> = (4..=8)
        .zip(&payloads)
        .map(|(index, p)| Record::Entry { index, payload: p })
        .collect();
    wal.append(&batch).unwrap();
    let (path, offset) = place(&wal, 4);
    drop(wal);
    // The write of 4..=8 was torn: the block holding entry 4 never reached the disk, later
    // ones did. Entries 5..=8 are valid records of the same write.
    write_at(&path, offset, &[0; 72]);
    let mut wal = Wal::open(dir.path(), WalOptions { segment_size: 4096 }).unwrap();
    assert_eq!(wal.last_index(), Some(3));
    // A new entry 4 of the same size ends where the stale entry 5 (same sequence number and
    // index as a valid successor would have) started: it must not come back.
    let new_four = vec![7; 40];
    wal.append(&[Record::Entry {
        index: 4,
        payload: &new_four,
    }])
    .unwrap();
    drop(wal);
    let wal = Wal::open(dir.path(), WalOptions { segment_size: 4096 }).unwrap();
    assert_eq!(wal.last_index(), Some(4));
    assert_eq!(wal.read(4).unwrap(), Some(new_four));
    assert_eq!(wal.read(5).unwrap(), None);
}

#[test]
fn a_crash_during_rotation_reopens_without_loss() {
    // What a rotation interrupted at various points could leave as the newest segment: with
    // or without a header, and how long.
    let cases = [
        ("header only", true, 512),
        ("partly preallocated", true, 100),
        ("no header, preallocated", false, 512),
        ("no header, partly preallocated", false, 20),
        ("empty", false, 0),
    ];
    for (name, header, len) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = reopen(dir.path());
        entries(&mut wal, 1..=7, 90);
        wal.append(&[Record::Vote(b"v")]).unwrap();
        let before = dump(&wal);
        let next = wal.next_seq;
        drop(wal);
        let mut file = if header {
            encode_header(next).to_vec()
        } else {
            Vec::new()
        };
        file.resize(len, 0);
        fs::write(dir.path().join(file_name(next)), file).unwrap();
        fs::write(dir.path().join(SPARE_NAME), b"half a spare").unwrap();

        let mut wal = reopen(dir.path());
        assert_eq!(dump(&wal), before, "{name}");
        entries(&mut wal, 8..=12, 90);
        let after = dump(&wal);
        drop(wal);
        // The half-written spare was replaced by a complete one.
        assert_eq!(
            fs::read(dir.path().join(SPARE_NAME)).unwrap(),
            vec![0; 512],
            "{name}"
        );
        assert_eq!(dump(&reopen(dir.path())), after, "{name}");
        for f in segment_files(dir.path()) {
            assert_eq!(fs::metadata(&f).unwrap().len(), 512, "{name}: {f:?}");
        }
    }
}

#[test]
fn a_headerless_segment_holding_data_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = reopen(dir.path());
    entries(&mut wal, 1..=3, 10);
    let next = wal.next_seq;
    drop(wal);
    let mut f = vec![0; 512];
    f[200] = 1;
    fs::write(dir.path().join(file_name(next)), f).unwrap();
    let msg = Wal::open(dir.path(), SMALL).err().unwrap().to_string();
    assert!(
        msg.contains("without a header") && msg.contains("offset 200"),
        "{msg}"
    );
}

#[test]
fn a_crash_during_purge_reopens_to_the_purged_log() {
    for deleted in [0, 1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = reopen(dir.path());
        wal.append(&[Record::Vote(b"old vote"), Record::Committed(b"c3")])
            .unwrap();
        entries(&mut wal, 1..=20, 90);
        let segments = segment_files(dir.path());
        assert!(segments.len() >= 5);
        // What purge_upto(12) does before it deletes anything: the marker and the copies.
        let next = wal.state.purge_payload(12, &[]);
        wal.write(&[
            Raw {
                kind: Kind::PurgeUpto,
                index: 12,
                payload: &next,
            },
            Raw {
                kind: Kind::Vote,
                index: 0,
                payload: b"old vote",
            },
            Raw {
                kind: Kind::Committed,
                index: 0,
                payload: b"c3",
            },
        ])
        .unwrap();
        let doomed: Vec<PathBuf> = segments
            .iter()
            .filter(|p| **p < place(&wal, 13).0)
            .cloned()
            .collect();
        assert!(doomed.len() > deleted);
        drop(wal);
        for p in &doomed[..deleted] {
            fs::remove_file(p).unwrap();
        }

        let mut wal = reopen(dir.path());
        let d = dump(&wal);
        assert_eq!(
            (d.first, d.last, d.purged),
            (Some(13), Some(20), Some(12)),
            "{deleted}"
        );
        assert_eq!(
            (d.vote.as_deref(), d.committed.as_deref()),
            (Some(&b"old vote"[..]), Some(&b"c3"[..]))
        );
        // Finishing the purge deletes the rest.
        wal.purge_upto(14).unwrap();
        assert!(doomed.iter().all(|p| !p.exists()));
        let d = dump(&wal);
        drop(wal);
        assert_eq!(dump(&reopen(dir.path())), d);
        assert_eq!(d.first, Some(15));
    }
}

#[test]
fn a_missing_segment_in_the_middle_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = reopen(dir.path());
    entries(&mut wal, 1..=20, 90);
    drop(wal);
    let segments = segment_files(dir.path());
    fs::remove_file(&segments[1]).unwrap();
    let msg = Wal::open(dir.path(), SMALL).err().unwrap().to_string();
    assert!(
        msg.contains("a segment is missing") && msg.contains(&*segments[2].to_string_lossy()),
        "{msg}"
    );
}
