//! Restores: a New Restore object is validated (its backup, or its schedule's latest restorable backup,
//! must exist and be restorable), runs the restore engine from the backup's location, and ends Completed,
//! PartiallyFailed, Failed or FailedValidation. An InProgress restore nobody runs is marked Failed.

use std::{sync::Arc, time::Duration};

use backup_core::{
    api::{Backup, Restore, RestoreObjectPhase, RestoreObjectProgress, labels},
    restore::{RestoreError, RestorePhase, RestoreProgress, RestoreRequest, run_restore},
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;
use tokio::sync::watch;

use backup_core::restore::label_value;

use super::{KubeContext, ReconcileError};
use crate::{context::Context, locations};

const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// Reconciles one Restore.
pub async fn reconcile(restore: Arc<Restore>, context: Arc<Context>) -> Result<Action, ReconcileError> {
    let name = restore.name_any();
    // The watch cache may lag behind this server's own status writes: decide on a fresh read.
    let Some(restore) = context.api::<Restore>().get_opt(&name).await.doing(|| format!("reading restore {name}"))?
    else {
        return Ok(Action::await_change());
    };
    match restore.phase() {
        RestoreObjectPhase::New => run(&restore, &context).await,
        RestoreObjectPhase::InProgress if !context.is_running(&key(&name)) => {
            let reason = "the server stopped while this restore was running; objects restored until then stay, \
                          run a new restore (policy none skips them) to finish";
            tracing::warn!(restore = %name, "found InProgress with no server running it");
            patch_status(
                &context.api(),
                &name,
                json!({ "phase": RestoreObjectPhase::Failed, "failureReason": reason, "completionTimestamp": Time(Timestamp::now()) }),
            )
            .await?;
            Ok(Action::await_change())
        }
        _ => Ok(Action::await_change()),
    }
}

fn key(name: &str) -> String {
    format!("restore/{name}")
}

async fn patch_status(api: &Api<Restore>, name: &str, status: serde_json::Value) -> Result<(), ReconcileError> {
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
        .await
        .doing(|| format!("updating the status of restore {name}"))?;
    Ok(())
}

async fn fail_validation(
    context: &Context,
    name: &str,
    schedule: &str,
    reason: String,
) -> Result<Action, ReconcileError> {
    tracing::warn!(restore = name, "failed validation: {reason}");
    context.metrics.restore_validation_failed(schedule);
    patch_status(
        &context.api(),
        name,
        json!({ "phase": RestoreObjectPhase::FailedValidation, "validationErrors": [reason] }),
    )
    .await?;
    Ok(Action::await_change())
}

/// The backup a restore reads: the named one, or the newest restorable backup of the named schedule.
async fn find_backup(context: &Context, restore: &Restore) -> Result<Result<Backup, String>, ReconcileError> {
    let backups = context.api::<Backup>();
    let spec = &restore.spec;
    if !spec.backup_name.is_empty() {
        let found =
            backups.get_opt(&spec.backup_name).await.doing(|| format!("reading backup {}", spec.backup_name))?;
        return Ok(match found {
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
        });
    }
    let Some(schedule) = spec.schedule_name.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(Err("name a backup (spec.backupName) or a schedule (spec.scheduleName) to restore".into()));
    };
    let selector = format!("{}={}", labels::SCHEDULE_NAME, label_value(schedule));
    let list = backups.list(&ListParams::default().labels(&selector)).await.doing(|| "listing backups".into())?;
    let newest = list
        .items
        .into_iter()
        .filter(|b| b.phase().is_restorable())
        .max_by_key(|b| b.status.as_ref().and_then(|s| s.start_timestamp.clone()).map(|t| t.0));
    Ok(newest.ok_or_else(|| format!("schedule {schedule} has no Completed or PartiallyFailed backup to restore")))
}

async fn run(restore: &Restore, context: &Arc<Context>) -> Result<Action, ReconcileError> {
    let api = context.api::<Restore>();
    let name = restore.name_any();
    let backup = match find_backup(context, restore).await? {
        Ok(backup) => backup,
        Err(reason) => return fail_validation(context, &name, "", reason).await,
    };
    let schedule = backup.labels().get(labels::SCHEDULE_NAME).cloned().unwrap_or_default();
    let location = match locations::open(context, &backup.spec.storage_location).await {
        Ok(location) => location,
        Err(problem) => return fail_validation(context, &name, &schedule, problem.to_string()).await,
    };
    let Some(_running) = context.start_running(key(&name)) else { return Ok(Action::await_change()) };
    let backup_name = backup.name_any();
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({
            "metadata": { "labels": { labels::BACKUP_NAME: label_value(&backup_name) } },
            "spec": { "backupName": backup_name },
        })),
    )
    .await
    .doing(|| format!("labelling restore {name}"))?;
    patch_status(
        &api,
        &name,
        json!({ "phase": RestoreObjectPhase::InProgress, "startTimestamp": Time(Timestamp::now()) }),
    )
    .await?;
    context.metrics.restore_attempt(&schedule);
    tracing::info!(restore = %name, backup = %backup_name, "restore starting");

    let mut spec = restore.spec.clone();
    spec.backup_name = backup_name;
    let request = RestoreRequest { name: name.clone(), spec, dry_run: false };
    let (progress, watcher) = watch::channel(RestoreProgress::default());
    let reporter = tokio::spawn(report_progress(api.clone(), name.clone(), watcher));
    let result = run_restore(&context.client, &location.store, request, &progress).await;
    reporter.abort();
    let status = match result {
        Ok(outcome) => {
            let record = &outcome.restore.status;
            let phase = match record.phase {
                RestorePhase::Completed | RestorePhase::DryRun => RestoreObjectPhase::Completed,
                RestorePhase::PartiallyFailed => RestoreObjectPhase::PartiallyFailed,
            };
            context.metrics.restore_finished(&schedule, phase);
            json!({
                "phase": phase,
                "completionTimestamp": Time(record.completion_timestamp),
                "progress": RestoreObjectProgress { total_items: record.total_items, items_restored: record.items_restored },
                "warnings": record.warnings,
                "errors": record.errors,
            })
        }
        Err(error @ (RestoreError::Mapping(_) | RestoreError::Name(_) | RestoreError::Selection(_))) => {
            return fail_validation(context, &name, &schedule, error.to_string()).await;
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
    patch_status(&api, &name, status).await?;
    Ok(Action::await_change())
}

async fn report_progress(api: Api<Restore>, name: String, mut progress: watch::Receiver<RestoreProgress>) {
    loop {
        tokio::time::sleep(PROGRESS_INTERVAL).await;
        if progress.has_changed().is_err() {
            return;
        }
        let now = progress.borrow_and_update().clone();
        let counts = RestoreObjectProgress { total_items: now.total, items_restored: now.done };
        if let Err(error) = patch_status(&api, &name, json!({ "progress": counts })).await {
            tracing::debug!("{error}");
        }
    }
}
