//! A workload's revisions, as its controller keeps them: a Deployment's ReplicaSets (revision in
//! `deployment.kubernetes.io/revision`), a DaemonSet's or StatefulSet's ControllerRevisions. Each with its
//! images, the cause recorded when it was made, and when; [`revisions_of`] reads them from objects without I/O.

use k8s_openapi::{
    api::{
        apps::v1::{ControllerRevision, ReplicaSet},
        core::v1::PodTemplateSpec,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{Api, Client, api::ListParams};
use serde::Serialize;

use super::{
    CHANGE_CAUSE,
    target::{Target, WorkloadKind},
};
use crate::{ImageError, workloads::containers};

/// The Deployment controller's revision annotation.
pub const DEPLOYMENT_REVISION: &str = "deployment.kubernetes.io/revision";

/// One revision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// Its number.
    pub revision: i64,
    /// The object that keeps it (ReplicaSet or ControllerRevision name).
    pub kept_in: String,
    /// `container=image` for each container.
    pub images: Vec<String>,
    /// Why it was made, when recorded.
    pub cause: Option<String>,
    /// When it was made.
    pub created: Option<jiff::Timestamp>,
    /// Whether the workload runs it now.
    pub current: bool,
    /// The pod template it holds (Deployments), or the patch that restores it (the others).
    #[serde(skip)]
    pub restore: serde_json::Value,
}

fn images_of(template: &PodTemplateSpec) -> Vec<String> {
    template
        .spec
        .as_ref()
        .map(|s| containers(s).into_iter().map(|(c, i, _)| format!("{c}={i}")).collect())
        .unwrap_or_default()
}

fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == uid)
}

fn cause_and_time(meta: &ObjectMeta) -> (Option<String>, Option<jiff::Timestamp>) {
    let cause = meta.annotations.as_ref().and_then(|a| a.get(CHANGE_CAUSE)).cloned();
    (cause, meta.creation_timestamp.as_ref().map(|t| t.0))
}

/// The revisions among `replica_sets` (a Deployment's) or `controller_revisions` (a DaemonSet's or
/// StatefulSet's) owned by `uid`, oldest first; `current` is the revision the workload runs.
pub fn revisions_of(
    kind: WorkloadKind,
    uid: &str,
    current: Option<&str>,
    replica_sets: &[ReplicaSet],
    controller_revisions: &[ControllerRevision],
) -> Vec<Revision> {
    let mut revisions = Vec::new();
    match kind {
        WorkloadKind::Deployment => {
            for rs in replica_sets.iter().filter(|rs| owned_by(&rs.metadata, uid)) {
                let annotations = rs.metadata.annotations.clone().unwrap_or_default();
                let Some(number) = annotations.get(DEPLOYMENT_REVISION).and_then(|r| r.parse().ok()) else { continue };
                let template = rs.spec.template.clone().unwrap_or_default();
                let (cause, created) = cause_and_time(&rs.metadata);
                revisions.push(Revision {
                    revision: number,
                    kept_in: rs.metadata.name.clone().unwrap_or_default(),
                    images: images_of(&template),
                    cause,
                    created,
                    current: current == Some(number.to_string().as_str()),
                    restore: serde_json::to_value(&template).unwrap_or_default(),
                });
            }
        }
        WorkloadKind::DaemonSet | WorkloadKind::StatefulSet => {
            for cr in controller_revisions.iter().filter(|cr| owned_by(&cr.metadata, uid)) {
                let data = cr.data.0.clone();
                let template: PodTemplateSpec =
                    serde_json::from_value(data["spec"]["template"].clone()).unwrap_or_default();
                let name = cr.metadata.name.clone().unwrap_or_default();
                let (cause, created) = cause_and_time(&cr.metadata);
                revisions.push(Revision {
                    revision: cr.revision.unwrap_or_default(),
                    current: current == Some(name.as_str()),
                    kept_in: name,
                    images: images_of(&template),
                    cause,
                    created,
                    restore: data,
                });
            }
        }
    }
    revisions.sort_by_key(|r| r.revision);
    if kind == WorkloadKind::DaemonSet
        && let Some(newest) = revisions.last_mut()
    {
        // A DaemonSet's status names no revision: the controller rolls towards its newest.
        newest.current = true;
    }
    revisions
}

/// The revisions of `target`, oldest first.
pub async fn history(client: &Client, target: &Target) -> Result<Vec<Revision>, ImageError> {
    let object = target.get(client).await?;
    let uid = object.metadata.uid.clone().unwrap_or_default();
    let current = match target.kind {
        WorkloadKind::Deployment => {
            object.metadata.annotations.as_ref().and_then(|a| a.get(DEPLOYMENT_REVISION)).cloned()
        }
        WorkloadKind::StatefulSet => object.data["status"]["updateRevision"].as_str().map(str::to_owned),
        WorkloadKind::DaemonSet => None,
    };
    let (mut replica_sets, mut controller_revisions) = (Vec::new(), Vec::new());
    match target.kind {
        WorkloadKind::Deployment => {
            let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &target.namespace);
            replica_sets =
                api.list(&ListParams::default()).await.map_err(|e| ImageError::kube("listing ReplicaSets", e))?.items;
        }
        _ => {
            let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &target.namespace);
            controller_revisions = api
                .list(&ListParams::default())
                .await
                .map_err(|e| ImageError::kube("listing ControllerRevisions", e))?
                .items;
        }
    }
    Ok(revisions_of(target.kind, &uid, current.as_deref(), &replica_sets, &controller_revisions))
}
