//! The Backup a schedule stamps out, built once for the server (when the schedule fires) and the CLI
//! (`cairn backup create --from-schedule`): the schedule's template as spec, its labels plus the
//! schedule's name and the template's location, and the schedule as owner when it asks for that. Pure.

use std::collections::BTreeMap;

use cairn_api::{Backup, Schedule, labels};
use cairn_kube::names::label_value;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt, api::ObjectMeta};

/// The Backup named `name` that `schedule` makes, with `extra` labels (the CLI's `--labels`) on top of the
/// schedule's own.
pub fn stamp_backup(schedule: &Schedule, name: String, extra: BTreeMap<String, String>) -> Backup {
    let schedule_name = schedule.name_any();
    let mut all_labels = schedule.labels().clone();
    all_labels.extend(extra);
    all_labels.insert(labels::SCHEDULE_NAME.to_owned(), label_value(&schedule_name));
    if !schedule.spec.template.storage_location.is_empty() {
        all_labels.insert(labels::STORAGE_LOCATION.to_owned(), schedule.spec.template.storage_location.clone());
    }
    let owner = schedule.spec.use_owner_references_in_backup.unwrap_or(false).then(|| OwnerReference {
        api_version: Schedule::api_version(&()).into_owned(),
        kind: Schedule::kind(&()).into_owned(),
        name: schedule_name.clone(),
        uid: schedule.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    });
    let metadata = ObjectMeta {
        name: Some(name),
        namespace: schedule.namespace(),
        labels: Some(all_labels),
        owner_references: owner.map(|o| vec![o]),
        ..ObjectMeta::default()
    };
    Backup { metadata, spec: schedule.spec.template.clone(), status: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::{BackupSpec, ScheduleSpec};

    #[test]
    fn a_stamped_backup_carries_the_template_the_schedule_and_its_location() {
        let template = BackupSpec { storage_location: "archive".into(), ttl: "24h".into(), ..Default::default() };
        let mut schedule = Schedule::new(
            "daily",
            ScheduleSpec { template, use_owner_references_in_backup: Some(true), ..Default::default() },
        );
        schedule.metadata.namespace = Some("cairn".into());
        schedule.metadata.uid = Some("u1".into());
        schedule.metadata.labels = Some(BTreeMap::from([("team".to_owned(), "a".to_owned())]));
        let backup = stamp_backup(&schedule, "daily-1".into(), BTreeMap::from([("run".to_owned(), "x".to_owned())]));
        let labels = backup.labels();
        assert_eq!(labels[labels::SCHEDULE_NAME], "daily");
        assert_eq!(labels[labels::STORAGE_LOCATION], "archive");
        assert_eq!((labels["team"].as_str(), labels["run"].as_str()), ("a", "x"));
        assert_eq!(backup.spec.ttl, "24h");
        assert_eq!(backup.metadata.namespace.as_deref(), Some("cairn"));
        assert_eq!(backup.owner_references()[0].uid, "u1");
    }
}
