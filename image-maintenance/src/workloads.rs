//! The pod templates of the cluster's workloads (Deployments, DaemonSets, StatefulSets, Jobs, CronJobs and
//! pods), read once, for lint and for what images the cluster still names.

use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, StatefulSet},
    batch::v1::{CronJob, Job},
    core::v1::{Pod, PodSpec},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Api, Client, Resource, api::ListParams};
use serde::de::DeserializeOwned;

use crate::ImageError;

/// One workload's pod template.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// `Deployment`, `DaemonSet`, `StatefulSet`, `Job`, `CronJob` or `Pod`.
    pub kind: &'static str,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The pod spec it runs.
    pub spec: PodSpec,
}

/// Every container of `spec` (init and ephemeral ones included) with its image and pull policy.
pub fn containers(spec: &PodSpec) -> Vec<(&str, &str, Option<&str>)> {
    let mut all: Vec<(&str, &str, Option<&str>)> = Vec::new();
    for c in spec.init_containers.iter().flatten().chain(&spec.containers) {
        all.push((&c.name, c.image.as_deref().unwrap_or_default(), c.image_pull_policy.as_deref()));
    }
    for c in spec.ephemeral_containers.iter().flatten() {
        all.push((&c.name, c.image.as_deref().unwrap_or_default(), c.image_pull_policy.as_deref()));
    }
    all
}

async fn list<K>(client: &Client, namespace: Option<&str>) -> Result<Vec<K>, ImageError>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let kind = K::kind(&());
    api.list(&ListParams::default()).await.map(|l| l.items).map_err(|e| ImageError::kube(format!("listing {kind}s"), e))
}

fn workload(kind: &'static str, meta: ObjectMeta, spec: Option<PodSpec>) -> Option<Workload> {
    Some(Workload {
        kind,
        namespace: meta.namespace.unwrap_or_default(),
        name: meta.name.unwrap_or_default(),
        spec: spec?,
    })
}

/// Which pods [`read`] returns with the workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pods {
    /// Only pods no controller manages: the others say what their controller's template says.
    Unmanaged,
    /// Every pod: a managed pod may still run an older image than its controller's template names.
    All,
}

/// The workloads of `namespace` (every namespace when None), with the pods `pods` says. Jobs a CronJob
/// created are left out: their CronJob's template says the same.
pub async fn read(client: &Client, namespace: Option<&str>, pods: Pods) -> Result<Vec<Workload>, ImageError> {
    let mut all = Vec::new();
    for d in list::<Deployment>(client, namespace).await? {
        all.extend(workload("Deployment", d.metadata, d.spec.template.spec));
    }
    for d in list::<DaemonSet>(client, namespace).await? {
        all.extend(workload("DaemonSet", d.metadata, d.spec.template.spec));
    }
    for s in list::<StatefulSet>(client, namespace).await? {
        all.extend(workload("StatefulSet", s.metadata, s.spec.template.spec));
    }
    for j in list::<Job>(client, namespace).await? {
        if j.metadata.owner_references.as_ref().is_some_and(|o| o.iter().any(|o| o.kind == "CronJob")) {
            continue;
        }
        all.extend(workload("Job", j.metadata, j.spec.and_then(|s| s.template.spec)));
    }
    for c in list::<CronJob>(client, namespace).await? {
        all.extend(workload("CronJob", c.metadata, c.spec.job_template.spec.and_then(|j| j.template.spec)));
    }
    for p in list::<Pod>(client, namespace).await? {
        let managed =
            p.metadata.owner_references.as_ref().is_some_and(|o| o.iter().any(|o| o.controller == Some(true)));
        if managed && pods == Pods::Unmanaged {
            continue;
        }
        all.extend(workload("Pod", p.metadata, p.spec));
    }
    Ok(all)
}
