//! Apply step: server-side apply of every built object, one named field manager per kind, and
//! the membership calls a step needs (over the store's own Cluster and Maintenance APIs).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use super::Error;
use super::build::Built;
use super::member_api::{CallError, MemberApi};
use super::observe::MemberReport;
use super::validate::Validated;

fn params(what: &str) -> PatchParams {
    PatchParams::apply(&format!("{}/{what}", crate::FIELD_MANAGER)).force()
}

/// Apply every object of `built`.
pub async fn apply(client: &Client, v: &Validated, built: Built) -> Result<(), Error> {
    // Destructured without `..`: a new object kind cannot be forgotten here.
    let Built {
        peer_service,
        client_service,
        join,
        statefulset,
        pdb,
    } = built;
    let services: Api<Service> = Api::namespaced(client.clone(), &v.namespace);
    services
        .patch(
            &v.peer_service,
            &params("peer-service"),
            &Patch::Apply(&peer_service),
        )
        .await?;
    services
        .patch(
            &v.client_service,
            &params("client-service"),
            &Patch::Apply(&client_service),
        )
        .await?;
    // Before the StatefulSet: a member's container needs it to start.
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &v.namespace);
    maps.patch(
        &super::build::join::name(v),
        &params("join"),
        &Patch::Apply(&join),
    )
    .await?;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &v.namespace);
    sets.patch(&v.name, &params("statefulset"), &Patch::Apply(&statefulset))
        .await?;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &v.namespace);
    match pdb {
        Some(p) => {
            pdbs.patch(&v.name, &params("pdb"), &Patch::Apply(&p))
                .await?;
        }
        None => match pdbs.delete(&v.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(st)) if st.code == 404 => {}
            Err(e) => return Err(e.into()),
        },
    }
    Ok(())
}

/// Member URLs to address a membership call to: the leader first, then the others.
fn urls(v: &Validated, reports: &[MemberReport]) -> Vec<String> {
    let leader = reports.iter().map(|r| r.leader).find(|l| *l != 0);
    let mut order: Vec<&MemberReport> = reports.iter().collect();
    order.sort_by_key(|r| Some(r.id) != leader);
    order
        .into_iter()
        .map(|r| v.client_url(&v.member(r.ordinal)))
        .collect()
}

/// Make `call` on the first member that can be reached, the leader first.
async fn on_members<T, F, Fut>(v: &Validated, reports: &[MemberReport], call: F) -> Result<T, Error>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let mut last = "no member answers".to_string();
    for url in urls(v, reports) {
        match call(url).await {
            Ok(t) => return Ok(t),
            Err(CallError::Unreachable(e)) => last = e,
            Err(CallError::Refused(e)) => return Err(Error::Member(e)),
        }
    }
    Err(Error::Member(last))
}

/// Add the member of pod `ordinal` as a learner.
pub async fn add_learner(
    api: &dyn MemberApi,
    v: &Validated,
    reports: &[MemberReport],
    ordinal: i32,
) -> Result<u64, Error> {
    let peer = v.peer_url(&v.member(ordinal));
    on_members(v, reports, |url| {
        let peer = peer.clone();
        async move { api.add_learner(&url, &peer).await }
    })
    .await
}

/// Promote a learner; `Ok(false)` while it is still catching up.
pub async fn promote(
    api: &dyn MemberApi,
    v: &Validated,
    reports: &[MemberReport],
    id: u64,
) -> Result<bool, Error> {
    match on_members(v, reports, |url| async move { api.promote(&url, id).await }).await {
        Ok(()) => Ok(true),
        Err(Error::Member(m)) if m.contains("in sync with leader") => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove a member.
pub async fn remove(
    api: &dyn MemberApi,
    v: &Validated,
    reports: &[MemberReport],
    id: u64,
) -> Result<(), Error> {
    on_members(v, reports, |url| async move { api.remove(&url, id).await }).await
}

/// Ask the leader to hand leadership to `to`.
pub async fn move_leader(
    api: &dyn MemberApi,
    v: &Validated,
    reports: &[MemberReport],
    to: u64,
) -> Result<(), Error> {
    on_members(
        v,
        reports,
        |url| async move { api.move_leader(&url, to).await },
    )
    .await
}

/// Delete the pod of member `ordinal`; the StatefulSet brings it back from the current
/// template and the same volume.
pub async fn restart_pod(client: &Client, v: &Validated, ordinal: i32) -> Result<(), Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &v.namespace);
    match pods
        .delete(&v.member(ordinal), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(st)) if st.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
