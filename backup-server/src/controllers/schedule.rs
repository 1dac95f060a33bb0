//! Schedules: validate the expression and the template, then at each firing create a Backup named
//! `<schedule>-<YYYYMMDDhhmmss>` (labelled with the schedule, owned by it if asked), unless a backup of the
//! schedule is still New or InProgress; requeue for the next firing.

use cairn_api::{Backup, Schedule as ScheduleObject, SchedulePhase, labels};
use cairn_kube::errors::is_conflict;
use std::collections::BTreeMap;
use std::{sync::Arc, time::Duration};

use backup_core::schedule::{Firing, History, Schedule, backup_name, decide, stamp_backup};
use cairn_kube::duration::parse_duration;
use cairn_kube::names::label_value;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    ResourceExt,
    api::{ListParams, PostParams},
    runtime::controller::Action,
};
use serde_json::json;

use super::{KubeContext, ReconcileError, patch_status};
use crate::context::Context;

/// Reconciles one Schedule.
pub(crate) async fn reconcile(object: Arc<ScheduleObject>, context: Arc<Context>) -> Result<Action, ReconcileError> {
    let api = context.api::<ScheduleObject>();
    let name = object.name_any();
    // The watch cache may lag behind this server's own status writes: decide on a fresh read.
    let Some(object) = api.get_opt(&name).await.doing(|| format!("reading schedule {name}"))? else {
        return Ok(Action::await_change());
    };
    let uid = object.uid();
    let uid = uid.as_deref();
    let schedule = match validate(&object) {
        Ok(schedule) => schedule,
        Err(problems) => {
            if object.phase() != SchedulePhase::FailedValidation {
                tracing::warn!(schedule = %name, "failed validation: {problems:?}");
                let status = json!({ "phase": SchedulePhase::FailedValidation, "validationErrors": problems });
                patch_status(&api, &name, uid, status).await?;
            }
            return Ok(Action::await_change());
        }
    };
    if object.phase() != SchedulePhase::Enabled {
        patch_status(&api, &name, uid, json!({ "phase": SchedulePhase::Enabled, "validationErrors": null })).await?;
    }
    if object.spec.paused {
        return Ok(Action::await_change());
    }

    let backups = schedule_backups(&context, &name).await?;
    let busy =
        backups.iter().any(|b| b.phase().is_active() && !b.annotations().contains_key(labels::SYNCED_FROM_BUCKET));
    let history = history(&object, &backups);
    let now = Timestamp::now();
    let next = match decide(&schedule, history, now, busy) {
        Ok(Firing::Wait { next }) => next,
        Ok(Firing::Skip { next }) => {
            tracing::info!(schedule = %name, "a backup of this schedule is still running; this firing is skipped");
            patch_status(&api, &name, uid, json!({ "lastSkipped": Time(now) })).await?;
            next
        }
        Ok(Firing::Fire { next }) => {
            create_backup(&context, &object, now).await?;
            patch_status(&api, &name, uid, json!({ "lastBackup": Time(now) })).await?;
            next
        }
        Err(error) => {
            let status = json!({ "phase": SchedulePhase::FailedValidation, "validationErrors": [error.to_string()] });
            patch_status(&api, &name, uid, status).await?;
            return Ok(Action::await_change());
        }
    };
    Ok(Action::requeue(until(next, Timestamp::now())))
}

/// The schedule's expression, or why the schedule cannot be used.
fn validate(object: &ScheduleObject) -> Result<Schedule, Vec<String>> {
    let mut problems = Vec::new();
    let schedule = object.spec.schedule.parse::<Schedule>().map_err(|error| problems.push(error.to_string())).ok();
    if !object.spec.template.ttl.is_empty()
        && let Err(error) = parse_duration(&object.spec.template.ttl)
    {
        problems.push(format!("invalid template.ttl: {error}"));
    }
    schedule.filter(|_| problems.is_empty()).ok_or(problems)
}

/// What the schedule remembers of its past. A backup it made counts as a firing even when recording it in
/// lastBackup failed, so a lost status write never fires the same backup twice. (Objects sync created
/// carry the schedule's label too, but their creation time is the sync's: they do not count.)
fn history(object: &ScheduleObject, backups: &[Backup]) -> History {
    let status = object.status.clone().unwrap_or_default();
    let newest = backups
        .iter()
        .filter(|b| !b.annotations().contains_key(labels::SYNCED_FROM_BUCKET))
        .filter_map(|b| b.creation_timestamp().map(|t| t.0))
        .max();
    let last_backup = match (status.last_backup.map(|t| t.0), newest) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    History {
        created: object.creation_timestamp().map(|t| t.0).unwrap_or_else(Timestamp::now),
        last_backup,
        last_skipped: status.last_skipped.map(|t| t.0),
        skip_immediately: object.spec.skip_immediately.unwrap_or(false),
    }
}

/// How long to wait from `now` until `next`, at least 200 ms.
fn until(next: Timestamp, now: Timestamp) -> Duration {
    let wait = next.duration_since(now).max(SignedDuration::from_millis(200));
    Duration::try_from(wait).unwrap_or(Duration::from_millis(200))
}

/// The Backup objects the schedule created.
async fn schedule_backups(context: &Context, schedule: &str) -> Result<Vec<Backup>, ReconcileError> {
    let selector = format!("{}={}", labels::SCHEDULE_NAME, label_value(schedule));
    let list = context
        .api::<Backup>()
        .list(&ListParams::default().labels(&selector))
        .await
        .doing(|| "listing backups".into())?;
    Ok(list.items)
}

async fn create_backup(context: &Context, schedule: &ScheduleObject, now: Timestamp) -> Result<(), ReconcileError> {
    let schedule_name = schedule.name_any();
    let name = backup_name(&schedule_name, now);
    let backup = stamp_backup(schedule, name.clone(), BTreeMap::new());
    match context.api::<Backup>().create(&PostParams::default(), &backup).await {
        Ok(_) => {
            tracing::info!(schedule = %schedule_name, backup = %name, "schedule fired");
            Ok(())
        }
        Err(error) if is_conflict(&error) => Ok(()),
        Err(error) => Err(ReconcileError::Kube { action: format!("creating backup {name}"), error }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_until_the_next_firing_counts_whole_seconds() {
        let now: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        assert_eq!(until("2026-11-28T13:00:00.5Z".parse().unwrap(), now), Duration::from_millis(3_600_500));
        assert_eq!(until("2026-11-28T11:00:00Z".parse().unwrap(), now), Duration::from_millis(200));
    }
}
