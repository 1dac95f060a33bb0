//! Bucket sync for one location: backups found in the bucket appear as Backup objects (re-pointed to this
//! location), and Completed or PartiallyFailed objects whose data is gone are removed. The cluster's side is
//! read from the Backup controller's store (its watch), so a period that finds nothing new costs the API
//! server nothing and the bucket one listing: one request per 1,000 backups, the floor, as S3 has no feed of
//! changes.

use cairn_api::{Backup, labels};
use cairn_kube::errors::is_conflict;
use std::collections::BTreeSet;

use backup_core::backup::{ClusterBackup, list_backup_names, plan_sync, read_backup};
use futures::{StreamExt, TryStreamExt, stream};
use kube::{
    Api, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    runtime::reflector::Store,
};
use serde_json::json;

use super::{KubeContext, ReconcileError, delete_exact};
use crate::{context::Context, locations::OpenLocation};

/// Backups found in the bucket turned into objects at once (each a record read, a create and a status write).
const CREATE_CONCURRENCY: usize = 8;

/// What one sync did.
#[derive(Debug, Default)]
pub(crate) struct Synced {
    /// Backup objects created from the bucket.
    pub created: usize,
    /// Backup objects removed because their data is gone.
    pub removed: usize,
}

/// Synchronises the cluster's Backup objects, as `backups` (the Backup controller's store, ready) holds them,
/// with `location`'s bucket. An `Err(message)` inside says the bucket could not be listed.
pub(crate) async fn sync_location(
    context: &Context,
    location: &OpenLocation,
    backups: &Store<Backup>,
) -> Result<Result<Synced, String>, ReconcileError> {
    let location_name = location.name();
    // The objects first, then the bucket: a backup that completes in between is then in the bucket listing,
    // so it is never taken for one whose data is gone. The store may lag behind the cluster by a moment; a
    // lagging copy is still one from before the listing, and what it misses costs a create that is refused
    // (the object exists) or a removal that the record read again and the uid precondition refuse.
    let objects = backups.state();
    let stored: BTreeSet<String> = match list_backup_names(&location.store).await {
        Ok(names) => names.into_iter().collect(),
        Err(error) => return Ok(Err(error.to_string())),
    };
    let cluster: Vec<ClusterBackup> = objects
        .iter()
        .map(|b| ClusterBackup { name: b.name_any(), location: b.spec.storage_location.clone(), phase: b.phase() })
        .collect();
    let plan = plan_sync(&location_name, &stored, &cluster);
    let api = context.api::<Backup>();
    let (api_ref, name_ref) = (&api, location_name.as_str());
    let created: Vec<bool> = stream::iter(plan.create)
        .map(|name| async move { create_from_record(api_ref, location, name_ref, &name).await })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect()
        .await?;
    let mut synced = Synced { created: created.iter().filter(|c| **c).count(), removed: 0 };
    for name in &plan.remove {
        // Asked once more, just before: only a record that is still missing removes the object.
        if !matches!(read_backup(&location.store, name).await, Ok(None)) {
            continue;
        }
        let uid = objects.iter().find(|b| b.name_any() == *name).and_then(|b| b.uid());
        delete_exact(&api, name, uid.as_deref()).await?;
        tracing::info!(backup = %name, location = %location_name, "backup's data is gone from the bucket; object removed");
        synced.removed += 1;
    }
    Ok(Ok(synced))
}

/// Creates the object of stored backup `name` with its record's status; false when there is nothing to
/// create (no record yet, an unreadable one, or an object of that name already).
async fn create_from_record(
    api: &Api<Backup>,
    location: &OpenLocation,
    location_name: &str,
    name: &str,
) -> Result<bool, ReconcileError> {
    let record = match read_backup(&location.store, name).await {
        Ok(Some(record)) => record,
        // A folder without a record is a backup still being written, or one that never finished.
        Ok(None) => return Ok(false),
        Err(error) => {
            tracing::warn!(backup = %name, location = %location_name, "unreadable record skipped: {error}");
            return Ok(false);
        }
    };
    let mut labels = record.metadata.labels.clone();
    labels.insert(labels::STORAGE_LOCATION.to_owned(), location_name.to_owned());
    let mut spec = record.spec.clone();
    spec.storage_location = location_name.to_owned();
    let object = Backup {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            annotations: Some([(labels::SYNCED_FROM_BUCKET.to_owned(), "true".to_owned())].into()),
            ..Default::default()
        },
        spec,
        status: None,
    };
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => {}
        Err(error) if is_conflict(&error) => return Ok(false),
        Err(error) => return Err(ReconcileError::Kube { action: format!("creating backup {name}"), error }),
    }
    let status = record.status.object_status();
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
        .await
        .doing(|| format!("writing the status of synced backup {name}"))?;
    tracing::info!(backup = %name, location = %location_name, "backup found in the bucket");
    Ok(true)
}
