//! The container images a backup's workloads name, recorded in its results so that an image prune can keep
//! what a restore of a retained backup would need, without reading the archive. Only the kinds that carry pod
//! specs are read, as the sink passes them; everything else costs nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{BackupResults, InspectError, Phase, list_backups, read_results};
use crate::store::Store;

/// The images the retained backups of a location name (so that a prune keeps them for a restore).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetainedImages {
    /// Each image reference as the backup wrote it, with the first backup that names it and its expiry.
    pub named: BTreeMap<String, String>,
    /// Retained backups of workloads made before Cairn recorded images: what they name is unknown.
    pub unrecorded: Vec<String>,
}

/// Whether `results` hold workloads but no images: the backup was made before Cairn recorded them.
pub fn images_unknown(results: &BackupResults) -> bool {
    results.images.is_empty() && results.counts.keys().any(|k| WITH_POD_SPECS.contains(&k.as_str()))
}

/// The images that the retained backups in `store` name: Completed or PartiallyFailed, not expired at `now`.
pub async fn retained_images(store: &Store, now: jiff::Timestamp) -> Result<RetainedImages, InspectError> {
    let mut retained = RetainedImages::default();
    for record in list_backups(store).await?.records {
        let kept =
            matches!(record.status.phase, Phase::Completed | Phase::PartiallyFailed) && record.status.expiration > now;
        if !kept {
            continue;
        }
        let results = read_results(store, &record).await?;
        if images_unknown(&results) {
            retained.unrecorded.push(record.name().to_owned());
        }
        for image in results.images {
            let who = format!("backup {} (kept until {})", record.name(), record.status.expiration);
            retained.named.entry(image).or_insert(who);
        }
    }
    Ok(retained)
}

/// The group-resources whose objects carry pod specs (directly or in templates and revisions).
const WITH_POD_SPECS: [&str; 9] = [
    "pods",
    "replicationcontrollers",
    "deployments.apps",
    "replicasets.apps",
    "daemonsets.apps",
    "statefulsets.apps",
    "controllerrevisions.apps",
    "jobs.batch",
    "cronjobs.batch",
];

/// Adds to `images` the image of every container (init and ephemeral ones too) in the object `json` of
/// `group_resource`, wherever its pod spec sits.
pub(super) fn collect(group_resource: &str, json: &[u8], images: &mut BTreeSet<String>) {
    if !WITH_POD_SPECS.contains(&group_resource) {
        return;
    }
    if let Ok(object) = serde_json::from_slice::<Value>(json) {
        walk(&object, images);
    }
}

fn walk(value: &Value, images: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                if matches!(key.as_str(), "containers" | "initContainers" | "ephemeralContainers")
                    && let Value::Array(containers) = field
                {
                    images.extend(containers.iter().filter_map(|c| c["image"].as_str()).map(str::to_owned));
                }
                walk(field, images);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| walk(item, images)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_found_in_pods_templates_and_revisions_and_nowhere_else() {
        let mut images = BTreeSet::new();
        let pod =
            br#"{"spec":{"initContainers":[{"image":"init:1"}],"containers":[{"image":"app:1"},{"name":"no-image"}]}}"#;
        collect("pods", pod, &mut images);
        let cronjob = br#"{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"image":"job:2"}]}}}}}}"#;
        collect("cronjobs.batch", cronjob, &mut images);
        let revision = br#"{"data":{"spec":{"template":{"spec":{"containers":[{"image":"ds:3"}]}}}}}"#;
        collect("controllerrevisions.apps", revision, &mut images);
        collect("configmaps", br#"{"data":{"containers":[{"image":"not-a-pod:1"}]}}"#, &mut images);
        collect("pods", b"not json", &mut images);
        assert_eq!(images.into_iter().collect::<Vec<_>>(), ["app:1", "ds:3", "init:1", "job:2"]);
    }
}
