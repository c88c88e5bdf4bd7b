//! The WAL's behaviour through its API: round trips across segments, truncation, purge,
//! large records, the format version and the preallocation.

use std::fs;

use super::testutil::*;
use super::*;

#[test]
fn append_and_replay_round_trip_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = reopen(dir.path());
    let mut index = 1;
    for batch in 0..30u64 {
        let payloads: Vec<Vec<u8>> = (0..batch % 4 + 1)
            .map(|k| payload(index + k, (10 + batch * 7 % 80) as usize))
            .collect();
        let mut records: Vec<Record<'_>> = payloads
            .iter()
            .enumerate()
            .map(|(k, p)| Record::Entry {
                index: index + k as u64,
                payload: p,
            })
            .collect();
        let vote = format!("vote {batch}").into_bytes();
        if batch % 5 == 0 {
            records.push(Record::Vote(&vote));
        }
        wal.append(&records).unwrap();
        index += payloads.len() as u64;
        wal.append(&[Record::Committed(&index.to_le_bytes())])
            .unwrap();
    }
    let before = dump(&wal);
    assert_eq!((before.first, before.last), (Some(1), Some(index - 1)));
    assert_eq!(before.vote.as_deref(), Some(&b"vote 25"[..]));
    assert!(
        segment_files(dir.path()).len() >= 8,
        "{:?}",
        segment_files(dir.path())
    );
    drop(wal);

    let wal = reopen(dir.path());
    assert_eq!(dump(&wal), before);
    let files = contents(dir.path());
    drop(wal);
    // Replay is idempotent and changes nothing that is valid.
    assert_eq!(dump(&reopen(dir.path())), before);
    assert_eq!(contents(dir.path()), files);
    assert_eq!(reopen(dir.path()).read(3).unwrap(), Some(payload(3, 17)));
}

#[test]
fn truncate_after_then_append_then_reopen_keeps_only_the_new_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = reopen(dir.path());
    entries(&mut wal, 1..=10, 70);
    wal.truncate_after(4).unwrap();
    assert_eq!(wal.last_index(), Some(4));
    drop(wal);
    // A crash after the truncation, before the new entries.
    let mut wal = reopen(dir.path());
    assert_eq!(wal.last_index(), Some(4));
    assert_eq!(wal.read(5).unwrap(), None);
    assert!(matches!(
        wal.append(&[Record::Entry {
            index: 6,
            payload: b"x"
        }]),
        Err(WalError::NotContiguous {
            expected: 5,
            got: 6
        })
    ));
    for i in 5..=7 {
        wal.append(&[Record::Entry {
            index: i,
            payload: format!("new {i}").as_bytes(),
        }])
        .unwrap();
    }
    // Truncating again, inside the new history.
    wal.truncate_after(6).unwrap();
    wal.append(&[Record::Entry {
        index: 7,
        payload: b"newer 7",
    }])
    .unwrap();
    let after = dump(&wal);
    drop(wal);
    let wal = reopen(dir.path());
    assert_eq!(dump(&wal), after);
    let expect: Vec<(u64, Vec<u8>)> = (1..=4)
        .map(|i| (i, payload(i, 70)))
        .chain([
            (5, b"new 5".to_vec()),
            (6, b"new 6".to_vec()),
            (7, b"newer 7".to_vec()),
        ])
        .collect();
    assert_eq!(after.entries, expect);
    assert_eq!(wal.read_range(6..).unwrap().len(), 2);
    assert_eq!(
        wal.read_range(2..=3).unwrap(),
        vec![(2, payload(2, 70)), (3, payload(3, 70))]
    );
}

#[test]
fn truncating_everything_and_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = reopen(dir.path());
    entries(&mut wal, 0..=5, 8);
    wal.truncate_after(9).unwrap();
    assert_eq!(wal.last_index(), Some(5));
    wal.truncate_from(0).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (None, None));
    entries(&mut wal, 0..=1, 8);
    drop(wal);
    let wal = reopen(dir.path());
    assert_eq!((wal.first_index(), wal.last_index()), (Some(0), Some(1)));
}

#[test]
fn purge_deletes_old_segments_and_keeps_the_vote_and_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = reopen(dir.path());
    wal.append(&[Record::Vote(b"term 3"), Record::Committed(b"7")])
        .unwrap();
    entries(&mut wal, 1..=30, 90);
    let count = segment_files(dir.path()).len();
    wal.purge_upto(25).unwrap();
    assert!(segment_files(dir.path()).len() < count - 5);
    assert_eq!((wal.first_index(), wal.read(25).unwrap()), (Some(26), None));
    // Past the end: the next entry is 41.
    wal.purge_upto(40).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (None, None));
    assert!(matches!(
        wal.truncate_after(30),
        Err(WalError::BelowPurged {
            index: 31,
            purged: 40
        })
    ));
    entries(&mut wal, 41..=42, 10);
    drop(wal);
    let wal = reopen(dir.path());
    assert_eq!(
        (wal.first_index(), wal.last_index(), wal.purged()),
        (Some(41), Some(42), Some(40))
    );
    assert_eq!(
        (wal.vote(), wal.committed()),
        (Some(&b"term 3"[..]), Some(&b"7"[..]))
    );
}

#[test]
fn a_data_dir_of_another_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = reopen(dir.path());
    entries(&mut wal, 1..=2, 10);
    drop(wal);
    let seg = &segment_files(dir.path())[0];
    write_at(seg, 8, &[2]);
    let err = Wal::open(dir.path(), SMALL).err().unwrap();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            WalError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("WAL format version 2") && msg.contains("reads only version 1"),
        "{msg}"
    );
    assert!(msg.contains("remove the member's data dir"), "{msg}");
}

#[test]
fn a_record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = reopen(dir.path());
    entries(&mut wal, 1..=2, 10);
    let big = payload(3, 2000);
    wal.append(&[Record::Entry {
        index: 3,
        payload: &big,
    }])
    .unwrap();
    entries(&mut wal, 4..=5, 10);
    drop(wal);
    let wal = reopen(dir.path());
    assert_eq!(wal.read(3).unwrap(), Some(big));
    assert_eq!(wal.last_index(), Some(5));
    assert!(
        segment_files(dir.path())
            .iter()
            .any(|p| fs::metadata(p).unwrap().len() > 2000)
    );
}

#[test]
fn the_default_segment_is_fully_allocated() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.append(&[Record::Entry {
        index: 1,
        payload: b"one",
    }])
    .unwrap();
    let meta = fs::metadata(&segment_files(dir.path())[0]).unwrap();
    assert_eq!(meta.len(), DEFAULT_SEGMENT_SIZE);
    assert!(
        meta.blocks() * 512 >= DEFAULT_SEGMENT_SIZE,
        "sparse: {} blocks",
        meta.blocks()
    );
}

#[test]
fn a_purge_keeps_its_meta_across_reopens_and_purges() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = reopen(dir.path());
    assert_eq!(wal.purged_meta(), None);
    entries(&mut wal, 1..=10, 70);
    wal.purge_upto_with(4, b"term 3").unwrap();
    assert_eq!(wal.purged_meta(), Some(&b"term 3"[..]));
    drop(wal);
    let mut wal = reopen(dir.path());
    assert_eq!(
        (wal.purged(), wal.purged_meta()),
        (Some(4), Some(&b"term 3"[..]))
    );
    assert_eq!(wal.first_index(), Some(5));
    // Past the end of the log: the next entry follows the purge point.
    wal.purge_upto_with(20, b"term 4").unwrap();
    wal.purge_upto(2).unwrap();
    drop(wal);
    let wal = reopen(dir.path());
    assert_eq!(
        (wal.purged(), wal.purged_meta()),
        (Some(20), Some(&b"term 4"[..]))
    );
    assert_eq!((wal.first_index(), wal.last_index()), (None, None));
}
