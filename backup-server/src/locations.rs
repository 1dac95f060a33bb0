//! Backup storage locations as the reconcilers use them: found by name (or the default), opened with the
//! credentials of their Secret, or a reason why not.

use backup_core::{
    api::BackupStorageLocation,
    store::{Location, Store, credentials_from_secret},
};
use k8s_openapi::api::core::v1::Secret;

use crate::context::Context;

/// Why a location cannot be used. The variants' names are the `cairn.dev/gc-failure` label values.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LocationProblem {
    /// No BackupStorageLocation of that name (or no default).
    #[error("{0}")]
    NotFound(String),
    /// It exists but cannot be opened or read.
    #[error("{0}")]
    CannotGet(String),
}

impl LocationProblem {
    /// The label value garbage collection records.
    pub fn gc_label(&self) -> &'static str {
        match self {
            LocationProblem::NotFound(_) => "BSLNotFound",
            LocationProblem::CannotGet(_) => "BSLCannotGet",
        }
    }
}

/// A location, opened.
pub struct OpenLocation {
    /// The object.
    pub object: BackupStorageLocation,
    /// Its store.
    pub store: Store,
}

impl OpenLocation {
    /// The location's name.
    pub fn name(&self) -> String {
        self.object.metadata.name.clone().unwrap_or_default()
    }
}

/// The name a spec's `storageLocation` means: itself, or the default location when empty.
pub async fn resolve_name(context: &Context, named: &str) -> Result<String, LocationProblem> {
    if !named.is_empty() {
        return Ok(named.to_owned());
    }
    let all = context
        .api::<BackupStorageLocation>()
        .list(&Default::default())
        .await
        .map_err(|e| LocationProblem::CannotGet(format!("listing backup storage locations failed: {e}")))?;
    let defaults: Vec<_> = all.items.iter().filter(|l| l.spec.default).collect();
    let chosen = match (defaults.as_slice(), all.items.as_slice()) {
        ([one], _) => *one,
        ([], [only]) => only,
        ([], []) => {
            return Err(LocationProblem::NotFound(format!(
                "no backup storage location exists in namespace {}; create one (cairn backup-location create)",
                context.namespace
            )));
        }
        _ => {
            return Err(LocationProblem::NotFound(
                "no single default backup storage location; name one in spec.storageLocation or mark one default"
                    .into(),
            ));
        }
    };
    Ok(chosen.metadata.name.clone().unwrap_or_default())
}

/// Finds and opens the location `named` (empty: the default).
pub async fn open(context: &Context, named: &str) -> Result<OpenLocation, LocationProblem> {
    let name = resolve_name(context, named).await?;
    let object = context
        .api::<BackupStorageLocation>()
        .get_opt(&name)
        .await
        .map_err(|e| LocationProblem::CannotGet(format!("reading backup storage location {name} failed: {e}")))?
        .ok_or_else(|| {
            LocationProblem::NotFound(format!(
                "backup storage location {name:?} does not exist in namespace {}",
                context.namespace
            ))
        })?;
    open_object(context, object).await
}

/// Opens a location object.
pub async fn open_object(context: &Context, object: BackupStorageLocation) -> Result<OpenLocation, LocationProblem> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let location = Location::from_spec(&name, &object.spec).map_err(|e| LocationProblem::CannotGet(e.to_string()))?;
    let credentials = match &object.spec.credential {
        None => None,
        Some(selector) => {
            let secret = context.api::<Secret>().get_opt(&selector.name).await.map_err(|e| {
                LocationProblem::CannotGet(format!("reading secret {} for location {name} failed: {e}", selector.name))
            })?;
            let bytes =
                secret.and_then(|s| s.data).and_then(|mut data| data.remove(&selector.key)).ok_or_else(|| {
                    LocationProblem::CannotGet(format!(
                        "location {name}: secret {} has no key {} in namespace {}; create it with the AWS \
                         credentials file",
                        selector.name, selector.key, context.namespace
                    ))
                })?;
            let text = String::from_utf8_lossy(&bytes.0);
            let credentials = credentials_from_secret(
                &selector.name,
                &selector.key,
                &text,
                object.spec.config.get("profile").map(String::as_str),
            )
            .map_err(|e| LocationProblem::CannotGet(e.to_string()))?;
            Some(credentials)
        }
    };
    let store = location.open(credentials.as_ref()).map_err(|e| LocationProblem::CannotGet(e.to_string()))?;
    Ok(OpenLocation { object, store })
}
