//! Backups: a New Backup object is validated, waits for the backup slot, runs the backup engine into its
//! location, and ends Completed, PartiallyFailed, Failed or FailedValidation. An InProgress object this
//! process is not running was left by a server that stopped: it is marked Failed (or Completed, if its
//! record reached the bucket before the server stopped).

use std::{sync::Arc, time::Duration};

use backup_core::{
    api::{Backup, BackupObjectProgress, BackupObjectStatus, BackupPhase, labels},
    backup::{BackupError, BackupProgress, BackupRequest, read_backup, run_backup},
    duration::parse_duration,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;
use tokio::sync::watch;

use super::{KubeContext, ReconcileError};
use crate::{context::Context, locations};

/// Set on Backup objects that sync created from the bucket: they are records, never run.
pub const SYNCED_ANNOTATION: &str = "cairn.dev/synced-from-bucket";

/// How often a running backup's progress is written to its status.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// Reconciles one Backup.
pub async fn reconcile(backup: Arc<Backup>, context: Arc<Context>) -> Result<Action, ReconcileError> {
    let name = backup.name_any();
    // The watch cache may lag behind this server's own status writes: decide on a fresh read.
    let Some(backup) = context.api::<Backup>().get_opt(&name).await.doing(|| format!("reading backup {name}"))? else {
        return Ok(Action::await_change());
    };
    match backup.phase() {
        BackupPhase::New if backup.annotations().contains_key(SYNCED_ANNOTATION) => Ok(Action::await_change()),
        BackupPhase::New => run(&backup, &context).await,
        BackupPhase::InProgress if !context.is_running(&key(&name)) => adopt_orphan(&backup, &context).await,
        _ => Ok(Action::await_change()),
    }
}

fn key(name: &str) -> String {
    format!("backup/{name}")
}

async fn patch_status(api: &Api<Backup>, name: &str, status: serde_json::Value) -> Result<(), ReconcileError> {
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
        .await
        .doing(|| format!("updating the status of backup {name}"))?;
    Ok(())
}

fn full_status(status: &BackupObjectStatus) -> serde_json::Value {
    serde_json::to_value(status).expect("a status serialises")
}

async fn fail_validation(api: &Api<Backup>, name: &str, reason: String) -> Result<Action, ReconcileError> {
    tracing::warn!(backup = name, "failed validation: {reason}");
    patch_status(api, name, json!({ "phase": BackupPhase::FailedValidation, "validationErrors": [reason] })).await?;
    Ok(Action::await_change())
}

async fn run(backup: &Backup, context: &Arc<Context>) -> Result<Action, ReconcileError> {
    let api = context.api::<Backup>();
    let name = backup.name_any();
    let schedule = backup.labels().get(labels::SCHEDULE_NAME).cloned().unwrap_or_default();
    let mut spec = backup.spec.clone();
    if spec.ttl.is_empty() {
        spec.ttl = context.settings.default_ttl.clone();
    }
    if let Err(error) = parse_duration(&spec.ttl) {
        context.metrics.backup_validation_failed(&schedule);
        return fail_validation(&api, &name, format!("invalid spec.ttl: {error}")).await;
    }
    let location = match locations::open(context, &spec.storage_location).await {
        Ok(location) => location,
        Err(problem) => {
            context.metrics.backup_validation_failed(&schedule);
            return fail_validation(&api, &name, problem.to_string()).await;
        }
    };
    if location.object.is_read_only() {
        context.metrics.backup_validation_failed(&schedule);
        let reason = format!(
            "backup storage location {} is ReadOnly: it takes no new backups; set its accessMode to ReadWrite \
             (cairn backup-location set {} --access-mode ReadWrite) or name another location",
            location.name(),
            location.name()
        );
        return fail_validation(&api, &name, reason).await;
    }

    // One backup at a time; the others stay New until the slot is free.
    let _slot = context.backup_slot.acquire().await.expect("the backup slot is never closed");
    let Some(_running) = context.start_running(key(&name)) else { return Ok(Action::await_change()) };
    match api.get_opt(&name).await.doing(|| format!("reading backup {name}"))? {
        Some(current) if current.phase() == BackupPhase::New => {}
        _ => return Ok(Action::await_change()),
    }
    spec.storage_location = location.name();
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({
            "metadata": { "labels": { labels::STORAGE_LOCATION: location.name() } },
            "spec": { "storageLocation": location.name(), "ttl": spec.ttl },
        })),
    )
    .await
    .doing(|| format!("labelling backup {name}"))?;
    let started = Timestamp::now();
    patch_status(&api, &name, json!({ "phase": BackupPhase::InProgress, "startTimestamp": Time(started) })).await?;
    context.metrics.backup_attempt(&schedule);
    tracing::info!(backup = %name, location = %location.name(), "backup starting");

    let request = BackupRequest { name: name.clone(), spec, labels: backup.labels().clone() };
    let (progress, watcher) = watch::channel(BackupProgress::default());
    let reporter = tokio::spawn(report_progress(api.clone(), name.clone(), watcher));
    let result = run_backup(&context.client, &location.store, request, &progress).await;
    reporter.abort();
    let elapsed = Duration::from_secs_f64((Timestamp::now() - started).get_seconds() as f64);
    let (status, phase) = match result {
        Ok(outcome) => {
            let status = BackupObjectStatus::from_record(&outcome.record.status);
            let size = outcome.record.status.archive.as_ref().map_or(0, |a| a.size);
            let phase = status.phase.unwrap_or(BackupPhase::Failed);
            context.metrics.backup_finished(
                &schedule,
                phase,
                elapsed,
                size,
                outcome.record.status.progress.items_backed_up,
            );
            (full_status(&status), phase)
        }
        Err(
            error @ (BackupError::InvalidName(_)
            | BackupError::Ttl(_)
            | BackupError::Selection(_)
            | BackupError::Exists { .. }),
        ) => {
            context.metrics.backup_validation_failed(&schedule);
            (
                json!({ "phase": BackupPhase::FailedValidation, "validationErrors": [error.to_string()] }),
                BackupPhase::FailedValidation,
            )
        }
        Err(error) => {
            context.metrics.backup_finished(&schedule, BackupPhase::Failed, elapsed, 0, 0);
            let status = json!({
                "phase": BackupPhase::Failed,
                "failureReason": error.to_string(),
                "completionTimestamp": Time(Timestamp::now()),
            });
            (status, BackupPhase::Failed)
        }
    };
    tracing::info!(backup = %name, phase = phase.as_str(), "backup finished");
    patch_status(&api, &name, status).await?;
    Ok(Action::await_change())
}

/// Writes the engine's counters to the status every [`PROGRESS_INTERVAL`] while the backup runs.
async fn report_progress(api: Api<Backup>, name: String, mut progress: watch::Receiver<BackupProgress>) {
    loop {
        tokio::time::sleep(PROGRESS_INTERVAL).await;
        if progress.has_changed().is_err() {
            return;
        }
        let now = progress.borrow_and_update().clone();
        let counts = BackupObjectProgress { total_items: now.items, items_backed_up: now.items };
        if let Err(error) = patch_status(&api, &name, json!({ "progress": counts })).await {
            tracing::debug!("{error}");
        }
    }
}

/// An InProgress backup nobody runs: its server stopped. If the record reached the bucket the backup
/// finished; otherwise it failed, and its partial files (never a record) stay unreadable as a backup.
async fn adopt_orphan(backup: &Backup, context: &Arc<Context>) -> Result<Action, ReconcileError> {
    let api = context.api::<Backup>();
    let name = backup.name_any();
    let record = match locations::open(context, &backup.spec.storage_location).await {
        Ok(location) => read_backup(&location.store, &name).await.ok().flatten(),
        Err(_) => None,
    };
    let status = match record {
        Some(record) => full_status(&BackupObjectStatus::from_record(&record.status)),
        None => json!({
            "phase": BackupPhase::Failed,
            "failureReason": "the server stopped while this backup was running; its data is incomplete and was \
                              never recorded as a backup. Create a new backup.",
            "completionTimestamp": Time(Timestamp::now()),
        }),
    };
    tracing::warn!(backup = %name, "found InProgress with no server running it; {status}");
    patch_status(&api, &name, status).await?;
    Ok(Action::await_change())
}
