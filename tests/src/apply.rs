//! Loading manifests into the test cluster, like `kubectl apply -f`: multi-document YAML, CRDs first (and
//! waited for until Established), everything by server-side apply.

use std::time::Duration;

use kube::{
    Api, Client,
    api::{DynamicObject, GroupVersionKind, Patch, PatchParams},
    discovery::{ApiCapabilities, ApiResource, Scope, pinned_kind},
};
use serde::Deserialize;

/// The sample workloads of the seed document (a namespace's worth; `NAMESPACE` stands for its name).
pub const SAMPLE_WORKLOADS: &str = include_str!("../fixtures/sample-workloads.yaml");

/// An applied object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Applied {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// Its namespace.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

/// Why manifests could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A document is not valid YAML or not an object.
    #[error("manifest document {index} is unreadable: {problem}")]
    Document {
        /// 1-based document number.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// The server refused an object or does not serve its kind.
    #[error("applying {kind} {name}: {error}")]
    Apply {
        /// The kind.
        kind: String,
        /// The name.
        name: String,
        /// The server's reason.
        error: kube::Error,
    },
    /// A CRD did not become Established.
    #[error("CRD {0} was not Established within 30 s")]
    NotEstablished(String),
}

fn documents(yaml: &str) -> Result<Vec<DynamicObject>, ApplyError> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
        let value = serde_json::Value::deserialize(document)
            .map_err(|e| ApplyError::Document { index: index + 1, problem: e.to_string() })?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject = serde_json::from_value(value)
            .map_err(|e| ApplyError::Document { index: index + 1, problem: e.to_string() })?;
        objects.push(object);
    }
    Ok(objects)
}

fn gvk(object: &DynamicObject) -> GroupVersionKind {
    let types = object.types.clone().unwrap_or_default();
    let (group, version) = types.api_version.split_once('/').unwrap_or(("", &types.api_version));
    GroupVersionKind::gvk(group, version, &types.kind)
}

async fn apply_one(client: &Client, object: &DynamicObject) -> Result<Applied, ApplyError> {
    let gvk = gvk(object);
    let name = object.metadata.name.clone().unwrap_or_default();
    let error = |error| ApplyError::Apply { kind: gvk.kind.clone(), name: name.clone(), error };
    let (resource, capabilities): (ApiResource, ApiCapabilities) = pinned_kind(client, &gvk).await.map_err(error)?;
    let namespace = match capabilities.scope {
        Scope::Namespaced => Some(object.metadata.namespace.clone().unwrap_or_else(|| "default".into())),
        Scope::Cluster => None,
    };
    let api: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let params = PatchParams::apply("cairn-tests").force();
    api.patch(&name, &params, &Patch::Apply(object)).await.map_err(error)?;
    Ok(Applied { api_version: resource.api_version, kind: resource.kind, namespace, name })
}

/// Applies every document of `yaml`: CRDs first, waiting until each is Established, then the rest in
/// order. Returns what was applied.
pub async fn apply_manifests(client: &Client, yaml: &str) -> Result<Vec<Applied>, ApplyError> {
    let objects = documents(yaml)?;
    let is_crd = |o: &&DynamicObject| o.types.as_ref().is_some_and(|t| t.kind == "CustomResourceDefinition");
    let mut applied = Vec::new();
    for crd in objects.iter().filter(is_crd) {
        applied.push(apply_one(client, crd).await?);
        wait_established(client, crd.metadata.name.as_deref().unwrap_or_default()).await?;
    }
    for object in objects.iter().filter(|o| !is_crd(o)) {
        applied.push(apply_one(client, object).await?);
    }
    Ok(applied)
}

async fn wait_established(client: &Client, name: &str) -> Result<(), ApplyError> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for _ in 0..300 {
        if let Ok(crd) = api.get(name).await {
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(ApplyError::NotEstablished(name.to_owned()))
}
