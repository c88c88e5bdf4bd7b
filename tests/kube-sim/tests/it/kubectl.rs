//! The real kubectl against the server: the KVCluster CRD and examples (client-side and
//! server-side apply), printer columns, -o yaml, scale, patch, CEL rules, bad manifests refused
//! with the API server's messages, logs, wait and delete.

use crate::common::{Env, repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kvcluster_lifecycle() {
    let env = Env::start().await;
    let k = |args: &'static [&'static str]| env.kubectl(args);

    let out = k(&["apply", "-f", "crds/kvcluster.yaml"]).await;
    assert!(
        out.expect_ok("apply crd")
            .contains("kvclusters.kvstore.io created")
    );
    let out = k(&["apply", "-f", "deploy/examples/kvcluster-minimal.yaml"]).await;
    assert!(
        out.expect_ok("apply minimal")
            .contains("kvcluster.kvstore.io/demo created")
    );

    let table = k(&["get", "kvc"]).await;
    let text = table.expect_ok("get kvc");
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "REPLICAS",
            "READY",
            "LEADER",
            "VERSION",
            "AVAILABLE",
            "PHASE",
            "AGE"
        ]
    );
    assert!(text.lines().nth(1).unwrap().starts_with("demo"), "{text}");

    let yaml = k(&["get", "kvc", "demo", "-o", "yaml"]).await;
    let y = yaml.expect_ok("get -o yaml");
    for want in [
        "replicas: 3",
        "size: 1Gi",
        "electionTimeoutMs: 1000",
        "generation: 1",
        "uid: ",
    ] {
        assert!(y.contains(want), "{want:?} missing from\n{y}");
    }

    k(&["scale", "kvc", "demo", "--replicas", "5"])
        .await
        .expect_ok("scale");
    let r = k(&[
        "get",
        "kvc",
        "demo",
        "-o",
        "jsonpath={.spec.replicas} {.metadata.generation}",
    ])
    .await;
    assert_eq!(r.expect_ok("jsonpath"), "5 2");
    let refused = k(&["scale", "kvc", "demo", "--replicas", "10"]).await;
    assert!(
        refused
            .expect_err("scale to 10")
            .contains("less than or equal to 9")
    );

    k(&[
        "patch",
        "kvc",
        "demo",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"version":"0.2.0"}}"#,
    ])
    .await
    .expect_ok("patch");
    let cel = k(&[
        "patch",
        "kvc",
        "demo",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"raft":{"electionTimeoutMs":100}}}"#,
    ])
    .await;
    let e = cel.expect_err("CEL rule");
    assert!(e.contains(r#"The KVCluster "demo" is invalid: spec.raft: Invalid value: "object": raft.electionTimeoutMs must be at least 5 times raft.heartbeatIntervalMs"#), "{e}");

    let ssa = k(&[
        "apply",
        "--server-side",
        "-f",
        "deploy/examples/kvcluster-minimal.yaml",
    ])
    .await;
    assert!(
        ssa.expect_ok("server-side apply")
            .contains("serverside-applied")
    );

    // The production example lives in its own namespace (kubectl create speaks protobuf).
    k(&["create", "namespace", "kv-prod"])
        .await
        .expect_ok("create ns");
    let prod = k(&[
        "apply",
        "--server-side",
        "-f",
        "deploy/examples/kvcluster-production.yaml",
    ])
    .await;
    prod.expect_ok("apply production");
    let immutable = k(&[
        "patch",
        "kvc",
        "orders",
        "-n",
        "kv-prod",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"storage":{"storageClassName":"slow"}}}"#,
    ])
    .await;
    assert!(
        immutable
            .expect_err("storageClassName change")
            .contains("storage.storageClassName cannot be changed after creation")
    );

    let waited = k(&[
        "wait",
        "--for=jsonpath={.spec.replicas}=5",
        "kvc/orders",
        "-n",
        "kv-prod",
        "--timeout=10s",
    ])
    .await;
    waited.expect_ok("wait");

    k(&["delete", "kvc", "demo"]).await.expect_ok("delete");
    let gone = k(&["get", "kvc", "demo"]).await;
    assert!(gone.expect_err("get deleted").contains("NotFound"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_are_refused() {
    let env = Env::start().await;
    env.kubectl(&["apply", "-f", "crds/kvcluster.yaml"])
        .await
        .expect_ok("apply crd");
    let expected = [
        (
            "bad-enum.yaml",
            r#"Unsupported value: "Sometimes": supported values: "Retain", "Delete""#,
        ),
        (
            "bad-storage-size.yaml",
            "spec.storage.size in body should match",
        ),
        ("missing-replicas.yaml", "spec.replicas: Required value"),
        (
            "replicas-ten.yaml",
            "spec.replicas in body should be less than or equal to 9",
        ),
        (
            "replicas-zero.yaml",
            "spec.replicas in body should be greater than or equal to 1",
        ),
        ("unknown-field.yaml", r#"unknown field "spec.replica""#),
    ];
    let mut files: Vec<_> = std::fs::read_dir(repo().join("tests/manifests/bad"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let path = f.to_string_lossy().to_string();
        let out = env.kubectl(&["apply", "-f", &path]).await;
        let err = out.expect_err(&name).to_string();
        assert!(
            err.contains("is invalid") || err.contains("unknown field"),
            "{name}: {err}"
        );
        if let Some((_, want)) = expected.iter().find(|(n, _)| *n == name) {
            assert!(err.contains(want), "{name}: {want:?} not in {err}");
        }
        let ssa = env.kubectl(&["apply", "--server-side", "-f", &path]).await;
        ssa.expect_err(&format!("{name} (server-side)"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_logs_and_builtin_apply() {
    let env = Env::start().await;
    let dir = env.dir.path().join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let pod = dir.join("pod.yaml");
    let v1 = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {app: p}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    env:\n    - {name: A, value: \"1\"}\n";
    std::fs::write(&pod, v1).unwrap();
    let pod = pod.to_string_lossy().to_string();
    env.kubectl(&["apply", "-f", &pod])
        .await
        .expect_ok("apply pod");
    // Client-side apply of a built-in kind sends a strategic merge patch.
    std::fs::write(dir.join("pod.yaml"), v1.replace("\"1\"", "\"2\"")).unwrap();
    env.kubectl(&["apply", "-f", &pod])
        .await
        .expect_ok("re-apply pod");
    let env_a = env
        .kubectl(&[
            "get",
            "pod",
            "p",
            "-o",
            "jsonpath={.spec.containers[0].env[0].value} {.status.phase}",
        ])
        .await;
    assert_eq!(env_a.expect_ok("get pod"), "2 Pending");

    let logs = env
        .server
        .kubeconfig_path()
        .parent()
        .unwrap()
        .join("logs/default/p");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("c.log"), "line 1\nline 2\n").unwrap();
    let out = env.kubectl(&["logs", "p"]).await;
    assert_eq!(out.expect_ok("logs"), "line 1\nline 2\n");
    let out = env.kubectl(&["logs", "p", "--tail", "1"]).await;
    assert_eq!(out.expect_ok("logs --tail"), "line 2\n");

    let out = env
        .kubectl(&["get", "pods", "-l", "app=p", "-o", "name"])
        .await;
    assert_eq!(out.expect_ok("get -l"), "pod/p\n");
    env.kubectl(&["delete", "pod", "p", "--wait=true"])
        .await
        .expect_ok("delete pod");
}
