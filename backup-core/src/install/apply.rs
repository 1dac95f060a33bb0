//! Sending an installation to a cluster: server-side apply of every manifest (CRDs first, waited for until
//! Established), and waiting for the server to become available.

use std::time::Duration;

use k8s_openapi::{
    api::apps::v1::Deployment, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams},
    runtime::wait::{await_condition, conditions},
};

use super::{InstallError, Manifest, SERVER_NAME};
use crate::apiclient::describe;

/// The field manager of Cairn's server-side applies: re-running an installation updates what it set.
pub const FIELD_MANAGER: &str = "cairn-install";

/// How long a CRD may take to become Established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Server-side applies `manifests` (force: an installation owns the fields it sets), CRDs first and waited
/// for until Established, then the rest in order. Calls `applied` after each object is accepted. Applying
/// the same manifests again changes nothing.
pub async fn apply(
    client: &Client,
    manifests: &[Manifest],
    mut applied: impl FnMut(&Manifest),
) -> Result<(), InstallError> {
    let (crds, others): (Vec<&Manifest>, Vec<&Manifest>) = manifests.iter().partition(|m| m.is_crd());
    for crd in &crds {
        apply_one(client, crd).await?;
        applied(crd);
    }
    for crd in &crds {
        wait_established(client, crd.name()).await?;
    }
    for manifest in others {
        apply_one(client, manifest).await?;
        applied(manifest);
    }
    Ok(())
}

async fn apply_one(client: &Client, manifest: &Manifest) -> Result<(), InstallError> {
    let api: Api<DynamicObject> = match manifest.namespace() {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, manifest.resource()),
        None => Api::all_with(client.clone(), manifest.resource()),
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(manifest.name(), &params, &Patch::Apply(manifest.object())).await {
        Ok(_) => Ok(()),
        Err(error) => {
            let mut problem = describe(&error);
            if matches!(&error, kube::Error::Api(status) if status.code == 403) {
                problem.push_str("; installing needs a cluster administrator's kubeconfig (--kubeconfig PATH)");
            }
            Err(InstallError::Apply { kind: manifest.kind().to_owned(), name: manifest.qualified_name(), problem })
        }
    }
}

async fn wait_established(client: &Client, name: &str) -> Result<(), InstallError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    match tokio::time::timeout(ESTABLISH_TIMEOUT, await_condition(api, name, conditions::is_crd_established())).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(InstallError::Watch { what: format!("CRD {name}"), problem: error.to_string() }),
        Err(_) => Err(InstallError::NotEstablished(name.to_owned())),
    }
}

/// Waits until the server's Deployment in `namespace` has an available replica (one is enough: replicas
/// take turns through leader election), at most `timeout`.
pub async fn wait_until_available(client: &Client, namespace: &str, timeout: Duration) -> Result<(), InstallError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let available = |deployment: Option<&Deployment>| {
        deployment.and_then(|d| d.status.as_ref()).and_then(|s| s.available_replicas).unwrap_or(0) > 0
    };
    match tokio::time::timeout(timeout, await_condition(api, SERVER_NAME, available)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(InstallError::Watch {
            what: format!("Deployment {namespace}/{SERVER_NAME}"),
            problem: error.to_string(),
        }),
        Err(_) => Err(InstallError::NotAvailable { namespace: namespace.to_owned(), seconds: timeout.as_secs() }),
    }
}
