//! Layout changes of the key space's tables between data formats.
//!
//! Before data format 3, `KV_HISTORY` held every version of a key including the live one, so
//! each live value was stored twice (there and in `KV_LATEST`). From format 3 on a live version
//! is in `KV_LATEST` only; [`drop_live_copies`] turns an older state machine into that layout.

use redb::{ReadableTable, WriteTransaction};

use super::tables::*;
use crate::error::Result;

/// Remove from `KV_HISTORY` the copy of every live version (the row at the key's mod revision
/// whose record is the live one). Returns how many rows went. Idempotent: a store of the new
/// layout has none.
pub fn drop_live_copies(txn: &WriteTransaction) -> Result<u64> {
    let latest = txn.open_table(KV_LATEST)?;
    let mut history = txn.open_table(KV_HISTORY)?;
    let mut dropped = 0;
    for item in latest.iter()? {
        let (k, v) = item?;
        let rev = decode_kv(v.value())?.mod_revision as u64;
        let same = history
            .get((k.value(), rev))?
            .is_some_and(|h| h.value() == v.value());
        if same {
            history.remove((k.value(), rev))?;
            dropped += 1;
        }
    }
    Ok(dropped)
}

/// Give every live version a copy in `KV_HISTORY`, as stores before format 3 kept one (tests
/// make old layouts with it).
#[cfg(test)]
pub fn add_live_copies(txn: &WriteTransaction) {
    let latest = txn.open_table(KV_LATEST).unwrap();
    let mut history = txn.open_table(KV_HISTORY).unwrap();
    for item in latest.iter().unwrap() {
        let (k, v) = item.unwrap();
        let rev = decode_kv(v.value()).unwrap().mod_revision as u64;
        history.insert((k.value(), rev), v.value()).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase};

    use super::*;
    use crate::mvcc::Span;
    use crate::mvcc::hash::hash_kv;
    use crate::mvcc::read::{Revs, scan_history};
    use crate::mvcc::write::put_each;
    use crate::pb::KeyValue;

    fn put(db: &Database, key: &str, value: &str) {
        let txn = db.begin_write().unwrap();
        put_each(&txn, [(key, value)]);
        txn.commit().unwrap();
    }

    fn history_rows(db: &Database) -> usize {
        let txn = db.begin_read().unwrap();
        txn.open_table(KV_HISTORY).unwrap().iter().unwrap().count()
    }

    fn state(db: &Database) -> (u32, Vec<Vec<KeyValue>>) {
        let txn = db.begin_read().unwrap();
        let revs = Revs {
            current: 4,
            compact: 0,
        };
        let (hash, _) = hash_kv(&txn, revs, 0).unwrap();
        let latest = txn.open_table(KV_LATEST).unwrap();
        let history = txn.open_table(KV_HISTORY).unwrap();
        let all = Span::new(&[0], &[0]);
        let at = (1..=4)
            .map(|rev| {
                scan_history(&latest, &history, &all, rev, usize::MAX)
                    .unwrap()
                    .0
            })
            .collect();
        (hash, at)
    }

    #[test]
    fn live_copies_are_dropped_and_every_revision_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("s.redb")).unwrap();
        put(&db, "a", "1");
        put(&db, "b", "1");
        put(&db, "a", "2");
        // Each value once: the superseded a=1 in history, a=2 and b=1 live only.
        assert_eq!(history_rows(&db), 1);
        let before = state(&db);
        let txn = db.begin_write().unwrap();
        add_live_copies(&txn);
        txn.commit().unwrap();
        assert_eq!(history_rows(&db), 3);
        // Readers see the same versions with or without the copies.
        assert_eq!(state(&db), before);
        let txn = db.begin_write().unwrap();
        assert_eq!(drop_live_copies(&txn).unwrap(), 2);
        assert_eq!(drop_live_copies(&txn).unwrap(), 0);
        txn.commit().unwrap();
        assert_eq!(history_rows(&db), 1);
        assert_eq!(state(&db), before);
    }
}
