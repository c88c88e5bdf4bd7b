//! Snapshots from object storage for `kvctl snapshot restore`: a source given as a URI
//! (`s3://bucket/key`, `gs://...`, `az://...`, `file:///...`) is downloaded to a local file,
//! checked against the SHA-256 it was stored with and, for `.zst` objects, decompressed on the
//! way. Credentials and endpoints come from the usual environment variables of each store
//! (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, `GOOGLE_SERVICE_ACCOUNT_KEY`,
//! `AZURE_STORAGE_ACCOUNT_NAME`, ...).

use std::io::Write;
use std::path::Path;

use futures::StreamExt;
use object_store::ObjectStoreExt;
use sha2::{Digest, Sha256};

use super::error::{CliError, ExitKind, Result};

/// Exit status when the source is refused (missing, damaged, or its checksum differs); a store
/// that cannot be reached exits 2 instead, so that the step is worth running again.
pub const EXIT_SOURCE_REFUSED: u8 = 7;

fn refused(msg: String) -> CliError {
    CliError::new(ExitKind::SourceRefused, msg)
}

/// A failed read of `uri`: refused when the answer is about the object itself (it is missing,
/// or its name is not valid), otherwise an error worth retrying (the store could not be reached,
/// answered with a server error, or refused the credentials, which can be fixed without
/// touching the backup).
fn read_failed(uri: &str, e: &object_store::Error) -> CliError {
    use object_store::Error as E;
    let msg = format!("cannot read {uri} ({e})");
    match e {
        E::NotFound { .. } | E::InvalidPath { .. } => refused(msg),
        _ => CliError::new(ExitKind::BadConnection, msg),
    }
}

/// Whether `source` names an object in a store rather than a local file.
pub fn is_uri(source: &str) -> bool {
    source.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

/// Download `uri` into `dest`, checking `sha256` (hex, of the stored object) when given, and
/// decompressing zstd when the key ends with `.zst`. Returns the stored object's SHA-256.
pub async fn download(uri: &str, dest: &Path, sha256: Option<&str>) -> Result<String> {
    let url = url::Url::parse(uri).map_err(|e| refused(format!("{uri} is not a URI ({e})")))?;
    let env = std::env::vars().map(|(k, v)| (k.to_ascii_lowercase(), v));
    let (store, path) = object_store::parse_url_opts(&url, env)
        .map_err(|e| refused(format!("cannot open {uri} ({e})")))?;
    let mut body = store
        .get(&path)
        .await
        .map_err(|e| read_failed(uri, &e))?
        .into_stream();
    let file = std::fs::File::create(dest)
        .map_err(|e| CliError::error(format!("could not create {} ({e})", dest.display())))?;
    let compressed = uri.ends_with(".zst");
    let mut out: Box<dyn Write> = if compressed {
        Box::new(
            zstd::stream::write::Decoder::new(file)
                .map_err(|e| CliError::error(format!("zstd: {e}")))?,
        )
    } else {
        Box::new(file)
    };
    let mut hash = Sha256::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| read_failed(uri, &e))?;
        hash.update(&chunk);
        out.write_all(&chunk).map_err(|e| {
            refused(format!(
                "writing {} failed ({e}): is {uri} damaged?",
                dest.display()
            ))
        })?;
    }
    out.flush()
        .map_err(|e| refused(format!("{uri} is damaged or truncated ({e})")))?;
    drop(out);
    let got = hex::encode(hash.finalize());
    if let Some(want) = sha256
        && !want.eq_ignore_ascii_case(&got)
    {
        return Err(refused(format!(
            "{uri} has SHA-256 {got}, expected {want}: refusing to restore a damaged backup"
        )));
    }
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(|e| CliError::error(format!("sync {} ({e})", dest.display())))?;
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_paths() {
        assert!(is_uri("s3://b/k.snap"));
        assert!(is_uri("file:///tmp/x.snap"));
        assert!(!is_uri("backup.snap"));
        assert!(!is_uri("/tmp/a://b"));
    }

    #[tokio::test]
    async fn a_compressed_object_is_checked_and_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let raw: Vec<u8> = (0..300_000u32).map(|i| (i % 13) as u8).collect();
        let packed = zstd::encode_all(&raw[..], 3).unwrap();
        let src = dir.path().join("b.snap.zst");
        std::fs::write(&src, &packed).unwrap();
        let uri = format!("file://{}", src.display());
        let want = hex::encode(Sha256::digest(&packed));
        let dest = dir.path().join("out");
        assert_eq!(download(&uri, &dest, Some(&want)).await.unwrap(), want);
        assert_eq!(std::fs::read(&dest).unwrap(), raw);
        let e = download(&uri, &dest, Some("00ff")).await.unwrap_err();
        assert_eq!(e.exit_code(), EXIT_SOURCE_REFUSED);
        assert!(
            e.to_string()
                .contains("refusing to restore a damaged backup"),
            "{e}"
        );
        let e = download(
            &format!("file://{}/nope.snap", dir.path().display()),
            &dest,
            None,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
        assert_eq!(
            e.exit_code(),
            EXIT_SOURCE_REFUSED,
            "a missing object is refused"
        );
    }

    #[test]
    fn a_store_that_fails_is_worth_another_try() {
        let gone = object_store::Error::NotFound {
            path: "b/k".into(),
            source: "404".into(),
        };
        assert_eq!(
            read_failed("s3://b/k", &gone).exit_code(),
            EXIT_SOURCE_REFUSED
        );
        for e in [
            object_store::Error::Generic {
                store: "S3",
                source: "error sending request: connection refused".into(),
            },
            object_store::Error::PermissionDenied {
                path: "b/k".into(),
                source: "403 Forbidden".into(),
            },
        ] {
            let e = read_failed("s3://b/k", &e);
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(e.to_string().starts_with("cannot read s3://b/k ("), "{e}");
        }
    }
}
