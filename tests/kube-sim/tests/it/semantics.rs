//! Object semantics through kube-rs: owner-reference garbage collection, finalizers,
//! conflicts, pagination, label and field selectors, namespace deletion, error statuses.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use serde_json::json;

use crate::common::{Env, eventually};

fn cm(v: serde_json::Value) -> ConfigMap {
    serde_json::from_value(v).unwrap()
}

fn api_err(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("not an API error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_references_and_finalizers() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let pp = PostParams::default();
    let owner = api
        .create(&pp, &cm(json!({"metadata": {"name": "owner"}})))
        .await
        .unwrap();
    let uid = owner.metadata.uid.unwrap();
    let dep = |name: &str, fins: &[&str]| {
        cm(
            json!({"metadata": {"name": name, "finalizers": fins, "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}}),
        )
    };
    api.create(&pp, &dep("dep", &[])).await.unwrap();
    api.create(&pp, &dep("held", &["it.test/hold"]))
        .await
        .unwrap();

    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(
        api_err(api.get("dep").await.unwrap_err()).0,
        404,
        "dependent collected"
    );
    let held = api.get("held").await.unwrap();
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "finalizer holds the object"
    );
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(
        api_err(api.get("held").await.unwrap_err()).0,
        404,
        "gone once finalizers are empty"
    );

    // Foreground: the owner stays until its dependents are gone; Orphan keeps dependents.
    let owner = api
        .create(&pp, &cm(json!({"metadata": {"name": "owner"}})))
        .await
        .unwrap();
    let uid = owner.metadata.uid.unwrap();
    let dep = |name: &str, fins: &[&str]| {
        cm(
            json!({"metadata": {"name": name, "finalizers": fins, "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}}),
        )
    };
    api.create(&pp, &dep("fg", &["it.test/hold"]))
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    let o = api.get("owner").await.unwrap();
    assert!(
        o.metadata
            .finalizers
            .unwrap()
            .contains(&"foregroundDeletion".to_string())
    );
    api.patch(
        "fg",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": []}})),
    )
    .await
    .unwrap();
    assert_eq!(api_err(api.get("owner").await.unwrap_err()).0, 404);

    let owner = api
        .create(&pp, &cm(json!({"metadata": {"name": "owner"}})))
        .await
        .unwrap();
    let uid = owner.metadata.uid.unwrap();
    let orphan = cm(json!({"metadata": {"name": "orphan", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}}));
    api.create(&pp, &orphan).await.unwrap();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    api.delete("owner", &dp).await.unwrap();
    let kept = api.get("orphan").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_and_error_statuses() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let pp = PostParams::default();
    api.create(
        &pp,
        &cm(json!({"metadata": {"name": "c"}, "data": {"n": "0"}})),
    )
    .await
    .unwrap();
    assert_eq!(
        api_err(
            api.create(&pp, &cm(json!({"metadata": {"name": "c"}})))
                .await
                .unwrap_err()
        ),
        (409, "AlreadyExists".to_string())
    );
    let stale = api.get("c").await.unwrap();
    let mut first = stale.clone();
    first.data = Some([("n".to_string(), "1".to_string())].into());
    api.replace("c", &pp, &first).await.unwrap();
    let mut second = stale;
    second.data = Some([("n".to_string(), "2".to_string())].into());
    assert_eq!(
        api_err(api.replace("c", &pp, &second).await.unwrap_err()),
        (409, "Conflict".to_string())
    );
    assert_eq!(
        api_err(api.get("nope").await.unwrap_err()),
        (404, "NotFound".to_string())
    );
    let bad = cm(json!({"metadata": {"name": "Not_Valid"}}));
    assert_eq!(
        api_err(api.create(&pp, &bad).await.unwrap_err()),
        (422, "Invalid".to_string())
    );
    let generated = cm(json!({"metadata": {"generateName": "gen-"}}));
    let made = api.create(&pp, &generated).await.unwrap();
    assert!(made.metadata.name.unwrap().starts_with("gen-"));
    let missing: Api<ConfigMap> = Api::namespaced(env.client.clone(), "no-such-ns");
    assert_eq!(
        api_err(
            missing
                .create(&pp, &cm(json!({"metadata": {"name": "x"}})))
                .await
                .unwrap_err()
        )
        .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_and_selectors() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let pp = PostParams::default();
    for i in 0..7 {
        let tier = ["a", "b", "c"][i % 3];
        let mut labels = json!({"app": "x", "tier": tier});
        if i == 0 {
            labels["special"] = json!("yes");
        }
        api.create(
            &pp,
            &cm(json!({"metadata": {"name": format!("c{i}"), "labels": labels}})),
        )
        .await
        .unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        names.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!((pages, names.len()), (3, 7));

    let count = |sel: &'static str| {
        let api = api.clone();
        async move {
            api.list(&ListParams::default().labels(sel))
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(count("app=x").await, 7);
    assert_eq!(count("tier in (a,b)").await, 5);
    assert_eq!(count("tier notin (a),app").await, 4);
    assert_eq!(count("tier!=c,!special").await, 4);
    assert_eq!(count("special").await, 1);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=c3"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_deletes_contents() {
    let env = Env::start().await;
    let nss: Api<Namespace> = Api::all(env.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "gone"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "gone");
    api.create(
        &PostParams::default(),
        &cm(json!({"metadata": {"name": "c"}})),
    )
    .await
    .unwrap();
    nss.delete("gone", &DeleteParams::default()).await.unwrap();
    eventually("the namespace to go", || {
        let nss = nss.clone();
        async move { nss.get_opt("gone").await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
