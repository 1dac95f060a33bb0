//! DeleteBackupRequests: refuse while the backup runs or its location is read-only or unreachable; otherwise
//! mark the backup Deleting, delete its stored data, the restores made from it (objects and stored files),
//! then the Backup object. Processed requests are removed after a day.

use cairn_api::{Backup, BackupPhase, DeleteBackupRequest, RequestPhase, Restore, labels};
use std::{sync::Arc, time::Duration};

use backup_core::backup::{
    deletion::{check_deletable, stores_data},
    read_backup,
};
use jiff::{Timestamp, ToSpan};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;

use cairn_kube::names::label_value;

use super::{KubeContext, ReconcileError, delete_exact};
use crate::{
    context::Context,
    locations::{self, OpenLocation},
};

/// How long a processed request is kept.
const KEEP_PROCESSED: Duration = Duration::from_secs(24 * 3600);

/// Reconciles one DeleteBackupRequest.
pub(crate) async fn reconcile(
    request: Arc<DeleteBackupRequest>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let api = context.api::<DeleteBackupRequest>();
    let name = request.name_any();
    let status = request.status.clone().unwrap_or_default();
    match status.phase.unwrap_or_default() {
        RequestPhase::Processed => {
            let processed = status.processed_timestamp.map(|t| t.0).unwrap_or_else(Timestamp::now);
            let expires = processed + 24.hours();
            if expires <= Timestamp::now() {
                delete_exact(&api, &name, request.uid().as_deref()).await?;
                return Ok(Action::await_change());
            }
            let left = Duration::try_from(expires.duration_since(Timestamp::now())).unwrap_or(Duration::from_secs(1));
            Ok(Action::requeue(KEEP_PROCESSED.min(left.max(Duration::from_secs(1)))))
        }
        // InProgress left by a stopped server is simply done again: every step is idempotent.
        RequestPhase::New | RequestPhase::InProgress => {
            // The watch cache may lag behind this reconciler's own status writes: decide on a fresh read.
            match api.get_opt(&name).await.doing(|| format!("reading delete request {name}"))? {
                Some(fresh) if fresh.status.as_ref().and_then(|s| s.phase) != Some(RequestPhase::Processed) => {}
                _ => return Ok(Action::requeue(KEEP_PROCESSED)),
            }
            let backup_name = request.spec.backup_name.clone();
            let schedule = context
                .api::<Backup>()
                .get_opt(&backup_name)
                .await
                .ok()
                .flatten()
                .and_then(|b| b.labels().get(labels::SCHEDULE_NAME).cloned())
                .unwrap_or_default();
            let errors = match delete(&context, &request).await? {
                Ok(()) => Vec::new(),
                Err(reason) => vec![reason],
            };
            context.metrics.backup_deletion(&schedule, errors.is_empty());
            patch_status(
                &api,
                &name,
                json!({ "phase": RequestPhase::Processed, "errors": errors, "processedTimestamp": Time(Timestamp::now()) }),
            )
            .await?;
            Ok(Action::requeue(KEEP_PROCESSED))
        }
    }
}

async fn patch_status(
    api: &Api<DeleteBackupRequest>,
    name: &str,
    status: serde_json::Value,
) -> Result<(), ReconcileError> {
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
        .await
        .doing(|| format!("updating the status of delete request {name}"))?;
    Ok(())
}

/// Deletes the backup; the inner error is why it was refused or failed.
async fn delete(context: &Context, request: &DeleteBackupRequest) -> Result<Result<(), String>, ReconcileError> {
    let backup = match target(context, request).await? {
        Ok(Some(backup)) => backup,
        Ok(None) => return Ok(Ok(())),
        Err(refused) => return Ok(Err(refused)),
    };
    let name = backup.name_any();
    let restores = context.api::<Restore>();
    let all_restores = restores.list(&Default::default()).await.doing(|| "listing restores".into())?.items;
    // The rule the CLI applies before it asks: not while the backup runs or a restore reads it.
    if let Err(refused) = check_deletable(&backup, &all_restores, None) {
        return Ok(Err(refused.to_string()));
    }
    let made_from: Vec<Restore> = all_restores.into_iter().filter(|r| r.spec.backup_name == name).collect();
    let requests = context.api::<DeleteBackupRequest>();
    patch_status(&requests, &request.name_any(), json!({ "phase": RequestPhase::InProgress })).await?;
    let location = match deletable_location(context, &backup).await? {
        Ok(location) => location,
        Err(refused) => return Ok(Err(refused)),
    };
    let backups = context.api::<Backup>();
    let deleting = json!({ "status": { "phase": BackupPhase::Deleting } });
    backups
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(deleting))
        .await
        .doing(|| format!("marking backup {name} Deleting"))?;
    if let Some(location) = &location
        && let Err(failed) = delete_stored(&backup, location).await
    {
        return Ok(Err(failed));
    }
    for restore in made_from {
        let restore_name = restore.name_any();
        if let Some(location) = &location
            && let Err(error) = location.store.delete_restore(&restore_name).await
        {
            return Ok(Err(format!("deleting the stored files of restore {restore_name} failed: {error}")));
        }
        delete_exact(&restores, &restore_name, restore.uid().as_deref()).await?;
    }
    delete_exact(&backups, &name, backup.uid().as_deref()).await?;
    tracing::info!(backup = %name, "backup deleted");
    Ok(Ok(()))
}

/// The Backup the request is for, labelled onto the request: `Ok(None)` when it is already gone from an
/// earlier attempt, the refusal when it never existed or is not the one the request was made for (a
/// re-created or synced backup of the same name).
async fn target(
    context: &Context,
    request: &DeleteBackupRequest,
) -> Result<Result<Option<Backup>, String>, ReconcileError> {
    let name = request.spec.backup_name.clone();
    let Some(backup) = context.api::<Backup>().get_opt(&name).await.doing(|| format!("reading backup {name}"))? else {
        // Started earlier (by a server that stopped midway) and the backup is gone: the deletion is done.
        if request.status.as_ref().and_then(|s| s.phase) == Some(RequestPhase::InProgress) {
            return Ok(Ok(None));
        }
        return Ok(Err(format!("backup {name} does not exist in namespace {}", context.namespace)));
    };
    let live_uid = backup.uid().unwrap_or_default();
    if let Some(wanted) = request.labels().get(labels::BACKUP_UID)
        && !wanted.is_empty()
        && *wanted != live_uid
    {
        return Ok(Err(format!(
            "backup {name} is not the one this request was made for (uid {wanted}, now {live_uid}); nothing was \
             deleted. Request the deletion again if this backup is to go"
        )));
    }
    let request_name = request.name_any();
    let labels = json!({ "metadata": { "labels": {
        labels::BACKUP_NAME: label_value(&name),
        labels::BACKUP_UID: live_uid,
    } } });
    context
        .api::<DeleteBackupRequest>()
        .patch(&request_name, &PatchParams::default(), &Patch::Merge(labels))
        .await
        .doing(|| format!("labelling delete request {request_name}"))?;
    Ok(Ok(Some(backup)))
}

/// The location holding the backup's data, checked to allow a deletion and reachable; `None` when the
/// backup stored nothing (what its location holds under its name, if anything, is another backup's).
async fn deletable_location(
    context: &Context,
    backup: &Backup,
) -> Result<Result<Option<OpenLocation>, String>, ReconcileError> {
    if !stores_data(backup) {
        return Ok(Ok(None));
    }
    let name = backup.name_any();
    let location = match locations::open(context, &backup.spec.storage_location).await {
        Ok(location) => location,
        Err(problem) if problem.is_transient() => return Err(ReconcileError::Transient(problem.to_string())),
        Err(problem) => return Ok(Err(format!("cannot delete backup {name}: {problem}"))),
    };
    if let Err(refused) = check_deletable(backup, &[], Some(&location.object)) {
        return Ok(Err(refused.to_string()));
    }
    if let Err(error) = location.store.check_reachable().await {
        return Ok(Err(format!("cannot delete backup {name}: {error}")));
    }
    Ok(Ok(Some(location)))
}

/// Deletes the backup's stored data, only if it is this backup's own: the record must be the one this object
/// wrote (or the one sync made it from). A record of the same name written by another cluster, or none at
/// all, stays untouched.
async fn delete_stored(backup: &Backup, location: &OpenLocation) -> Result<(), String> {
    let name = backup.name_any();
    let live_uid = backup.uid().unwrap_or_default();
    let owned = match read_backup(&location.store, &name).await {
        Ok(Some(record)) => {
            record.is_written_by(&live_uid) || backup.annotations().contains_key(labels::SYNCED_FROM_BUCKET)
        }
        Ok(None) => false,
        Err(error) => return Err(format!("reading the record of backup {name} failed: {error}")),
    };
    if !owned {
        tracing::info!(backup = %name, location = %location.name(), "no stored record of this backup's own; only the object goes");
        return Ok(());
    }
    let removed = location
        .store
        .delete_backup(&name)
        .await
        .map_err(|error| format!("deleting the stored data of backup {name} failed: {error}"))?;
    tracing::info!(backup = %name, keys = removed, location = %location.name(), "stored data deleted");
    Ok(())
}
