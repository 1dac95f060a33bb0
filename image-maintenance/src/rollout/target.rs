//! The workload an image command acts on, as kubectl spells it: `deploy/web`, `deployment/web`,
//! `daemonset/agent` (`ds/`), `statefulset/db` (`sts/`).

use std::fmt;

use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, StatefulSet},
    core::v1::PodTemplateSpec,
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
};

use crate::ImageError;

/// The kinds whose images Cairn updates and rolls back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum WorkloadKind {
    /// apps/v1 Deployment (revisions are ReplicaSets).
    Deployment,
    /// apps/v1 DaemonSet (revisions are ControllerRevisions).
    DaemonSet,
    /// apps/v1 StatefulSet (revisions are ControllerRevisions).
    StatefulSet,
}

/// A workload in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl Target {
    /// Parses `KIND/NAME` in `namespace`.
    pub fn parse(text: &str, namespace: &str) -> Result<Target, ImageError> {
        let bad = || {
            ImageError::Invalid(format!(
                "{text:?} names no workload: write deploy/NAME, daemonset/NAME or statefulset/NAME (also deployment/, ds/, sts/)"
            ))
        };
        let (kind, name) = text.split_once('/').ok_or_else(bad)?;
        let kind = match kind.to_ascii_lowercase().as_str() {
            "deploy" | "deployment" | "deployments" => WorkloadKind::Deployment,
            "ds" | "daemonset" | "daemonsets" => WorkloadKind::DaemonSet,
            "sts" | "statefulset" | "statefulsets" => WorkloadKind::StatefulSet,
            _ => return Err(bad()),
        };
        if !cairn_kube::names::is_valid_name(name) {
            return Err(bad());
        }
        Ok(Target { kind, namespace: namespace.to_owned(), name: name.to_owned() })
    }
}

impl Target {
    /// The API of the target's kind in its namespace, untyped: the three kinds share what Cairn reads.
    pub(crate) fn api(&self, client: &Client) -> Api<DynamicObject> {
        let resource = match self.kind {
            WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
            WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
            WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        };
        Api::namespaced_with(client.clone(), &self.namespace, &resource)
    }

    /// The workload as it is now.
    pub(crate) async fn get(&self, client: &Client) -> Result<DynamicObject, ImageError> {
        match self.api(client).get_opt(&self.name).await {
            Ok(Some(object)) => Ok(object),
            Ok(None) => Err(ImageError::Invalid(format!(
                "{self} does not exist in namespace {}: check the name and -n NAMESPACE",
                self.namespace
            ))),
            Err(error) => Err(ImageError::kube(format!("reading {self}"), error)),
        }
    }

    /// Applies a strategic merge patch to the workload.
    pub(crate) async fn patch(&self, client: &Client, patch: &serde_json::Value) -> Result<DynamicObject, ImageError> {
        self.api(client)
            .patch(&self.name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .map_err(|error| ImageError::kube(format!("updating {self}"), error))
    }
}

/// The pod template of a workload object.
pub(crate) fn template_of(object: &DynamicObject) -> PodTemplateSpec {
    serde_json::from_value(object.data["spec"]["template"].clone()).unwrap_or_default()
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::StatefulSet => "statefulset",
        };
        write!(f, "{kind}/{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_spellings_parse_and_others_are_refused() {
        assert_eq!(Target::parse("deploy/web", "shop").unwrap().kind, WorkloadKind::Deployment);
        assert_eq!(Target::parse("ds/agent", "shop").unwrap().to_string(), "daemonset/agent");
        assert_eq!(Target::parse("StatefulSet/db", "shop").unwrap().kind, WorkloadKind::StatefulSet);
        for bad in ["web", "pod/web", "deploy/", "deploy/Web"] {
            assert!(Target::parse(bad, "shop").unwrap_err().to_string().contains("names no workload"), "{bad}");
        }
    }
}
