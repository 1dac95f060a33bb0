//! The catalogue of backups in a location: each backup's record (`cairn-backup.json`), read, listed, and
//! written create-only so a stored backup is never overwritten.

use futures::StreamExt;

use super::BackupRecord;
use crate::store::{Layout, Store, StoreError};

/// The record of `name`, or `None` when no such backup exists. A record that cannot be parsed, or that
/// names another backup than its folder does, is damaged ([`StoreError::Corrupt`]): trusting it would
/// let one backup's name lead to another's archive.
pub async fn read_backup(store: &Store, name: &str) -> Result<Option<BackupRecord>, StoreError> {
    let key = Layout.backup_record(name);
    let record: BackupRecord = match store.get_json(&key).await {
        Ok(record) => record,
        // No record of Cairn's: a backup Velero wrote, or none.
        Err(StoreError::NotFound { .. }) => {
            return match store.get_bytes(&Layout.velero_record(name)).await {
                Ok(bytes) => super::velero::record_of(name, &bytes).map(Some),
                Err(StoreError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    if record.name() != name {
        return Err(StoreError::Corrupt {
            key: key.to_string(),
            problem: format!(
                "it names backup {:?}, not {name:?} as its folder does; the record is damaged or was moved by hand",
                record.name()
            ),
        });
    }
    Ok(Some(record))
}

/// The backups found in a location.
#[derive(Debug, Default)]
pub struct BackupListing {
    /// Every readable record, sorted by name.
    pub records: Vec<BackupRecord>,
    /// Records that exist but are damaged, as errors naming the key and the problem.
    pub damaged: Vec<StoreError>,
}

/// Every backup's record, sorted by name. Folders without a record are skipped (a backup exists only once
/// its record does); damaged records are listed apart.
pub async fn list_backups(store: &Store) -> Result<BackupListing, StoreError> {
    let dir = Layout.backups_dir();
    let listing = store.objects().list_with_delimiter(Some(&dir)).await.map_err(|e| store.explain(&dir, e))?;
    let names: Vec<String> = listing.common_prefixes.iter().filter_map(|p| Layout.backup_of(p)).collect();
    let read: Vec<Result<Option<BackupRecord>, StoreError>> = futures::stream::iter(names)
        .map(|name| async move { read_backup(store, &name).await })
        .buffered(8)
        .collect()
        .await;
    let mut found = BackupListing::default();
    for result in read {
        match result {
            Ok(Some(record)) => found.records.push(record),
            Ok(None) => {}
            Err(damaged @ StoreError::Corrupt { .. }) => found.damaged.push(damaged),
            Err(other) => return Err(other),
        }
    }
    found.records.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(found)
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
