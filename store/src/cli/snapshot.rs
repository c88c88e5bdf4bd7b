//! `snapshot save|restore|status`. `save` streams Maintenance.Snapshot from exactly one
//! endpoint into `FILE.part`, checks the SHA-256 trailer, fsyncs and renames it; `restore`
//! and `status` work offline on the file through [`crate::restore`].

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use clap::{ArgAction, Args, Subcommand};

use super::client::{Conn, within};
use super::error::{CliError, ExitKind, Result};
use super::output::{Format, emit, go_list, humanize_bytes, table};
use super::{Ctx, json};
use crate::pb::SnapshotRequest;
use crate::restore::{self, RestoreOptions, SnapshotStatus};

/// `snapshot <subcommand>`.
#[derive(Debug, Clone, Subcommand)]
pub enum SnapshotCmd {
    /// Stores a member's snapshot to a given file: save <filename>
    Save {
        /// <filename>
        args: Vec<String>,
    },
    /// Restores a snapshot into a fresh data directory of a new cluster: restore <filename>
    Restore(Box<RestoreArgs>),
    /// Gets the status of a snapshot file: status <filename>
    Status {
        /// <filename>
        args: Vec<String>,
    },
}

/// `snapshot restore <filename> [options]`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// Path to the data directory (default: <name>.kvstore)
    #[arg(long, default_value = "")]
    pub data_dir: String,
    /// Initial cluster configuration for restore bootstrap
    #[arg(long, default_value = "default=http://localhost:2380")]
    pub initial_cluster: String,
    /// Initial cluster token for the cluster during restore bootstrap
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// List of this member's peer URLs (default: its URLs in --initial-cluster)
    #[arg(long)]
    pub initial_advertise_peer_urls: Option<String>,
    /// Human-readable name for this member
    #[arg(long, default_value = "default")]
    pub name: String,
    /// SHA-256 (hex) the source object must have (a URI source; as stored, before decompression)
    #[arg(long)]
    pub sha256: Option<String>,
    /// Replace a non-empty data directory (its data is lost) instead of refusing
    #[arg(long)]
    pub replace_data_dir: bool,
    /// Restore only once per MARKER: if the data directory already holds a restore with this
    /// marker, do nothing (for init containers that run again)
    #[arg(long)]
    pub once: Option<String>,
    /// Do nothing unless --name is this (one pod template for every member, one restores)
    #[arg(long)]
    pub only_for: Option<String>,
    /// Ignore snapshot integrity hash value (required if copied from data directory)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub skip_hash_check: bool,
    /// Raise the restored revision by this much, so that every revision the new store hands
    /// out is above any a client of the old one saw (needs --mark-compacted)
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub bump_revision: u64,
    /// Make the restored (raised) revision the compaction point: reads and watches at older
    /// revisions are refused as compacted, so clients relist (needs --bump-revision > 0)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub mark_compacted: bool,
    /// <filename>
    pub args: Vec<String>,
}

/// Download the snapshot into `part` and make it durable; returns its size.
async fn download(conn: &Conn, part: &Path) -> Result<u64> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(part)
        .map_err(|e| CliError::error(format!("could not open {} ({e})", part.display())))?;
    // The first chunk must come within the command timeout (never hang on a dead server).
    let t = conn.command_timeout();
    let mut stream = within(t, conn.maintenance().snapshot(SnapshotRequest {})).await?;
    let mut next = tokio::time::timeout(t, stream.message())
        .await
        .map_err(|_| CliError::deadline())??;
    let mut size = 0u64;
    while let Some(msg) = next {
        f.write_all(&msg.blob)?;
        size += msg.blob.len() as u64;
        next = stream.message().await?;
    }
    f.sync_all()?;
    drop(f);
    restore::verify(part)
        .map_err(|e| CliError::error(format!("the downloaded snapshot is corrupt: {e}")))?;
    Ok(size)
}

async fn save(ctx: &Ctx, args: &[String]) -> Result<()> {
    let [path] = args else {
        return Err(CliError::bad_args("snapshot save expects one argument"));
    };
    let interrupted = |e: CliError| e.with_kind(ExitKind::Interrupted);
    if ctx.endpoints.len() != 1 {
        return Err(interrupted(CliError::error(format!(
            "snapshot must be requested to one selected node, not multiple {}",
            go_list(&ctx.endpoints)
        ))));
    }
    let conn = Conn::dial(&ctx.endpoints[0], ctx.dial_timeout, ctx.command_timeout)
        .await
        .map_err(interrupted)?;
    let part = format!("{path}.part");
    // As etcdctl: no time limit unless --command-timeout is given explicitly.
    let limit = if ctx.command_timeout_set {
        ctx.command_timeout
    } else {
        Duration::MAX
    };
    let r = match tokio::time::timeout(limit, download(&conn, Path::new(&part))).await {
        Ok(r) => r,
        Err(_) => Err(CliError::deadline()),
    };
    if let Err(e) = r {
        let _ = std::fs::remove_file(&part);
        return Err(interrupted(e));
    }
    std::fs::rename(&part, path).map_err(|e| {
        interrupted(CliError::error(format!(
            "could not rename {part} to {path} ({e})"
        )))
    })?;
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    emit(&format!("Snapshot saved at {path}\n"))
}

fn status_out(ctx: &Ctx, s: &SnapshotStatus) -> Result<()> {
    let row = vec![
        format!("{:x}", s.hash),
        s.revision.to_string(),
        s.total_keys.to_string(),
        humanize_bytes(s.total_size),
    ];
    match ctx.printer.format {
        Format::Json => emit(
            &(json::Obj::new()
                .num("hash", s.hash)
                .num("revision", s.revision)
                .num("totalKey", s.total_keys)
                .num("totalSize", s.total_size)
                .done()
                + "\n"),
        ),
        Format::Fields => emit(&format!(
            "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
            s.hash, s.revision, s.total_keys, s.total_size
        )),
        Format::Table => emit(&table(
            &["hash", "revision", "total keys", "total size"],
            &[row],
        )),
        Format::Protobuf => Err(super::output::unsupported(Format::Protobuf)),
        Format::Simple => emit(&(row.join(", ") + "\n")),
    }
}

/// The marker file a `--once` restore leaves in the data directory.
fn marker(data_dir: &Path, once: &str) -> std::path::PathBuf {
    let safe: String = once
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    data_dir.join(format!("restored-{safe}"))
}

async fn restore_cmd(a: RestoreArgs) -> Result<()> {
    let [path] = a.args.as_slice() else {
        return Err(CliError::bad_args(
            "snapshot restore requires exactly one argument",
        ));
    };
    restore::check_bump(a.bump_revision, a.mark_compacted)
        .map_err(|e| CliError::bad_args(e.to_string()))?;
    let data_dir = if a.data_dir.is_empty() {
        format!("{}.kvstore", a.name)
    } else {
        a.data_dir.clone()
    };
    if let Some(only) = &a.only_for
        && *only != a.name
    {
        return emit(&format!(
            "Nothing to restore for {} (only {only} restores)\n",
            a.name
        ));
    }
    if let Some(once) = &a.once
        && marker(Path::new(&data_dir), once).exists()
    {
        return emit(&format!("{data_dir} already holds restore {once}\n"));
    }
    // A snapshot in object storage is downloaded (and checked) next to the data directory
    // before anything of the data directory is touched.
    let parent = Path::new(&data_dir)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let fetched = if super::fetch::is_uri(path) {
        std::fs::create_dir_all(&parent)
            .map_err(|e| CliError::error(format!("could not create {} ({e})", parent.display())))?;
        let local = parent.join(".kvctl-restore.download");
        super::fetch::download(path, &local, a.sha256.as_deref()).await?;
        Some(local)
    } else {
        None
    };
    let dir = Path::new(&data_dir);
    if a.replace_data_dir && dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| CliError::error(format!("could not remove {data_dir} ({e})")))?;
    }
    let opts = RestoreOptions {
        snapshot: fetched.clone().unwrap_or_else(|| path.into()),
        data_dir: data_dir.clone().into(),
        name: a.name,
        initial_cluster: a.initial_cluster,
        initial_cluster_token: a.initial_cluster_token,
        initial_advertise_peer_urls: a
            .initial_advertise_peer_urls
            .map(|u| u.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        skip_hash_check: a.skip_hash_check,
        bump_revision: a.bump_revision,
        mark_compacted: a.mark_compacted,
    };
    let res = restore::restore(&opts);
    if let Some(f) = &fetched {
        let _ = std::fs::remove_file(f);
    }
    let s = res?;
    if let Some(once) = &a.once {
        std::fs::write(marker(dir, once), format!("{path}\n"))
            .map_err(|e| CliError::error(format!("could not mark {data_dir} ({e})")))?;
    }
    let revision = if s.revision == s.snapshot_revision {
        s.revision.to_string()
    } else {
        format!(
            "{}, raised to {} and compacted there",
            s.snapshot_revision, s.revision
        )
    };
    emit(&format!(
        "Restored snapshot {path} (revision {revision}) into {data_dir}: member {:x} of new \
         cluster {:x}\n",
        s.member_id, s.cluster_id
    ))
}

/// `snapshot ...`.
pub async fn snapshot(ctx: &Ctx, cmd: SnapshotCmd) -> Result<()> {
    match cmd {
        SnapshotCmd::Save { args } => save(ctx, &args).await,
        SnapshotCmd::Restore(a) => restore_cmd(*a).await,
        SnapshotCmd::Status { args } => {
            let [path] = args.as_slice() else {
                return Err(CliError::bad_args(
                    "snapshot status requires exactly one argument",
                ));
            };
            let s = restore::status(Path::new(path))?;
            status_out(ctx, &s)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn restore_args(flags: &[&str]) -> RestoreArgs {
        let argv = ["kvctl", "snapshot", "restore", "s.db"].iter().chain(flags);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Snapshot(SnapshotCmd::Restore(a)) => *a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn restore_takes_etcdutls_revision_flags() {
        let a = restore_args(&[]);
        assert_eq!((a.bump_revision, a.mark_compacted), (0, false));
        let a = restore_args(&["--bump-revision", "1000000000", "--mark-compacted"]);
        assert_eq!((a.bump_revision, a.mark_compacted), (1_000_000_000, true));
        let a = restore_args(&["--bump-revision=7", "--mark-compacted=true"]);
        assert_eq!((a.bump_revision, a.mark_compacted), (7, true));
    }

    #[tokio::test]
    async fn restore_refuses_one_revision_flag_without_the_other_before_touching_anything() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        for flags in [&["--mark-compacted"][..], &["--bump-revision=5"]] {
            let mut a = restore_args(flags);
            a.data_dir = data.display().to_string();
            let e = restore_cmd(a).await.unwrap_err();
            assert_eq!(e.kind, ExitKind::BadArgs, "{flags:?}");
            assert_eq!(e.message, restore::BUMP_NEEDS_MARK, "{flags:?}");
            assert!(!data.exists());
        }
    }
}
