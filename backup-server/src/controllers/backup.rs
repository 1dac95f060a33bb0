//! Backups: a New Backup object waits for the backup slot, is validated on a fresh read, runs the backup
//! engine into its location, and ends Completed, PartiallyFailed, Failed or FailedValidation. An InProgress
//! object this process is not running was left by a server that stopped: it is marked Failed, or Completed
//! if its record reached the bucket before the server stopped. A New object that sync created from the bucket
//! gets its status from the stored record.

use cairn_api::{Backup, BackupObjectProgress, BackupObjectStatus, BackupPhase, BackupSpec, labels};
use std::{sync::Arc, time::Duration};

use backup_core::backup::{
    BackupError, BackupOutcome, BackupProgress, BackupRequest,
    placement::{LocationUse, check_access},
    read_backup,
    retention::effective_ttl,
    run_backup,
};
use cairn_kube::duration::{expires_at, parse_duration};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{KubeContext, ReconcileError, delete_exact, patch_final_status, patch_status, report_progress};
use crate::{
    context::Context,
    locations::{self, LocationProblem, OpenLocation},
};

/// Reconciles one Backup.
pub(crate) async fn reconcile(backup: Arc<Backup>, context: Arc<Context>) -> Result<Action, ReconcileError> {
    let name = backup.name_any();
    // The watch cache may lag behind this server's own status writes: decide on a fresh read.
    let Some(backup) = context.api::<Backup>().get_opt(&name).await.doing(|| format!("reading backup {name}"))? else {
        return Ok(Action::await_change());
    };
    match backup.phase() {
        BackupPhase::New if backup.annotations().contains_key(labels::SYNCED_FROM_BUCKET) => {
            complete_synced(&backup, &context).await
        }
        BackupPhase::New => run(&backup, &context).await,
        BackupPhase::InProgress if !context.is_running(&key(&backup)) => adopt_orphan(&backup, &context).await,
        _ => Ok(Action::await_change()),
    }
}

/// What this process runs is keyed by uid: a deleted and re-created backup of the same name is another one.
fn key(backup: &Backup) -> String {
    format!("backup/{}", backup.uid().unwrap_or_default())
}

fn full_status(status: &BackupObjectStatus) -> Value {
    serde_json::to_value(status).expect("a status serialises")
}

/// A FailedValidation status; it expires like any backup, so garbage collection removes the object in time.
fn validation_failed(reason: String, ttl: Duration) -> Value {
    let expiration = expires_at(Timestamp::now(), ttl);
    json!({ "phase": BackupPhase::FailedValidation, "validationErrors": [reason], "expiration": Time(expiration) })
}

/// The status a location problem gives: FailedValidation when the location is missing or unusable as
/// configured; a transient API failure is retried instead.
fn location_failure(problem: LocationProblem, ttl: Duration) -> Result<Value, ReconcileError> {
    if problem.is_transient() {
        return Err(ReconcileError::Transient(problem.to_string()));
    }
    Ok(validation_failed(problem.to_string(), ttl))
}

/// A New backup, checked: its spec as it will run, its TTL and its location.
struct Validated {
    spec: BackupSpec,
    ttl: Duration,
    location: OpenLocation,
}

/// Checks a New backup: its TTL (0 or none is the server's default), its location (found, usable, not
/// ReadOnly). A problem is returned as the FailedValidation status to write; a passing failure to reach the
/// API server is retried.
async fn validate(backup: &Backup, context: &Context) -> Result<Result<Validated, Value>, ReconcileError> {
    let mut spec = backup.spec.clone();
    let default_ttl = parse_duration(&context.settings.default_ttl).unwrap_or(Duration::from_secs(720 * 3600));
    let ttl = match effective_ttl(&spec.ttl, &context.settings.default_ttl) {
        Ok(ttl) => ttl,
        Err(error) => return Ok(Err(validation_failed(format!("invalid spec.ttl: {error}"), default_ttl))),
    };
    if spec.ttl.trim().is_empty() || parse_duration(&spec.ttl).is_ok_and(|own| own.is_zero()) {
        spec.ttl = context.settings.default_ttl.clone();
    }
    let location = match locations::open(context, &spec.storage_location).await {
        Ok(location) => location,
        Err(problem) => return Ok(Err(location_failure(problem, ttl)?)),
    };
    if let Err(refused) = check_access(&location.object, LocationUse::NewBackup) {
        return Ok(Err(validation_failed(refused.to_string(), ttl)));
    }
    spec.storage_location = location.name();
    spec.format = spec.format.or(location.object.spec.backup_format);
    Ok(Ok(Validated { spec, ttl, location }))
}

async fn run(backup: &Backup, context: &Arc<Context>) -> Result<Action, ReconcileError> {
    let api = context.api::<Backup>();
    let name = backup.name_any();
    let uid = backup.uid();
    let schedule = backup.labels().get(labels::SCHEDULE_NAME).cloned().unwrap_or_default();

    // One backup at a time; the others stay New until the slot is free. Everything is then decided on a
    // fresh read, so a location made ReadOnly while a backup waited is honoured.
    let _slot = context.backup_slot.acquire().await.expect("the backup slot is never closed");
    let Some(backup) = api.get_opt(&name).await.doing(|| format!("reading backup {name}"))? else {
        return Ok(Action::await_change());
    };
    if backup.phase() != BackupPhase::New || backup.uid() != uid {
        return Ok(Action::await_change());
    }
    let Some(_running) = context.start_running(key(&backup)) else { return Ok(Action::await_change()) };
    let uid = uid.as_deref();
    let validated = match validate(&backup, context).await? {
        Ok(validated) => validated,
        Err(status) => {
            context.metrics.backup_validation_failed(&schedule);
            patch_status(&api, &name, uid, status).await?;
            return Ok(Action::await_change());
        }
    };
    let started = mark_started(&api, &backup, &validated).await?;
    context.metrics.backup_attempt(&schedule);
    tracing::info!(backup = %name, location = %validated.location.name(), "backup starting");
    execute(&api, &backup, validated, started, context, &schedule).await?;
    Ok(Action::await_change())
}

/// Labels the backup with its location, settles its spec and marks it InProgress; returns when it started.
async fn mark_started(api: &Api<Backup>, backup: &Backup, validated: &Validated) -> Result<Timestamp, ReconcileError> {
    let (name, uid) = (backup.name_any(), backup.uid());
    let location = validated.location.name();
    let metadata = json!({
        "metadata": { "uid": uid, "labels": { labels::STORAGE_LOCATION: location } },
        "spec": { "storageLocation": location, "ttl": validated.spec.ttl, "format": validated.spec.format },
    });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(metadata))
        .await
        .doing(|| format!("labelling backup {name}"))?;
    let started = Timestamp::now();
    let expiration = expires_at(started, validated.ttl);
    let status =
        json!({ "phase": BackupPhase::InProgress, "startTimestamp": Time(started), "expiration": Time(expiration) });
    patch_status(api, &name, uid.as_deref(), status).await?;
    Ok(started)
}

/// Runs the engine, reporting progress, and writes the outcome and its metrics.
async fn execute(
    api: &Api<Backup>,
    backup: &Backup,
    validated: Validated,
    started: Timestamp,
    context: &Context,
    schedule: &str,
) -> Result<(), ReconcileError> {
    let (name, uid) = (backup.name_any(), backup.uid());
    // The record carries the object's uid: only this object may later adopt or delete what it wrote.
    let mut record_labels = backup.labels().clone();
    record_labels.insert(labels::BACKUP_UID.to_owned(), uid.clone().unwrap_or_default());
    let request = BackupRequest { name: name.clone(), spec: validated.spec, labels: record_labels };
    let (progress, watcher) = watch::channel(BackupProgress::default());
    let reporter = tokio::spawn(report_progress(api.clone(), name.clone(), uid.clone(), watcher, progress_status));
    let result = run_backup(&context.client, &validated.location.store, request, &progress).await;
    reporter.abort();
    // The server lives on: what the backup freed after its lists ended (its record, side files, the
    // manifest's upload) goes back to the system now rather than at the next backup's lists.
    cairn_kube::memory::release_freed();
    let elapsed =
        Duration::from_secs_f64((Timestamp::now() - started).total(jiff::Unit::Second).unwrap_or(0.0).max(0.0));
    let (status, phase) = outcome_status(&result);
    match (&result, phase) {
        (_, BackupPhase::FailedValidation) => context.metrics.backup_validation_failed(schedule),
        (Ok(outcome), phase) => {
            let size = outcome.record.status.archive.as_ref().map_or(0, |a| a.size);
            let items = outcome.record.status.progress.items_backed_up;
            context.metrics.backup_finished(schedule, phase, elapsed, size, items);
        }
        (Err(_), phase) => context.metrics.backup_finished(schedule, phase, elapsed, 0, 0),
    }
    tracing::info!(backup = %name, phase = phase.as_str(), "backup finished");
    patch_final_status(api, &name, uid.as_deref(), status).await
}

/// The status an engine run ends in.
fn outcome_status(result: &Result<BackupOutcome, BackupError>) -> (Value, BackupPhase) {
    match result {
        Ok(outcome) => {
            let status = outcome.record.status.object_status();
            let phase = status.phase.unwrap_or(BackupPhase::Failed);
            (full_status(&status), phase)
        }
        Err(
            error @ (BackupError::InvalidName(_)
            | BackupError::Ttl(_)
            | BackupError::Selection(_)
            | BackupError::Exists { .. }),
        ) => (
            json!({ "phase": BackupPhase::FailedValidation, "validationErrors": [error.to_string()] }),
            BackupPhase::FailedValidation,
        ),
        Err(error) => (
            json!({
                "phase": BackupPhase::Failed,
                "failureReason": error.to_string(),
                "completionTimestamp": Time(Timestamp::now()),
            }),
            BackupPhase::Failed,
        ),
    }
}

fn progress_status(p: &BackupProgress) -> Value {
    json!({ "progress": BackupObjectProgress { total_items: p.items, items_backed_up: p.items } })
}

/// An InProgress backup nobody runs: its server stopped. If its own record (labelled with its uid) reached the
/// bucket, the backup finished; otherwise it failed (its partial files are never a backup, and a record of that
/// name written by another cluster is not its own). When the bucket cannot be asked for a reason that may pass,
/// the reconcile is retried; when the location is gone or unusable, the backup is Failed with that reason.
async fn adopt_orphan(backup: &Backup, context: &Arc<Context>) -> Result<Action, ReconcileError> {
    let api = context.api::<Backup>();
    let name = backup.name_any();
    let uid = backup.uid().unwrap_or_default();
    let failed = |why: String| {
        json!({
            "phase": BackupPhase::Failed,
            "failureReason": format!("the server stopped while this backup was running; {why}. Create a new backup."),
            "completionTimestamp": Time(Timestamp::now()),
        })
    };
    let status = match locations::open(context, &backup.spec.storage_location).await {
        Err(problem) if problem.is_transient() => {
            return Err(ReconcileError::Transient(format!("backup {name} was left InProgress: {problem}")));
        }
        Err(problem) => failed(format!("its location cannot be read to check it ({problem})")),
        Ok(location) => match read_backup(&location.store, &name).await {
            Ok(Some(record)) if record.is_written_by(&uid) => full_status(&record.status.object_status()),
            Ok(_) => failed("its data is incomplete and was never recorded as a backup".into()),
            Err(error) => {
                return Err(ReconcileError::Transient(format!("backup {name} was left InProgress: {error}")));
            }
        },
    };
    tracing::warn!(backup = %name, "found InProgress with no server running it; {status}");
    patch_final_status(&api, &name, Some(&uid), status).await?;
    Ok(Action::await_change())
}

/// A Backup object sync created whose status was never written (the server stopped in between): its status
/// comes from the stored record; the object goes if the record has gone, or its location is gone or unusable
/// (sync creates it again if the location comes back).
async fn complete_synced(backup: &Backup, context: &Arc<Context>) -> Result<Action, ReconcileError> {
    let api = context.api::<Backup>();
    let name = backup.name_any();
    let uid = backup.uid();
    let location = match locations::open(context, &backup.spec.storage_location).await {
        Ok(location) => location,
        Err(problem) if problem.is_transient() => {
            return Err(ReconcileError::Transient(format!("synced backup {name}: {problem}")));
        }
        Err(_) => {
            delete_exact(&api, &name, uid.as_deref()).await?;
            return Ok(Action::await_change());
        }
    };
    match read_backup(&location.store, &name).await {
        Ok(Some(record)) => {
            let status = full_status(&record.status.object_status());
            patch_final_status(&api, &name, uid.as_deref(), status).await?;
        }
        Ok(None) => delete_exact(&api, &name, uid.as_deref()).await?,
        Err(error) => return Err(ReconcileError::Transient(format!("synced backup {name}: {error}"))),
    }
    Ok(Action::await_change())
}
