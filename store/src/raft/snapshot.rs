//! The snapshot file format: a dump of the state machine tables taken from one redb read
//! transaction, written and read as a stream so no snapshot is ever held whole in memory.
//!
//! Layout: the magic `KVSNAP02`, then frames of `[u32 length][u8 tag][fields]`, ending with
//! `Record::End`; integers are big-endian, a field of bytes other than the last of its record
//! is preceded by its u32 length (`Frames::put` spells out each record). The first record is
//! the header (the raft snapshot metadata, if any).
//! Raft uses these files to catch up members; `Maintenance.Snapshot` streams the same bytes
//! (padded and followed by a SHA-256, as etcdctl expects) and `kvctl snapshot restore` reads them.
//!
//! `KVSNAP01` files (kvstore before data format 3) are read too: their frames are bincode
//! `Record`s and their history repeats every live version, whose copies are dropped while
//! loading. Releases before format 3 refuse `KVSNAP02` files (bad magic) rather than misread
//! them.

use std::io::{Read, Write};

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::Deserialize;

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
    /// A `KVSNAP01` file: bincode frames, and a history that holds a copy of every live
    /// version.
    v1: bool,
}

/// One frame of a snapshot.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
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

/// A record as written: the same variants as [`Record`], borrowing from the read transaction.
enum Out<'a> {
    Header(&'a [u8]),
    Latest(&'a [u8], &'a [u8]),
    History(&'a [u8], u64, &'a [u8]),
    RevIndex(u64, u32, &'a [u8]),
    Meta(&'a str, &'a [u8]),
    Lease(i64, &'a [u8]),
    LeaseKey(i64, &'a [u8]),
    Member(u64, &'a [u8]),
    Alarm(u64, i32),
    End,
}

const TAG_HEADER: u8 = 0;
const TAG_LATEST: u8 = 1;
const TAG_HISTORY: u8 = 2;
const TAG_REV_INDEX: u8 = 3;
const TAG_META: u8 = 4;
const TAG_LEASE: u8 = 5;
const TAG_LEASE_KEY: u8 = 6;
const TAG_MEMBER: u8 = 7;
const TAG_ALARM: u8 = 8;
const TAG_END: u8 = 9;

/// Writes frames through one reused buffer.
struct Frames<'w, W: Write> {
    w: &'w mut W,
    buf: Vec<u8>,
}

impl<W: Write> Frames<'_, W> {
    /// Write `r` as one frame: `[u32 body length][u8 tag][fields]`.
    fn put(&mut self, r: Out<'_>) -> Result<()> {
        let b = &mut self.buf;
        b.clear();
        // The tag, then the fields in order; `len` prefixes a byte field that is not last.
        let len = |bytes: &[u8]| (bytes.len() as u32).to_be_bytes();
        let mut put = |tag: u8, fields: &[&[u8]]| {
            b.push(tag);
            for f in fields {
                b.extend_from_slice(f);
            }
        };
        match r {
            Out::Header(m) => put(TAG_HEADER, &[m]),
            Out::Latest(k, v) => put(TAG_LATEST, &[&len(k), k, v]),
            Out::History(k, rev, v) => put(TAG_HISTORY, &[&len(k), k, &rev.to_be_bytes(), v]),
            Out::RevIndex(rev, sub, k) => {
                put(TAG_REV_INDEX, &[&rev.to_be_bytes(), &sub.to_be_bytes(), k])
            }
            Out::Meta(k, v) => put(TAG_META, &[&len(k.as_bytes()), k.as_bytes(), v]),
            Out::Lease(id, v) => put(TAG_LEASE, &[&id.to_be_bytes(), v]),
            Out::LeaseKey(id, k) => put(TAG_LEASE_KEY, &[&id.to_be_bytes(), k]),
            Out::Member(id, v) => put(TAG_MEMBER, &[&id.to_be_bytes(), v]),
            Out::Alarm(m, a) => put(TAG_ALARM, &[&m.to_be_bytes(), &a.to_be_bytes()]),
            Out::End => put(TAG_END, &[]),
        }
        let len = u32::try_from(b.len())
            .map_err(|_| Error::decode("snapshot frame", "record larger than 4 GiB"))?;
        self.w.write_all(&len.to_be_bytes())?;
        self.w.write_all(b)?;
        Ok(())
    }
}

/// Cuts a frame's body into its fields.
struct Fields(Vec<u8>, usize);

impl Fields {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .1
            .checked_add(n)
            .filter(|e| *e <= self.0.len())
            .ok_or_else(|| Error::decode("snapshot record", "truncated"))?;
        let out = &self.0[self.1..end];
        self.1 = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn sized(&mut self) -> Result<Vec<u8>> {
        let n = u32::from_be_bytes(self.array()?) as usize;
        Ok(self.take(n)?.to_vec())
    }

    fn rest(&mut self) -> Vec<u8> {
        let out = self.0[self.1..].to_vec();
        self.1 = self.0.len();
        out
    }
}

/// Decode a `KVSNAP02` frame body.
fn parse(body: Vec<u8>) -> Result<Record> {
    let mut f = Fields(body, 0);
    let [tag] = f.array()?;
    let r = match tag {
        TAG_HEADER => Record::Header(f.rest()),
        TAG_LATEST => Record::Latest(f.sized()?, f.rest()),
        TAG_HISTORY => {
            let k = f.sized()?;
            Record::History(k, u64::from_be_bytes(f.array()?), f.rest())
        }
        TAG_REV_INDEX => {
            let rev = u64::from_be_bytes(f.array()?);
            Record::RevIndex(rev, u32::from_be_bytes(f.array()?), f.rest())
        }
        TAG_META => {
            let k =
                String::from_utf8(f.sized()?).map_err(|e| Error::decode("snapshot meta key", e))?;
            Record::Meta(k, f.rest())
        }
        TAG_LEASE => Record::Lease(i64::from_be_bytes(f.array()?), f.rest()),
        TAG_LEASE_KEY => Record::LeaseKey(i64::from_be_bytes(f.array()?), f.rest()),
        TAG_MEMBER => Record::Member(u64::from_be_bytes(f.array()?), f.rest()),
        TAG_ALARM => {
            let m = u64::from_be_bytes(f.array()?);
            Record::Alarm(m, i32::from_be_bytes(f.array()?))
        }
        TAG_END => Record::End,
        other => {
            return Err(Error::decode(
                "snapshot record",
                format!("unknown record tag {other}"),
            ));
        }
    };
    if f.1 != f.0.len() {
        return Err(Error::decode("snapshot record", "trailing bytes"));
    }
    Ok(r)
}

/// Read one frame of a snapshot whose header is `header`.
pub fn read_record(r: &mut impl Read, header: &Header) -> Result<Record> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 1 << 30 {
        return Err(Error::decode("snapshot frame", "frame too large"));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    if header.v1 {
        decode("snapshot record", &buf)
    } else {
        parse(buf)
    }
}

/// Which META rows belong in a snapshot (raft pointers are carried by the header instead).
fn meta_in_snapshot(key: &str) -> bool {
    key != META_LAST_APPLIED && key != META_MEMBERSHIP
}

/// Dump the state machine as seen by `txn`.
pub fn write_snapshot(txn: &ReadTransaction, header: Vec<u8>, w: &mut impl Write) -> Result<()> {
    w.write_all(MAGIC)?;
    let mut f = Frames {
        w,
        buf: Vec::with_capacity(4096),
    };
    f.put(Out::Header(&header))?;
    for item in txn.open_table(META)?.iter()? {
        let (k, v) = item?;
        if meta_in_snapshot(k.value()) {
            f.put(Out::Meta(k.value(), v.value()))?;
        }
    }
    for item in txn.open_table(KV_LATEST)?.iter()? {
        let (k, v) = item?;
        f.put(Out::Latest(k.value(), v.value()))?;
    }
    for item in txn.open_table(KV_HISTORY)?.iter()? {
        let (k, v) = item?;
        let (key, rev) = k.value();
        f.put(Out::History(key, rev, v.value()))?;
    }
    for item in txn.open_table(REV_INDEX)?.iter()? {
        let (k, v) = item?;
        let (rev, sub) = k.value();
        f.put(Out::RevIndex(rev, sub, v.value()))?;
    }
    for item in txn.open_table(LEASES)?.iter()? {
        let (k, v) = item?;
        f.put(Out::Lease(k.value(), v.value()))?;
    }
    for item in txn.open_table(LEASE_KEYS)?.iter()? {
        let (k, _) = item?;
        let (id, key) = k.value();
        f.put(Out::LeaseKey(id, key))?;
    }
    for item in txn.open_table(MEMBERS)?.iter()? {
        let (k, v) = item?;
        f.put(Out::Member(k.value(), v.value()))?;
    }
    for item in txn.open_table(ALARMS)?.iter()? {
        let (k, _) = item?;
        let (m, a) = k.value();
        f.put(Out::Alarm(m, a))?;
    }
    f.put(Out::End)?;
    f.w.flush()?;
    Ok(())
}

/// Read the magic and the header of a snapshot.
pub fn read_header(r: &mut impl Read) -> Result<Header> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    let v1 = match &magic {
        m if m == MAGIC => false,
        m if m == MAGIC_V1 => true,
        _ => {
            return Err(Error::decode(
                "snapshot",
                "not a kvstore snapshot (bad magic)",
            ));
        }
    };
    let mut header = Header {
        meta: Vec::new(),
        v1,
    };
    match read_record(r, &header)? {
        Record::Header(meta) => {
            header.meta = meta;
            Ok(header)
        }
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
        match read_record(r, header)? {
            Record::Header(_) => return Err(Error::decode("snapshot", "second header")),
            Record::Latest(k, v) => {
                latest.insert(k.as_slice(), v.as_slice())?;
            }
            Record::History(k, rev, v) => {
                // Live versions come before history in every snapshot.
                let copy = header.v1
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
    use crate::mvcc::write::{Store, put_each};

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
    fn every_record_reads_back_as_written() {
        let out = [
            Out::Header(b"meta"),
            Out::Meta("revision", &[0, 0, 0, 0, 0, 0, 0, 9]),
            Out::Latest(b"k", b"live"),
            Out::History(b"k", 3, b"old"),
            Out::History(b"", 4, b""),
            Out::RevIndex(3, 1, b"k"),
            Out::Lease(-7, b"ttl"),
            Out::LeaseKey(7, b"k"),
            Out::Member(u64::MAX, b"attrs"),
            Out::Alarm(5, -1),
            Out::End,
        ];
        let expected = [
            Record::Header(b"meta".to_vec()),
            Record::Meta("revision".into(), vec![0, 0, 0, 0, 0, 0, 0, 9]),
            Record::Latest(b"k".to_vec(), b"live".to_vec()),
            Record::History(b"k".to_vec(), 3, b"old".to_vec()),
            Record::History(Vec::new(), 4, Vec::new()),
            Record::RevIndex(3, 1, b"k".to_vec()),
            Record::Lease(-7, b"ttl".to_vec()),
            Record::LeaseKey(7, b"k".to_vec()),
            Record::Member(u64::MAX, b"attrs".to_vec()),
            Record::Alarm(5, -1),
            Record::End,
        ];
        let mut bytes = Vec::new();
        let mut f = Frames {
            w: &mut bytes,
            buf: Vec::new(),
        };
        for r in out {
            f.put(r).unwrap();
        }
        let header = Header {
            meta: Vec::new(),
            v1: false,
        };
        let mut r = bytes.as_slice();
        for e in expected {
            let got = read_record(&mut r, &header).unwrap();
            assert_eq!(format!("{got:?}"), format!("{e:?}"));
        }
        assert!(r.is_empty());
        // A frame cut short or with an unknown tag is an error, not a guess.
        for bad in [&[0, 0, 0, 2, TAG_LEASE, 1][..], &[0, 0, 0, 1, 42]] {
            assert!(read_record(&mut &bad[..], &header).is_err());
        }
    }

    #[test]
    fn a_kvsnap01_file_loads_without_its_copies_of_live_values() {
        let dir = tempfile::tempdir().unwrap();
        let src = db(&dir, "src.redb");
        let txn = src.begin_write().unwrap();
        put_each(&txn, [("a", "1"), ("a", "2"), ("b", "1")]);
        txn.commit().unwrap();
        let expected = rows(&src);
        assert_eq!(expected.1, vec![(b"a".to_vec(), 2)]);
        // A release before format 3 wrote each live version into history too, under KVSNAP01.
        let txn = src.begin_write().unwrap();
        crate::mvcc::migrate::add_live_copies(&txn);
        txn.commit().unwrap();
        // Its frames: bincode records (the header, the live rows, then history).
        let mut file = MAGIC_V1.to_vec();
        let mut frame = |r: &Record| {
            let bytes = encode(r);
            file.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            file.extend_from_slice(&bytes);
        };
        frame(&Record::Header(Vec::new()));
        for (k, v) in &expected.0 {
            frame(&Record::Latest(k.clone(), v.clone()));
        }
        let txn = src.begin_read().unwrap();
        for item in txn.open_table(KV_HISTORY).unwrap().iter().unwrap() {
            let (k, v) = item.unwrap();
            let (key, rev) = k.value();
            frame(&Record::History(key.to_vec(), rev, v.value().to_vec()));
        }
        frame(&Record::End);

        let dst = db(&dir, "dst.redb");
        let load = |file: &[u8]| {
            let mut r = file;
            let header = read_header(&mut r).unwrap();
            let txn = dst.begin_write().unwrap();
            clear_tables(&txn).unwrap();
            load_records(&txn, &header, &mut r).unwrap();
            txn.commit().unwrap();
            assert!(r.is_empty(), "bytes after the end record");
        };
        load(&file);
        assert_eq!(rows(&dst), expected);

        // A current snapshot of the same store keeps every row it has.
        let mut file = Vec::new();
        write_snapshot(&src.begin_read().unwrap(), Vec::new(), &mut file).unwrap();
        load(&file);
        assert_eq!(rows(&dst).1.len(), 3);
        file[..8].copy_from_slice(b"KVSNAP99");
        assert!(read_header(&mut file.as_slice()).is_err());
    }
}
