//! The catalogue of backups in a location: each backup's record (`cairn-backup.json`), read, listed, and
//! written create-only so a stored backup is never overwritten.

use futures::{StreamExt, TryStreamExt};

use super::BackupRecord;
use crate::store::{Layout, Store, StoreError};

/// The record of `name`, or `None` when no such backup exists.
pub async fn read_backup(store: &Store, name: &str) -> Result<Option<BackupRecord>, StoreError> {
    let key = Layout.backup_record(name);
    match store.get_json(&key).await {
        Ok(record) => Ok(Some(record)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every backup's record, sorted by name. Folders without a readable record are skipped (a backup
/// exists only once its record does).
pub async fn list_backups(store: &Store) -> Result<Vec<BackupRecord>, StoreError> {
    let dir = Layout.backups_dir();
    let listing = store.objects().list_with_delimiter(Some(&dir)).await.map_err(|e| store.explain(&dir, e))?;
    let names: Vec<String> = listing.common_prefixes.iter().filter_map(|p| Layout.backup_of(p)).collect();
    let records: Vec<Option<BackupRecord>> = futures::stream::iter(names)
        .map(|name| async move { read_backup(store, &name).await })
        .buffered(8)
        .try_collect()
        .await?;
    let mut records: Vec<BackupRecord> = records.into_iter().flatten().collect();
    records.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(records)
}

/// Writes `record` only if no record of that name exists: stored backups are never overwritten.
pub async fn create_record(store: &Store, record: &BackupRecord) -> Result<(), StoreError> {
    store.create_json(&Layout.backup_record(record.name()), record).await
}

/// The names of the backups stored in a location (folders under `backups/`), without reading their records.
pub async fn list_backup_names(store: &Store) -> Result<Vec<String>, StoreError> {
    let dir = Layout.backups_dir();
    let listing = store.objects().list_with_delimiter(Some(&dir)).await.map_err(|e| store.explain(&dir, e))?;
    let mut names: Vec<String> = listing.common_prefixes.iter().filter_map(|p| Layout.backup_of(p)).collect();
    names.sort();
    Ok(names)
}
