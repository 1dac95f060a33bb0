//! Bucket sync for one location: backups found in the bucket appear as Backup objects (re-pointed to this
//! location), and Completed or PartiallyFailed objects whose data is gone are removed.

use cairn_api::{Backup, labels};
use cairn_kube::errors::is_conflict;
use std::collections::BTreeSet;

use backup_core::backup::{ClusterBackup, list_backup_names, plan_sync, read_backup};
use kube::{
    ResourceExt,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;

use super::{KubeContext, ReconcileError, delete_exact};
use crate::{context::Context, locations::OpenLocation};

/// What one sync did.
#[derive(Debug, Default)]
pub(crate) struct Synced {
    /// Backup objects created from the bucket.
    pub created: usize,
    /// Backup objects removed because their data is gone.
    pub removed: usize,
}

/// Synchronises the cluster's Backup objects with `location`'s bucket.
pub(crate) async fn sync_location(
    context: &Context,
    location: &OpenLocation,
) -> Result<Result<Synced, String>, ReconcileError> {
    let location_name = location.name();
    // The objects first, then the bucket: a backup that completes in between is then in the bucket listing,
    // so it is never taken for one whose data is gone.
    let api = context.api::<Backup>();
    let objects = api.list(&Default::default()).await.doing(|| "listing backups".into())?.items;
    let stored: BTreeSet<String> = match list_backup_names(&location.store).await {
        Ok(names) => names.into_iter().collect(),
        Err(error) => return Ok(Err(error.to_string())),
    };
    let cluster: Vec<ClusterBackup> = objects
        .iter()
        .map(|b| ClusterBackup { name: b.name_any(), location: b.spec.storage_location.clone(), phase: b.phase() })
        .collect();
    let plan = plan_sync(&location_name, &stored, &cluster);
    let mut synced = Synced::default();
    for name in &plan.create {
        let record = match read_backup(&location.store, name).await {
            Ok(Some(record)) => record,
            // A folder without a record is a backup still being written, or one that never finished.
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(backup = %name, location = %location_name, "unreadable record skipped: {error}");
                continue;
            }
        };
        let mut labels = record.metadata.labels.clone();
        labels.insert(labels::STORAGE_LOCATION.to_owned(), location_name.clone());
        let mut spec = record.spec.clone();
        spec.storage_location = location_name.clone();
        let object = Backup {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(labels),
                annotations: Some([(labels::SYNCED_FROM_BUCKET.to_owned(), "true".to_owned())].into()),
                ..Default::default()
            },
            spec,
            status: None,
        };
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(error) if is_conflict(&error) => continue,
            Err(error) => return Err(ReconcileError::Kube { action: format!("creating backup {name}"), error }),
        }
        let status = record.status.object_status();
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
            .await
            .doing(|| format!("writing the status of synced backup {name}"))?;
        tracing::info!(backup = %name, location = %location_name, "backup found in the bucket");
        synced.created += 1;
    }
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
