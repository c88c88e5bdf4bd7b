//! Raft snapshots without snapshot files: a snapshot handed out is written on demand from the
//! state it was taken at (not the state when it is read), installs on another member, leaves no
//! file behind, and the files earlier releases kept are removed at open.

use std::path::Path;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, RaftSnapshotBuilder};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::command::Command;
use super::power_loss_tests::{self, Kvs};
use super::state_machine::{SmShared, StateMachine};
use super::typ::{Entry, LogId};
use crate::pb::etcdserverpb::PutRequest;

fn entry(index: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(2, 0), index),
        payload: EntryPayload::Normal(Command::Put(PutRequest {
            key: format!("k{}", index % 10).into_bytes(),
            value: format!("v{index}").into_bytes(),
            ..Default::default()
        })),
    }
}

fn apply(sm: &SmShared, range: std::ops::RangeInclusive<u64>) {
    sm.apply_blocking(range.map(entry).collect()).unwrap();
}

/// key → (value, mod revision) of every live key.
fn contents(sm: &SmShared) -> Kvs {
    power_loss_tests::contents(sm).unwrap()
}

/// Files (of any kind) directly in `dir`.
fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn a_snapshot_is_written_from_the_state_it_was_taken_at() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = SmShared::open(leader_dir.path()).unwrap();
    let mut leader_sm = StateMachine::new(leader.clone());
    assert!(leader_sm.get_current_snapshot().await.unwrap().is_none());

    apply(&leader, 1..=25);
    let at_25 = contents(&leader);
    let mut snap = leader_sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(25));
    assert_eq!(snap.meta.snapshot_id, "2-25");
    // Nothing is written until the bytes are read.
    assert!(!snap.snapshot.is_written());
    // Applies go on while the snapshot waits to be sent; it still holds entry 25's state.
    apply(&leader, 26..=40);
    assert_ne!(contents(&leader), at_25);

    // Read as openraft's sender does: the size, then chunks from offsets.
    let size = snap.snapshot.seek(std::io::SeekFrom::End(0)).await.unwrap();
    assert!(size > 0);
    snap.snapshot
        .seek(std::io::SeekFrom::Start(0))
        .await
        .unwrap();
    let mut bytes = Vec::new();
    snap.snapshot.read_to_end(&mut bytes).await.unwrap();
    assert_eq!(bytes.len() as u64, size);

    // Received by another member in two chunks, and installed there.
    let follower_dir = tempfile::tempdir().unwrap();
    let follower = SmShared::open(follower_dir.path()).unwrap();
    let mut follower_sm = StateMachine::new(follower.clone());
    let mut recv = follower_sm.begin_receiving_snapshot().await.unwrap();
    let half = bytes.len() / 2;
    tokio::io::AsyncWriteExt::write_all(&mut recv, &bytes[..half])
        .await
        .unwrap();
    recv.seek(std::io::SeekFrom::Start(half as u64))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut recv, &bytes[half..])
        .await
        .unwrap();
    follower_sm
        .install_snapshot(&snap.meta, recv)
        .await
        .unwrap();
    assert_eq!(contents(&follower), at_25);
    assert_eq!(follower.revs().current, 26);
    let (last, _) = follower.applied_state().unwrap();
    assert_eq!(last, snap.meta.last_log_id);
    // The follower's own snapshot of that state has the same name and metadata.
    let again = follower_sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(again.meta, snap.meta);

    // No snapshot stays on disk on either side (the files had no names).
    drop(snap);
    drop(again);
    for dir in [leader_dir.path(), follower_dir.path()] {
        assert_eq!(files_in(&dir.join("snap")), Vec::<String>::new());
    }
}

#[tokio::test]
async fn building_a_snapshot_makes_the_state_durable_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shared = SmShared::open(dir.path()).unwrap();
    apply(&shared, 1..=7);
    let mut sm = StateMachine::new(shared.clone());
    let built = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(built.meta.last_log_id.map(|l| l.index), Some(7));
    assert_eq!(shared.applied_since_snapshot(), 0);
    assert!(!built.snapshot.is_written());
    drop(built);
    assert_eq!(files_in(&dir.path().join("snap")), Vec::<String>::new());
}

#[test]
fn the_snapshot_files_of_earlier_releases_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    std::fs::create_dir_all(&snap).unwrap();
    for name in [
        "00000000000000000042-1-17.snap",
        "00000000000000000050-1-18.tmp",
        "recv-19.tmp",
    ] {
        std::fs::write(snap.join(name), b"KVSNAP02").unwrap();
    }
    let sm: Arc<SmShared> = SmShared::open(dir.path()).unwrap();
    assert_eq!(files_in(&snap), Vec::<String>::new());
    drop(sm);
}
