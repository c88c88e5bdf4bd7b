//! The real helm (v4, server-side apply) against the server: install with
//! --create-namespace, list, upgrade, uninstall.

use crate::common::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_upgrade_uninstall() {
    let env = Env::start().await;
    let install = env
        .helm(&[
            "install",
            "op",
            "charts/kv-operator",
            "-n",
            "kv-system",
            "--create-namespace",
        ])
        .await;
    install.expect_ok("helm install");
    let list = env.helm(&["list", "-n", "kv-system"]).await;
    let text = list.expect_ok("helm list");
    assert!(text.contains("op") && text.contains("deployed"), "{text}");

    let crd = env.kubectl(&["get", "crd", "kvclusters.kvstore.io"]).await;
    crd.expect_ok("crd installed from the chart");
    let deploy = env
        .kubectl(&[
            "get",
            "deploy",
            "-n",
            "kv-system",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .await;
    assert_eq!(deploy.expect_ok("get deploy"), "op-kv-operator");

    let upgrade = env
        .helm(&[
            "upgrade",
            "op",
            "charts/kv-operator",
            "-n",
            "kv-system",
            "--set",
            "logLevel=debug",
        ])
        .await;
    upgrade.expect_ok("helm upgrade");
    let rust_log = env
        .kubectl(&["get", "deploy", "op-kv-operator", "-n", "kv-system", "-o",
            "jsonpath={.spec.template.spec.containers[0].env[?(@.name==\"RUST_LOG\")].value} {.metadata.generation}"])
        .await;
    assert_eq!(rust_log.expect_ok("upgraded deployment"), "debug 2");
    let list = env.helm(&["list", "-n", "kv-system", "-o", "json"]).await;
    assert!(list.expect_ok("helm list").contains(r#""revision":"2""#));

    env.helm(&["uninstall", "op", "-n", "kv-system"])
        .await
        .expect_ok("helm uninstall");
    let left = env
        .kubectl(&[
            "get",
            "deploy,svc,sa,secret",
            "-n",
            "kv-system",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(left.expect_ok("get after uninstall"), "");
    let list = env.helm(&["list", "-n", "kv-system", "-q"]).await;
    assert_eq!(list.expect_ok("helm list").trim(), "");
}
