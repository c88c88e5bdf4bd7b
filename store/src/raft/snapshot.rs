//! The snapshot file format: a dump of the state machine tables taken from one redb read
//! transaction, written and read as a stream so no snapshot is ever held whole in memory.
//!
//! Layout: the magic `KVSNAP02`, then frames of `[u32 length][bincode Record]`, ending with
//! `Record::End`. The first record is the header (the raft snapshot metadata, if any).
//! Raft uses these files to catch up members; `Maintenance.Snapshot` streams the same bytes
//! (padded and followed by a SHA-256, as etcdctl expects) and `kvctl snapshot restore` reads them.
//!
//! `KVSNAP01` files (kvstore before data format 3) are read too: their history repeats every
//! live version, and those copies are dropped while loading. Releases before format 3 refuse
//! `KVSNAP02` files (bad magic) rather than misread them.

use std::io::{Read, Write};

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::mvcc::tables::*;

/// First bytes of every snapshot written now.
pub const MAGIC: &[u8; 8] = b"KVSNAP02";

/// First bytes of a snapshot whose history repeats each live version.
const MAGIC_V1: &[u8; 8] = b"KVSNAP01";

/// What [`read_header`] found at the start of a snapshot.
#[derive(Debug)]
pub struct Header {
    /// The Raft snapshot metadata (bincode `SnapshotMeta`), empty for client snapshots.
    pub meta: Vec<u8>,
    /// A `KVSNAP01` file: its history holds a copy of every live version.
    live_copies: bool,
}

/// One frame of a snapshot.
#[derive(Debug, Serialize, Deserialize)]
pub enum Record {
    /// Raft snapshot metadata (bincode `SnapshotMeta`), empty for client snapshots.
    Header(Vec<u8>),
    /// `KV_LATEST` row.
    Latest(Vec<u8>, Vec<u8>),
    /// `KV_HISTORY` row.
    History(Vec<u8>, u64, Vec<u8>),
    /// `REV_INDEX` row.
    RevIndex(u64, u32, Vec<u8>),
    /// `META` row.
    Meta(String, Vec<u8>),
    /// `LEASES` row.
    Lease(i64, Vec<u8>),
    /// `LEASE_KEYS` row.
    LeaseKey(i64, Vec<u8>),
    /// `MEMBERS` row.
    Member(u64, Vec<u8>),
    /// `ALARMS` row.
    Alarm(u64, i32),
    /// End of the snapshot.
    End,
}

fn put_record(w: &mut impl Write, r: &Record) -> Result<()> {
    let bytes = encode(r);
    w.write_all(&(bytes.len() as u32).to_be_bytes())?;
    w.write_all(&bytes)?;
    Ok(())
}

/// Read one frame.
pub fn read_record(r: &mut impl Read) -> Result<Record> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 1 << 30 {
        return Err(Error::decode("snapshot frame", "frame too large"));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    decode("snapshot record", &buf)
}

/// Which META rows belong in a snapshot (raft pointers are carried by the header instead).
fn meta_in_snapshot(key: &str) -> bool {
    key != META_LAST_APPLIED && key != META_MEMBERSHIP
}

/// Dump the state machine as seen by `txn`.
pub fn write_snapshot(txn: &ReadTransaction, header: Vec<u8>, w: &mut impl Write) -> Result<()> {
    w.write_all(MAGIC)?;
    put_record(w, &Record::Header(header))?;
    for item in txn.open_table(META)?.iter()? {
        let (k, v) = item?;
        if meta_in_snapshot(k.value()) {
            put_record(w, &Record::Meta(k.value().to_string(), v.value().to_vec()))?;
        }
    }
    for item in txn.open_table(KV_LATEST)?.iter()? {
        let (k, v) = item?;
        put_record(w, &Record::Latest(k.value().to_vec(), v.value().to_vec()))?;
    }
    for item in txn.open_table(KV_HISTORY)?.iter()? {
        let (k, v) = item?;
        let (key, rev) = k.value();
        put_record(w, &Record::History(key.to_vec(), rev, v.value().to_vec()))?;
    }
    for item in txn.open_table(REV_INDEX)?.iter()? {
        let (k, v) = item?;
        let (rev, sub) = k.value();
        put_record(w, &Record::RevIndex(rev, sub, v.value().to_vec()))?;
    }
    for item in txn.open_table(LEASES)?.iter()? {
        let (k, v) = item?;
        put_record(w, &Record::Lease(k.value(), v.value().to_vec()))?;
    }
    for item in txn.open_table(LEASE_KEYS)?.iter()? {
        let (k, _) = item?;
        let (id, key) = k.value();
        put_record(w, &Record::LeaseKey(id, key.to_vec()))?;
    }
    for item in txn.open_table(MEMBERS)?.iter()? {
        let (k, v) = item?;
        put_record(w, &Record::Member(k.value(), v.value().to_vec()))?;
    }
    for item in txn.open_table(ALARMS)?.iter()? {
        let (k, _) = item?;
        let (m, a) = k.value();
        put_record(w, &Record::Alarm(m, a))?;
    }
    put_record(w, &Record::End)?;
    w.flush()?;
    Ok(())
}

/// Read the magic and the header of a snapshot.
pub fn read_header(r: &mut impl Read) -> Result<Header> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    let live_copies = match &magic {
        m if m == MAGIC => false,
        m if m == MAGIC_V1 => true,
        _ => {
            return Err(Error::decode(
                "snapshot",
                "not a kvstore snapshot (bad magic)",
            ));
        }
    };
    match read_record(r)? {
        Record::Header(meta) => Ok(Header { meta, live_copies }),
        _ => Err(Error::decode("snapshot", "missing header")),
    }
}

/// Clear every state machine table in `txn`.
pub fn clear_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(KV_LATEST)?.retain(|_, _| false)?;
    txn.open_table(KV_HISTORY)?.retain(|_, _| false)?;
    txn.open_table(REV_INDEX)?.retain(|_, _| false)?;
    txn.open_table(META)?.retain(|_, _| false)?;
    txn.open_table(LEASES)?.retain(|_, _| false)?;
    txn.open_table(LEASE_KEYS)?.retain(|_, _| false)?;
    txn.open_table(MEMBERS)?.retain(|_, _| false)?;
    txn.open_table(ALARMS)?.retain(|_, _| false)?;
    Ok(())
}

/// Load the records after `header` into the (cleared) tables of `txn`.
pub fn load_records(txn: &WriteTransaction, header: &Header, r: &mut impl Read) -> Result<()> {
    let mut latest = txn.open_table(KV_LATEST)?;
    let mut history = txn.open_table(KV_HISTORY)?;
    let mut rev_index = txn.open_table(REV_INDEX)?;
    let mut meta = txn.open_table(META)?;
    let mut leases = txn.open_table(LEASES)?;
    let mut lease_keys = txn.open_table(LEASE_KEYS)?;
    let mut members = txn.open_table(MEMBERS)?;
    let mut alarms = txn.open_table(ALARMS)?;
    loop {
        match read_record(r)? {
            Record::Header(_) => return Err(Error::decode("snapshot", "second header")),
            Record::Latest(k, v) => {
                latest.insert(k.as_slice(), v.as_slice())?;
            }
            Record::History(k, rev, v) => {
                // Live versions come before history in every snapshot.
                let copy = header.live_copies
                    && latest
                        .get(k.as_slice())?
                        .is_some_and(|l| l.value() == v.as_slice());
                if !copy {
                    history.insert((k.as_slice(), rev), v.as_slice())?;
                }
            }
            Record::RevIndex(rev, sub, k) => {
                rev_index.insert((rev, sub), k.as_slice())?;
            }
            Record::Meta(k, v) => {
                if meta_in_snapshot(&k) {
                    meta.insert(k.as_str(), v.as_slice())?;
                }
            }
            Record::Lease(id, v) => {
                leases.insert(id, v.as_slice())?;
            }
            Record::LeaseKey(id, k) => {
                lease_keys.insert((id, k.as_slice()), ())?;
            }
            Record::Member(id, v) => {
                members.insert(id, v.as_slice())?;
            }
            Record::Alarm(m, a) => {
                alarms.insert((m, a), ())?;
            }
            Record::End => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase};

    use super::*;
    use crate::mvcc::write::Store;
    use crate::pb::PutRequest;

    fn db(dir: &tempfile::TempDir, name: &str) -> Database {
        let db = Database::create(dir.path().join(name)).unwrap();
        let txn = db.begin_write().unwrap();
        Store::open(&txn).unwrap();
        txn.open_table(MEMBERS).unwrap();
        txn.open_table(ALARMS).unwrap();
        txn.commit().unwrap();
        db
    }

    /// `KV_LATEST`'s rows and `KV_HISTORY`'s keys.
    type Rows = (Vec<(Vec<u8>, Vec<u8>)>, Vec<(Vec<u8>, u64)>);

    fn rows(db: &Database) -> Rows {
        let txn = db.begin_read().unwrap();
        let latest = txn.open_table(KV_LATEST).unwrap();
        let history = txn.open_table(KV_HISTORY).unwrap();
        let l = latest
            .iter()
            .unwrap()
            .map(|i| {
                let (k, v) = i.unwrap();
                (k.value().to_vec(), v.value().to_vec())
            })
            .collect();
        let h = history
            .iter()
            .unwrap()
            .map(|i| {
                let (k, _) = i.unwrap();
                (k.value().0.to_vec(), k.value().1)
            })
            .collect();
        (l, h)
    }

    #[test]
    fn a_kvsnap01_file_loads_without_its_copies_of_live_values() {
        let dir = tempfile::tempdir().unwrap();
        let src = db(&dir, "src.redb");
        let txn = src.begin_write().unwrap();
        {
            let mut s = Store::open(&txn).unwrap();
            for (k, v) in [("a", "1"), ("a", "2"), ("b", "1")] {
                s.put(&PutRequest {
                    key: k.into(),
                    value: v.into(),
                    ..Default::default()
                })
                .unwrap();
                s.finish_request().unwrap();
            }
        }
        txn.commit().unwrap();
        let expected = rows(&src);
        assert_eq!(expected.1, vec![(b"a".to_vec(), 2)]);
        // A release before format 3 wrote each live version into history too, under KVSNAP01.
        let txn = src.begin_write().unwrap();
        for (k, v) in &expected.0 {
            let rev = decode_kv(v).unwrap().mod_revision as u64;
            txn.open_table(KV_HISTORY)
                .unwrap()
                .insert((k.as_slice(), rev), v.as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
        let mut file = Vec::new();
        write_snapshot(&src.begin_read().unwrap(), Vec::new(), &mut file).unwrap();
        file[..8].copy_from_slice(MAGIC_V1);

        let dst = db(&dir, "dst.redb");
        let mut r = file.as_slice();
        let header = read_header(&mut r).unwrap();
        let txn = dst.begin_write().unwrap();
        clear_tables(&txn).unwrap();
        load_records(&txn, &header, &mut r).unwrap();
        txn.commit().unwrap();
        assert_eq!(rows(&dst), expected);

        // Under the current magic the same rows are taken as they are.
        file[..8].copy_from_slice(MAGIC);
        let mut r = file.as_slice();
        let header = read_header(&mut r).unwrap();
        let txn = dst.begin_write().unwrap();
        clear_tables(&txn).unwrap();
        load_records(&txn, &header, &mut r).unwrap();
        txn.commit().unwrap();
        assert_eq!(rows(&dst).1.len(), 3);
        file[..8].copy_from_slice(b"KVSNAP99");
        assert!(read_header(&mut file.as_slice()).is_err());
    }
}
