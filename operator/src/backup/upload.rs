//! Taking a backup and checking one: a member's snapshot is streamed (never held whole in
//! memory), hashed, optionally zstd-compressed and uploaded in parts; its metadata object is
//! written last. Verification streams the object back and compares size and SHA-256.

use std::io::Write;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use super::objects::{Backups, Metadata};
use kv_crds::v1alpha1::Compression;

/// Why a backup or a check failed, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The member's snapshot stream failed.
    #[error("reading the snapshot from {member} failed: {reason}")]
    Snapshot {
        /// Member.
        member: String,
        /// Why.
        reason: String,
    },
    /// Writing to or reading from the store failed.
    #[error("backup store {uri}: {source}")]
    Store {
        /// Where.
        uri: String,
        /// Why.
        source: object_store::Error,
    },
    /// The stored backup is not what its metadata says.
    #[error("backup {name} is damaged: {reason}")]
    Damaged {
        /// Backup.
        name: String,
        /// Why.
        reason: String,
    },
}

/// Where a snapshot comes from and what it is.
pub struct Source<S> {
    /// The snapshot bytes, in chunks.
    pub chunks: S,
    /// Cluster id (hex).
    pub cluster_id: String,
    /// Member name.
    pub member: String,
    /// Store revision.
    pub revision: i64,
    /// Raft index.
    pub raft_index: u64,
    /// Raft term.
    pub raft_term: u64,
    /// Store version.
    pub store_version: String,
}

/// Part size of multipart uploads (S3's minimum is 5 MiB).
const PART: usize = 8 << 20;
/// Parts in flight at once: bounds memory to about `PART * IN_FLIGHT`.
const IN_FLIGHT: usize = 2;

/// Upload the snapshot of `src` as backup `name`.
pub async fn upload<S>(
    b: &Backups,
    name: &str,
    compression: Compression,
    src: Source<S>,
    time: chrono::DateTime<chrono::Utc>,
) -> Result<Metadata, BackupError>
where
    S: Stream<Item = Result<Bytes, String>> + Unpin,
{
    let file = match compression {
        Compression::Zstd => format!("{name}.snap.zst"),
        Compression::None => format!("{name}.snap"),
    };
    let key = b.key(&file);
    let store_err = |source| BackupError::Store {
        uri: b.uri(&file),
        source,
    };
    let upload = b.store.put_multipart(&key).await.map_err(store_err)?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut zstd = match compression {
        Compression::Zstd => {
            Some(zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd level 3 is valid"))
        }
        Compression::None => None,
    };
    let mut hash = Sha256::new();
    let (mut size, mut raw) = (0u64, 0u64);
    let mut put = |bytes: &[u8], w: &mut WriteMultipart| {
        hash.update(bytes);
        size += bytes.len() as u64;
        w.write(bytes);
    };
    let mut chunks = src.chunks;
    let failed = loop {
        let chunk = match chunks.next().await {
            None => break None,
            Some(Err(reason)) => {
                break Some(BackupError::Snapshot {
                    member: src.member.clone(),
                    reason,
                });
            }
            Some(Ok(c)) => c,
        };
        raw += chunk.len() as u64;
        match &mut zstd {
            Some(z) => {
                z.write_all(&chunk).expect("writing to a Vec cannot fail");
                let out = std::mem::take(z.get_mut());
                put(&out, &mut w);
            }
            None => put(&chunk, &mut w),
        }
        if let Err(e) = w.wait_for_capacity(IN_FLIGHT).await {
            break Some(store_err(e));
        }
    };
    if let Some(e) = failed {
        let _ = w.abort().await;
        return Err(e);
    }
    if let Some(z) = zstd {
        let rest = z.finish().expect("finishing into a Vec cannot fail");
        put(&rest, &mut w);
    }
    w.finish().await.map_err(store_err)?;
    let meta = Metadata {
        name: name.to_string(),
        cluster_id: src.cluster_id,
        member: src.member,
        revision: src.revision,
        raft_index: src.raft_index,
        raft_term: src.raft_term,
        time: super::timestamp(time),
        size,
        sha256: hex::encode(hash.finalize()),
        snapshot_size: raw,
        compression: match compression {
            Compression::Zstd => "zstd".into(),
            Compression::None => "none".into(),
        },
        store_version: src.store_version,
        object: file,
    };
    let json = serde_json::to_vec_pretty(&meta).expect("metadata serializes");
    let meta_file = format!("{name}.json");
    b.store
        .put(&b.key(&meta_file), PutPayload::from(json))
        .await
        .map_err(|source| BackupError::Store {
            uri: b.uri(&meta_file),
            source,
        })?;
    Ok(meta)
}

/// Read backup `name`'s metadata.
pub async fn metadata(b: &Backups, name: &str) -> Result<Metadata, BackupError> {
    let file = format!("{name}.json");
    let got = b
        .store
        .get(&b.key(&file))
        .await
        .map_err(|source| BackupError::Store {
            uri: b.uri(&file),
            source,
        })?;
    let bytes = got.bytes().await.map_err(|source| BackupError::Store {
        uri: b.uri(&file),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| BackupError::Damaged {
        name: name.into(),
        reason: format!("its metadata is not valid: {e}"),
    })
}

/// Check backup `name` end to end: stream the object and compare size and SHA-256 with the
/// metadata. Returns the metadata when it matches.
pub async fn verify(b: &Backups, name: &str) -> Result<Metadata, BackupError> {
    let meta = metadata(b, name).await?;
    let store_err = |source| BackupError::Store {
        uri: b.uri(&meta.object),
        source,
    };
    let mut body = b
        .store
        .get(&b.key(&meta.object))
        .await
        .map_err(store_err)?
        .into_stream();
    let mut hash = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(store_err)?;
        size += chunk.len() as u64;
        hash.update(&chunk);
    }
    let sha = hex::encode(hash.finalize());
    if size != meta.size || sha != meta.sha256 {
        return Err(BackupError::Damaged {
            name: name.into(),
            reason: format!(
                "the object has {size} bytes with SHA-256 {sha}, its metadata says {} bytes \
                 with SHA-256 {}",
                meta.size, meta.sha256
            ),
        });
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_crds::v1alpha1::{BackupStore, StoreProvider};

    fn source(data: Vec<u8>) -> Source<impl Stream<Item = Result<Bytes, String>> + Unpin> {
        let chunks: Vec<Result<Bytes, String>> = data
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Source {
            chunks: futures::stream::iter(chunks),
            cluster_id: "c1".into(),
            member: "demo-1".into(),
            revision: 42,
            raft_index: 50,
            raft_term: 2,
            store_version: "0.1.0".into(),
        }
    }

    fn local() -> (tempfile::TempDir, Backups) {
        let dir = tempfile::tempdir().unwrap();
        let spec = BackupStore {
            provider: StoreProvider::Filesystem,
            path: Some(dir.path().display().to_string()),
            ..Default::default()
        };
        let b = Backups::open(&spec, None, "db", "demo").unwrap();
        (dir, b)
    }

    #[tokio::test]
    async fn upload_then_verify_both_compressions_and_detect_damage() {
        let (dir, b) = local();
        // 20 MiB of compressible data: several parts.
        let data: Vec<u8> = (0..20 << 20).map(|i| (i % 251) as u8).collect();
        let t = "2026-01-01T00:00:00Z".parse().unwrap();
        for (name, c) in [("plain", Compression::None), ("small", Compression::Zstd)] {
            let m = upload(&b, name, c, source(data.clone()), t).await.unwrap();
            assert_eq!(m.snapshot_size, data.len() as u64);
            assert_eq!(m.revision, 42);
            let v = verify(&b, name).await.unwrap();
            assert_eq!(v, m);
            if c == Compression::Zstd {
                assert!(m.size < m.snapshot_size / 10, "zstd compressed: {}", m.size);
                let stored = std::fs::read(dir.path().join("db/demo/small.snap.zst")).unwrap();
                assert_eq!(zstd::decode_all(&stored[..]).unwrap(), data);
            } else {
                assert_eq!(m.size, data.len() as u64);
            }
        }
        // Flip one byte of the stored object: verification names the mismatch.
        let p = dir.path().join("db/demo/plain.snap");
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[1000] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        let e = verify(&b, "plain").await.unwrap_err().to_string();
        assert!(
            e.contains("backup plain is damaged") && e.contains("SHA-256"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_failing_snapshot_stream_leaves_no_backup() {
        let (dir, b) = local();
        let chunks = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err("connection reset".to_string()),
        ]);
        let src = Source {
            chunks,
            cluster_id: "c1".into(),
            member: "demo-2".into(),
            revision: 1,
            raft_index: 1,
            raft_term: 1,
            store_version: "0.1.0".into(),
        };
        let t = "2026-01-01T00:00:00Z".parse().unwrap();
        let e = upload(&b, "broken", Compression::Zstd, src, t)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "reading the snapshot from demo-2 failed: connection reset"
        );
        assert!(!dir.path().join("db/demo/broken.json").exists());
        let e = verify(&b, "broken").await.unwrap_err().to_string();
        assert!(e.contains("broken.json"), "{e}");
    }
}
