//! Restores: a New Restore object is validated (it names a backup, or a schedule whose newest Completed backup
//! is taken; the backup must be restorable), runs the restore engine from the backup's location, and ends
//! Completed, PartiallyFailed, Failed or FailedValidation. An InProgress restore nobody runs takes the outcome
//! its stored record gives, or is marked Failed when the bucket has none.

use cairn_api::{Backup, BackupPhase, Restore, RestoreObjectPhase, RestoreObjectProgress, labels};
use cairn_kube::names::label_value;
use std::sync::Arc;

use backup_core::{
    restore::{RestoreError, RestorePhase, RestoreProgress, RestoreRecord, RestoreRequest, find_restore, run_restore},
    store::StoreError,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{KubeContext, ReconcileError, patch_final_status, patch_status, report_progress};
use crate::{context::Context, locations};

/// Reconciles one Restore.
pub(crate) async fn reconcile(restore: Arc<Restore>, context: Arc<Context>) -> Result<Action, ReconcileError> {
    let name = restore.name_any();
    // The watch cache may lag behind this server's own status writes: decide on a fresh read.
    let Some(restore) = context.api::<Restore>().get_opt(&name).await.doing(|| format!("reading restore {name}"))?
    else {
        return Ok(Action::await_change());
    };
    match restore.phase() {
        RestoreObjectPhase::New => run(&restore, &context).await,
        RestoreObjectPhase::InProgress if !context.is_running(&key(&restore)) => adopt_orphan(&restore, &context).await,
        _ => Ok(Action::await_change()),
    }
}

/// What this process runs is keyed by uid: a deleted and re-created restore of the same name is another one.
fn key(restore: &Restore) -> String {
    format!("restore/{}", restore.uid().unwrap_or_default())
}

async fn fail_validation(
    context: &Context,
    restore: &Restore,
    schedule: &str,
    reason: String,
) -> Result<Action, ReconcileError> {
    let name = restore.name_any();
    tracing::warn!(restore = %name, "failed validation: {reason}");
    context.metrics.restore_validation_failed(schedule);
    let status = json!({ "phase": RestoreObjectPhase::FailedValidation, "validationErrors": [reason] });
    patch_status(&context.api::<Restore>(), &name, restore.uid().as_deref(), status).await?;
    Ok(Action::await_change())
}

/// The backup a restore reads: the named one, or the newest Completed backup of the named schedule; the
/// inner error says why there is none.
async fn find_backup(context: &Context, restore: &Restore) -> Result<Result<Backup, String>, ReconcileError> {
    let backups = context.api::<Backup>();
    let spec = &restore.spec;
    let schedule = spec.schedule_name.as_deref().filter(|s| !s.is_empty());
    match (spec.backup_name.is_empty(), schedule) {
        (false, Some(_)) => Ok(Err("give spec.backupName or spec.scheduleName, not both".into())),
        (true, None) => Ok(Err("name a backup (spec.backupName) or a schedule (spec.scheduleName)".into())),
        (false, None) => {
            let found =
                backups.get_opt(&spec.backup_name).await.doing(|| format!("reading backup {}", spec.backup_name))?;
            Ok(match found {
                Some(backup) if backup.phase().is_restorable() => Ok(backup),
                Some(backup) => Err(format!(
                    "backup {} is {}, not Completed or PartiallyFailed; restore another backup",
                    spec.backup_name,
                    backup.phase().as_str()
                )),
                None => Err(format!(
                    "backup {} does not exist in namespace {}; `cairn backup get` lists the backups",
                    spec.backup_name, context.namespace
                )),
            })
        }
        (true, Some(schedule)) => {
            let selector = format!("{}={}", labels::SCHEDULE_NAME, label_value(schedule));
            let list =
                backups.list(&ListParams::default().labels(&selector)).await.doing(|| "listing backups".into())?;
            let newest = list
                .items
                .into_iter()
                .filter(|b| b.phase() == BackupPhase::Completed)
                .max_by_key(|b| b.status.as_ref().and_then(|s| s.start_timestamp.clone()).map(|t| t.0));
            Ok(newest.ok_or_else(|| format!("schedule {schedule} has no Completed backup to restore")))
        }
    }
}

async fn run(restore: &Restore, context: &Arc<Context>) -> Result<Action, ReconcileError> {
    let api = context.api::<Restore>();
    let name = restore.name_any();
    let uid = restore.uid();
    let backup = match find_backup(context, restore).await? {
        Ok(backup) => backup,
        Err(reason) => return fail_validation(context, restore, "", reason).await,
    };
    let schedule = backup.labels().get(labels::SCHEDULE_NAME).cloned().unwrap_or_default();
    let location = match locations::open(context, &backup.spec.storage_location).await {
        Ok(location) => location,
        Err(problem) if problem.is_transient() => return Err(ReconcileError::Transient(problem.to_string())),
        Err(problem) => return fail_validation(context, restore, &schedule, problem.to_string()).await,
    };
    let Some(_running) = context.start_running(key(restore)) else { return Ok(Action::await_change()) };
    let uid = uid.as_deref();
    let backup_name = backup.name_any();
    let metadata = json!({
        "metadata": { "uid": uid, "labels": { labels::BACKUP_NAME: label_value(&backup_name) } },
        "spec": { "backupName": backup_name },
    });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(metadata))
        .await
        .doing(|| format!("labelling restore {name}"))?;
    let status = json!({ "phase": RestoreObjectPhase::InProgress, "startTimestamp": Time(Timestamp::now()) });
    patch_status(&api, &name, uid, status).await?;
    context.metrics.restore_attempt(&schedule);
    tracing::info!(restore = %name, backup = %backup_name, "restore starting");

    let mut spec = restore.spec.clone();
    spec.backup_name = backup_name;
    spec.schedule_name = None;
    let mut request = RestoreRequest::new(name.clone(), spec, false);
    request.max_entry_bytes = context.settings.restore_max_object_size;
    let modifiers = backup_core::restore::load_modifiers(
        &context.client,
        &context.namespace,
        restore.spec.resource_modifier.as_ref(),
    )
    .await;
    request.modifiers = match modifiers {
        Ok(modifiers) => modifiers,
        Err(error) => {
            context.metrics.restore_validation_failed(&schedule);
            let status =
                json!({ "phase": RestoreObjectPhase::FailedValidation, "validationErrors": [error.to_string()] });
            patch_final_status(&api, &name, uid, status).await?;
            return Ok(Action::await_change());
        }
    };
    let (progress, watcher) = watch::channel(RestoreProgress::default());
    let reporter =
        tokio::spawn(report_progress(api.clone(), name.clone(), uid.map(str::to_owned), watcher, progress_status));
    let result = run_restore(&context.client, &location.store, request, &progress).await;
    reporter.abort();
    let status = match result {
        Ok(outcome) => {
            let status = record_status(&outcome.restore);
            context.metrics.restore_finished(&schedule, record_phase(&outcome.restore));
            status
        }
        Err(
            error @ (RestoreError::Mapping(_)
            | RestoreError::Name(_)
            | RestoreError::Selection(_)
            | RestoreError::Hooks(_)
            | RestoreError::Modifiers(_)),
        ) => {
            context.metrics.restore_validation_failed(&schedule);
            json!({ "phase": RestoreObjectPhase::FailedValidation, "validationErrors": [error.to_string()] })
        }
        Err(error) => {
            context.metrics.restore_finished(&schedule, RestoreObjectPhase::Failed);
            json!({
                "phase": RestoreObjectPhase::Failed,
                "failureReason": error.to_string(),
                "completionTimestamp": Time(Timestamp::now()),
            })
        }
    };
    tracing::info!(restore = %name, "restore finished: {status}");
    patch_final_status(&api, &name, uid, status).await?;
    Ok(Action::await_change())
}

fn record_phase(record: &RestoreRecord) -> RestoreObjectPhase {
    match record.status.phase {
        RestorePhase::Completed | RestorePhase::DryRun => RestoreObjectPhase::Completed,
        RestorePhase::PartiallyFailed => RestoreObjectPhase::PartiallyFailed,
        RestorePhase::Failed => RestoreObjectPhase::Failed,
    }
}

/// The status a stored restore record describes.
fn record_status(record: &RestoreRecord) -> Value {
    let status = &record.status;
    json!({
        "phase": record_phase(record),
        "startTimestamp": Time(status.start_timestamp),
        "completionTimestamp": Time(status.completion_timestamp),
        "progress": RestoreObjectProgress { total_items: status.total_items, items_restored: status.items_restored },
        "warnings": status.warnings,
        "errors": status.errors,
        "failureReason": status.failure_reason,
    })
}

fn progress_status(p: &RestoreProgress) -> Value {
    json!({ "progress": RestoreObjectProgress { total_items: p.total, items_restored: p.done } })
}

/// An InProgress restore nobody runs: its server stopped, or its final status write was lost. The stored
/// record, if the restore got that far, has the outcome; otherwise it failed. When the bucket cannot be
/// asked, nothing is decided and the reconcile is retried.
async fn adopt_orphan(restore: &Restore, context: &Arc<Context>) -> Result<Action, ReconcileError> {
    let name = restore.name_any();
    let transient = |what: String| ReconcileError::Transient(format!("restore {name} was left InProgress: {what}"));
    let backup =
        context.api::<Backup>().get_opt(&restore.spec.backup_name).await.doing(|| "reading the backup".into())?;
    let stored = match backup {
        None => None,
        Some(backup) => {
            match locations::open(context, &backup.spec.storage_location).await {
                Err(problem) if problem.is_transient() => return Err(transient(problem.to_string())),
                // The location is gone or unusable: nothing can be adopted from it.
                Err(_) => None,
                Ok(location) => match find_restore(&location.store, &name).await {
                    Ok(record) => Some(record),
                    Err(RestoreError::Name(_)) => None,
                    Err(RestoreError::Store(StoreError::NotFound { .. })) => None,
                    Err(error) => return Err(transient(error.to_string())),
                },
            }
        }
    };
    let status = match stored {
        Some(record) => record_status(&record),
        None => json!({
            "phase": RestoreObjectPhase::Failed,
            "failureReason": "the server stopped while this restore was running; objects restored until then \
                              stay. Run a new restore (policy none skips what is there) to finish.",
            "completionTimestamp": Time(Timestamp::now()),
        }),
    };
    tracing::warn!(restore = %name, "found InProgress with no server running it; {status}");
    patch_final_status(&context.api::<Restore>(), &name, restore.uid().as_deref(), status).await?;
    Ok(Action::await_change())
}
