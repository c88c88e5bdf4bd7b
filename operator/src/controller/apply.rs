//! Apply step: server-side apply of every built object, one named field manager per kind, and
//! the membership calls a step needs (over the store's own Cluster and Maintenance APIs).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kvstore::pb::cluster_client::ClusterClient;
use kvstore::pb::maintenance_client::MaintenanceClient;
use kvstore::pb::{MemberAddRequest, MemberPromoteRequest, MemberRemoveRequest, MoveLeaderRequest};

use super::Error;
use super::build::Built;
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

async fn member_channel(
    v: &Validated,
    reports: &[MemberReport],
    leader_first: bool,
) -> Result<tonic::transport::Channel, Error> {
    let leader = reports.iter().map(|r| r.leader).find(|l| *l != 0);
    let mut order: Vec<&MemberReport> = reports.iter().collect();
    if leader_first {
        order.sort_by_key(|r| Some(r.id) != leader);
    }
    for r in order {
        let url = v.client_url(&v.member(r.ordinal));
        if let Ok(ch) = tonic::transport::Endpoint::from_shared(url)
            .map_err(|e| Error::Member(e.to_string()))?
            .connect()
            .await
        {
            return Ok(ch);
        }
    }
    Err(Error::Member("no member answers".into()))
}

/// Add the member of pod `ordinal` as a learner.
pub async fn add_learner(
    v: &Validated,
    reports: &[MemberReport],
    ordinal: i32,
) -> Result<u64, Error> {
    let ch = member_channel(v, reports, true).await?;
    let req = MemberAddRequest {
        peer_ur_ls: vec![v.peer_url(&v.member(ordinal))],
        is_learner: true,
    };
    let resp = ClusterClient::new(ch)
        .member_add(req)
        .await
        .map_err(|s| Error::Member(s.message().into()))?;
    Ok(resp.into_inner().member.map_or(0, |m| m.id))
}

/// Promote a learner; `Ok(false)` while it is still catching up.
pub async fn promote(v: &Validated, reports: &[MemberReport], id: u64) -> Result<bool, Error> {
    let ch = member_channel(v, reports, true).await?;
    match ClusterClient::new(ch)
        .member_promote(MemberPromoteRequest { id })
        .await
    {
        Ok(_) => Ok(true),
        Err(s) if s.message().contains("in sync with leader") => Ok(false),
        Err(s) => Err(Error::Member(s.message().into())),
    }
}

/// Remove a member.
pub async fn remove(v: &Validated, reports: &[MemberReport], id: u64) -> Result<(), Error> {
    let ch = member_channel(v, reports, true).await?;
    ClusterClient::new(ch)
        .member_remove(MemberRemoveRequest { id })
        .await
        .map_err(|s| Error::Member(s.message().into()))?;
    Ok(())
}

/// Ask the leader to hand leadership to `to`.
pub async fn move_leader(v: &Validated, reports: &[MemberReport], to: u64) -> Result<(), Error> {
    let ch = member_channel(v, reports, true).await?;
    MaintenanceClient::new(ch)
        .move_leader(MoveLeaderRequest { target_id: to })
        .await
        .map_err(|s| Error::Member(s.message().into()))?;
    Ok(())
}
