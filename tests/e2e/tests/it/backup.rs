//! Backups and restore end to end, as a user: a real S3-compatible server (s3s-fs, signatures
//! checked), a KVCluster backing up every minute with `keepLast: 2`, `kubectl patch` of
//! `spec.backup.trigger`, wrong credentials and their repair, an in-place restore through
//! `spec.restore.requestId` (acted on once), a new cluster from `bootstrap.fromBackup`, and a
//! corrupted backup refused with the cluster left as it was.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use kv_crds::v1alpha1::KVCluster;
use kv_e2e::s3::S3Server;
use kv_e2e::{Env, can_run, settled};
use sha2::{Digest, Sha256};

use crate::etcdctl;

const NS: &str = "default";
const BUCKET: &str = "kvb";
/// Where the operator writes `bk`'s backups: the default prefix `<namespace>/<name>`.
const PREFIX: &str = "default/bk";

fn cluster(s3: &S3Server, name: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: kvstore.io/v1alpha1
kind: KVCluster
metadata: {{name: {name}}}
spec:
  version: "0.1.0"
  backup:
    store:
      provider: S3
      bucket: {BUCKET}
      prefix: {PREFIX}
      endpoint: {endpoint}
      region: us-east-1
      pathStyle: true
      credentialsSecret: s3-creds
{extra}"#,
        endpoint = s3.endpoint
    )
}

fn secret(s3: &S3Server, secret_key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: s3-creds}}\nstringData:\n  accessKeyId: {}\n  secretAccessKey: {secret_key}\n",
        s3.access_key
    )
}

fn backup(k: &KVCluster) -> kv_crds::v1alpha1::BackupStatus {
    k.status
        .as_ref()
        .and_then(|s| s.backup.clone())
        .unwrap_or_default()
}

fn last_name(k: &KVCluster) -> String {
    backup(k)
        .last_successful
        .map(|r| r.name)
        .unwrap_or_default()
}

fn backup_ready(k: &KVCluster) -> Option<(String, String)> {
    k.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "BackupReady")
            .map(|c| (c.status.clone(), c.message.clone()))
    })
}

/// The backups in the bucket: name, and whether the snapshot's SHA-256 and size match its
/// metadata object.
fn stored(s3: &S3Server) -> Result<Vec<(String, bool)>> {
    let dir = s3.object_path(BUCKET, PREFIX);
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
        let file = e?.file_name().to_string_lossy().to_string();
        let Some(name) = file.strip_suffix(".snap.zst") else {
            continue;
        };
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json")))?)?;
        let bytes = std::fs::read(dir.join(&file))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        let ok = meta["sha256"] == sha.as_str() && meta["size"] == bytes.len() as u64;
        out.push((name.to_string(), ok));
    }
    out.sort();
    Ok(out)
}

async fn endpoints(env: &Env, name: &str) -> Result<String> {
    let eps = env.service_endpoints(NS, name).await?;
    if eps.is_empty() {
        bail!("no ready endpoint behind Service {name}");
    }
    Ok(eps.join(","))
}

/// `key=value` lines of every key under `prefix` (`""`: the whole keyspace).
async fn dump(env: &Env, name: &str, prefix: &str) -> Result<Vec<String>> {
    let out = etcdctl(&endpoints(env, name).await?, &["get", prefix, "--prefix"])?;
    let lines: Vec<&str> = out.lines().collect();
    Ok(lines.chunks(2).map(|kv| kv.join("=")).collect())
}

const WAIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_to_s3_and_restore_through_the_resource() -> Result<()> {
    if let Err(why) = can_run() {
        panic!("the end-to-end environment cannot run here: {why}");
    }
    let env = Env::start().await?;
    let dir = tempfile::tempdir()?;
    let r = match S3Server::start(env.node().gateway(), &dir.path().join("s3"), &[BUCKET]) {
        Ok(s3) => scenario(&env, &s3).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &r {
        eprintln!("scenario failed: {e:#}");
        env.print_operator_log(60);
    }
    env.stop().await;
    r
}

async fn scenario(env: &Env, s3: &S3Server) -> Result<()> {
    let t0 = std::time::Instant::now();
    let step = |what: &str| println!("[{:6.1} s] {what}", t0.elapsed().as_secs_f64());
    step("helm install");
    env.install_operator().await?;
    env.kubectl_stdin(&["apply", "-n", NS, "-f", "-"], &secret(s3, &s3.secret_key))?;

    step("a cluster backing up every minute, keeping 2");
    let spec = cluster(
        s3,
        "bk",
        "    schedule: \"* * * * *\"\n    retention: {keepLast: 2}\n    compression: Zstd\n  replicas: 3\n",
    );
    let out = env.kubectl_stdin(&["apply", "-n", NS, "-f", "-"], &spec)?;
    if !out.status.success() {
        bail!("apply: {}", String::from_utf8_lossy(&out.stderr));
    }
    env.wait_kvc(NS, "bk", "Available", WAIT, |k| settled(k, 3))
        .await?;
    let eps = endpoints(env, "bk").await?;
    for i in 1..=5 {
        etcdctl(&eps, &["put", &format!("a/{i}"), "one"])?;
    }

    step("kubectl patch spec.backup.trigger");
    env.patch_kvc_ok(NS, "bk", r#"{"spec":{"backup":{"trigger":"t1"}}}"#)?;
    let took = env
        .wait_kvc(NS, "bk", "the triggered backup", WAIT, |k| {
            backup(k).last_trigger.as_deref() == Some("t1") && last_name(k).ends_with("-manual")
        })
        .await?;
    println!("triggered backup done in {:.1} s", took.as_secs_f64());
    let manual: Vec<_> = stored(s3)?
        .into_iter()
        .filter(|(n, _)| n.ends_with("-manual"))
        .collect();
    assert_eq!(manual.len(), 1, "one trigger, one backup: {manual:?}");
    assert!(manual[0].1, "SHA-256 and size match the metadata");

    step("two scheduled backups; retention keeps exactly 2");
    let k = env.kvc(NS, "bk").await?;
    let first = last_name(&k);
    let seen = std::sync::Mutex::new(vec![first.clone()]);
    env.wait_kvc(NS, "bk", "two scheduled backups", WAIT, |k| {
        let n = last_name(k);
        let mut s = seen.lock().unwrap();
        if n.ends_with("-scheduled") && !s.contains(&n) {
            s.push(n);
        }
        s.len() >= 3
    })
    .await?;
    let all = stored(s3)?;
    println!("stored: {all:?}");
    assert_eq!(all.len(), 2, "keepLast 2: {all:?}");
    assert!(
        all.iter().all(|(n, ok)| *ok && n.ends_with("-scheduled")),
        "{all:?}"
    );
    assert_eq!(
        env.kvc(NS, "bk")
            .await?
            .status
            .unwrap()
            .backup
            .unwrap()
            .kept,
        2
    );
    env.patch_kvc_ok(NS, "bk", r#"{"spec":{"backup":{"suspend":true}}}"#)?;

    step("wrong credentials: BackupReady False, writes go on");
    env.kubectl_stdin(&["apply", "-n", NS, "-f", "-"], &secret(s3, "wrong"))?;
    env.patch_kvc_ok(NS, "bk", r#"{"spec":{"backup":{"trigger":"t2"}}}"#)?;
    env.wait_kvc(NS, "bk", "BackupReady False", WAIT, |k| {
        backup_ready(k).is_some_and(|(s, _)| s == "False")
    })
    .await?;
    let (_, why) = backup_ready(&env.kvc(NS, "bk").await?).unwrap();
    println!("BackupReady False: {why}");
    assert!(why.contains("the last backup failed"), "{why}");
    etcdctl(
        &endpoints(env, "bk").await?,
        &["put", "during-outage", "ok"],
    )?;
    etcdctl(&endpoints(env, "bk").await?, &["del", "during-outage"])?;
    env.kubectl_stdin(&["apply", "-n", NS, "-f", "-"], &secret(s3, &s3.secret_key))?;
    env.patch_kvc_ok(NS, "bk", r#"{"spec":{"backup":{"trigger":"t3"}}}"#)?;
    env.wait_kvc(NS, "bk", "BackupReady True again", WAIT, |k| {
        backup(k).last_trigger.as_deref() == Some("t3")
            && last_name(k).ends_with("-manual")
            && backup_ready(k).is_some_and(|(s, _)| s == "True")
    })
    .await?;
    let k = env.kvc(NS, "bk").await?;
    let good = backup(&k).last_successful.unwrap();
    let old_cluster = k.status.as_ref().unwrap().cluster_id.clone().unwrap();
    let backed_up = dump(env, "bk", "").await?;
    assert_eq!(backed_up.len(), 5, "{backed_up:?}");

    step("change the data, then restore through spec.restore");
    let eps = endpoints(env, "bk").await?;
    etcdctl(&eps, &["put", "a/1", "two"])?;
    etcdctl(&eps, &["del", "a/2"])?;
    etcdctl(&eps, &["put", "b/1", "new"])?;
    // The guard: without acknowledging data loss the API server refuses the request.
    let out = env.patch_kvc(
        NS,
        "bk",
        r#"{"spec":{"restore":{"requestId":"r0","source":"latest"}}}"#,
    )?;
    assert!(
        !out.status.success(),
        "a restore without acknowledgeDataLoss was accepted"
    );
    println!("refused: {}", String::from_utf8_lossy(&out.stderr).trim());
    let req = format!(
        r#"{{"spec":{{"restore":{{"requestId":"r1","source":"{}","acknowledgeDataLoss":true}}}}}}"#,
        good.name
    );
    env.patch_kvc_ok(NS, "bk", &req)?;
    let seen = std::sync::Mutex::new(String::new());
    let asked = std::time::Instant::now();
    let took = env
        .wait_kvc(NS, "bk", "restored and Available", WAIT, |k| {
            // Each phase as it is reached (a figure for the report).
            let now = format!(
                "{:?}/{:?}",
                k.status
                    .as_ref()
                    .and_then(|s| s.restore.as_ref())
                    .map(|r| &r.phase),
                k.status.as_ref().and_then(|s| s.phase.as_ref())
            );
            let mut last = seen.lock().unwrap();
            if *last != now {
                println!(
                    "  {:5.1} s  restore/cluster phase {now}",
                    asked.elapsed().as_secs_f64()
                );
                *last = now;
            }
            let phase = k
                .status
                .as_ref()
                .and_then(|s| s.restore.as_ref())
                .filter(|r| r.request_id == "r1")
                .map(|r| r.phase.as_str());
            phase == Some("Failed") || phase == Some("Complete") && settled(k, 3)
        })
        .await?;
    let k = env.kvc(NS, "bk").await?;
    let st = k.status.clone().unwrap();
    let restore = st.restore.clone().unwrap();
    println!("status.restore: {restore:?}");
    // The first member's init container restored it, from S3, with the checksum checked.
    let log = env.kubectl(&["logs", "-n", NS, "bk-0", "-c", "restore"])?;
    let log = String::from_utf8_lossy(&log.stdout).into_owned();
    println!("restore container: {}", log.trim());
    if restore.phase == "Failed" {
        env.print_operator_log(60);
        bail!("the restore failed: {:?}", restore.message);
    }
    println!("restore to Available: {:.1} s", took.as_secs_f64());
    assert!(
        log.contains(&format!("Restored snapshot {}", good.uri)),
        "{log}"
    );
    let new_cluster = st.cluster_id.clone().unwrap();
    assert_ne!(new_cluster, old_cluster, "a restore makes a new cluster id");
    assert_eq!(restore.cluster_id.as_deref(), Some(new_cluster.as_str()));
    assert_eq!(restore.restored_revision, Some(good.revision));
    assert!(
        restore.safety_backup.is_some(),
        "a safety backup was taken first"
    );
    // One safety backup, and the restored one outlives keepLast 2 while the spec names it.
    let all = stored(s3)?;
    println!("stored: {all:?}");
    let safety = all.iter().filter(|(n, _)| n.ends_with("-safety")).count();
    assert_eq!(safety, 1, "one request, one safety backup: {all:?}");
    assert!(all.iter().any(|(n, _)| *n == good.name), "{all:?}");
    // Exactly the backed-up keys: a/1 has its old value again, a/2 is back, b/1 is gone.
    assert_eq!(
        dump(env, "bk", "").await?,
        backed_up,
        "exactly the backed-up data"
    );
    // The same request again does nothing.
    env.patch_kvc_ok(NS, "bk", &req)?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let again = env.kvc(NS, "bk").await?.status.unwrap();
    assert_eq!(
        again.restore,
        Some(restore.clone()),
        "the same requestId acted on twice"
    );
    assert_eq!(again.cluster_id.as_deref(), Some(new_cluster.as_str()));

    step("a new cluster from bootstrap.fromBackup");
    let spec = cluster(
        s3,
        "bk2",
        &format!(
            "  replicas: 1\n  bootstrap: {{fromBackup: {}}}\n",
            good.name
        ),
    );
    let out = env.kubectl_stdin(&["apply", "-n", NS, "-f", "-"], &spec)?;
    if !out.status.success() {
        bail!("apply bk2: {}", String::from_utf8_lossy(&out.stderr));
    }
    let took = env
        .wait_kvc(NS, "bk2", "Available from the backup", WAIT, |k| {
            settled(k, 1)
        })
        .await?;
    println!(
        "bootstrap from backup to Available: {:.1} s",
        took.as_secs_f64()
    );
    assert_eq!(dump(env, "bk2", "").await?, backed_up);
    env.kubectl_ok(&["delete", "kvc", "bk2", "-n", NS, "--wait=true"])?;

    step("a corrupted backup is refused; the cluster stays as it was");
    let snap = s3.object_path(BUCKET, &format!("{PREFIX}/{}.snap.zst", good.name));
    let mut bytes = std::fs::read(&snap)?;
    let (mid, len) = (bytes.len() / 2, bytes.len());
    for b in &mut bytes[mid..(mid + 16).min(len)] {
        *b ^= 0xff;
    }
    std::fs::write(&snap, &bytes)?;
    let req = format!(
        r#"{{"spec":{{"restore":{{"requestId":"r2","source":"{}","acknowledgeDataLoss":true}}}}}}"#,
        good.name
    );
    env.patch_kvc_ok(NS, "bk", &req)?;
    env.wait_kvc(NS, "bk", "the restore refused", WAIT, |k| {
        k.status.as_ref().is_some_and(|s| {
            s.restore
                .as_ref()
                .is_some_and(|r| r.request_id == "r2" && r.phase == "Failed")
        })
    })
    .await?;
    let k = env.kvc(NS, "bk").await?;
    let st = k.status.unwrap();
    let msg = st
        .restore
        .as_ref()
        .unwrap()
        .message
        .clone()
        .unwrap_or_default();
    println!("refused: {msg}");
    assert!(
        msg.to_lowercase().contains("sha-256") || msg.to_lowercase().contains("checksum"),
        "{msg}"
    );
    assert_eq!(st.cluster_id.as_deref(), Some(new_cluster.as_str()));
    env.wait_kvc(NS, "bk", "still Available", WAIT, |k| settled(k, 3))
        .await?;
    assert_eq!(dump(env, "bk", "").await?, backed_up);
    etcdctl(&endpoints(env, "bk").await?, &["put", "after", "ok"])?;
    Ok(())
}
