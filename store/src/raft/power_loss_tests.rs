//! Power loss under a member's storage: the Raft log (the WAL) and the state machine
//! (`state.redb`) run over [`PowerLossDisk`], which at a random operation loses power and
//! then keeps only what was fsynced (or, at random, a subset of the rest, page by page).
//!
//! Each round opens the member as a restart would, checks what survived, brings the state
//! machine up to the log, and runs a member's write path until the power goes: appends
//! (acknowledged once `append` returned, i.e. once fsynced), applies, the state machine's
//! periodic durable commit, and snapshots that purge the log. The checks after each loss:
//! - every acknowledged entry is in the log with its payload, or behind the durable state
//!   machine (a purge never outruns it);
//! - the state machine holds exactly the entries up to its applied index, each entry (two
//!   puts) wholly or not at all: nothing half-applied, nothing from beyond the log.
//!
//! Each seed is 25 losses; `POWER_LOSS_SEEDS` sets how many seeds the main test runs.
//!
//! Kill -9 (the crash tests) cannot catch a missing fsync, since the page cache survives it;
//! this does, and two tests prove it by removing an fsync and expecting a violation.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use openraft::{CommittedLeaderId, EntryPayload};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redb::ReadableTable;

use super::command::Command;
use super::state_machine::SmShared;
use super::typ::{Entry, LogId};
use super::wal::{Record, Wal, WalOptions};
use crate::disk::power_loss::{Crash, PowerLossDisk};
use crate::disk::{Disk, Open};
use crate::mvcc::tables::{KV_LATEST, decode, decode_kv, encode};
use crate::pb::etcdserverpb::PutRequest;

const MEMBER: &str = "/member";
const WAL: &str = "/member/wal";
const STATE: &str = "/member/state.redb";

/// Live keys: key → (value, mod revision).
pub(super) type Kvs = BTreeMap<Vec<u8>, (Vec<u8>, i64)>;

/// The payload of entry `index`: two puts, so that half an entry would show.
fn entry(index: u64) -> Entry {
    let put = |key: String| {
        Command::Put(PutRequest {
            key: key.into_bytes(),
            value: format!("v{index}").into_bytes(),
            ..Default::default()
        })
    };
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(Command::Batch(vec![
            put(format!("a{}", index % 7)),
            put(format!("b{}", index % 5)),
        ])),
    }
}

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 0), index)
}

/// What the state machine holds after entries `1..=upto`: key → (value, mod revision).
fn model(upto: u64) -> Kvs {
    let mut out = BTreeMap::new();
    for index in 1..=upto {
        let rev = 1 + 2 * index as i64;
        let value = format!("v{index}").into_bytes();
        out.insert(
            format!("a{}", index % 7).into_bytes(),
            (value.clone(), rev - 1),
        );
        out.insert(format!("b{}", index % 5).into_bytes(), (value, rev));
    }
    out
}

/// The member's storage, opened as a restart opens it.
struct Member {
    wal: Wal,
    sm: Arc<SmShared>,
}

fn open(disk: &PowerLossDisk, snap_dir: &Path) -> Result<Member, String> {
    let options = WalOptions {
        segment_size: 64 << 10,
    };
    let wal = Wal::open_on(Arc::new(disk.clone()), WAL, options).map_err(|e| e.to_string())?;
    let file = disk
        .redb_file(Path::new(STATE))
        .map_err(|e| e.to_string())?;
    let sm =
        SmShared::open_on(disk, Path::new(STATE), file, snap_dir).map_err(|e| e.to_string())?;
    Ok(Member { wal, sm })
}

fn applied(sm: &SmShared) -> Result<u64, String> {
    let (last, _) = sm.applied_state().map_err(|e| e.to_string())?;
    Ok(last.map_or(0, |l| l.index))
}

/// key → (value, mod revision) of every live key.
pub(super) fn contents(sm: &SmShared) -> Result<Kvs, String> {
    let txn = sm.read().map_err(|e| e.to_string())?;
    let table = txn.open_table(KV_LATEST).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for item in table.iter().map_err(|e| e.to_string())? {
        let (_, v) = item.map_err(|e| e.to_string())?;
        let kv = decode_kv(v.value()).map_err(|e| e.to_string())?;
        out.insert(kv.key, (kv.value, kv.mod_revision));
    }
    Ok(out)
}

/// What one run saw.
#[derive(Debug, Default)]
struct Seen {
    losses: usize,
    /// Where the power cuts fell (see [`cut_kind`]).
    cuts: BTreeMap<&'static str, usize>,
    acked: u64,
    purges: usize,
    replayed: u64,
}

/// What a member was doing when the power went, from the first operation that failed.
fn cut_kind(op: &str) -> &'static str {
    if op.contains("state.redb") {
        "state machine"
    } else if op.contains("spare.wal.tmp") {
        "segment rotation"
    } else if op.starts_with("remove") {
        "segment purge"
    } else if op.starts_with("fsync dir") {
        "directory fsync"
    } else if op.ends_with(".wal") {
        "log append"
    } else {
        "other"
    }
}

/// Check a member just opened after a loss, with entries `1..=acked` acknowledged, and bring
/// its state machine up to its log. Returns the last entry in the log.
fn recover(m: &Member, acked: u64, seen: &mut Seen) -> Result<u64, String> {
    let applied = applied(&m.sm)?;
    let have = contents(&m.sm)?;
    if have != model(applied) {
        return Err(format!(
            "the state machine at applied index {applied} does not hold entries 1..={applied} \
             exactly (half an entry, or one from beyond it)"
        ));
    }
    let purged = m.wal.purged().unwrap_or(0);
    if purged > applied {
        return Err(format!(
            "the log is purged up to {purged} but the durable state machine applied only \
             {applied}: entries {}..={purged} are gone",
            applied + 1
        ));
    }
    let last = m.wal.last_index().unwrap_or(purged).max(purged);
    if last < acked {
        return Err(format!(
            "acknowledged entries {}..={acked} are lost (the log ends at {last})",
            last + 1
        ));
    }
    let from = applied + 1;
    let mut batch = Vec::new();
    for (index, payload) in m.wal.read_range(from..=last).map_err(|e| e.to_string())? {
        let e: Entry = decode("entry", &payload).map_err(|e| e.to_string())?;
        if encode(&e) != encode(&entry(index)) {
            return Err(format!("entry {index} came back with another payload"));
        }
        batch.push(e);
    }
    if batch.len() as u64 != last + 1 - from {
        return Err(format!("entries {from}..={last} have holes"));
    }
    seen.replayed += batch.len() as u64;
    if !batch.is_empty() {
        m.sm.apply_blocking(batch).map_err(|e| e.to_string())?;
    }
    Ok(last)
}

/// One stretch of a member's write path from entry `next`, until an operation fails (the
/// power is gone) or `steps` are done. Returns the last acknowledged entry.
fn write_path(
    m: &mut Member,
    rng: &mut StdRng,
    mut acked: u64,
    steps: usize,
    seen: &mut Seen,
) -> u64 {
    let mut applied = acked;
    for _ in 0..steps {
        match rng.random_range(0..20) {
            0..=11 => {
                let n = rng.random_range(1..=6);
                let entries: Vec<Vec<u8>> =
                    (acked + 1..=acked + n).map(|i| encode(&entry(i))).collect();
                let records: Vec<Record<'_>> = entries
                    .iter()
                    .zip(acked + 1..)
                    .map(|(payload, index)| Record::Entry { index, payload })
                    .collect();
                if m.wal.append(&records).is_err() {
                    return acked;
                }
                acked += n;
            }
            12..=16 => {
                let batch: Vec<Entry> = (applied + 1..=acked).map(entry).collect();
                if !batch.is_empty() {
                    if m.sm.apply_blocking(batch).is_err() {
                        return acked;
                    }
                    applied = acked;
                }
            }
            17 => {
                if m.sm.flush().is_err() {
                    return acked;
                }
            }
            _ => {
                // A snapshot (which makes the state machine durable first), then openraft
                // purges the log up to it.
                let Ok((meta, _)) = m.sm.build_snapshot_blocking() else {
                    return acked;
                };
                if let Some(last) = meta.last_log_id {
                    if m.wal.purge_upto_with(last.index, &encode(&last)).is_err() {
                        return acked;
                    }
                    seen.purges += 1;
                }
            }
        }
    }
    acked
}

/// Rounds of: open, check, write until the power goes, lose what was not durable.
fn run(seed: u64, rounds: usize, setup: impl Fn(&PowerLossDisk)) -> Result<Seen, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let snaps = tempfile::tempdir().map_err(|e| e.to_string())?;
    let disk = PowerLossDisk::new();
    disk.create_dir_all(Path::new(MEMBER))
        .map_err(|e| e.to_string())?;
    setup(&disk);
    let mut seen = Seen::default();
    let mut acked = 0;
    for round in 0..rounds {
        let mut m = open(&disk, snaps.path()).map_err(|e| format!("round {round}: open: {e}"))?;
        let last = recover(&m, acked, &mut seen).map_err(|e| format!("round {round}: {e}"))?;
        // What survived is on the disk now: acknowledged from here on.
        acked = last;
        // Most cuts fall at a random operation; one round in five is aimed at the removal of
        // a purged segment or the rename of a new one (single operations among hundreds,
        // which a uniform draw rarely hits).
        match rng.random_range(0..10) {
            0 => disk.cut_power_at("remove"),
            1 => disk.cut_power_at("rename"),
            _ => disk.cut_power_after(rng.random_range(1..600)),
        }
        acked = write_path(&mut m, &mut rng, acked, 200, &mut seen);
        drop(m);
        if let Some(op) = disk.cut_at() {
            *seen.cuts.entry(cut_kind(&op)).or_default() += 1;
        }
        let how = if rng.random_bool(0.5) {
            Crash::DropAll
        } else {
            Crash::RandomPages
        };
        disk.crash(how, &mut rng);
        seen.losses += 1;
    }
    seen.acked = acked;
    let m = open(&disk, snaps.path()).map_err(|e| format!("final open: {e}"))?;
    recover(&m, acked, &mut seen)?;
    Ok(seen)
}

/// Seeds of the main test: 4 by default (a few seconds); more by hand with
/// `POWER_LOSS_SEEDS=200 cargo test -p kvstore --lib power_loss`.
fn seeds() -> u64 {
    std::env::var("POWER_LOSS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

#[test]
fn acknowledged_writes_survive_power_loss_and_nothing_is_half_applied() {
    let mut cuts = BTreeMap::new();
    for seed in 0..seeds() {
        let seen = run(seed, 25, |_| {}).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        println!("seed {seed}: {seen:?}");
        assert!(
            seen.acked > 50 && seen.purges > 0 && seen.replayed > 0,
            "seed {seed}: the run must write, purge and replay: {seen:?}"
        );
        for (kind, n) in seen.cuts {
            *cuts.entry(kind).or_insert(0) += n;
        }
    }
    println!("power cuts by what the member was doing: {cuts:?}");
    for kind in [
        "log append",
        "segment rotation",
        "segment purge",
        "state machine",
    ] {
        assert!(
            cuts.contains_key(kind),
            "no power cut fell in a {kind}: {cuts:?}"
        );
    }
}

/// Whether some run fails its checks when the fsyncs of files matching `pattern` do nothing.
fn caught_without_fsyncs_of(pattern: &str) -> bool {
    (0..6).any(|seed| run(seed, 25, |d| d.skip_syncs(pattern)).is_err())
}

#[test]
fn a_wal_without_its_fsync_fails_the_power_loss_check() {
    assert!(
        caught_without_fsyncs_of(".wal"),
        "no run noticed that the WAL's appends were never fsynced"
    );
}

#[test]
fn a_state_machine_without_its_fsync_fails_the_power_loss_check() {
    assert!(
        caught_without_fsyncs_of("state.redb"),
        "no run noticed that the state machine was never made durable"
    );
}

#[test]
fn the_disk_model_is_used_for_every_file() {
    // A guard on the harness itself: the member's files live on the power-loss disk.
    let disk = PowerLossDisk::new();
    disk.create_dir_all(Path::new(MEMBER)).unwrap();
    let snaps = tempfile::tempdir().unwrap();
    let m = open(&disk, snaps.path()).unwrap();
    drop(m);
    assert!(disk.exists(Path::new(STATE)));
    assert!(!disk.list(Path::new(WAL)).unwrap().is_empty());
    assert!(disk.open(Path::new(STATE), Open::Read).is_ok());
}
