//! Sending an installation to a cluster: server-side apply of every manifest (CRDs first, waited for until
//! Established) except the create-only ones, which are created when missing and kept when present.

use cairn_kube::errors::ErrorKind;
use std::{fmt, time::Duration};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    runtime::wait::{await_condition, conditions},
};

use super::{InstallError, Manifest};
use cairn_kube::errors::describe;

/// The field manager of Cairn's server-side applies: re-running an installation updates what it set.
pub const FIELD_MANAGER: &str = "cairn-install";

/// How long a CRD may take to become Established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// What installing did with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Server-side applied: created, or brought back to what the installation builds.
    Applied,
    /// A create-only object that was missing, created.
    Created,
    /// A create-only object that exists already, left unchanged.
    Kept,
}

/// One object installed and what was done with it; displays as the line `cairn install` prints.
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    /// The object.
    pub manifest: &'a Manifest,
    /// What was done with it.
    pub outcome: Outcome,
}

impl fmt::Display for Applied<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, name) = (self.manifest.kind(), self.manifest.qualified_name());
        match self.outcome {
            Outcome::Applied => write!(f, "{kind} {name} applied"),
            Outcome::Created => write!(f, "{kind} {name} created"),
            Outcome::Kept => write!(f, "{kind} {name} kept unchanged (it exists already)"),
        }
    }
}

/// Installs `manifests`, CRDs first and waited for until Established, then the rest in order. Each is
/// server-side applied (force: an installation owns the fields it sets), except the create-only ones
/// ([`Manifest::is_create_only`]), which are created when missing and otherwise kept as they are. Calls
/// `applied` after each object. Installing the same manifests again changes nothing.
pub async fn apply(
    client: &Client,
    manifests: &[Manifest],
    mut applied: impl FnMut(Applied<'_>),
) -> Result<(), InstallError> {
    let (crds, others): (Vec<&Manifest>, Vec<&Manifest>) = manifests.iter().partition(|m| m.is_crd());
    for crd in &crds {
        let outcome = apply_one(client, crd).await?;
        applied(Applied { manifest: crd, outcome });
    }
    for crd in &crds {
        wait_established(client, crd.name()).await?;
    }
    for manifest in others {
        let outcome = apply_one(client, manifest).await?;
        applied(Applied { manifest, outcome });
    }
    Ok(())
}

async fn apply_one(client: &Client, manifest: &Manifest) -> Result<Outcome, InstallError> {
    let api: Api<DynamicObject> = match manifest.namespace() {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, manifest.resource()),
        None => Api::all_with(client.clone(), manifest.resource()),
    };
    let result = if manifest.is_create_only() {
        let params = PostParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PostParams::default() };
        match api.create(&params, manifest.object()).await {
            Ok(_) => Ok(Outcome::Created),
            Err(kube::Error::Api(status)) if status.reason == "AlreadyExists" => Ok(Outcome::Kept),
            Err(error) => Err(error),
        }
    } else {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(manifest.name(), &params, &Patch::Apply(manifest.object())).await.map(|_| Outcome::Applied)
    };
    result.map_err(|error| {
        let mut problem = describe(&error);
        if ErrorKind::of(&error) == ErrorKind::Forbidden {
            problem.push_str("; installing needs a cluster administrator's kubeconfig (--kubeconfig PATH)");
        }
        InstallError::Apply { kind: manifest.kind().to_owned(), name: manifest.qualified_name(), problem }
    })
}

async fn wait_established(client: &Client, name: &str) -> Result<(), InstallError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    match tokio::time::timeout(ESTABLISH_TIMEOUT, await_condition(api, name, conditions::is_crd_established())).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(InstallError::Watch { what: format!("CRD {name}"), problem: error.to_string() }),
        Err(_) => Err(InstallError::NotEstablished(name.to_owned())),
    }
}
