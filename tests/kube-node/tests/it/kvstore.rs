//! The real thing: a 3-member kvstore StatefulSet shaped like the one the operator builds
//! (`operator/golden/minimal-running.yaml`, bootstrapping with `--initial-cluster-state=new`
//! and shorter probe periods), members finding each other by their DNS names, replicating.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Env, can_run, kvstore_bin};

const PEER_SVC: &str = r#"
metadata: {name: demo-peer, labels: {app.kubernetes.io/name: kvstore}}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  ports: [{name: client, port: 2379}, {name: peer, port: 2380}]
  selector: {app.kubernetes.io/component: member, app.kubernetes.io/instance: demo, app.kubernetes.io/name: kvstore}
"#;

const STS: &str = r#"
metadata: {name: demo}
spec:
  replicas: 3
  podManagementPolicy: Parallel
  serviceName: demo-peer
  updateStrategy: {type: OnDelete}
  selector:
    matchLabels: {app.kubernetes.io/component: member, app.kubernetes.io/instance: demo, app.kubernetes.io/name: kvstore}
  template:
    metadata:
      labels: {app.kubernetes.io/component: member, app.kubernetes.io/instance: demo, app.kubernetes.io/name: kvstore}
    spec:
      enableServiceLinks: false
      terminationGracePeriodSeconds: 30
      securityContext: {fsGroup: 65532, runAsGroup: 65532, runAsNonRoot: true, runAsUser: 65532}
      containers:
      - name: kvstore
        image: kvstore:0.1.0
        args:
        - --name=$(POD_NAME)
        - --data-dir=/var/lib/kvstore/data
        - --listen-client-urls=http://0.0.0.0:2379
        - --advertise-client-urls=http://$(POD_NAME).demo-peer.default.svc.cluster.local:2379
        - --listen-peer-urls=http://0.0.0.0:2380
        - --initial-advertise-peer-urls=http://$(POD_NAME).demo-peer.default.svc.cluster.local:2380
        - --initial-cluster=demo-0=http://demo-0.demo-peer.default.svc.cluster.local:2380,demo-1=http://demo-1.demo-peer.default.svc.cluster.local:2380,demo-2=http://demo-2.demo-peer.default.svc.cluster.local:2380
        - --initial-cluster-state=new
        - --initial-cluster-token=default-demo-11111111
        - --heartbeat-interval=100
        - --election-timeout=1000
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        ports: [{containerPort: 2379, name: client}, {containerPort: 2380, name: peer}]
        startupProbe: {httpGet: {path: /livez, port: 2379}, periodSeconds: 1, failureThreshold: 60, timeoutSeconds: 5}
        readinessProbe: {httpGet: {path: /readyz, port: client}, periodSeconds: 1, failureThreshold: 3, timeoutSeconds: 5}
        livenessProbe: {httpGet: {path: /livez, port: 2379}, periodSeconds: 10, failureThreshold: 6, timeoutSeconds: 5}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        terminationMessagePolicy: FallbackToLogsOnError
        volumeMounts: [{mountPath: /var/lib/kvstore, name: data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#;

/// One request to kvstore's JSON gateway at `ip:2379`.
async fn gateway(ip: Ipv4Addr, path: &str, body: &Value) -> Result<Value> {
    let mut s = tokio::net::TcpStream::connect((ip, 2379)).await?;
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {ip}:2379\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP body")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{path}: {head}\n{body}");
    }
    Ok(serde_json::from_str(body)?)
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kvstore_statefulset_replicates() -> Result<()> {
    if !can_run() {
        return Ok(());
    }
    if !kvstore_bin().exists() {
        eprintln!(
            "skipped: {} missing (cargo build -p kvstore --bins, or set KVSTORE_BIN)",
            kvstore_bin().display()
        );
        return Ok(());
    }
    let env = Env::start().await?;
    let r = async {
        env.create::<Service>("default", PEER_SVC).await?;
        env.create::<StatefulSet>("default", STS).await?;
        let sts: Api<StatefulSet> = Api::namespaced(env.client.clone(), "default");
        env.until("3 ready members", Duration::from_secs(40), || async {
            let s = sts.get_status("demo").await?.status.unwrap_or_default();
            Ok((s.ready_replicas == Some(3)).then_some(()))
        })
        .await?;
        let node = env.node();
        let ip = |i: usize| {
            node.pod_ip("default", &format!("demo-{i}"))
                .expect("pod ip")
        };
        let members = gateway(ip(1), "/v3/cluster/member/list", &json!({})).await?;
        assert_eq!(
            members["members"].as_array().map(Vec::len),
            Some(3),
            "{members}"
        );
        gateway(
            ip(0),
            "/v3/kv/put",
            &json!({"key": b64("greeting"), "value": b64("hello")}),
        )
        .await?;
        let got = gateway(ip(2), "/v3/kv/range", &json!({"key": b64("greeting")})).await?;
        assert_eq!(got["kvs"][0]["value"], b64("hello"), "{got}");
        Ok(())
    }
    .await;
    env.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_cuts_a_pod_off_and_heals() -> Result<()> {
    if !can_run() || !kvstore_bin().exists() {
        return Ok(());
    }
    let env = Env::start().await?;
    let r = async {
        env.create::<k8s_openapi::api::core::v1::Pod>(
            "default",
            r#"
metadata: {name: solo}
spec:
  containers:
  - name: kvstore
    image: kvstore
    args: [--name=solo, --data-dir=/var/lib/kvstore/data, --listen-client-urls=http://0.0.0.0:2379,
           --advertise-client-urls=http://127.0.0.1:2379, --listen-peer-urls=http://127.0.0.1:2380,
           --initial-advertise-peer-urls=http://127.0.0.1:2380, --initial-cluster=solo=http://127.0.0.1:2380]
    readinessProbe: {tcpSocket: {port: 2379}, periodSeconds: 1}
    volumeMounts: [{name: data, mountPath: /var/lib/kvstore}]
  volumes: [{name: data, emptyDir: {}}]
"#,
        )
        .await?;
        env.wait_pod("default", "solo", Duration::from_secs(20), crate::common::ready)
            .await?;
        let ip = env.node().pod_ip("default", "solo").context("ip")?;
        gateway(ip, "/v3/kv/put", &json!({"key": b64("k"), "value": b64("v")})).await?;
        env.node().partition("default", "solo", true)?;
        let cut = tokio::time::timeout(
            Duration::from_millis(500),
            gateway(ip, "/v3/kv/range", &json!({"key": b64("k")})),
        )
        .await;
        assert!(cut.is_err(), "no answer while partitioned");
        env.node().partition("default", "solo", false)?;
        let got = gateway(ip, "/v3/kv/range", &json!({"key": b64("k")})).await?;
        assert_eq!(got["kvs"][0]["value"], b64("v"));
        Ok(())
    }
    .await;
    env.stop().await;
    r
}
