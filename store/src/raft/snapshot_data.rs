//! The snapshot handle openraft passes around (`TypeConfig::SnapshotData`), for a member that
//! keeps no snapshot files.
//!
//! The state machine is itself durable, so a Raft snapshot is the state machine at a durable
//! point: building one makes `state.redb` durable and reports what it holds, and lets the log
//! be purged behind it, without writing the keyspace anywhere (etcd likewise sends its bbolt
//! file and keeps only Raft metadata in its snapshot files). Bytes are needed only when a
//! follower must receive the snapshot: then the handle holds the read transaction of that
//! durable point and writes the snapshot from it ([`super::snapshot`]'s format) into an
//! anonymous file, on the blocking pool, on its first read or seek. The file has no name, so it
//! is gone when the handle is dropped or the member crashes: no second copy of the keyspace
//! stays on disk.
//!
//! A handle for receiving is such a file from the start; the chunks written into it are loaded
//! into the state machine by `install_snapshot`.

use std::future::Future;
use std::io::{BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use redb::ReadTransaction;
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;

use super::snapshot::write_snapshot;

/// A snapshot's bytes: written on demand from a read transaction, or an anonymous file.
pub struct SnapshotData {
    state: State,
    /// A seek asked for before the file existed, done once it does.
    seek: Option<SeekFrom>,
}

enum State {
    /// Not written yet: the transaction to write it from, the header to put first, and the
    /// directory the file goes to (on the data volume, not the system's temp dir).
    Pending {
        txn: Box<ReadTransaction>,
        header: Vec<u8>,
        dir: PathBuf,
    },
    /// Being written on the blocking pool.
    Writing(JoinHandle<std::io::Result<std::fs::File>>),
    /// Written (or receiving): reads, writes and seeks go to the file.
    Ready(tokio::fs::File),
    /// Writing failed; every later call reports it.
    Failed(String),
}

impl SnapshotData {
    /// A snapshot to be written from `txn` when first read, `header` (the encoded Raft snapshot
    /// metadata) as its first record, into an anonymous file in `dir`.
    pub fn pending(txn: ReadTransaction, header: Vec<u8>, dir: &Path) -> Self {
        SnapshotData {
            state: State::Pending {
                txn: Box::new(txn),
                header,
                dir: dir.to_path_buf(),
            },
            seek: None,
        }
    }

    /// An empty anonymous file in `dir`, to receive a snapshot into.
    pub fn receiving(dir: &Path) -> std::io::Result<Self> {
        let file = tempfile::tempfile_in(dir)?;
        Ok(SnapshotData {
            state: State::Ready(tokio::fs::File::from_std(file)),
            seek: None,
        })
    }

    /// Whether the bytes exist yet (written, or a receiving file).
    pub fn is_written(&self) -> bool {
        matches!(self.state, State::Ready(_))
    }

    /// The whole snapshot as a file positioned at its start (written first if pending).
    pub async fn into_file(mut self) -> std::io::Result<std::fs::File> {
        std::future::poll_fn(|cx| self.poll_written(cx)).await?;
        let State::Ready(mut file) = self.state else {
            unreachable!("poll_written returned Ok without a file");
        };
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        let mut file = file.into_std().await;
        file.seek(SeekFrom::Start(0))?;
        Ok(file)
    }

    /// Drive the state to `Ready`: start writing a pending snapshot, wait for the writer.
    fn poll_written(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        loop {
            match &mut self.state {
                State::Ready(_) => return Poll::Ready(Ok(())),
                State::Failed(why) => return Poll::Ready(Err(std::io::Error::other(why.clone()))),
                State::Pending { .. } => {
                    let State::Pending { txn, header, dir } =
                        std::mem::replace(&mut self.state, State::Failed("moved".into()))
                    else {
                        unreachable!()
                    };
                    self.state = State::Writing(tokio::task::spawn_blocking(move || {
                        write_file(&txn, header, &dir)
                    }));
                }
                State::Writing(handle) => {
                    let res = ready!(Pin::new(handle).poll(cx));
                    self.state = match res {
                        Ok(Ok(file)) => State::Ready(tokio::fs::File::from_std(file)),
                        Ok(Err(e)) => State::Failed(format!("writing a snapshot: {e}")),
                        Err(e) => State::Failed(format!("writing a snapshot: {e}")),
                    };
                }
            }
        }
    }

    /// The file, once [`Self::poll_written`] returned `Ok`.
    fn file(&mut self) -> Pin<&mut tokio::fs::File> {
        match &mut self.state {
            State::Ready(f) => Pin::new(f),
            _ => unreachable!("the snapshot file is used only once written"),
        }
    }
}

/// Write the snapshot of `txn` into a new anonymous file in `dir`; the file is positioned at
/// its start. It needs no fsync: nothing relies on it surviving a crash.
fn write_file(
    txn: &ReadTransaction,
    header: Vec<u8>,
    dir: &Path,
) -> std::io::Result<std::fs::File> {
    let mut w = BufWriter::new(tempfile::tempfile_in(dir)?);
    write_snapshot(txn, header, &mut w).map_err(std::io::Error::other)?;
    let mut file = w.into_inner().map_err(|e| e.into_error())?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

impl AsyncRead for SnapshotData {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_written(cx))?;
        me.file().poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotData {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        ready!(me.poll_written(cx))?;
        me.file().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        if !me.is_written() {
            return Poll::Ready(Ok(()));
        }
        me.file().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        if !me.is_written() {
            return Poll::Ready(Ok(()));
        }
        me.file().poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotData {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> std::io::Result<()> {
        let me = self.get_mut();
        if me.is_written() {
            me.file().start_seek(position)
        } else {
            me.seek = Some(position);
            Ok(())
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        let me = self.get_mut();
        ready!(me.poll_written(cx))?;
        if let Some(position) = me.seek.take() {
            me.file().start_seek(position)?;
        }
        me.file().poll_complete(cx)
    }
}
