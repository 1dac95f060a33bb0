//! The two plugin renames as actions of a rule: storage classes of claims, volumes and StatefulSet claim
//! templates, and container images of pods and pod templates (see `shortcuts.rs` for their ConfigMaps).

use std::collections::BTreeMap;

use cairn_kube::resources::PODS;
use serde_json::Value;

/// StatefulSets.
pub(super) const STATEFUL_SETS: &str = "statefulsets.apps";
/// CronJobs.
pub(super) const CRON_JOBS: &str = "cronjobs.batch";

/// Old storage class -> new.
#[derive(Debug, Clone)]
pub(super) struct StorageClasses(BTreeMap<String, String>);

impl StorageClasses {
    /// Renames old class -> new.
    pub(super) fn new(classes: BTreeMap<String, String>) -> Self {
        StorageClasses(classes)
    }
}

impl StorageClasses {
    /// Changes the classes `object` names; what changed, if anything.
    pub(super) fn apply(&self, group_resource: &str, object: &mut Value) -> Option<String> {
        let mut changes = Vec::new();
        let mut change = |place: String, class: Option<&mut Value>| {
            let Some(Value::String(class)) = class else { return };
            if let Some(new) = self.0.get(class.as_str()) {
                changes.push(format!("{place} {class} -> {new}"));
                *class = new.clone();
            }
        };
        if group_resource == STATEFUL_SETS {
            let templates = object.pointer_mut("/spec/volumeClaimTemplates").and_then(Value::as_array_mut);
            for (i, template) in templates.into_iter().flatten().enumerate() {
                let place = format!("/spec/volumeClaimTemplates/{i}/spec/storageClassName");
                change(place, template.pointer_mut("/spec/storageClassName"));
            }
        } else {
            change("/spec/storageClassName".to_owned(), object.pointer_mut("/spec/storageClassName"));
        }
        (!changes.is_empty()).then(|| changes.join(", "))
    }
}

/// (old part, new part), in the ConfigMap's key order.
#[derive(Debug, Clone)]
pub(super) struct ImageNames(Vec<(String, String)>);

impl ImageNames {
    /// Renames (old part, new part), tried in order.
    pub(super) fn new(renames: Vec<(String, String)>) -> Self {
        ImageNames(renames)
    }
}

impl ImageNames {
    /// Changes the images `object`'s pod spec names; what changed, if anything.
    pub(super) fn apply(&self, group_resource: &str, object: &mut Value) -> Option<String> {
        let pod_spec = match group_resource {
            PODS => "/spec",
            CRON_JOBS => "/spec/jobTemplate/spec/template/spec",
            _ => "/spec/template/spec",
        };
        let spec = object.pointer_mut(pod_spec)?;
        let mut changes = Vec::new();
        for (list, what) in [("containers", "container"), ("initContainers", "init container")] {
            for container in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                let name = container.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                let Some(Value::String(image)) = container.get_mut("image") else { continue };
                let Some((old, new)) = self.0.iter().find(|(old, _)| image.contains(old.as_str())) else { continue };
                let renamed = image.replace(old.as_str(), new);
                changes.push(format!("{what} {name} {image} -> {renamed}"));
                *image = renamed;
            }
        }
        (!changes.is_empty()).then(|| changes.join(", "))
    }
}
