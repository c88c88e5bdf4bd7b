//! End to end, as a user: `helm install` the operator, `kubectl apply` a KVCluster, etcdctl
//! through the client Service, `kubectl scale`, a killed leader, a wiped volume, a version
//! roll under a writer, delete; bad manifests refused. Backups and restore are in [`backup`].
//! One environment per scenario, each a long sequence of steps (starting the environment costs
//! more than each step).

mod backup;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kv_e2e::{Env, can_run, settled, workspace};

const NS: &str = "default";

pub(crate) fn etcdctl(eps: &str, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={eps}"))
        .arg("--dial-timeout=3s")
        .arg("--command-timeout=10s")
        .args(args)
        .output()
        .context("etcdctl (Debian etcd-client) must be installed")?;
    if !out.status.success() {
        bail!(
            "etcdctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// A writer that keeps putting keys through the client Service's endpoints, re-reading them
/// when a member goes away; it records every acknowledged key and the longest time without a
/// successful write.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    longest_gap: Arc<Mutex<Duration>>,
    task: tokio::task::JoinHandle<()>,
    /// Failed writes: seconds since the writer started, and why.
    errors: Arc<Mutex<Vec<(f64, String)>>>,
}

impl Writer {
    fn start(env: &Env) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let longest_gap = Arc::new(Mutex::new(Duration::ZERO));
        let client = env.client.clone();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (s, a, g, errs) = (
            stop.clone(),
            acked.clone(),
            longest_gap.clone(),
            errors.clone(),
        );
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let eps_api: kube::Api<k8s_openapi::api::core::v1::Endpoints> =
                kube::Api::namespaced(client, NS);
            let mut last_ok = Instant::now();
            let mut conn: Option<etcd_client::Client> = None;
            let mut using = String::new();
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                if conn.is_none() {
                    let eps: Vec<String> = eps_api
                        .get_opt("demo")
                        .await
                        .ok()
                        .flatten()
                        .and_then(|e| e.subsets)
                        .unwrap_or_default()
                        .into_iter()
                        .flat_map(|s| s.addresses.unwrap_or_default())
                        .map(|a| format!("http://{}:2379", a.ip))
                        .collect();
                    let opts = etcd_client::ConnectOptions::new()
                        .with_connect_timeout(Duration::from_millis(500))
                        .with_timeout(Duration::from_secs(1));
                    using = eps.join(",");
                    conn = etcd_client::Client::connect(eps, Some(opts)).await.ok();
                }
                let key = format!("w/{i:06}");
                let sent = Instant::now();
                let res = match conn.as_mut() {
                    Some(c) => c
                        .put(key.clone(), "v", None)
                        .await
                        .map_err(|e| e.to_string()),
                    None => Err("no connection".to_string()),
                };
                if let Err(e) = &res {
                    errs.lock()
                        .unwrap()
                        .push((started.elapsed().as_secs_f64(), format!("{e} [{using}]")));
                }
                if res.is_ok() {
                    // Slow answers are part of a gap too: say where they went.
                    if sent.elapsed() > Duration::from_millis(300) {
                        errs.lock().unwrap().push((
                            started.elapsed().as_secs_f64(),
                            format!(
                                "(no error) the put took {:.2} s [{using}]",
                                sent.elapsed().as_secs_f64()
                            ),
                        ));
                    }
                    let gap = last_ok.elapsed();
                    {
                        let mut longest = g.lock().unwrap();
                        *longest = (*longest).max(gap);
                    }
                    last_ok = Instant::now();
                    a.lock().unwrap().push(key);
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                } else {
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        Writer {
            stop,
            acked,
            longest_gap,
            task,
            errors,
        }
    }

    /// Reset the longest gap (to measure one phase).
    fn reset_gap(&self) {
        *self.longest_gap.lock().unwrap() = Duration::ZERO;
    }

    fn errors(&self) -> Vec<(f64, String)> {
        self.errors.lock().unwrap().clone()
    }

    fn gap(&self) -> Duration {
        *self.longest_gap.lock().unwrap()
    }

    async fn stop(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = (&mut self.task).await;
        self.acked.lock().unwrap().clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.abort();
    }
}

/// The highest Raft term the members report (`etcdctl endpoint status`).
async fn raft_term(env: &Env) -> Result<u64> {
    let eps = env.service_endpoints(NS, "demo").await?.join(",");
    let out = etcdctl(&eps, &["endpoint", "status", "-w", "json"])?;
    let all: Vec<serde_json::Value> = serde_json::from_str(&out)?;
    all.iter()
        .filter_map(|e| e["Status"]["raftTerm"].as_u64())
        .max()
        .with_context(|| format!("no raftTerm in {out}"))
}

/// How often the containers of pod `name` have restarted (a member pod runs one).
async fn restarts(env: &Env, name: &str) -> Result<i32> {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(env.client.clone(), NS);
    let pod = pods.get(name).await?;
    Ok(pod
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default()
        .iter()
        .map(|c| c.restart_count)
        .sum())
}

async fn wait_settled(env: &Env, n: i32, what: &str) -> Result<Duration> {
    env.wait_kvc(NS, "demo", what, Duration::from_secs(180), |k| {
        settled(k, n)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_lifecycle_with_helm_kubectl_and_etcdctl() -> Result<()> {
    if let Err(why) = can_run() {
        panic!("the end-to-end environment cannot run here: {why}");
    }
    let env = Env::start().await?;
    let r = scenario(&env).await;
    if let Err(e) = &r {
        eprintln!("scenario failed: {e:#}");
        env.print_operator_log(80);
        if let Ok(o) = env.kubectl(&["get", "events", "-n", NS]) {
            eprintln!("events:\n{}", String::from_utf8_lossy(&o.stdout));
        }
        env.print_logs(NS, "app.kubernetes.io/instance=demo", 100);
    }
    env.stop().await;
    r
}

async fn scenario(env: &Env) -> Result<()> {
    let t0 = Instant::now();
    let step = |what: &str| println!("[{:6.1} s] {what}", t0.elapsed().as_secs_f64());
    step("helm install");
    env.install_operator().await?;
    step("bad manifests");

    // Bad manifests are refused by the API server with a clear message.
    for (file, says) in [
        ("replicas-zero.yaml", "should be greater than or equal to 1"),
        ("replicas-ten.yaml", "should be less than or equal to 9"),
        ("unknown-field.yaml", "unknown field"),
    ] {
        let path = workspace().join("tests/manifests/bad").join(file);
        let out = env.kubectl(&["apply", "-n", NS, "-f", path.to_str().unwrap()])?;
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{file} was accepted");
        assert!(err.contains(says), "{file}: {err}");
    }

    // Create: Available with a leader.
    step("create");
    let example = workspace().join("deploy/examples/kvcluster-minimal.yaml");
    env.kubectl_ok(&["apply", "-n", NS, "-f", example.to_str().unwrap()])?;
    let took = wait_settled(env, 3, "Available with 3 voters").await?;
    println!("apply to Available: {:.1} s", took.as_secs_f64());
    let got = env.kubectl_ok(&["get", "kvc", "demo", "-n", NS])?;
    assert!(got.contains("demo-") && got.contains("True"), "{got}");
    // A changed storage class is refused (create-only).
    let out = env.patch_kvc(
        NS,
        "demo",
        r#"{"spec":{"storage":{"storageClassName":"other"}}}"#,
    )?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be changed"));

    // etcdctl through the client Service.
    step("etcdctl");
    let eps = env.service_endpoints(NS, "demo").await?.join(",");
    etcdctl(&eps, &["put", "hello", "world"])?;
    assert_eq!(
        etcdctl(&eps, &["get", "hello", "--print-value-only"])?.trim(),
        "world"
    );

    let writer = Writer::start(env);

    // Scale to 5 (through learners) and back to 3; volumes kept (default Retain).
    step("scale 5 then 3");
    env.kubectl_ok(&["scale", "kvc", "demo", "-n", NS, "--replicas", "5"])?;
    let saw_learner = Arc::new(AtomicBool::new(false));
    let seen = saw_learner.clone();
    env.wait_kvc(NS, "demo", "5 voters", Duration::from_secs(180), move |k| {
        if k.status.as_ref().is_some_and(|s| s.learners > 0) {
            seen.store(true, Ordering::Relaxed);
        }
        settled(k, 5)
    })
    .await?;
    assert!(
        saw_learner.load(Ordering::Relaxed),
        "members joined as learners first"
    );
    env.kubectl_ok(&["scale", "kvc", "demo", "-n", NS, "--replicas", "3"])?;
    wait_settled(env, 3, "back to 3 voters").await?;
    env.kubectl_ok(&["get", "pvc", "data-demo-4", "-n", NS])?;

    // Kill the leader's process: a new leader, the pod restarts, Degraded then Available.
    step("kill the leader");
    let leader = env.kvc(NS, "demo").await?.status.unwrap().leader.unwrap();
    let restarts_before = restarts(env, &leader).await?;
    let term_before = raft_term(env).await?;
    let killed_at = k8s_openapi::jiff::Timestamp::now();
    env.node().kill_container(NS, &leader, 9)?;
    // Degraded is seen while it lasts, or afterwards by its transition time: a member that is
    // back within one reconcile leaves only the transition behind.
    env.wait_kvc(NS, "demo", "Degraded", Duration::from_secs(60), move |k| {
        k.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Degraded")
                || s.ready_replicas < 3
                || s.conditions.iter().any(|c| {
                    c.type_ == "Degraded"
                        && (c.status == "True"
                            || c.last_transition_time
                                .as_deref()
                                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                                .is_some_and(|t| t >= killed_at))
                })
        })
    })
    .await?;
    wait_settled(env, 3, "Available again after the leader was killed").await?;
    let restarts_after = restarts(env, &leader).await?;
    assert!(
        restarts_after > restarts_before,
        "the killed member's container restarted ({restarts_before} -> {restarts_after})"
    );
    let new_leader = env.kvc(NS, "demo").await?.status.unwrap().leader;
    let term_after = raft_term(env).await?;
    println!(
        "leader {leader} killed (term {term_before}); leader now {new_leader:?} (term {term_after})"
    );
    assert!(
        new_leader.is_some() && term_after > term_before,
        "a leader elected in a new term after the leader was killed"
    );

    // Wipe a follower's volume: it is replaced by a new member and catches up. Member 0 when
    // it follows: it bootstrapped the cluster, and must not bootstrap another one now.
    step("wipe a volume");
    let k = env.kvc(NS, "demo").await?;
    let st = k.status.unwrap();
    let victim = st
        .members
        .iter()
        .filter(|m| Some(&m.name) != st.leader.as_ref())
        .min_by_key(|m| m.name.clone())
        .unwrap()
        .clone();
    env.node()
        .wipe_volume(NS, &format!("data-{}", victim.name))?;
    env.node().kill_container(NS, &victim.name, 9)?;
    let old_id = victim.member_id.clone();
    let name = victim.name.clone();
    env.wait_kvc(
        NS,
        "demo",
        "the wiped member replaced",
        Duration::from_secs(180),
        move |k| {
            settled(k, 3)
                && k.status.as_ref().is_some_and(|s| {
                    s.members
                        .iter()
                        .any(|m| m.name == name && m.member_id != old_id)
                })
        },
    )
    .await?;
    let replaced = env.kvc(NS, "demo").await?.status.unwrap();
    let new_id = replaced
        .members
        .iter()
        .find(|m| m.name == victim.name)
        .and_then(|m| m.member_id.clone());
    println!(
        "{} wiped: member {:?} replaced by {new_id:?}",
        victim.name, victim.member_id
    );

    // A new version rolls one member at a time, leader last, while the writer writes.
    step("roll a new version");
    let leader_before = env.kvc(NS, "demo").await?.status.unwrap().leader.unwrap();
    writer.reset_gap();
    env.patch_kvc_ok(NS, "demo", r#"{"spec":{"version":"0.1.1"}}"#)?;
    // Which pod is replaced when: one member at a time, the leader last.
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(env.client.clone(), NS);
    let uid_of = |p: &k8s_openapi::api::core::v1::Pod| p.metadata.uid.clone().unwrap_or_default();
    let list = kube::api::ListParams::default().labels("app.kubernetes.io/instance=demo");
    let before: std::collections::HashMap<String, String> = pods
        .list(&list)
        .await?
        .items
        .iter()
        .map(|p| (p.metadata.name.clone().unwrap_or_default(), uid_of(p)))
        .collect();
    let mut replaced: Vec<String> = Vec::new();
    let started = Instant::now();
    loop {
        for p in pods.list(&list).await?.items {
            let name = p.metadata.name.clone().unwrap_or_default();
            if before.get(&name).is_some_and(|u| *u != uid_of(&p)) && !replaced.contains(&name) {
                replaced.push(name);
            }
        }
        let k = env.kvc(NS, "demo").await?;
        if replaced.len() == before.len() && settled(&k, 3) {
            break;
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!(
                "the roll did not finish: replaced {replaced:?}; {:?}",
                k.status
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("roll order: {replaced:?} (leader was {leader_before})");
    assert_eq!(
        replaced.last(),
        Some(&leader_before),
        "the leader's pod goes last"
    );
    let gap = writer.gap();
    let errors = writer.errors();
    println!("writes failed or slow during the run: {}", errors.len());
    for (t, e) in &errors {
        println!("  at {t:.2} s: {e}");
    }
    println!(
        "longest write gap during the roll: {:.2} s",
        gap.as_secs_f64()
    );
    // The cluster's election timeout is the default 1000 ms: a writer never waits longer.
    assert!(
        gap < Duration::from_millis(1000),
        "writes stalled for {gap:?} during the roll, longer than an election timeout"
    );

    // Every acknowledged write is there.
    step("check acknowledged writes");
    let acked = writer.stop().await;
    assert!(
        acked.len() > 50,
        "the writer wrote only {} keys",
        acked.len()
    );
    let eps = env.service_endpoints(NS, "demo").await?.join(",");
    let count = etcdctl(
        &eps,
        &["get", "w/", "--prefix", "--keys-only", "-w", "json"],
    )?;
    let v: serde_json::Value = serde_json::from_str(&count)?;
    assert!(
        v["count"].as_u64().unwrap_or(0) >= acked.len() as u64,
        "{} acknowledged, {count}",
        acked.len()
    );

    // Delete: children garbage-collected, volumes kept.
    step("delete");
    env.kubectl_ok(&["delete", "kvc", "demo", "-n", NS, "--wait=true"])?;
    let sts = env.kubectl(&["get", "statefulset", "demo", "-n", NS])?;
    assert!(
        !sts.status.success(),
        "the StatefulSet outlived its KVCluster"
    );
    env.kubectl_ok(&["get", "pvc", "data-demo-0", "-n", NS])?;
    Ok(())
}
