//! Journal records of the Raft log's changes, and their application to `raft.redb`. The same
//! records go to the journal ([`super::wal`]) and, right after, into redb; after a crash the
//! journal's records are applied again. Every record is a blind write (it sets keys, whatever
//! they held), so applying records redb already has changes nothing.

use redb::{Database, Durability};

use super::log_store::{KEY_COMMITTED, KEY_PURGED, KEY_VOTE, LOG, RAFT_META};
use super::typ::{Entry, LogId, Vote};
use crate::error::{Error, Result};
use crate::mvcc::tables::{decode, encode};

/// Kinds of journal records (the first byte of a body).
const REC_APPEND: u8 = 1;
const REC_TRUNCATE: u8 = 2;
const REC_PURGE: u8 = 3;
const REC_VOTE: u8 = 4;
const REC_COMMITTED: u8 = 5;

/// Entries, as `[index u64][length u32][entry]...`.
pub fn append(entries: &[Entry]) -> Vec<u8> {
    let mut b = vec![REC_APPEND];
    for e in entries {
        let bytes = encode(e);
        b.extend_from_slice(&e.log_id.index.to_le_bytes());
        b.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        b.extend_from_slice(&bytes);
    }
    b
}

/// Delete entries at and after `index`.
pub fn truncate(index: u64) -> Vec<u8> {
    let mut b = vec![REC_TRUNCATE];
    b.extend_from_slice(&index.to_le_bytes());
    b
}

/// Delete entries up to and including `log_id`, and remember it.
pub fn purge(log_id: &LogId) -> Vec<u8> {
    let mut b = vec![REC_PURGE];
    b.extend_from_slice(&encode(log_id));
    b
}

/// The vote.
pub fn vote(vote: &Vote) -> Vec<u8> {
    let mut b = vec![REC_VOTE];
    b.extend_from_slice(&encode(vote));
    b
}

/// The committed log id.
pub fn committed(c: &Option<LogId>) -> Vec<u8> {
    let mut b = vec![REC_COMMITTED];
    b.extend_from_slice(&encode(c));
    b
}

fn damaged(what: &str) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("raft journal: damaged {what} record"),
    ))
}

/// Apply journal records to redb in one commit. Every record is a blind write, so applying
/// records that are already there changes nothing.
pub fn apply(db: &Database, records: &[Vec<u8>], durability: Durability) -> Result<()> {
    let mut txn = db.begin_write()?;
    txn.set_durability(durability)?;
    {
        let mut log = txn.open_table(LOG)?;
        let mut meta = txn.open_table(RAFT_META)?;
        for r in records {
            let (kind, body) = r.split_first().ok_or_else(|| damaged("empty"))?;
            match *kind {
                REC_APPEND => {
                    let mut rest = body;
                    while !rest.is_empty() {
                        let (index, len) = rest
                            .split_first_chunk::<12>()
                            .map(|(h, _)| {
                                let (i, l) = h.split_at(8);
                                (
                                    u64::from_le_bytes(i.try_into().unwrap_or_default()),
                                    u32::from_le_bytes(l.try_into().unwrap_or_default()) as usize,
                                )
                            })
                            .ok_or_else(|| damaged("append"))?;
                        let entry = rest.get(12..12 + len).ok_or_else(|| damaged("append"))?;
                        log.insert(index, entry)?;
                        rest = &rest[12 + len..];
                    }
                }
                REC_TRUNCATE => {
                    let index =
                        u64::from_le_bytes(body.try_into().map_err(|_| damaged("truncate"))?);
                    log.retain_in::<u64, _>(index.., |_, _| false)?;
                }
                REC_PURGE => {
                    let log_id: LogId = decode("purged log id", body)?;
                    log.retain_in::<u64, _>(..=log_id.index, |_, _| false)?;
                    meta.insert(KEY_PURGED, body)?;
                }
                REC_VOTE => {
                    meta.insert(KEY_VOTE, body)?;
                }
                REC_COMMITTED => {
                    meta.insert(KEY_COMMITTED, body)?;
                }
                _ => return Err(damaged("unknown")),
            }
        }
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use openraft::storage::RaftLogStorage;
    use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};
    use redb::{ReadableDatabase, ReadableTable};

    use super::*;
    use crate::raft::log_store::{LogStore, WAL_FILE, open_log_db};
    use crate::raft::wal::Wal;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn rows(db: &Database) -> Vec<(u64, Vec<u8>)> {
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(LOG).unwrap();
        t.iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k.value(), v.value().to_vec())
            })
            .collect()
    }

    #[test]
    fn applying_records_again_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_log_db(&dir.path().join("raft.redb")).unwrap();
        let e: Vec<Entry> = (1..=6).map(|i| entry(1, i)).collect();
        // Entries 1-6, a conflict from 5 on rewritten in term 2, then a purge up to 2.
        let recs = vec![
            append(&e),
            truncate(5),
            append(&[entry(2, 5)]),
            purge(&entry(1, 2).log_id),
            vote(&Vote::new(2, 1)),
        ];
        apply(&db, &recs, Durability::Immediate).unwrap();
        let once = rows(&db);
        assert_eq!(
            once.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        apply(&db, &recs, Durability::Immediate).unwrap();
        apply(&db, &recs[2..], Durability::Immediate).unwrap();
        assert_eq!(rows(&db), once);
        assert!(apply(&db, &[vec![REC_APPEND, 1, 2]], Durability::None).is_err());
    }

    #[tokio::test]
    async fn a_journal_left_by_a_crash_is_replayed_when_the_log_opens() {
        let dir = tempfile::tempdir().unwrap();
        let wal_path = dir.path().join(WAL_FILE);
        {
            // What the writer journaled but never got into redb.
            let (mut wal, _) = Wal::open(&wal_path).unwrap();
            let e: Vec<Entry> = (1..=4).map(|i| entry(3, i)).collect();
            wal.append(&[append(&e), vote(&Vote::new_committed(3, 1))])
                .unwrap();
            wal.sync().unwrap();
        }
        let db = Arc::new(open_log_db(&dir.path().join("raft.redb")).unwrap());
        let mut log = LogStore::new(db, &wal_path).unwrap();
        let got = log.try_get_log_entries(1..=4).await.unwrap();
        assert_eq!(
            got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(Vote::new_committed(3, 1))
        );
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|l| l.index), Some(4));
        assert_eq!(std::fs::metadata(&wal_path).unwrap().len(), 0);
    }
}
