//! Schedules: validate the expression and the template, then at each firing create a Backup named
//! `<schedule>-<YYYYMMDDhhmmss>` (labelled with the schedule, owned by it if asked), unless a backup of the
//! schedule is still New or InProgress; requeue for the next firing.

use std::{sync::Arc, time::Duration};

use backup_core::{
    api::{Backup, Schedule as ScheduleObject, SchedulePhase, labels},
    duration::parse_duration,
    schedule::{Firing, History, Schedule, backup_name, decide},
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::{
    Api, Resource, ResourceExt,
    api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams},
    runtime::controller::Action,
};
use serde_json::json;

use backup_core::restore::label_value;

use super::{KubeContext, ReconcileError};
use crate::context::Context;

/// Reconciles one Schedule.
pub async fn reconcile(object: Arc<ScheduleObject>, context: Arc<Context>) -> Result<Action, ReconcileError> {
    let api = context.api::<ScheduleObject>();
    let name = object.name_any();
    let mut problems = Vec::new();
    let schedule = match object.spec.schedule.parse::<Schedule>() {
        Ok(schedule) => Some(schedule),
        Err(error) => {
            problems.push(error.to_string());
            None
        }
    };
    if !object.spec.template.ttl.is_empty()
        && let Err(error) = parse_duration(&object.spec.template.ttl)
    {
        problems.push(format!("invalid template.ttl: {error}"));
    }
    let Some(schedule) = schedule.filter(|_| problems.is_empty()) else {
        if object.phase() != SchedulePhase::FailedValidation {
            tracing::warn!(schedule = %name, "failed validation: {problems:?}");
            patch_status(
                &api,
                &name,
                json!({ "phase": SchedulePhase::FailedValidation, "validationErrors": problems }),
            )
            .await?;
        }
        return Ok(Action::await_change());
    };
    if object.phase() != SchedulePhase::Enabled {
        patch_status(&api, &name, json!({ "phase": SchedulePhase::Enabled, "validationErrors": null })).await?;
    }
    if object.spec.paused {
        return Ok(Action::await_change());
    }

    let status = object.status.clone().unwrap_or_default();
    let history = History {
        created: object.creation_timestamp().map(|t| t.0).unwrap_or_else(Timestamp::now),
        last_backup: status.last_backup.map(|t| t.0),
        last_skipped: status.last_skipped.map(|t| t.0),
        skip_immediately: object.spec.skip_immediately.unwrap_or(false),
    };
    let now = Timestamp::now();
    let busy = has_active_backup(&context, &name).await?;
    let next = match decide(&schedule, history, now, busy) {
        Ok(Firing::Wait { next }) => next,
        Ok(Firing::Skip { next }) => {
            tracing::info!(schedule = %name, "a backup of this schedule is still running; this firing is skipped");
            patch_status(&api, &name, json!({ "lastSkipped": Time(now) })).await?;
            next
        }
        Ok(Firing::Fire { next }) => {
            create_backup(&context, &object, now).await?;
            patch_status(&api, &name, json!({ "lastBackup": Time(now) })).await?;
            next
        }
        Err(error) => {
            patch_status(
                &api,
                &name,
                json!({ "phase": SchedulePhase::FailedValidation, "validationErrors": [error.to_string()] }),
            )
            .await?;
            return Ok(Action::await_change());
        }
    };
    let wait = (next - Timestamp::now()).get_milliseconds().max(200) as u64;
    Ok(Action::requeue(Duration::from_millis(wait)))
}

async fn patch_status(api: &Api<ScheduleObject>, name: &str, status: serde_json::Value) -> Result<(), ReconcileError> {
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({ "status": status })))
        .await
        .doing(|| format!("updating the status of schedule {name}"))?;
    Ok(())
}

/// Whether a backup of the schedule is New or InProgress.
async fn has_active_backup(context: &Context, schedule: &str) -> Result<bool, ReconcileError> {
    let selector = format!("{}={}", labels::SCHEDULE_NAME, label_value(schedule));
    let backups = context
        .api::<Backup>()
        .list(&ListParams::default().labels(&selector))
        .await
        .doing(|| "listing backups".into())?;
    Ok(backups.items.iter().any(|b| b.phase().is_active()))
}

async fn create_backup(context: &Context, schedule: &ScheduleObject, now: Timestamp) -> Result<(), ReconcileError> {
    let schedule_name = schedule.name_any();
    let name = backup_name(&schedule_name, now);
    let mut labels = schedule.labels().clone();
    labels.insert(labels::SCHEDULE_NAME.to_owned(), label_value(&schedule_name));
    let owner = schedule.spec.use_owner_references_in_backup.unwrap_or(false).then(|| OwnerReference {
        api_version: ScheduleObject::api_version(&()).into_owned(),
        kind: ScheduleObject::kind(&()).into_owned(),
        name: schedule_name.clone(),
        uid: schedule.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    });
    let backup = Backup {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(context.namespace.clone()),
            labels: Some(labels),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: schedule.spec.template.clone(),
        status: None,
    };
    match context.api::<Backup>().create(&PostParams::default(), &backup).await {
        Ok(_) => {
            tracing::info!(schedule = %schedule_name, backup = %name, "schedule fired");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(source) => Err(ReconcileError::Kube { action: format!("creating backup {name}"), source }),
    }
}
