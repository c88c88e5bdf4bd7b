//! `Maintenance.Snapshot` as a stream: the state machine is serialized from one redb read
//! transaction straight into the response messages, with no file in between.
//!
//! etcd's wire contract (what `etcdctl snapshot save` and `etcdutl` check): 32 KiB blobs whose
//! `remaining_bytes` count down to 0, the payload padded to a multiple of 512 bytes, then one
//! message holding the SHA-256 of everything before it. `remaining_bytes` needs the size up
//! front, so the transaction is serialized twice: once into a byte counter, once onto the wire.
//! Both passes read the same transaction, so they produce the same bytes.

use std::io::Write;

use redb::ReadTransaction;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::Sender;
use tonic::Status;

use crate::pb::{ResponseHeader, SnapshotResponse};
use crate::raft::snapshot::write_snapshot;

/// Bytes per snapshot message, as etcd.
pub const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// The snapshot payload's size, padded as sent: a multiple of 512 bytes.
pub fn padded_size(txn: &ReadTransaction) -> crate::Result<u64> {
    let mut counter = Counter(0);
    write_snapshot(txn, Vec::new(), &mut counter)?;
    Ok(counter.0.div_ceil(512) * 512)
}

/// Send the snapshot of `txn` (whose padded size is `padded`) on `tx`, then its SHA-256. A
/// receiver that goes away ends the stream early without an error.
pub fn stream(
    txn: &ReadTransaction,
    padded: u64,
    header: &ResponseHeader,
    tx: &Sender<Result<SnapshotResponse, Status>>,
) -> crate::Result<()> {
    let mut out = Chunks {
        tx,
        header,
        sha: Sha256::new(),
        buf: Vec::with_capacity(SNAPSHOT_CHUNK),
        remaining: padded,
    };
    let result = write_snapshot(txn, Vec::new(), &mut out).and_then(|()| out.finish());
    match result {
        Err(crate::Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Counts the bytes written to it.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Cuts what is written into messages of [`SNAPSHOT_CHUNK`] bytes.
struct Chunks<'a> {
    tx: &'a Sender<Result<SnapshotResponse, Status>>,
    header: &'a ResponseHeader,
    sha: Sha256,
    buf: Vec<u8>,
    /// Payload bytes not yet sent, padding included.
    remaining: u64,
}

impl Chunks<'_> {
    fn send(&mut self, blob: Vec<u8>, remaining: u64) -> std::io::Result<()> {
        let msg = SnapshotResponse {
            header: Some(*self.header),
            remaining_bytes: remaining,
            blob,
            ..Default::default()
        };
        self.tx
            .blocking_send(Ok(msg))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    fn send_buf(&mut self) -> std::io::Result<()> {
        let n = self.buf.len() as u64;
        if n > self.remaining {
            // The second pass wrote more than the first counted: never send a wrong count.
            return Err(std::io::Error::other(
                "snapshot grew between its two passes",
            ));
        }
        self.remaining -= n;
        self.sha.update(&self.buf);
        let blob = std::mem::replace(&mut self.buf, Vec::with_capacity(SNAPSHOT_CHUNK));
        self.send(blob, self.remaining)
    }

    /// Pad to the counted size, send what is left, then the digest.
    fn finish(mut self) -> crate::Result<()> {
        while self.remaining > self.buf.len() as u64 {
            let pad = (SNAPSHOT_CHUNK - self.buf.len())
                .min((self.remaining - self.buf.len() as u64) as usize);
            self.buf.resize(self.buf.len() + pad, 0);
            if self.buf.len() == SNAPSHOT_CHUNK {
                self.send_buf()?;
            }
        }
        if !self.buf.is_empty() {
            self.send_buf()?;
        }
        let digest = std::mem::take(&mut self.sha).finalize().to_vec();
        self.send(digest, 0)?;
        Ok(())
    }
}

impl Write for Chunks<'_> {
    fn write(&mut self, mut data: &[u8]) -> std::io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            let take = (SNAPSHOT_CHUNK - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == SNAPSHOT_CHUNK {
                self.send_buf()?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase};

    use super::*;
    use crate::mvcc::write::put_each;
    use crate::raft::snapshot::{Record, read_header, read_record};

    /// A store of `n` keys with 1 KiB values.
    fn store(n: usize) -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("s.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(crate::mvcc::tables::MEMBERS).unwrap();
        txn.open_table(crate::mvcc::tables::ALARMS).unwrap();
        put_each(
            &txn,
            (0..n).map(|i| (format!("key-{i:05}"), vec![i as u8; 1024])),
        );
        txn.commit().unwrap();
        (dir, db)
    }

    #[test]
    fn the_stream_is_etcds_framing_of_the_whole_snapshot() {
        let (_dir, db) = store(100);
        let txn = db.begin_read().unwrap();
        let padded = padded_size(&txn).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        stream(&txn, padded, &ResponseHeader::default(), &tx).unwrap();
        drop(tx);
        let mut msgs = Vec::new();
        while let Ok(m) = rx.try_recv() {
            msgs.push(m.unwrap());
        }
        let (digest, blobs) = msgs.split_last().unwrap();
        assert!(blobs.len() > 3, "{} messages", blobs.len());
        let mut payload = Vec::new();
        for (i, m) in blobs.iter().enumerate() {
            if i + 1 < blobs.len() {
                assert_eq!(m.blob.len(), SNAPSHOT_CHUNK);
            }
            payload.extend_from_slice(&m.blob);
            assert_eq!(m.remaining_bytes, padded - payload.len() as u64);
        }
        assert_eq!(payload.len() as u64, padded);
        assert_eq!(padded % 512, 0);
        assert_eq!(digest.remaining_bytes, 0);
        assert_eq!(digest.blob, Sha256::digest(&payload).to_vec());
        // The payload is a snapshot with every key.
        let mut r = payload.as_slice();
        let header = read_header(&mut r).unwrap();
        let mut keys = 0;
        loop {
            match read_record(&mut r, &header).unwrap() {
                Record::Latest(..) => keys += 1,
                Record::End => break,
                _ => {}
            }
        }
        assert_eq!(keys, 100);
        assert!(r.iter().all(|b| *b == 0), "only padding after the end");
    }

    #[test]
    fn a_receiver_that_goes_away_ends_the_stream_quietly() {
        let (_dir, db) = store(100);
        let txn = db.begin_read().unwrap();
        let padded = padded_size(&txn).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let reader = std::thread::spawn(move || {
            let first = rx.blocking_recv();
            drop(rx);
            first.is_some()
        });
        stream(&txn, padded, &ResponseHeader::default(), &tx).unwrap();
        assert!(reader.join().unwrap());
    }
}
