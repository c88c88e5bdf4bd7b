//! Single pods: environment, volumes, DNS, probes, restarts, termination.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;

use crate::common::{Env, can_run, phase, ready};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_runs_with_env_and_logs() -> Result<()> {
    if !can_run() {
        return Ok(());
    }
    let env = Env::start().await?;
    let r = async {
        env.create::<Pod>(
            "default",
            r#"
metadata: {name: hello}
spec:
  containers:
  - name: main
    image: sh:1
    command: [sh, -c]
    args: ['echo "name=$(POD_NAME) ip=$POD_IP greeting=$GREETING"; sleep 1000']
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: WHO, value: world}
    - {name: GREETING, value: "hello $(WHO) $$(WHO)"}
"#,
        )
        .await?;
        let p = env
            .wait_pod("default", "hello", Duration::from_secs(10), ready)
            .await?;
        let ip = p.status.as_ref().unwrap().pod_ip.clone().unwrap();
        assert!(ip.starts_with("10.213."), "{ip}");
        let logs = env
            .until("logs", Duration::from_secs(5), || async {
                let l = env
                    .pods("default")
                    .logs("hello", &Default::default())
                    .await?;
                Ok((!l.is_empty()).then_some(l))
            })
            .await?;
        assert_eq!(
            logs.trim(),
            format!("name=hello ip={ip} greeting=hello world $(WHO)")
        );
        assert_eq!(phase(&p), "Running");
        Ok(())
    }
    .await;
    env.stop().await;
    r
}

fn container_status(p: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    p.status.as_ref()?.container_statuses.as_ref()?.first()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_service_account_and_dns() -> Result<()> {
    if !can_run() {
        return Ok(());
    }
    let env = Env::start().await?;
    let r = async {
        env.create::<k8s_openapi::api::core::v1::Secret>(
            "default",
            "metadata: {name: creds}\nstringData: {user: admin, pass: s3cret}\n",
        )
        .await?;
        env.create::<k8s_openapi::api::core::v1::ConfigMap>(
            "default",
            "metadata: {name: conf}\ndata: {app.toml: 'x = 1', other: y}\n",
        )
        .await?;
        env.create::<k8s_openapi::api::core::v1::Service>(
            "default",
            r#"
metadata: {name: peer}
spec: {clusterIP: None, publishNotReadyAddresses: true, selector: {app: dns},
       ports: [{name: p, port: 80}]}
"#,
        )
        .await?;
        for name in ["a", "b"] {
            env.create::<Pod>(
                "default",
                &format!(
                    r#"
metadata: {{name: {name}, labels: {{app: dns}}}}
spec:
  hostname: {name}
  subdomain: peer
  containers:
  - name: main
    image: sh
    command: [sh, -c, 'sleep 1000']
    volumeMounts:
    - {{name: creds, mountPath: /etc/kube-node-test/creds}}
    - {{name: conf, mountPath: /kube-node-test-data/conf}}
    - {{name: scratch, mountPath: /var/lib/kube-node-test/scratch}}
  volumes:
  - {{name: creds, secret: {{secretName: creds, defaultMode: 256, items: [{{key: user, path: u/name}}]}}}}
  - {{name: conf, configMap: {{name: conf}}}}
  - {{name: scratch, emptyDir: {{}}}}
"#
                ),
            )
            .await?;
        }
        let a = env.wait_pod("default", "a", Duration::from_secs(10), ready).await?;
        env.wait_pod("default", "b", Duration::from_secs(10), ready).await?;
        let a_ip = a.status.unwrap().pod_ip.unwrap();
        let node = env.node();
        let sh = |cmd: &'static str| async move {
            let out = node.exec("default", "b", &["sh", "-c", cmd]).await?;
            anyhow::Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let resolved = env
            .until("dns", Duration::from_secs(5), || async {
                let out = sh("getent hosts a.peer.default.svc.cluster.local").await?;
                Ok((!out.is_empty()).then_some(out))
            })
            .await?;
        assert!(resolved.starts_with(&a_ip), "{resolved} vs {a_ip}");
        let svc = sh("getent hosts peer.default.svc").await?;
        assert!(!svc.is_empty(), "service name resolves");
        let api = sh("getent hosts kubernetes.default.svc").await?;
        assert!(api.starts_with(&node.gateway().to_string()), "{api}");
        assert_eq!(sh("cat /etc/kube-node-test/creds/u/name").await?, "admin");
        assert_eq!(sh("stat -c %a /etc/kube-node-test/creds/u/name").await?, "400");
        assert_eq!(sh("cat /kube-node-test-data/conf/app.toml").await?, "x = 1");
        let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
        assert_eq!(sh("cat /var/run/secrets/kubernetes.io/serviceaccount/namespace").await?, "default");
        assert!(sh("cat /var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
            .await?
            .starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!sh("cat /var/run/secrets/kubernetes.io/serviceaccount/token").await?.is_empty());
        assert_eq!(sh("hostname").await?, "b");
        assert!(sh("touch /var/lib/kube-node-test/scratch/f && echo ok").await? == "ok");
        for host_path in ["/kube-node-test-data", "/etc/kube-node-test", "/var/lib/kube-node-test", sa] {
            assert!(!std::path::Path::new(host_path).exists(), "{host_path} made on the host");
        }
        Ok(())
    }
    .await;
    env.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_restarts_and_termination() -> Result<()> {
    if !can_run() {
        return Ok(());
    }
    let env = Env::start().await?;
    let r = async {
        env.create::<Pod>(
            "default",
            r#"
metadata: {name: slow}
spec:
  containers:
  - name: main
    image: sh
    command: [sh, -c, 'sleep 1.5; touch /ready/ok; sleep 1000']
    readinessProbe: {exec: {command: [test, -f, /ready/ok]}, periodSeconds: 1}
    volumeMounts: [{name: r, mountPath: /ready}]
  volumes: [{name: r, emptyDir: {}}]
"#,
        )
        .await?;
        env.create::<Pod>(
            "default",
            r#"
metadata: {name: crash}
spec:
  containers:
  - name: main
    image: sh
    command: [sh, -c, 'echo boom; exit 3']
    terminationMessagePolicy: FallbackToLogsOnError
"#,
        )
        .await?;
        env.create::<Pod>(
            "default",
            r#"
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: sh, command: [sh, -c, "trap '' TERM; while true; do sleep 0.2; done"]}
"#,
        )
        .await?;
        env.create::<Pod>(
            "default",
            r#"
metadata: {name: polite}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - {name: main, image: sh, command: [sh, -c, "trap 'echo bye; exit 0' TERM; while true; do sleep 0.2; done"]}
"#,
        )
        .await?;
        let p = env
            .wait_pod("default", "slow", Duration::from_secs(10), |p| phase(p) == "Running")
            .await?;
        assert!(!ready(&p), "not ready before the file exists");
        env.wait_pod("default", "slow", Duration::from_secs(10), ready).await?;

        let c = env
            .wait_pod("default", "crash", Duration::from_secs(15), |p| {
                container_status(p).is_some_and(|c| c.restart_count >= 2)
            })
            .await?;
        let cs = container_status(&c).unwrap();
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 3);
        assert_eq!(last.message.as_deref(), Some("boom"));

        env.wait_pod("default", "stubborn", Duration::from_secs(10), ready).await?;
        env.wait_pod("default", "polite", Duration::from_secs(10), ready).await?;
        let killed = env.node().kill_container("default", "polite", 9)?;
        assert_eq!(killed, 1);
        let p = env
            .wait_pod("default", "polite", Duration::from_secs(10), |p| {
                container_status(p).is_some_and(|c| c.restart_count == 1 && c.ready)
            })
            .await?;
        let last = container_status(&p).unwrap().last_state.clone().unwrap();
        assert_eq!(last.terminated.unwrap().exit_code, 137);

        let started = tokio::time::Instant::now();
        let pids = env.node().pids("default", "polite");
        env.pods("default").delete("polite", &Default::default()).await?;
        env.pods("default").delete("stubborn", &Default::default()).await?;
        for name in ["polite", "stubborn"] {
            env.until("pod deleted", Duration::from_secs(10), || async {
                Ok(env.pods("default").get_opt(name).await?.is_none().then_some(()))
            })
            .await?;
        }
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "graceful exit is quick: {took:?}");
        assert!(took >= Duration::from_millis(900), "SIGKILL only after the grace: {took:?}");
        for (_, pid) in pids {
            assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        }
        let log = env.dir.path().join("api/logs/default/polite/main.log");
        assert!(std::fs::read_to_string(log)?.contains("bye"));
        Ok(())
    }
    .await;
    env.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_and_liveness() -> Result<()> {
    if !can_run() {
        return Ok(());
    }
    let env = Env::start().await?;
    let r = async {
        env.create::<Pod>(
            "default",
            r#"
metadata: {name: inited}
spec:
  initContainers:
  - {name: first, image: sh, command: [sh, -c, 'echo one > /w/steps'],
     volumeMounts: [{name: w, mountPath: /w}]}
  - {name: second, image: sh, command: [sh, -c, 'echo two >> /w/steps'],
     volumeMounts: [{name: w, mountPath: /w}]}
  containers:
  - name: main
    image: sh
    command: [sh, -c, 'cat /w/steps; sleep 1000']
    volumeMounts: [{name: w, mountPath: /w}]
  volumes: [{name: w, emptyDir: {}}]
"#,
        )
        .await?;
        env.create::<Pod>(
            "default",
            r#"
metadata: {name: live}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: sh
    command: [sh, -c, 'if [ -f /s/once ]; then rm -f /s/dead; else touch /s/once; sleep 0.5; touch /s/dead; fi; sleep 1000']
    livenessProbe: {exec: {command: [test, '!', -f, /s/dead]}, periodSeconds: 1, failureThreshold: 1}
    volumeMounts: [{name: s, mountPath: /s}]
  volumes: [{name: s, emptyDir: {}}]
"#,
        )
        .await?;
        let p = env.wait_pod("default", "inited", Duration::from_secs(10), ready).await?;
        let inits = p.status.unwrap().init_container_statuses.unwrap();
        assert!(inits.iter().all(|c| c
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0)));
        let logs = env
            .until("logs", Duration::from_secs(5), || async {
                let l = env.pods("default").logs("inited", &Default::default()).await?;
                Ok((!l.is_empty()).then_some(l))
            })
            .await?;
        assert_eq!(logs, "one\ntwo\n");
        let p = env
            .wait_pod("default", "live", Duration::from_secs(15), |p| {
                container_status(p).is_some_and(|c| c.restart_count == 1 && c.ready)
            })
            .await?;
        let last = container_status(&p).unwrap().last_state.clone().unwrap();
        assert_eq!(last.terminated.unwrap().exit_code, 143, "SIGTERM from the liveness kill");
        Ok(())
    }
    .await;
    env.stop().await;
    r
}
