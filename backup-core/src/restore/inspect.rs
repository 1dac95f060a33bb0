//! Reading stored restores back: records, logs and results under `restores/<name>/`.

use cairn_kube::report::Problem;
use futures::{StreamExt, TryStreamExt};

use super::{RestoreError, RestoreRecord};
use crate::store::{Layout, Store, StoreError};

/// The record of restore `name`.
pub async fn find_restore(store: &Store, name: &str) -> Result<RestoreRecord, RestoreError> {
    match store.get_json(&Layout.restore_keys(name).record).await {
        Ok(record) => Ok(record),
        Err(StoreError::NotFound { .. }) => Err(RestoreError::Name(format!(
            "no restore named {name:?} in {}; `cairn restore get` lists them",
            store.location()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Every restore's record, sorted by name.
pub async fn list_restores(store: &Store) -> Result<Vec<RestoreRecord>, RestoreError> {
    let dir = Layout.restores_dir();
    let listing = store.objects().list_with_delimiter(Some(&dir)).await.map_err(|e| store.explain(&dir, e))?;
    let names: Vec<String> = listing.common_prefixes.iter().filter_map(|p| Layout.restore_of(p)).collect();
    let records: Vec<Option<RestoreRecord>> = futures::stream::iter(names)
        .map(|name| async move {
            match store.get_json(&Layout.restore_keys(&name).record).await {
                Ok(record) => Ok(Some(record)),
                Err(StoreError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .buffered(8)
        .try_collect()
        .await?;
    let mut records: Vec<RestoreRecord> = records.into_iter().flatten().collect();
    records.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(records)
}

/// The restore's log.
pub async fn read_restore_log(store: &Store, name: &str) -> Result<String, RestoreError> {
    Ok(store.get_gzip_text(&Layout.restore_keys(name).log).await?)
}

/// The restore's stored results: warnings, errors and every item.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredResults {
    /// Warnings.
    pub warnings: Vec<Problem>,
    /// Errors.
    pub errors: Vec<Problem>,
    /// Every object's result.
    pub items: super::ItemResults,
    /// Every exec hook run in a restored pod (absent before restores had hooks).
    #[serde(default)]
    pub hooks: Vec<crate::backup::HookRun>,
}

/// The restore's results.
pub async fn read_restore_results(store: &Store, name: &str) -> Result<StoredResults, RestoreError> {
    Ok(store.get_gzip_json(&Layout.restore_keys(name).results).await?)
}
