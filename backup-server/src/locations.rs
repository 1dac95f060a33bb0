//! Backup storage locations as the reconcilers use them: found by name (or the default), opened with the
//! credentials of their Secret, or a reason why not.

use backup_core::{
    backup::placement::choose_location,
    store::{Store, credentials_from_secret},
};
use cairn_api::BackupStorageLocation;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::context::Context;

/// Why a location cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum LocationProblem {
    /// No BackupStorageLocation of that name (or no default).
    #[error("{0}")]
    NotFound(String),
    /// It exists but cannot be used as it is: its spec or its Secret is wrong.
    #[error("{0}")]
    CannotGet(String),
    /// The API server failed while reading it or its Secret: may pass, so worth retrying.
    #[error("{0}")]
    Api(String),
}

impl LocationProblem {
    /// Whether retrying later may help (the spec is fine, the API server was not).
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, LocationProblem::Api(_))
    }
}

/// A location, opened.
#[derive(Clone)]
pub(crate) struct OpenLocation {
    /// The object.
    pub object: BackupStorageLocation,
    /// Its store.
    pub store: Store,
}

impl OpenLocation {
    /// The location's name.
    pub(crate) fn name(&self) -> String {
        self.object.metadata.name.clone().unwrap_or_default()
    }
}

/// The name a spec's `storageLocation` means: itself, or the default location when empty (the rule the CLI
/// also applies before creating a backup: `backup::placement::choose_location`).
pub(crate) async fn resolve_name(context: &Context, named: &str) -> Result<String, LocationProblem> {
    if !named.is_empty() {
        return Ok(named.to_owned());
    }
    let all = context
        .api::<BackupStorageLocation>()
        .list(&Default::default())
        .await
        .map_err(|e| LocationProblem::Api(format!("listing backup storage locations failed: {e}")))?;
    choose_location(&all.items, "", &context.namespace)
        .map(|location| location.name_any())
        .map_err(|error| LocationProblem::NotFound(error.to_string()))
}

/// Finds and opens the location `named` (empty: the default).
pub(crate) async fn open(context: &Context, named: &str) -> Result<OpenLocation, LocationProblem> {
    let name = resolve_name(context, named).await?;
    let object = context
        .api::<BackupStorageLocation>()
        .get_opt(&name)
        .await
        .map_err(|e| LocationProblem::Api(format!("reading backup storage location {name} failed: {e}")))?
        .ok_or_else(|| {
            LocationProblem::NotFound(format!(
                "backup storage location {name:?} does not exist in namespace {}; create it (cairn \
                 backup-location create {name} ...) or name an existing one",
                context.namespace
            ))
        })?;
    open_object(context, object).await
}

/// Opens a location object.
pub(crate) async fn open_object(
    context: &Context,
    object: BackupStorageLocation,
) -> Result<OpenLocation, LocationProblem> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let location = backup_core::store::Location::from_spec(&object.spec, &name)
        .map_err(|e| LocationProblem::CannotGet(e.to_string()))?;
    let credentials = match &object.spec.credential {
        None => None,
        Some(selector) => {
            let secret = context.api::<Secret>().get_opt(&selector.name).await.map_err(|e| {
                LocationProblem::Api(format!("reading secret {} for location {name} failed: {e}", selector.name))
            })?;
            let Some(secret) = secret else {
                return Err(LocationProblem::CannotGet(format!(
                    "location {name}: secret {} does not exist in namespace {}; create it with the AWS credentials \
                     file under key {} (kubectl create secret generic {} --from-file={}=FILE)",
                    selector.name, context.namespace, selector.key, selector.name, selector.key
                )));
            };
            let bytes = secret.data.and_then(|mut data| data.remove(&selector.key)).ok_or_else(|| {
                LocationProblem::CannotGet(format!(
                    "location {name}: secret {} in namespace {} has no key {}; put the AWS credentials file there",
                    selector.name, context.namespace, selector.key
                ))
            })?;
            let text = String::from_utf8_lossy(&bytes.0);
            let profile = object.spec.config.get("profile").map(String::as_str);
            let credentials = credentials_from_secret(&selector.name, &selector.key, &text, profile)
                .map_err(|e| LocationProblem::CannotGet(e.to_string()))?;
            Some(credentials)
        }
    };
    let store = location.open(credentials.as_ref()).map_err(|e| LocationProblem::CannotGet(e.to_string()))?;
    Ok(OpenLocation { object, store })
}
